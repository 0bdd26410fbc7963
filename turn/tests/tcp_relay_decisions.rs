//! The decisions of TCP allocations (RFC 6062, `server/tcp_relay.rs`) through the in-memory
//! I/O layer on virtual time: when connections are made, answered, bound and closed, and
//! every error the RFC names. (`tcp_allocations.rs` runs the same over real sockets.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use stun::{AttrType, Message, Method};
use turn::client::{AllocateOptions, Client, Outcome, Response, parse_connection_attempt};
use turn::server::{
    CONNECT_TIMEOUT, CONNECTION_BIND_TIMEOUT, ClientTuple, ConnectionId, MAX_PEER_CONNECTIONS, Transport,
};

const PEER: &str = "93.184.216.34:5000";
const TCP: u8 = 6;

/// The control connection of the TCP allocation.
fn control() -> ClientTuple {
    tuple(Transport::Tcp, 1)
}

/// Client data connection number `n`.
fn data(n: u8) -> ClientTuple {
    tuple(Transport::Tcp, 10 + n)
}

/// A TCP allocation on `control()` for ada.
fn tcp_allocation(h: &mut Harness) -> Client {
    let mut client = ada();
    let options = AllocateOptions { transport: TCP, ..AllocateOptions::default() };
    let response = h.allocate(&control(), &mut client, options);
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    assert!(h.io.tcp_relays.contains(&h.relay(response.relayed[0])), "a TCP relay");
    client
}

/// Sends Connect; returns the immediate answer, if any (none while connecting).
fn connect(h: &mut Harness, client: &mut Client, peer: SocketAddr) -> Option<Response> {
    h.try_once(&control(), client, &move |c, buf, t| c.connect(buf, t, peer))
}

/// The latest message to `tuple`, read by `client`.
fn last_to(h: &Harness, tuple: &ClientTuple, client: &mut Client) -> Response {
    let (_, bytes) = h.io.to_client.iter().rev().find(|(t, _)| t == tuple).expect("a message");
    client.handle_response(bytes).unwrap()
}

/// Connect, and the connection established: returns the CONNECTION-ID of the response.
fn connected(h: &mut Harness, client: &mut Client, peer: SocketAddr) -> ConnectionId {
    assert!(connect(h, client, peer).is_none(), "answered once the connection is up");
    let (_, id, to) = *h.io.connects.last().unwrap();
    assert_eq!(to, peer);
    let now = h.now();
    h.server.handle_peer_connected(now, id, true, &mut h.io);
    let response = last_to(h, &control(), client);
    assert_eq!((response.method, response.outcome), (Method::CONNECT, Outcome::Success));
    assert!(response.signed, "signed with the allocation's key");
    assert_eq!(response.connection_id, Some(id.0));
    id
}

fn connection_bind(h: &mut Harness, tuple: &ClientTuple, client: &mut Client, id: ConnectionId) -> Response {
    h.exchange(tuple, client, &move |c, buf, t| c.connection_bind(buf, t, id.0))
}

#[test]
fn an_unbound_connection_is_closed_after_30_seconds_and_cannot_be_bound_then() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    let id = connected(&mut h, &mut client, addr(PEER));
    assert_eq!(h.metrics().peer_connections(), 1);
    h.advance(CONNECTION_BIND_TIMEOUT - Duration::from_secs(1));
    assert!(h.io.closed_peers.is_empty(), "still waiting at 29 s");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.io.closed_peers, [id], "closed at 30 s");
    assert_eq!(h.metrics().peer_connections(), 0);
    assert_eq!(code(&connection_bind(&mut h, &data(1), &mut ada(), id)), 400, "no longer known");
    // The peer may be connected to again.
    connected(&mut h, &mut client, addr(PEER));
}

