//! Relay sockets: one non-blocking UDP socket per relayed transport address, on a port drawn
//! at random from `[min-port, max-port]` (RFC 8656 §7.2 asks for unpredictable ports).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use engine::set_dont_fragment;

use crate::server::{PortRequest, RelayError};

/// Binds tried for one relay before giving up with 508. A range that is nearly full may give
/// up while a port is still free; the bound keeps a full range from costing an allocate
/// request thousands of system calls.
const MAX_BIND_ATTEMPTS: u32 = 2048;

#[derive(Debug)]
pub(super) struct RelaySocket {
    pub socket: mio::net::UdpSocket,
    pub local: SocketAddr,
    /// Whether the socket currently sends with the IP DF bit: switched only when a send asks
    /// for the other setting, so the usual send costs no extra system call.
    dont_fragment: bool,
}

impl RelaySocket {
    /// Binds on `ip` with a port that satisfies `request`; `rng` picks where to start looking.
    pub fn open(
        ip: IpAddr,
        request: PortRequest,
        (min, max): (u16, u16),
        rng: &mut Rng,
    ) -> Result<Self, RelayError> {
        let socket =
            bind_in_range(request, (min, max), rng, |port| UdpSocket::bind(SocketAddr::new(ip, port)))?;
        socket.set_nonblocking(true).map_err(|_| RelayError::Unavailable)?;
        let local = socket.local_addr().map_err(|_| RelayError::Unavailable)?;
        // Without DONT-FRAGMENT a datagram is sent as the client gave it, fragmented if the
        // path needs it, rather than dropped at a smaller MTU (Linux's default, "want", sets DF).
        set_dont_fragment(&socket, ip.is_ipv6(), false).map_err(|_| RelayError::Unavailable)?;
        Ok(Self { socket: mio::net::UdpSocket::from_std(socket), local, dont_fragment: false })
    }

    /// Sends one datagram; `false` when the kernel would not take it now (a full socket
    /// buffer, an ICMP error from an earlier send, a datagram over the path MTU with DF).
    pub fn send(&mut self, peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> bool {
        if dont_fragment != self.dont_fragment {
            if set_dont_fragment(&self.socket, self.local.is_ipv6(), dont_fragment).is_err() {
                return false;
            }
            self.dont_fragment = dont_fragment;
        }
        self.socket.send_to(payload, peer).is_ok()
    }
}

/// Tries `bind` on the ports of `[min, max]` that `request` allows, from a random start, until
/// one is free. Shared by UDP relays and TCP relays (their ports are drawn the same way).
pub(super) fn bind_in_range<T>(
    request: PortRequest,
    (min, max): (u16, u16),
    rng: &mut Rng,
    mut bind: impl FnMut(u16) -> io::Result<T>,
) -> Result<T, RelayError> {
    let (first, step, count) = match request {
        PortRequest::Specific(port) if (min..=max).contains(&port) => (port, 1, 1),
        PortRequest::Specific(_) => return Err(RelayError::PortsExhausted),
        PortRequest::Any => (min, 1, u32::from(max - min) + 1),
        PortRequest::Even => {
            let first = min.next_multiple_of(2);
            if first > max {
                return Err(RelayError::PortsExhausted);
            }
            (first, 2, u32::from(max - first) / 2 + 1)
        }
    };
    let start = rng.below(count);
    for i in 0..count.min(MAX_BIND_ATTEMPTS) {
        let port = u32::from(first) + (start + i) % count * step;
        let port = u16::try_from(port).expect("within [min, max]");
        match bind(port) {
            Ok(socket) => return Ok(socket),
            // Taken by another relay or process; privileged ports when min-port is low.
            Err(e) if matches!(e.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) => {}
            Err(_) => return Err(RelayError::Unavailable),
        }
    }
    Err(RelayError::PortsExhausted)
}

/// xorshift64*, seeded from the system's randomness: port choice needs to be unpredictable
/// from outside, not cryptographic (a port is visible to everyone the relay sends to anyway).
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        use ring::rand::{SecureRandom, SystemRandom};
        let mut seed = [0u8; 8];
        SystemRandom::new().fill(&mut seed).expect("the system random source works");
        Self(u64::from_ne_bytes(seed) | 1)
    }

    pub fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (((x >> 32) * u64::from(n)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn even_specific_and_any_ports_come_from_the_range() {
        let mut rng = Rng::new();
        let range = (41000, 41063);
        let even = RelaySocket::open(LOCALHOST, PortRequest::Even, range, &mut rng).unwrap();
        let port = even.local.port();
        assert!(port.is_multiple_of(2) && (41000..=41063).contains(&port), "{port}");
        let odd = RelaySocket::open(LOCALHOST, PortRequest::Specific(port + 1), range, &mut rng).unwrap();
        assert_eq!(odd.local.port(), port + 1);
        assert!(matches!(
            RelaySocket::open(LOCALHOST, PortRequest::Specific(port), range, &mut rng),
            Err(RelayError::PortsExhausted)
        ));
        assert!(matches!(
            RelaySocket::open(LOCALHOST, PortRequest::Specific(40000), range, &mut rng),
            Err(RelayError::PortsExhausted)
        ));
        let any = RelaySocket::open(LOCALHOST, PortRequest::Any, range, &mut rng).unwrap();
        assert!((41000..=41063).contains(&any.local.port()));
    }

    #[test]
    fn a_full_range_is_exhausted() {
        let mut rng = Rng::new();
        // Four ports no other process holds (a coturn on the machine draws from 40000-44999).
        let range = (41100..41900)
            .step_by(4)
            .map(|first| (first, first + 3))
            .find(|&(first, last)| (first..=last).all(|port| UdpSocket::bind((LOCALHOST, port)).is_ok()))
            .expect("four free ports in a row");
        let held: Vec<_> = (0..4)
            .filter_map(|_| RelaySocket::open(LOCALHOST, PortRequest::Any, range, &mut rng).ok())
            .collect();
        assert_eq!(held.len(), 4, "four ports, four sockets");
        assert!(matches!(
            RelaySocket::open(LOCALHOST, PortRequest::Any, range, &mut rng),
            Err(RelayError::PortsExhausted)
        ));
    }

    #[test]
    fn dont_fragment_switches_per_send() {
        let mut rng = Rng::new();
        let mut relay = RelaySocket::open(LOCALHOST, PortRequest::Any, (41200, 41299), &mut rng).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        assert!(relay.send(to, b"df", true));
        assert!(relay.dont_fragment);
        assert!(relay.send(to, b"no df", false));
        assert!(!relay.dont_fragment);
        let mut buf = [0u8; 16];
        assert_eq!(peer.recv(&mut buf).unwrap(), 2);
        assert_eq!(peer.recv(&mut buf).unwrap(), 5);
    }
}
