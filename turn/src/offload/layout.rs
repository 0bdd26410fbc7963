//! The byte layouts of `relay.bpf.c`'s map keys and values, written and read here field by
//! field so that no `#[repr(C)]` struct has to be trusted to match clang's padding.
//!
//! Addresses and ports are in network byte order, as the program compares them with packet
//! headers; the other fields are in the host's order, as the program reads them as numbers.

use std::net::{Ipv4Addr, SocketAddrV4};

pub(crate) const CLIENT_KEY_LEN: usize = 16;
pub(crate) const PEER_KEY_LEN: usize = 12;
pub(crate) const ROUTE_LEN: usize = 48;

/// `struct client_key`: a ChannelData message from `client` to `server` on `channel`.
pub(crate) fn client_key(server: SocketAddrV4, client: SocketAddrV4, channel: u16) -> [u8; CLIENT_KEY_LEN] {
    let mut key = [0; CLIENT_KEY_LEN];
    key[0..4].copy_from_slice(&server.ip().octets());
    key[4..8].copy_from_slice(&client.ip().octets());
    key[8..10].copy_from_slice(&server.port().to_be_bytes());
    key[10..12].copy_from_slice(&client.port().to_be_bytes());
    key[12..14].copy_from_slice(&channel.to_be_bytes());
    key
}

/// `struct peer_key`: a datagram from `peer` to the relayed address `relay`.
pub(crate) fn peer_key(relay: SocketAddrV4, peer: SocketAddrV4) -> [u8; PEER_KEY_LEN] {
    let mut key = [0; PEER_KEY_LEN];
    key[0..4].copy_from_slice(&relay.ip().octets());
    key[4..8].copy_from_slice(&peer.ip().octets());
    key[8..10].copy_from_slice(&relay.port().to_be_bytes());
    key[10..12].copy_from_slice(&peer.port().to_be_bytes());
    key
}

/// How a rewritten packet leaves the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// 0: the destination is one of this host's addresses, and the stack delivers it.
    pub ifindex: u32,
    /// The largest IP packet the program sends itself; larger ones go to the daemon.
    pub mtu: u32,
}

/// `struct client_route`: send from `relay` to `peer`, until `expires_ns` (CLOCK_MONOTONIC).
pub(crate) fn client_route(
    relay: SocketAddrV4,
    peer: SocketAddrV4,
    exit: Exit,
    expires_ns: u64,
) -> [u8; ROUTE_LEN] {
    let mut value = [0; ROUTE_LEN];
    value[0..4].copy_from_slice(&relay.ip().octets());
    value[4..8].copy_from_slice(&peer.ip().octets());
    value[8..10].copy_from_slice(&relay.port().to_be_bytes());
    value[10..12].copy_from_slice(&peer.port().to_be_bytes());
    value[12..16].copy_from_slice(&exit.ifindex.to_ne_bytes());
    value[16..20].copy_from_slice(&exit.mtu.to_ne_bytes());
    value[24..32].copy_from_slice(&expires_ns.to_ne_bytes());
    value
}

/// `struct peer_route`: send ChannelData on `channel` from `server` to `client`.
pub(crate) fn peer_route(
    server: SocketAddrV4,
    client: SocketAddrV4,
    channel: u16,
    exit: Exit,
    expires_ns: u64,
) -> [u8; ROUTE_LEN] {
    let mut value = [0; ROUTE_LEN];
    value[0..4].copy_from_slice(&server.ip().octets());
    value[4..8].copy_from_slice(&client.ip().octets());
    value[8..10].copy_from_slice(&server.port().to_be_bytes());
    value[10..12].copy_from_slice(&client.port().to_be_bytes());
    value[12..14].copy_from_slice(&channel.to_be_bytes());
    value[16..20].copy_from_slice(&exit.ifindex.to_ne_bytes());
    value[20..24].copy_from_slice(&exit.mtu.to_ne_bytes());
    value[24..32].copy_from_slice(&expires_ns.to_ne_bytes());
    value
}

/// What the program counted on a route: packets, and application bytes (without the
/// ChannelData header). Both values end with these two fields.
pub(crate) fn counters(value: &[u8; ROUTE_LEN]) -> (u64, u64) {
    let field = |at: usize| u64::from_ne_bytes(value[at..at + 8].try_into().expect("8 bytes"));
    (field(32), field(40))
}

/// The IPv4 socket address, if `addr` is one (IPv4-mapped IPv6 included: a dual-stack
/// socket reports IPv4 peers that way).
pub(crate) fn v4(addr: std::net::SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        std::net::SocketAddr::V4(v4) => Some(v4),
        std::net::SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().map(|ip| SocketAddrV4::new(ip, v6.port())),
    }
}

/// Whether a route may name `ip`: a concrete unicast address the program can compare with
/// a header.
pub(crate) fn routable(ip: Ipv4Addr) -> bool {
    !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_in_wire_order() {
        let key = client_key(addr("192.0.2.1:3478"), addr("198.51.100.7:50000"), 0x4001);
        assert_eq!(key, [192, 0, 2, 1, 198, 51, 100, 7, 0x0d, 0x96, 0xc3, 0x50, 0x40, 0x01, 0, 0]);
        let key = peer_key(addr("192.0.2.1:49152"), addr("203.0.113.9:5004"));
        assert_eq!(key, [192, 0, 2, 1, 203, 0, 113, 9, 0xc0, 0x00, 0x13, 0x8c]);
    }

    #[test]
    fn routes_put_numbers_in_host_order_and_start_with_no_counts() {
        let exit = Exit { ifindex: 7, mtu: 1500 };
        let value = client_route(addr("192.0.2.1:49152"), addr("203.0.113.9:5004"), exit, 0x0102_0304_0506);
        assert_eq!(&value[0..12], &[192, 0, 2, 1, 203, 0, 113, 9, 0xc0, 0x00, 0x13, 0x8c]);
        assert_eq!(u32::from_ne_bytes(value[12..16].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(value[16..20].try_into().unwrap()), 1500);
        assert_eq!(u64::from_ne_bytes(value[24..32].try_into().unwrap()), 0x0102_0304_0506);
        assert_eq!(counters(&value), (0, 0));

        let value = peer_route(addr("192.0.2.1:3478"), addr("198.51.100.7:50000"), 0x4fff, exit, 9);
        assert_eq!(&value[12..14], &[0x4f, 0xff]);
        assert_eq!(u32::from_ne_bytes(value[16..20].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(value[20..24].try_into().unwrap()), 1500);
        let mut counted = value;
        counted[32..40].copy_from_slice(&3u64.to_ne_bytes());
        counted[40..48].copy_from_slice(&360u64.to_ne_bytes());
        assert_eq!(counters(&counted), (3, 360));
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        assert_eq!(v4("[::ffff:192.0.2.1]:3478".parse().unwrap()), Some(addr("192.0.2.1:3478")));
        assert_eq!(v4("[2001:db8::1]:3478".parse().unwrap()), None);
        assert!(!routable("0.0.0.0".parse().unwrap()));
        assert!(routable("127.0.0.1".parse().unwrap()));
    }
}