#[test]
fn a_bound_connection_outlives_the_deadline_until_its_allocation_goes() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    let id = connected(&mut h, &mut client, addr(PEER));
    let response = connection_bind(&mut h, &data(1), &mut ada(), id);
    assert_eq!((code(&response), response.connection_id), (0, Some(id.0)));
    assert_eq!(h.io.bound.get(&id), Some(&data(1)));
    assert_eq!(code(&connection_bind(&mut h, &data(2), &mut ada(), id)), 400, "bound once only");
    h.advance(CONNECTION_BIND_TIMEOUT * 2);
    assert!(h.io.closed_peers.is_empty());
    // RFC 6062 §5.2: the connection is still active, so another Connect to the peer is 446.
    assert_eq!(connect(&mut h, &mut client, addr(PEER)).map(|r| code(&r)), Some(446));
    assert_eq!(code(&h.refresh(&control(), &mut client, Some(0))), 0);
    assert_eq!(h.io.closed_peers, [id], "Refresh 0 closes the allocation's connections");
    assert_eq!(h.metrics().peer_connections(), 0);
}

#[test]
fn a_connect_without_an_outcome_is_447_after_30_seconds() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    assert!(connect(&mut h, &mut client, addr(PEER)).is_none());
    let (_, id, _) = h.io.connects[0];
    // A Connect to the same peer while the first is under way is 446 too.
    assert_eq!(connect(&mut h, &mut client, addr(PEER)).map(|r| code(&r)), Some(446));
    h.advance(CONNECT_TIMEOUT + Duration::from_secs(1));
    assert_eq!(h.io.closed_peers, [id]);
    let response = last_to(&h, &control(), &mut client);
    assert_eq!((response.method, code(&response)), (Method::CONNECT, 447));
    assert_eq!(h.metrics().peer_connect_failures(), 1);
    // An outcome that comes after the server gave up only closes the connection.
    let now = h.now();
    let before = h.io.to_client.len();
    h.server.handle_peer_connected(now, ConnectionId(id.0.wrapping_add(1000)), true, &mut h.io);
    assert_eq!(h.io.to_client.len(), before);
}

#[test]
fn a_refused_connection_is_447() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    assert!(connect(&mut h, &mut client, addr(PEER)).is_none());
    let (_, id, _) = h.io.connects[0];
    let now = h.now();
    h.server.handle_peer_connected(now, id, false, &mut h.io);
    assert_eq!(code(&last_to(&h, &control(), &mut client)), 447);
    // No socket at all: 447 at once.
    h.io.connect_refuses = true;
    assert_eq!(connect(&mut h, &mut client, addr("93.184.216.34:5001")).map(|r| code(&r)), Some(447));
    assert_eq!(h.metrics().peer_connect_failures(), 2);
    assert_eq!(h.metrics().peer_connections(), 0);
}

#[test]
fn connect_checks_allocation_kind_peer_family_and_policy() {
    let mut h = Harness::new("");
    let mut client = ada();
    let connect_on = |h: &mut Harness, tuple: &ClientTuple, client: &mut Client, peer: &str| {
        let peer = addr(peer);
        code(&h.exchange(tuple, client, &move |c, buf, t| c.connect(buf, t, peer)))
    };
    assert_eq!(connect_on(&mut h, &control(), &mut client, PEER), 437, "no allocation");
    let mut udp_client = ada();
    h.allocated(&tuple(Transport::Tcp, 2), &mut udp_client);
    assert_eq!(connect_on(&mut h, &tuple(Transport::Tcp, 2), &mut udp_client, PEER), 400, "a UDP allocation");
    let mut client = tcp_allocation(&mut h);
    assert_eq!(connect_on(&mut h, &control(), &mut client, "[2606:4700::1]:80"), 443);
    assert_eq!(connect_on(&mut h, &control(), &mut client, "10.0.0.1:80"), 403);
    assert_eq!(h.metrics().denied_peers("private"), 1);
    let no_peer =
        h.exchange(&control(), &mut client, &|c, buf, t| c.request(buf, Method::CONNECT, t, |_| Ok(())));
    assert_eq!(code(&no_peer), 400);
    assert!(h.io.connects.is_empty(), "nothing was connected to");
    // A TCP allocation takes no ChannelBind: its data goes over connections.
    assert_eq!(code(&h.bind(&control(), &mut client, 0x4000, addr(PEER))), 400);
}

