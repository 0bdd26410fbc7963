//! Which port of `[min-port, max-port]` a relay socket tries, and in which order.
//!
//! RFC 8656 §7.2 wants relayed ports hard to guess (RFC 6056): an `Any` or `Even` request
//! starts at a random port and probes upwards, wrapping around the range. The workers share one
//! bit per port and relay address ([`PortSpace`]), so a worker skips ports another worker holds
//! without a system call; the kernel's bind stays the arbiter (ports held by the TCP listeners'
//! relays or other processes fail with EADDRINUSE, and the caller bounds those attempts).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::rand::{SecureRandom, SystemRandom};

use crate::server::PortRequest;

/// The relay ports of every worker: one bit per port of the range for each relay address the
/// server announces.
#[derive(Debug)]
pub(crate) struct PortSpace {
    min: u16,
    max: u16,
    claims: Vec<(IpAddr, Box<[AtomicU64]>)>,
}

impl PortSpace {
    pub fn new(min: u16, max: u16, ips: &[IpAddr]) -> Self {
        let words = (usize::from(max.saturating_sub(min)) + 1).div_ceil(64);
        let claims = ips.iter().map(|&ip| (ip, (0..words).map(|_| AtomicU64::new(0)).collect())).collect();
        Self { min, max, claims }
    }

    /// Ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.max.saturating_sub(self.min)) + 1
    }

    fn bit(&self, ip: IpAddr, port: u16) -> Option<(&AtomicU64, u64)> {
        let offset = usize::from(port.checked_sub(self.min)?);
        let (_, words) = self.claims.iter().find(|(i, _)| *i == ip)?;
        Some((words.get(offset / 64)?, 1 << (offset % 64)))
    }

    /// Marks `port` on `ip` as held by the caller; false when a worker already holds it. A port
    /// of an address without claims (one the server was not configured with) is never held.
    ///
    /// Relaxed is enough: the bit guards no other memory, and read-modify-writes of one atomic
    /// are totally ordered, so exactly one of two racing claims sees the bit clear.
    pub fn claim(&self, ip: IpAddr, port: u16) -> bool {
        self.bit(ip, port).is_none_or(|(word, bit)| word.fetch_or(bit, Ordering::Relaxed) & bit == 0)
    }

    pub fn release(&self, ip: IpAddr, port: u16) {
        if let Some((word, bit)) = self.bit(ip, port) {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// The ports to try for `request`, in order: every eligible port once, from a random one.
    pub fn candidates(&self, request: PortRequest, rng: &mut Rng) -> Candidates {
        let (min, max) = (u32::from(self.min), u32::from(self.max));
        let (first, step, count) = match request {
            PortRequest::Any => (min, 1, max - min + 1),
            PortRequest::Even => {
                let first = min.next_multiple_of(2);
                (first, 2, if first > max { 0 } else { (max - first) / 2 + 1 })
            }
            PortRequest::Specific(port) => {
                (u32::from(port), 1, u32::from((self.min..=self.max).contains(&port)))
            }
        };
        let start = if count > 1 { (rng.next() % u64::from(count)) as u32 } else { 0 };
        Candidates { first, step, count, start, taken: 0 }
    }
}

/// Ports to try, see [`PortSpace::candidates`].
#[derive(Debug)]
pub(crate) struct Candidates {
    first: u32,
    step: u32,
    count: u32,
    start: u32,
    taken: u32,
}

impl Iterator for Candidates {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        if self.taken == self.count {
            return None;
        }
        let k = (self.start + self.taken) % self.count;
        self.taken += 1;
        u16::try_from(self.first + self.step * k).ok()
    }
}

/// xorshift64*, seeded from the system's randomness: where port probing starts. Not for
/// secrets; it only has to be unpredictable from outside, as RFC 6056 asks of ports.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // The server core makes the same assumption (its nonce and token keys).
        SystemRandom::new().fill(&mut seed).expect("the system random source works");
        Self(u64::from_ne_bytes(seed) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn any_visits_every_port_once_from_a_random_start() {
        let space = PortSpace::new(50000, 50009, &[IP]);
        let mut rng = Rng::new();
        let mut starts = std::collections::HashSet::new();
        for _ in 0..64 {
            let ports: Vec<u16> = space.candidates(PortRequest::Any, &mut rng).collect();
            let mut sorted = ports.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (50000..=50009).collect::<Vec<_>>());
            starts.insert(ports[0]);
        }
        assert!(starts.len() > 3, "the start moves: {starts:?}");
    }

    #[test]
    fn even_visits_even_ports_only() {
        let mut rng = Rng::new();
        for (min, max, expected) in
            [(50001, 50009, 4), (50000, 50009, 5), (50000, 50000, 1), (50001, 50001, 0)]
        {
            let ports: Vec<u16> =
                PortSpace::new(min, max, &[IP]).candidates(PortRequest::Even, &mut rng).collect();
            assert_eq!(ports.len(), expected, "{min}..={max}");
            assert!(ports.iter().all(|p| p % 2 == 0 && (min..=max).contains(p)), "{ports:?}");
        }
        let top = PortSpace::new(65534, 65535, &[IP]);
        assert_eq!(top.candidates(PortRequest::Even, &mut rng).collect::<Vec<_>>(), vec![65534]);
    }

    #[test]
    fn specific_is_that_port_inside_the_range_and_nothing_outside() {
        let space = PortSpace::new(50000, 50009, &[IP]);
        let mut rng = Rng::new();
        assert_eq!(space.candidates(PortRequest::Specific(50005), &mut rng).collect::<Vec<_>>(), vec![50005]);
        assert_eq!(space.candidates(PortRequest::Specific(50010), &mut rng).count(), 0);
        assert_eq!(space.candidates(PortRequest::Specific(49999), &mut rng).count(), 0);
    }

    #[test]
    fn a_claim_holds_until_released_per_address() {
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let space = PortSpace::new(50000, 50099, &[IP, other]);
        assert_eq!(space.len(), 100);
        assert!(space.claim(IP, 50070));
        assert!(!space.claim(IP, 50070), "held");
        assert!(space.claim(other, 50070), "another address has its own ports");
        space.release(IP, 50070);
        assert!(space.claim(IP, 50070));
        let unknown: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(space.claim(unknown, 50070) && space.claim(unknown, 50070), "untracked: the kernel decides");
    }
}
