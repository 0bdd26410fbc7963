//! Which peers a relay may talk to.
//!
//! A TURN server relays to whatever address a client names, from inside the operator's
//! network. Left open, it is a proxy into that network: the loopback services of the host,
//! the private LAN, the cloud metadata endpoint on 169.254.169.254. coturn's CVE-2020-26262
//! was exactly that (0.0.0.0 and [::] reached loopback), and later bypasses spelled a denied
//! IPv4 address as IPv6: `::ffff:127.0.0.1` (IPv4-mapped) or `::127.0.0.1` (IPv4-compatible)
//! reach the IPv4 host through a dual-stack socket.
//!
//! So a peer address is judged in its canonical form: an IPv6 address that carries an IPv4
//! one (mapped, compatible, NAT64, 6to4, Teredo) is judged as that IPv4 address too, and it
//! must pass under every spelling. The defaults deny every special-purpose range of RFC 6890
//! and its successors, and the server's own addresses; `allowed-peer-ip` (which wins over
//! `denied-peer-ip`, as in coturn) and `allow-loopback-peers` open them explicitly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A contiguous range of addresses of one family, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    first: IpAddr,
    last: IpAddr,
}

impl IpRange {
    /// `first` to `last`, of the same family, `first <= last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let ordered = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
            (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
            _ => false,
        };
        ordered.then_some(Self { first, last })
    }

    pub fn single(addr: IpAddr) -> Self {
        Self { first: addr, last: addr }
    }

    /// `addr/prefix`, with the host bits ignored.
    pub fn cidr(addr: IpAddr, prefix: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                let first = u32::from(a) & mask;
                Some(Self { first: Ipv4Addr::from(first).into(), last: Ipv4Addr::from(first | !mask).into() })
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                let first = u128::from(a) & mask;
                Some(Self { first: Ipv6Addr::from(first).into(), last: Ipv6Addr::from(first | !mask).into() })
            }
            _ => None,
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.first, self.last, addr) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => a <= x && x <= b,
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => a <= x && x <= b,
            _ => false,
        }
    }
}

/// The spellings coturn's configuration accepts: `1.2.3.4`, `1.2.3.4-1.2.3.255`, and (ours)
/// `10.0.0.0/8`; the same for IPv6.
impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ip = |t: &str| t.trim().parse::<IpAddr>().map_err(|_| format!("{t:?} is not an IP address"));
        if let Some((first, last)) = s.split_once('-') {
            return IpRange::new(ip(first)?, ip(last)?)
                .ok_or_else(|| format!("{s:?}: the range must run from low to high, in one family"));
        }
        if let Some((addr, prefix)) = s.split_once('/') {
            let prefix = prefix.parse::<u8>().map_err(|_| format!("{s:?}: bad prefix length"))?;
            return IpRange::cidr(ip(addr)?, prefix).ok_or_else(|| format!("{s:?}: prefix length too long"));
        }
        Ok(IpRange::single(ip(s)?))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Why a peer address is refused; for the counter's label and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A special-purpose range denied by default (loopback, private, link-local, ...).
    Reserved(&'static str),
    /// A range the operator listed in `denied-peer-ip`.
    Configured,
    /// One of the server's own addresses.
    OwnAddress,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved(name) => name,
            Self::Configured => "configured",
            Self::OwnAddress => "own_address",
        }
    }
}

/// IPv4 ranges no relay reaches by default: RFC 6890 and the IANA special-purpose registry.
const RESERVED_V4: [(&str, [u8; 4], u8); 15] = [
    ("unspecified", [0, 0, 0, 0], 8),
    ("private", [10, 0, 0, 0], 8),
    ("cgnat", [100, 64, 0, 0], 10),
    ("loopback", [127, 0, 0, 0], 8),
    ("link_local", [169, 254, 0, 0], 16),
    ("private", [172, 16, 0, 0], 12),
    ("special", [192, 0, 0, 0], 24),
    ("documentation", [192, 0, 2, 0], 24),
    ("relay_anycast", [192, 88, 99, 0], 24),
    ("private", [192, 168, 0, 0], 16),
    ("benchmarking", [198, 18, 0, 0], 15),
    ("documentation", [198, 51, 100, 0], 24),
    ("documentation", [203, 0, 113, 0], 24),
    ("multicast", [224, 0, 0, 0], 4),
    // 255.255.255.255 (broadcast) is inside it.
    ("reserved", [240, 0, 0, 0], 4),
];