#[test]
fn tcp_allocations_refuse_the_udp_port_options() {
    let mut h = Harness::new("");
    let tcp = || AllocateOptions { transport: TCP, ..AllocateOptions::default() };
    for options in [
        AllocateOptions { even_port: Some(false), ..tcp() },
        AllocateOptions { reservation_token: Some([1; 8]), ..tcp() },
        AllocateOptions { dont_fragment: true, ..tcp() },
    ] {
        assert_eq!(code(&h.allocate(&control(), &mut ada(), options.clone())), 400, "{options:?}");
    }
    assert_eq!(code(&h.allocate(&tuple(Transport::Tls, 3), &mut ada(), tcp())), 0, "over TLS too");
    assert!(h.io.tcp_relays.len() == 1);
}

#[test]
fn connections_per_allocation_are_capped() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    for i in 0..MAX_PEER_CONNECTIONS {
        let peer = SocketAddr::new(addr(PEER).ip(), 1000 + i as u16);
        assert!(connect(&mut h, &mut client, peer).is_none());
    }
    let one_more = connect(&mut h, &mut client, addr("93.184.216.34:2000"));
    assert_eq!(one_more.map(|r| code(&r)), Some(508));
    // Peers connecting in are capped by the same count.
    assert_eq!(code(&h.permit(&control(), &mut client, &[addr(PEER)])), 0);
    let relay = h.io.connects[0].0;
    let now = h.now();
    assert_eq!(h.server.handle_peer_accepted(now, relay, addr(PEER), &mut h.io), None);
}

#[test]
fn connection_bind_needs_the_owner_a_known_id_and_a_stream_of_its_own() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    let id = connected(&mut h, &mut client, addr(PEER));
    assert_eq!(code(&connection_bind(&mut h, &data(1), &mut bob(), id)), 441, "someone else's");
    assert_eq!(code(&connection_bind(&mut h, &udp(9), &mut ada(), id)), 400, "not over UDP");
    assert_eq!(
        code(&connection_bind(&mut h, &control(), &mut client, id)),
        400,
        "not the control connection"
    );
    let no_id =
        h.exchange(&data(2), &mut ada(), &|c, buf, t| c.request(buf, Method::CONNECTION_BIND, t, |_| Ok(())));
    assert_eq!(code(&no_id), 400);
    assert!(h.io.bound.is_empty());
    assert_eq!(code(&connection_bind(&mut h, &data(3), &mut ada(), id)), 0);
}

#[test]
fn a_permitted_peer_is_announced_and_an_unpermitted_one_refused() {
    let mut h = Harness::new("");
    let mut client = tcp_allocation(&mut h);
    let relay = *h.io.tcp_relays.iter().next().unwrap();
    let now = h.now();
    let before = h.io.to_client.len();
    assert_eq!(h.server.handle_peer_accepted(now, relay, addr(PEER), &mut h.io), None, "no permission");
    assert_eq!(h.io.to_client.len(), before, "and no indication");
    assert_eq!(h.metrics().peer_connections(), 0);

    assert_eq!(code(&h.permit(&control(), &mut client, &[addr("93.184.216.34:1")])), 0);
    let now = h.now();
    let id = h.server.handle_peer_accepted(now, relay, addr(PEER), &mut h.io).expect("permitted");
    let (to, indication) = h.io.to_client.last().unwrap();
    assert_eq!(to, &control());
    assert_eq!(parse_connection_attempt(indication), Some((addr(PEER), id.0)));
    assert!(Message::parse(indication).unwrap().get(AttrType::MESSAGE_INTEGRITY).is_none());
    assert_eq!(code(&connection_bind(&mut h, &data(1), &mut ada(), id)), 0);
    // The I/O layer reports the pipe closed: the server forgets it, and a Connect may follow.
    h.server.handle_peer_closed(id, &mut h.io);
    assert_eq!(h.metrics().peer_connections(), 0);
    connected(&mut h, &mut client, addr(PEER));
    // Closing the control connection takes every peer connection with it.
    let open = h.io.connects[0].1;
    h.server.handle_client_closed(&control(), &mut h.io);
    assert_eq!(h.io.closed_peers.last(), Some(&open));
    assert_eq!(h.metrics().peer_connections(), 0);
}
