//! Which channel bindings the server hands to the kernel relay, and for how long: the
//! decisions of `server/kernel_routes.rs`, through the in-memory I/O layer on virtual time.
//! (`kernel_relay.rs` runs the real program.)

mod common;

use std::time::Duration;

use common::*;
use turn::server::{CHANNEL_LIFETIME, PERMISSION_LIFETIME, Transport};

const PEER: &str = "93.184.216.34:5000";
const PEER2: &str = "93.184.216.35:6000";
const PEER_V6: &str = "[2606:4700::1111]:7000";
const CHANNEL: u16 = 0x4000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn kernel_harness(extra: &str) -> Harness {
    Harness::new(&format!("listening-ip={RELAY_V4}\nkernel-relay-interface=lo\n{extra}"))
}

#[test]
fn a_bound_channel_is_relayed_in_the_kernel_until_its_permission_ends() {
    let mut h = kernel_harness("");
    let mut client = ada();
    let relayed = h.allocated(&udp(1), &mut client);
    assert!(h.io.kernel.is_empty(), "nothing before a channel is bound");
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);

    let route = h.io.kernel[&(udp(1).client, CHANNEL)];
    assert_eq!(route.server, udp(1).server);
    assert_eq!(route.relay, relayed, "the relay socket's own address");
    assert_eq!(route.peer, addr(PEER));
    // The binding lasts 600 s, the allocation 600 s, its permission 300 s: the earliest.
    assert_eq!(route.until, h.instant() + PERMISSION_LIFETIME);

    // A CreatePermission moves the deadline; a ChannelBind refresh too, up to the binding's.
    h.advance(secs(100));
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER)])), 0);
    assert_eq!(h.io.kernel[&(udp(1).client, CHANNEL)].until, h.instant() + PERMISSION_LIFETIME);
    h.refresh(&udp(1), &mut client, Some(3600));
    h.advance(secs(100));
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);
    assert_eq!(h.io.kernel[&(udp(1).client, CHANNEL)].until, h.instant() + PERMISSION_LIFETIME);

    // Nobody refreshes: once the permission lapses, the sweep takes the route back.
    h.advance(PERMISSION_LIFETIME + secs(2));
    assert!(h.io.kernel.is_empty(), "{:?}", h.io.kernel);
    assert!(CHANNEL_LIFETIME > PERMISSION_LIFETIME);
}

#[test]
fn deleting_the_allocation_withdraws_every_route() {
    let mut h = kernel_harness("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL + 1, addr(PEER2))), 0);
    assert_eq!(h.io.kernel.len(), 2);
    assert_eq!(code(&h.refresh(&udp(1), &mut client, Some(0))), 0);
    assert!(h.io.kernel.is_empty());
    assert_eq!(h.io.kernel_log.iter().filter(|(installed, _)| !installed).count(), 2);
}

#[test]
fn an_allocation_that_expires_takes_its_routes_with_it() {
    let mut h = kernel_harness("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);
    // Permissions kept fresh, the allocation not: the route ends with it, at 600 s.
    let ends = h.instant() + secs(600);
    for _ in 0..2 {
        h.advance(secs(200));
        assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER)])), 0);
    }
    assert_eq!(h.io.kernel[&(udp(1).client, CHANNEL)].until, ends);
    h.advance(secs(201));
    assert!(h.io.kernel.is_empty(), "the route outlived its allocation: {:?}", h.io.kernel);
}

#[test]
fn what_the_kernel_cannot_do_exactly_as_the_daemon_stays_with_the_daemon() {
    // Streams: the kernel program relays UDP only.
    let mut h = kernel_harness("");
    let mut client = ada();
    let tcp = tuple(Transport::Tcp, 1);
    h.allocated(&tcp, &mut client);
    assert_eq!(code(&h.bind(&tcp, &mut client, CHANNEL, addr(PEER))), 0);
    assert!(h.io.kernel_log.is_empty(), "TCP: {:?}", h.io.kernel_log);

    // IPv6 peers.
    let mut client = bob();
    h.allocate(
        &udp(2),
        &mut client,
        turn::client::AllocateOptions {
            additional_family: Some(stun::AddressFamily::V6),
            ..Default::default()
        },
    );
    assert_eq!(code(&h.bind(&udp(2), &mut client, CHANNEL, addr(PEER_V6))), 0);
    assert!(h.io.kernel_log.is_empty(), "IPv6: {:?}", h.io.kernel_log);

    // A bandwidth cap, which the daemon enforces per packet.
    let mut h = kernel_harness("max-bps=100000");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);
    assert!(h.io.kernel_log.is_empty(), "max-bps: {:?}", h.io.kernel_log);

    // Not configured at all.
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0);
    assert!(h.io.kernel_log.is_empty(), "off: {:?}", h.io.kernel_log);
}

#[test]
fn a_route_the_kernel_refused_is_asked_for_again_at_the_next_change() {
    let mut h = kernel_harness("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    h.io.kernel_refuses = true;
    assert_eq!(code(&h.bind(&udp(1), &mut client, CHANNEL, addr(PEER))), 0, "relayed by the daemon");
    assert!(h.io.kernel.is_empty());
    h.io.kernel_refuses = false;
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER)])), 0);
    assert_eq!(h.io.kernel.len(), 1);
}