/// IPv6 ranges no relay reaches by default (those that embed IPv4 are judged by that too).
const RESERVED_V6: [(&str, u128, u8); 8] = [
    ("unspecified", 0, 128),
    ("loopback", 1, 128),
    ("discard", 0x0100_0000_0000_0000_0000_0000_0000_0000, 64),
    ("documentation", 0x2001_0db8_0000_0000_0000_0000_0000_0000, 32),
    ("private", 0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),
    ("link_local", 0xfe80_0000_0000_0000_0000_0000_0000_0000, 10),
    ("site_local", 0xfec0_0000_0000_0000_0000_0000_0000_0000, 10),
    ("multicast", 0xff00_0000_0000_0000_0000_0000_0000_0000, 8),
];

/// The IPv4 address an IPv6 address carries, under the spellings that can reach it.
fn embedded_v4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let seg = addr.segments();
    match seg {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated, but a dual-stack stack
        // may still route it). :: and ::1 are IPv6's own.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => Some(low32),
        // ::ffff:0:a.b.c.d (SIIT) and 64:ff9b::a.b.c.d, 64:ff9b:1::/48 (NAT64).
        [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32),
        [0x64, 0xff9b, 1, ..] => Some(low32),
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        // 2001:0::/32 (Teredo): the client's address, inverted, in the last 32 bits.
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32))),
        _ => None,
    }
}

fn reserved(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => RESERVED_V4.iter().find_map(|&(name, net, prefix)| {
            IpRange::cidr(Ipv4Addr::from(net).into(), prefix).filter(|r| r.contains(a.into())).map(|_| name)
        }),
        IpAddr::V6(a) => RESERVED_V6.iter().find_map(|&(name, net, prefix)| {
            IpRange::cidr(Ipv6Addr::from(net).into(), prefix).filter(|r| r.contains(a.into())).map(|_| name)
        }),
    }
}

/// The peer rules of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// `allowed-peer-ip`: wins over everything else.
    pub allowed: Vec<IpRange>,
    /// `denied-peer-ip`: on top of the reserved ranges.
    pub denied: Vec<IpRange>,
    /// `allow-loopback-peers` (for tests; coturn's name).
    pub allow_loopback: bool,
    /// The server's listening, relay and external addresses.
    pub own: Vec<IpAddr>,
}

impl PeerPolicy {
    /// Whether the relay may send to (and accept from) `peer`. Every spelling of the address
    /// must pass: an IPv6 address carrying an IPv4 one is denied if either is, and allowed
    /// explicitly if either is.
    pub fn check(&self, peer: IpAddr) -> Result<(), Denied> {
        let embedded = match peer {
            IpAddr::V6(a) => embedded_v4(a).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let spellings = || std::iter::once(peer).chain(embedded);
        if spellings().any(|a| self.allowed.iter().any(|r| r.contains(a))) {
            return Ok(());
        }
        for addr in spellings() {
            if self.own.contains(&addr) {
                return Err(Denied::OwnAddress);
            }
            if self.denied.iter().any(|r| r.contains(addr)) {
                return Err(Denied::Configured);
            }
            match reserved(addr) {
                Some("loopback") if self.allow_loopback => {}
                Some(name) => return Err(Denied::Reserved(name)),
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_pass_and_every_reserved_range_is_denied() {
        let policy = PeerPolicy::default();
        for public in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::200e"] {
            assert_eq!(policy.check(ip(public)), Ok(()), "{public}");
        }
        let denied = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "cgnat"),
            ("100.127.255.254", "cgnat"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link_local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "special"),
            ("192.0.2.1", "documentation"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "link_local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ];
        for (addr, why) in denied {
            assert_eq!(policy.check(ip(addr)), Err(Denied::Reserved(why)), "{addr}");
        }
        // Just outside the ranges.
        for edge in
            ["100.128.0.0", "172.32.0.0", "198.20.0.0", "169.253.255.255", "11.0.0.0", "223.255.255.255"]
        {
            assert_eq!(policy.check(ip(edge)), Ok(()), "{edge}");
        }
    }

    #[test]
    fn ipv4_spelled_as_ipv6_is_judged_as_ipv4() {
        let policy = PeerPolicy::default();
        let spellings = [
            "::ffff:127.0.0.1",         // mapped
            "::127.0.0.1",              // compatible
            "::ffff:0:127.0.0.1",       // SIIT
            "64:ff9b::127.0.0.1",       // NAT64
            "64:ff9b:1::7f00:1",        // local-use NAT64
            "2002:7f00:0001::1",        // 6to4
            "2001:0:1:2:3:4:80ff:fffe", // Teredo, client 127.0.0.1 inverted
        ];
        for s in spellings {
            assert_eq!(policy.check(ip(s)), Err(Denied::Reserved("loopback")), "{s}");
        }
        assert_eq!(policy.check(ip("::ffff:10.0.0.1")), Err(Denied::Reserved("private")));
        assert_eq!(policy.check(ip("::ffff:169.254.169.254")), Err(Denied::Reserved("link_local")));
        assert_eq!(policy.check(ip("::0.0.0.0")), Err(Denied::Reserved("unspecified")));
        assert_eq!(policy.check(ip("::ffff:8.8.8.8")), Ok(()), "a mapped public address is public");
        assert_eq!(policy.check(ip("2002:0808:0808::1")), Ok(()));
    }

    #[test]
    fn configured_lists_and_own_addresses() {
        let policy = PeerPolicy {
            allowed: vec!["10.1.0.0-10.1.255.255".parse().unwrap(), "::1".parse().unwrap()],
            denied: vec!["8.8.8.0/24".parse().unwrap(), "2606:4700::/32".parse().unwrap()],
            allow_loopback: false,
            own: vec![ip("203.0.113.7"), ip("93.184.216.34")],
        };
        assert_eq!(policy.check(ip("10.1.2.3")), Ok(()), "allowed wins over the reserved range");
        assert_eq!(policy.check(ip("::ffff:10.1.2.3")), Ok(()), "and over its mapped spelling");
        assert_eq!(policy.check(ip("10.2.0.1")), Err(Denied::Reserved("private")));
        assert_eq!(policy.check(ip("::1")), Ok(()));
        assert_eq!(policy.check(ip("127.0.0.1")), Err(Denied::Reserved("loopback")));
        assert_eq!(policy.check(ip("8.8.8.8")), Err(Denied::Configured));
        assert_eq!(policy.check(ip("::ffff:8.8.8.8")), Err(Denied::Configured));
        assert_eq!(policy.check(ip("2606:4700::1111")), Err(Denied::Configured));
        assert_eq!(policy.check(ip("93.184.216.34")), Err(Denied::OwnAddress));
        assert_eq!(policy.check(ip("::ffff:93.184.216.34")), Err(Denied::OwnAddress));
    }

    #[test]
    fn loopback_opens_only_when_asked() {
        let policy = PeerPolicy { allow_loopback: true, ..PeerPolicy::default() };
        for s in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(policy.check(ip(s)), Ok(()), "{s}");
        }
        assert_eq!(policy.check(ip("10.0.0.1")), Err(Denied::Reserved("private")));
        assert_eq!(policy.check(ip("0.0.0.0")), Err(Denied::Reserved("unspecified")));
    }

    #[test]
    fn ranges_parse_as_coturn_writes_them() {
        assert_eq!("1.2.3.4".parse::<IpRange>().unwrap(), IpRange::single(ip("1.2.3.4")));
        let r: IpRange = "172.16.0.0-172.31.255.255".parse().unwrap();
        assert!(r.contains(ip("172.20.1.1")) && !r.contains(ip("172.32.0.0")));
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert_eq!(r.to_string(), "10.0.0.0-10.255.255.255");
        let r: IpRange = "fc00::/7".parse().unwrap();
        assert!(r.contains(ip("fdff::1")) && !r.contains(ip("fe00::")));
        for bad in ["", "1.2.3", "2.0.0.0-1.0.0.0", "1.2.3.4-::1", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// No IPv6 spelling of a denied IPv4 address passes where the IPv4 address does not.
        #[test]
        fn no_ipv6_spelling_gets_past_the_ipv4_verdict(v4 in any::<u32>()) {
            let policy = PeerPolicy::default();
            let a = Ipv4Addr::from(v4);
            if policy.check(a.into()).is_err() {
                let hi = (v4 >> 16) as u16;
                let lo = v4 as u16;
                let spellings = [
                    a.to_ipv6_mapped(),
                    a.to_ipv6_compatible(),
                    Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
                    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                    Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
                    Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, !hi, !lo),
                ];
                for s in spellings {
                    prop_assert!(policy.check(s.into()).is_err(), "{} passed for {}", s, a);
                }
            }
        }
    }
}
