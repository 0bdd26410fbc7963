//! The TURN server's protocol, request by request and error by error, driven by our own client
//! through an in-memory I/O layer on virtual time.

mod common;

use std::time::Duration;

use common::*;
use stun::{AddressFamily, AttrType, Class, Message, MessageBuilder, Method, TransactionId};
use turn::auth::NONCE_LIFETIME_S;
use turn::client::{AllocateOptions, Outcome, parse_channel_data, parse_data_indication, write_channel_data};
use turn::server::{
    AUTH_BLOCK, AUTH_FAILURE_THRESHOLD, AUTH_TABLE_CAPACITY, ChannelNumber, DropReason, PERMISSION_LIFETIME,
    RESERVATION_LIFETIME, Transport,
};

const PEER: &str = "93.184.216.34:5000";
const PEER2: &str = "93.184.216.35:6000";
const PEER_V6: &str = "[2606:4700::1111]:7000";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---- Binding and the credential flow ----------------------------------------------------

#[test]
fn binding_requests_are_answered_on_every_transport_without_credentials() {
    let mut h = Harness::new("");
    for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        let tuple = tuple(transport, 1);
        let mut client = ada();
        let mut buf = [0u8; 64];
        let transaction = h.transaction();
        let len = client.binding(&mut buf, transaction).unwrap();
        let answers = h.client_sends(&tuple, &buf[..len]);
        let response = client.handle_response(&answers[0]).unwrap();
        assert_eq!((response.outcome, response.mapped), (Outcome::Success, Some(tuple.client)));
        assert!(Message::parse(&answers[0]).unwrap().verify_fingerprint().is_ok(), "FINGERPRINT as asked");
    }
}

#[test]
fn a_request_without_integrity_is_challenged_with_realm_and_nonce() {
    let mut h = Harness::new("");
    let mut client = ada();
    let mut buf = [0u8; 256];
    let (_, len) = client.allocate(&mut buf, h.transaction(), &AllocateOptions::default()).unwrap();
    let answers = h.client_sends(&udp(1), &buf[..len]);
    let message = Message::parse(&answers[0]).unwrap();
    assert_eq!((message.class(), message.error_code().unwrap().0), (Class::Error, 401));
    assert_eq!(message.get(AttrType::REALM), Some(REALM.as_bytes()));
    assert_eq!(message.get(AttrType::NONCE).map(<[u8]>::len), Some(turn::auth::NONCE_LEN));
    assert!(message.get(AttrType::MESSAGE_INTEGRITY).is_none());
    assert_eq!(h.metrics().auth_failures(), 0, "a challenge is not a failure");
    assert_eq!(client.handle_response(&answers[0]).unwrap().outcome, Outcome::Retry);
}

#[test]
fn an_allocation_answers_with_relayed_mapped_and_lifetime_signed() {
    let mut h = Harness::new("");
    let mut client = ada();
    let response = h.allocate(&udp(1), &mut client, AllocateOptions::default());
    assert_eq!(response.outcome, Outcome::Success);
    assert!(response.signed, "MESSAGE-INTEGRITY with the user's key");
    assert_eq!(response.relayed.len(), 1);
    assert_eq!(response.relayed[0].ip(), ip(RELAY_V4));
    assert!((MIN_PORT..=MAX_PORT).contains(&response.relayed[0].port()));
    assert_eq!(response.mapped, Some(udp(1).client));
    assert_eq!(response.lifetime, Some(600));
    assert_eq!(h.server.shared().quota.current(), 1);
    assert_eq!(h.metrics().allocations_total(), 1);
}

#[test]
fn wrong_password_and_unknown_user_are_401_and_counted() {
    let mut h = Harness::new("");
    let mut wrong = turn::client::Client::new("ada", "babbage");
    let first = h.allocate(&udp(1), &mut wrong, AllocateOptions::default());
    assert_eq!(code(&first), 401);
    assert!(!first.signed);
    let mut nobody = turn::client::Client::new("eve", "x");
    assert_eq!(code(&h.allocate(&udp(2), &mut nobody, AllocateOptions::default())), 401);
    assert_eq!(h.metrics().auth_failures(), 2);
    assert_eq!(h.server.allocations(), 0);
}

#[test]
fn rest_credentials_work_until_their_expiry() {
    let mut h = Harness::new("");
    let mut valid = rest(NOW_UNIX + 3600);
    assert_eq!(code(&h.allocate(&udp(1), &mut valid, AllocateOptions::default())), 0);
    let mut expired = rest(NOW_UNIX - 1);
    assert_eq!(code(&h.allocate(&udp(2), &mut expired, AllocateOptions::default())), 401);
    assert_eq!(h.metrics().auth_failures(), 1);
}

#[test]
fn an_allocation_outlives_the_expiry_of_its_rest_credential() {
    let mut h = Harness::new("");
    let mut client = rest(NOW_UNIX + 60);
    h.allocated(&udp(1), &mut client);
    h.advance(secs(300));
    assert_eq!(code(&h.refresh(&udp(1), &mut client, Some(600))), 0, "checked with the allocation's key");
}

#[test]
fn a_stale_nonce_gets_438_with_a_fresh_nonce_and_the_retry_succeeds() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    h.advance(secs(500));
    assert_eq!(code(&h.refresh(&udp(1), &mut client, Some(3600))), 0);
    h.advance(secs(NONCE_LIFETIME_S + 1 - 500));
    let stale = h.once(&udp(1), &mut client, &|c, buf, t| c.refresh(buf, t, Some(600), None));
    assert_eq!(stale.outcome, Outcome::Retry);
    let retried = h.once(&udp(1), &mut client, &|c, buf, t| c.refresh(buf, t, Some(600), None));
    assert_eq!(code(&retried), 0);
    assert_eq!(h.metrics().auth_failures(), 0);
}

#[test]
fn a_nonce_from_another_address_is_refused() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    // Same credentials, nonce minted for 198.51.100.1, sent from 198.51.100.2.
    let response = h.once(&udp(2), &mut client, &|c, buf, t| c.allocate(buf, t, &AllocateOptions::default()));
    assert_eq!(code(&response), 401);
}

#[test]
fn integrity_without_username_realm_or_nonce_is_400() {
    let mut h = Harness::new("");
    let mut buf = [0u8; 256];
    let transaction = h.transaction();
    let mut m = MessageBuilder::new(&mut buf, Method::ALLOCATE, Class::Request, transaction).unwrap();
    m.requested_transport(17).unwrap().message_integrity(&stun::short_term_key("x")).unwrap();
    let len = m.finish();
    let answers = h.client_sends(&udp(1), &buf[..len]);
    assert_eq!(Message::parse(&answers[0]).unwrap().error_code().unwrap().0, 400);
}

#[test]
fn another_users_credentials_on_an_allocation_get_441() {
    let mut h = Harness::new("");
    h.allocated(&udp(1), &mut ada());
    let mut intruder = bob();
    let response =
        h.exchange(&udp(1), &mut intruder, &|c, buf, t| c.create_permission(buf, t, &[addr(PEER)]));
    assert_eq!(code(&response), 441);
    assert!(response.signed, "signed with the key that authenticated the request");
    let response = h.refresh(&udp(1), &mut intruder, Some(0));
    assert_eq!(code(&response), 441);
    // An Allocate on the taken 5-tuple is an allocation mismatch, whoever asks (RFC 8656 §7.2).
    let response =
        h.exchange(&udp(1), &mut intruder, &|c, buf, t| c.allocate(buf, t, &AllocateOptions::default()));
    assert_eq!(code(&response), 437);
    assert_eq!(h.server.allocations(), 1, "the allocation stays");
}

// ---- Allocate -----------------------------------------------------------------------------

#[test]
fn a_second_allocate_is_437_but_a_retransmission_gets_the_same_success() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocate(&udp(1), &mut client, AllocateOptions::default()); // learn the nonce
    h.server.shutdown(&mut h.io);
    let mut buf = [0u8; 512];
    let transaction = h.transaction();
    let (_, len) = client.allocate(&mut buf, transaction, &AllocateOptions::default()).unwrap();
    let first = h.client_sends(&udp(1), &buf[..len]);
    let again = h.client_sends(&udp(1), &buf[..len]);
    assert_eq!(first, again, "the stored response, byte for byte");
    assert_eq!(client.handle_response(&again[0]).unwrap().outcome, Outcome::Success);
    assert_eq!(h.io.relays.len(), 1, "no second relay");
    assert_eq!(code(&h.allocate(&udp(1), &mut client, AllocateOptions::default())), 437);
}

#[test]
fn udp_and_tcp_are_relayed_tcp_only_over_streams_and_requested_transport_is_required() {
    let mut h = Harness::new("");
    let mut client = ada();
    let sctp = AllocateOptions { transport: 132, ..AllocateOptions::default() };
    assert_eq!(code(&h.allocate(&udp(1), &mut client, sctp)), 442);
    // RFC 6062 §5.1: a TCP allocation over UDP is a bad request.
    let tcp = AllocateOptions { transport: 6, ..AllocateOptions::default() };
    assert_eq!(code(&h.allocate(&udp(1), &mut client, tcp)), 400);
    let response =
        h.exchange(&udp(1), &mut client, &|c, buf, t| c.request(buf, Method::ALLOCATE, t, |_| Ok(())));
    assert_eq!(code(&response), 400);
    assert!(h.io.relays.is_empty());
}

#[test]
fn lifetimes_are_clamped_between_default_and_maximum() {
    let mut h = Harness::new("");
    let short = AllocateOptions { lifetime: Some(10), ..AllocateOptions::default() };
    assert_eq!(h.allocate(&udp(1), &mut ada(), short).lifetime, Some(600));
    let long = AllocateOptions { lifetime: Some(100_000), ..AllocateOptions::default() };
    assert_eq!(h.allocate(&udp(2), &mut ada(), long).lifetime, Some(3600));
    assert_eq!(h.refresh(&udp(2), &mut ada(), Some(1200)).lifetime, Some(1200));
    assert_eq!(h.refresh(&udp(2), &mut ada(), None).lifetime, Some(600));
}

#[test]
fn refresh_with_lifetime_zero_deletes_and_closes_the_relay() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    let response = h.refresh(&udp(1), &mut client, Some(0));
    assert_eq!((code(&response), response.lifetime), (0, Some(0)));
    assert!(h.io.relays.is_empty() && h.io.closed.len() == 1);
    assert_eq!(h.server.shared().quota.current(), 0);
    assert_eq!(code(&h.refresh(&udp(1), &mut client, Some(600))), 437, "no allocation any more");
}

#[test]
fn requests_on_a_5_tuple_without_allocation_are_437() {
    let mut h = Harness::new("");
    let mut client = ada();
    assert_eq!(code(&h.refresh(&udp(1), &mut client, None)), 437);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER)])), 437);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER))), 437);
}

#[test]
fn address_families_ipv6_dual_and_their_errors() {
    let mut h = Harness::new("");
    let v6 = AllocateOptions { family: Some(AddressFamily::V6), ..AllocateOptions::default() };
    let response = h.allocate(&udp(1), &mut ada(), v6.clone());
    assert_eq!(response.relayed.len(), 1);
    assert_eq!(response.relayed[0].ip(), ip(RELAY_V6));

    let dual = AllocateOptions { additional_family: Some(AddressFamily::V6), ..AllocateOptions::default() };
    let response = h.allocate(&udp(2), &mut ada(), dual.clone());
    assert_eq!(response.relayed.iter().map(|a| a.ip()).collect::<Vec<_>>(), vec![ip(RELAY_V4), ip(RELAY_V6)]);

    let both = AllocateOptions {
        family: Some(AddressFamily::V4),
        additional_family: Some(AddressFamily::V6),
        ..AllocateOptions::default()
    };
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), both)), 400);
    let additional_v4 =
        AllocateOptions { additional_family: Some(AddressFamily::V4), ..AllocateOptions::default() };
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), additional_v4)), 400);
    let unknown_family = h.exchange(&udp(3), &mut ada(), &|c, buf, t| {
        c.request(buf, Method::ALLOCATE, t, |m| {
            m.requested_transport(17)?.attribute(AttrType::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]).map(drop)
        })
    });
    assert_eq!(code(&unknown_family), 440);

    // A server with IPv4 relays only.
    let mut h = Harness::with_config(&{
        let mut c = config("");
        c.relay_ips.retain(|ip| ip.is_ipv4());
        c
    });
    assert_eq!(code(&h.allocate(&udp(1), &mut ada(), v6)), 440);
    let response = h.allocate(&udp(2), &mut ada(), dual);
    assert_eq!((code(&response), response.relayed.len()), (0, 1), "IPv4 alone still succeeds");
    assert_eq!(response.address_error, Some((AddressFamily::V6.code(), 440)));
}

#[test]
fn refresh_with_a_family_the_allocation_lacks_is_443_and_one_family_can_be_dropped() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    let response =
        h.exchange(&udp(1), &mut client, &|c, buf, t| c.refresh(buf, t, Some(600), Some(AddressFamily::V6)));
    assert_eq!(code(&response), 443);

    let dual = AllocateOptions { additional_family: Some(AddressFamily::V6), ..AllocateOptions::default() };
    let mut client = ada();
    h.allocate(&udp(2), &mut client, dual);
    assert_eq!(h.io.relays.len(), 3);
    let response =
        h.exchange(&udp(2), &mut client, &|c, buf, t| c.refresh(buf, t, Some(0), Some(AddressFamily::V6)));
    assert_eq!(code(&response), 0);
    assert_eq!(h.io.relays.len(), 2, "only the IPv6 relay closed");
    assert!(h.io.relays.values().all(|a| a.is_ipv4()));
    assert_eq!(h.server.allocations(), 2);
}

#[test]
fn even_port_and_a_reservation_token_for_the_next_port() {
    let mut h = Harness::new("");
    let even = AllocateOptions { even_port: Some(false), ..AllocateOptions::default() };
    // Take 50000 first so that the even port is not simply the lowest.
    h.allocated(&udp(9), &mut ada());
    let response = h.allocate(&udp(1), &mut ada(), even);
    assert_eq!(response.relayed[0].port() % 2, 0);
    assert_eq!(response.reservation_token, None);

    let reserve = AllocateOptions { even_port: Some(true), ..AllocateOptions::default() };
    let response = h.allocate(&udp(2), &mut ada(), reserve);
    let port = response.relayed[0].port();
    assert_eq!(port % 2, 0);
    let token = response.reservation_token.expect("R bit: a token");
    assert_eq!(h.io.relays.len(), 4, "the odd port is held");

    let with_even =
        AllocateOptions { reservation_token: Some(token), even_port: Some(false), ..Default::default() };
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), with_even)), 400);
    let with_family = AllocateOptions {
        reservation_token: Some(token),
        family: Some(AddressFamily::V4),
        ..Default::default()
    };
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), with_family)), 400);
    let unknown = AllocateOptions { reservation_token: Some([7; 8]), ..Default::default() };
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), unknown)), 508);

    let use_token = AllocateOptions { reservation_token: Some(token), ..Default::default() };
    let response = h.allocate(&udp(3), &mut ada(), use_token.clone());
    assert_eq!(code(&response), 0);
    assert_eq!(response.relayed[0].port(), port + 1);
    assert_eq!(h.io.relays.len(), 4, "the held socket became the relay");
    assert_eq!(code(&h.allocate(&udp(4), &mut ada(), use_token)), 508, "a token is used once");
}

#[test]
fn an_unused_reservation_expires_and_its_port_is_released() {
    let mut h = Harness::new("");
    let reserve = AllocateOptions { even_port: Some(true), ..AllocateOptions::default() };
    let token = h.allocate(&udp(1), &mut ada(), reserve).reservation_token.unwrap();
    assert_eq!(h.io.relays.len(), 2);
    h.advance(RESERVATION_LIFETIME);
    assert_eq!(h.io.relays.len(), 1, "the held port is closed");
    let use_token = AllocateOptions { reservation_token: Some(token), ..Default::default() };
    assert_eq!(code(&h.allocate(&udp(2), &mut ada(), use_token)), 508);
}

#[test]
fn dont_fragment_is_accepted_in_allocate() {
    let mut h = Harness::new("");
    let df = AllocateOptions { dont_fragment: true, ..AllocateOptions::default() };
    assert_eq!(code(&h.allocate(&udp(1), &mut ada(), df)), 0);
}

#[test]
fn user_and_total_quotas_are_486() {
    let mut h = Harness::new("user-quota=1\ntotal-quota=2");
    h.allocated(&udp(1), &mut ada());
    assert_eq!(code(&h.allocate(&udp(2), &mut ada(), AllocateOptions::default())), 486);
    h.allocated(&udp(3), &mut bob());
    let mut carol = rest(NOW_UNIX + 600);
    assert_eq!(code(&h.allocate(&udp(4), &mut carol, AllocateOptions::default())), 486);
    assert_eq!(h.metrics().quota_rejections(), 2);
    assert_eq!(h.refresh(&udp(1), &mut ada(), Some(0)).outcome, Outcome::Success);
    assert_eq!(
        code(&h.allocate(&udp(2), &mut ada(), AllocateOptions::default())),
        0,
        "freed quota is reusable"
    );
}

#[test]
fn port_exhaustion_is_508_and_gives_the_quota_back() {
    let mut h = Harness::new("total-quota=100");
    for n in 0..=MAX_PORT - MIN_PORT {
        h.allocated(&udp(n as u8 + 1), &mut ada());
    }
    let response = h.allocate(&udp(200), &mut ada(), AllocateOptions::default());
    assert_eq!(code(&response), 508);
    assert_eq!(h.server.shared().quota.current(), u32::from(MAX_PORT - MIN_PORT) + 1);
}

#[test]
fn without_total_quota_the_cap_is_the_port_range() {
    let h = Harness::new("");
    assert_eq!(h.server.shared().quota.cap(), u32::from(MAX_PORT - MIN_PORT) + 1);
}

#[test]
fn relayed_addresses_are_announced_through_external_ip() {
    let mut h = Harness::new("external-ip=203.0.113.5/192.0.2.10");
    let relayed = h.allocated(&udp(1), &mut ada());
    assert_eq!(relayed.ip(), ip("203.0.113.5"));
    assert!(h.io.relays.values().any(|a| a.ip() == ip(RELAY_V4) && a.port() == relayed.port()));
}

// ---- Peer policy --------------------------------------------------------------------------

/// Every range and spelling the policy denies, with the label it is counted under.
const DENIED: [(&str, &str); 24] = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("fc00::1", "private"),
    ("169.254.169.254", "link_local"),
    ("fe80::1", "link_local"),
    ("100.64.0.1", "cgnat"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "own_address"),
    ("2001:db8::10", "own_address"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::127.0.0.1", "loopback"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::1", "loopback"),
    ("2001:0:1:2:3:4:80ff:fffe", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("8.8.8.8", "configured"),
];

#[test]
fn every_denied_range_and_spelling_is_403_and_counted() {
    let mut h = Harness::new("denied-peer-ip=8.8.8.0-8.8.8.255");
    let mut client = ada();
    let dual = AllocateOptions { additional_family: Some(AddressFamily::V6), ..AllocateOptions::default() };
    assert_eq!(code(&h.allocate(&udp(1), &mut client, dual)), 0);
    for (n, (peer, label)) in DENIED.iter().enumerate() {
        let peer = std::net::SocketAddr::new(ip(peer), 5000);
        let before = h.metrics().denied_peers(label);
        assert_eq!(code(&h.permit(&udp(1), &mut client, &[peer])), 403, "CreatePermission {peer}");
        assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000 + n as u16, peer)), 403, "ChannelBind {peer}");
        assert_eq!(h.metrics().denied_peers(label), before + 2, "{peer} counted as {label}");
    }
    let mut text = String::new();
    h.server.shared().render_prometheus(&mut text);
    assert!(text.contains("turn_denied_peers_total{reason=\"loopback\"} 14"), "{text}");
    assert!(text.contains("turn_denied_peers_total{reason=\"other\"} 0"));
}

#[test]
fn allowed_peer_ip_and_allow_loopback_open_what_they_name() {
    let mut h = Harness::new("allowed-peer-ip=10.5.0.1\nallow-loopback-peers");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr("10.5.0.1:1")])), 0);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr("127.0.0.1:1")])), 0);
    assert_eq!(
        code(&h.bind(&udp(1), &mut client, 0x4000, addr("[::ffff:10.5.0.1]:1"))),
        443,
        "IPv6 peer, IPv4 relay"
    );
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr("10.5.0.2:1")])), 403);
}

// ---- CreatePermission, ChannelBind --------------------------------------------------------

#[test]
fn create_permission_checks_family_presence_and_installs_all_or_nothing() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relayed = h.allocated(&udp(1), &mut client);
    let relay = h.relay(relayed);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER_V6)])), 443);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[])), 400);
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER), addr("10.0.0.1:1")])), 403);
    assert!(h.peer_sends(relay, addr(PEER), b"x").is_empty(), "nothing was installed");
    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER), addr(PEER2)])), 0);
    assert_eq!(h.peer_sends(relay, addr(PEER), b"x").len(), 1);
    assert_eq!(
        h.peer_sends(relay, addr("93.184.216.35:1"), b"y").len(),
        1,
        "a permission is per IP, any port"
    );
}

#[test]
fn channel_bind_rules() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x3fff, addr(PEER))), 400);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x8000, addr(PEER))), 400);
    let no_peer = h.exchange(&udp(1), &mut client, &|c, buf, t| {
        c.request(buf, Method::CHANNEL_BIND, t, |m| m.channel_number(0x4000).map(drop))
    });
    assert_eq!(code(&no_peer), 400);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER_V6))), 443);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER))), 0);
    assert_eq!(
        code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER2))),
        400,
        "channel taken by another peer"
    );
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4001, addr(PEER))), 400, "peer bound to another channel");
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER))), 0, "refreshing the same pair");
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4fff, addr(PEER2))), 0);
}

#[test]
fn a_channel_is_quarantined_for_five_minutes_after_it_expires() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER))), 0);
    h.refresh(&udp(1), &mut client, Some(3600));
    h.advance(secs(600));
    let mut buf = [0u8; 64];
    let len = write_channel_data(&mut buf, ChannelNumber::new(0x4000).unwrap(), b"late", false).unwrap();
    h.client_sends(&udp(1), &buf[..len]);
    assert!(h.io.to_peer.is_empty(), "an expired channel relays nothing");
    assert_eq!(h.metrics().drops(DropReason::NoChannel), 1);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER2))), 400, "quarantined");
    h.advance(secs(300));
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER2))), 0, "free after the quarantine");
}

// ---- Relaying -----------------------------------------------------------------------------

#[test]
fn send_and_data_indications_relay_with_a_permission_only() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relayed = h.allocated(&udp(1), &mut client);
    let relay = h.relay(relayed);
    let mut buf = [0u8; 1504];
    let transaction = h.transaction();
    let len = client.send_indication(&mut buf, transaction, addr(PEER), b"hello", true).unwrap();
    assert!(h.client_sends(&udp(1), &buf[..len]).is_empty(), "indications are never answered");
    assert!(h.io.to_peer.is_empty());
    assert_eq!(h.metrics().drops(DropReason::NoPermission), 1);
    assert!(h.peer_sends(relay, addr(PEER), b"unsolicited").is_empty());
    assert_eq!(h.metrics().drops(DropReason::NoPermission), 2);

    assert_eq!(code(&h.permit(&udp(1), &mut client, &[addr(PEER)])), 0);
    h.client_sends(&udp(1), &buf[..len]);
    let sent = PeerSend { relay, peer: addr(PEER), payload: b"hello".to_vec(), dont_fragment: true };
    assert_eq!(h.io.to_peer, vec![sent]);
    let len = client.send_indication(&mut buf, transaction, addr(PEER), b"again", false).unwrap();
    h.client_sends(&udp(1), &buf[..len]);
    assert!(!h.io.to_peer[1].dont_fragment);

    let out = h.peer_sends(relay, addr(PEER), b"world");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(1));
    assert_eq!(parse_data_indication(&out[0].1), Some((addr(PEER), &b"world"[..])));
    assert_eq!(h.metrics().client_to_peer(), (2, 10));
    assert_eq!(h.metrics().peer_to_client(), (1, 5));
}

#[test]
fn send_indications_without_allocation_or_with_junk_are_dropped_and_counted() {
    let mut h = Harness::new("");
    let client = ada();
    let mut buf = [0u8; 256];
    let transaction = h.transaction();
    let len = client.send_indication(&mut buf, transaction, addr(PEER), b"x", false).unwrap();
    assert!(h.client_sends(&udp(1), &buf[..len]).is_empty());
    assert_eq!(h.metrics().drops(DropReason::NoAllocation), 1);
    let mut m = MessageBuilder::new(&mut buf, Method::SEND, Class::Indication, transaction).unwrap();
    m.attribute(AttrType::DATA, b"no peer").unwrap();
    let len = m.finish();
    assert!(h.client_sends(&udp(1), &buf[..len]).is_empty());
    let mut m = MessageBuilder::new(&mut buf, Method::SEND, Class::Indication, transaction).unwrap();
    m.xor_address(AttrType::XOR_PEER_ADDRESS, addr(PEER)).unwrap().attribute(AttrType::DATA, b"x").unwrap();
    m.attribute(AttrType(0x0077), b"?").unwrap();
    let len = m.finish();
    assert!(
        h.client_sends(&udp(1), &buf[..len]).is_empty(),
        "unknown required attribute: dropped, not answered"
    );
    assert_eq!(h.metrics().drops(DropReason::Malformed), 2);
}

#[test]
fn channel_data_flows_both_ways_padded_only_over_streams() {
    for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        let mut h = Harness::new("");
        let tuple = tuple(transport, 1);
        let mut client = ada();
        let relayed = h.allocated(&tuple, &mut client);
        let relay = h.relay(relayed);
        assert_eq!(code(&h.bind(&tuple, &mut client, 0x4001, addr(PEER))), 0);
        let channel = ChannelNumber::new(0x4001).unwrap();

        let mut buf = [0u8; 64];
        for pad in [false, true] {
            let len = write_channel_data(&mut buf, channel, b"media", pad).unwrap();
            assert!(h.client_sends(&tuple, &buf[..len]).is_empty());
        }
        assert_eq!(h.io.to_peer.len(), 2, "accepted with and without padding");
        assert!(
            h.io.to_peer.iter().all(|s| s.payload == b"media" && s.peer == addr(PEER) && s.relay == relay)
        );

        let out = h.peer_sends(relay, addr(PEER), b"reply");
        let bytes = &out[0].1;
        assert_eq!(parse_channel_data(bytes), Some((channel, &b"reply"[..])));
        assert_eq!(bytes.len(), if transport == Transport::Udp { 9 } else { 12 }, "{transport:?}");
        // From another port of the permitted IP: no channel for that address, so a Data indication.
        let out = h.peer_sends(relay, addr("93.184.216.34:5001"), b"other");
        assert_eq!(parse_data_indication(&out[0].1), Some((addr("93.184.216.34:5001"), &b"other"[..])));

        let len = write_channel_data(&mut buf, ChannelNumber::new(0x4002).unwrap(), b"x", false).unwrap();
        h.client_sends(&tuple, &buf[..len]);
        assert_eq!(h.metrics().drops(DropReason::NoChannel), 1);
        assert_eq!(h.io.to_peer.len(), 2);
    }
}

#[test]
fn a_peer_datagram_too_big_for_the_client_buffer_is_dropped_and_counted() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    h.permit(&udp(1), &mut client, &[addr(PEER)]);
    assert!(h.peer_sends(relay, addr(PEER), &[0u8; 1500]).is_empty());
    assert_eq!(h.metrics().drops(DropReason::TooBig), 1);
    assert!(h.peer_sends(turn::server::RelayId(u32::MAX), addr(PEER), b"x").is_empty(), "an unknown relay");
    assert_eq!(h.metrics().drops(DropReason::NoAllocation), 1);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    h.permit(&udp(1), &mut client, &[addr(PEER)]);
    h.io.full = true;
    h.peer_sends(relay, addr(PEER), b"x");
    assert_eq!(h.metrics().drops(DropReason::QueueFull), 1);
}

#[test]
fn the_bandwidth_cap_drops_over_both_directions() {
    let mut h = Harness::new("max-bps=10000");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    h.bind(&udp(1), &mut client, 0x4000, addr(PEER));
    let channel = ChannelNumber::new(0x4000).unwrap();
    let mut buf = [0u8; 1100];
    let len = write_channel_data(&mut buf, channel, &[1; 1000], false).unwrap();
    for _ in 0..6 {
        h.client_sends(&udp(1), &buf[..len]);
    }
    for _ in 0..6 {
        h.peer_sends(relay, addr(PEER), &[2; 1000]);
    }
    assert_eq!(h.io.to_peer.len() + h.metrics().peer_to_client().0 as usize, 10, "10 kB in the first second");
    assert_eq!(h.metrics().drops(DropReason::Bandwidth), 2);
    h.advance(secs(1));
    h.client_sends(&udp(1), &buf[..len]);
    assert_eq!(h.io.to_peer.len(), 7, "refilled a second later");
}

// ---- Expiry -------------------------------------------------------------------------------

#[test]
fn permissions_and_allocations_expire_through_handle_timeout() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    assert!(h.server.poll_timeout().is_some());
    h.permit(&udp(1), &mut client, &[addr(PEER)]);
    h.advance(PERMISSION_LIFETIME - secs(1));
    assert_eq!(h.peer_sends(relay, addr(PEER), b"still").len(), 1);
    h.advance(secs(1));
    assert!(h.peer_sends(relay, addr(PEER), b"expired").is_empty());
    assert_eq!(h.metrics().drops(DropReason::NoPermission), 1);

    h.advance(secs(299));
    assert_eq!(h.server.allocations(), 1, "599 s: still there");
    h.advance(secs(1));
    assert_eq!(h.server.allocations(), 0);
    assert_eq!(h.io.closed, vec![relay], "its relay closed");
    assert_eq!(h.server.shared().quota.current(), 0);
    assert_eq!(h.server.poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn an_expired_allocation_no_longer_counts_for_its_5_tuple() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    // Time jumps without a timeout in between (a busy worker): the next Allocate still works.
    let now = h.now();
    let later = turn::server::Now { instant: now.instant + secs(601), unix_s: now.unix_s + 601 };
    let mut buf = [0u8; 512];
    let (_, len) = client.allocate(&mut buf, TransactionId([5; 12]), &AllocateOptions::default()).unwrap();
    h.server.handle_client(later, &udp(1), &buf[..len], &mut h.io);
    let response = client.handle_response(&h.io.to_client.last().unwrap().1).unwrap();
    assert_eq!(response.outcome, Outcome::Success);
    assert_eq!(h.io.closed.len(), 1);
}

#[test]
fn a_closed_stream_takes_its_allocation_along() {
    let mut h = Harness::new("");
    let tcp = tuple(Transport::Tcp, 1);
    let relay = h.allocated_relay(&tcp, &mut ada());
    h.server.handle_client_closed(&tcp, &mut h.io);
    assert_eq!(h.io.closed, vec![relay]);
    assert_eq!(h.server.allocations(), 0);
    assert_eq!(h.server.shared().quota.current(), 0);
}

#[test]
fn shutdown_closes_every_relay_and_releases_the_quota() {
    let mut h = Harness::new("");
    h.allocated(&udp(1), &mut ada());
    let reserve = AllocateOptions { even_port: Some(true), ..AllocateOptions::default() };
    h.allocate(&udp(2), &mut ada(), reserve);
    h.server.shutdown(&mut h.io);
    assert!(h.io.relays.is_empty());
    assert_eq!(h.server.shared().quota.current(), 0);
}

// ---- Rate limit, unknown attributes and methods, malformed input --------------------------

#[test]
fn repeated_authentication_failures_silence_the_source_for_a_while() {
    let mut h = Harness::new("");
    let mut wrong = turn::client::Client::new("ada", "guess");
    h.allocate(&udp(1), &mut wrong, AllocateOptions::default());
    for _ in 1..AUTH_FAILURE_THRESHOLD {
        h.once(&udp(1), &mut wrong, &|c, buf, t| c.allocate(buf, t, &AllocateOptions::default()));
    }
    assert_eq!(h.metrics().auth_failures(), u64::from(AUTH_FAILURE_THRESHOLD));
    let answer =
        h.try_once(&udp(1), &mut ada(), &|c, buf, t| c.allocate(buf, t, &AllocateOptions::default()));
    assert_eq!(answer, None, "blocked: even a good request gets no answer");
    assert_eq!(h.metrics().drops(DropReason::RateLimited), 1);
    assert_eq!(
        code(&h.allocate(&udp(2), &mut ada(), AllocateOptions::default())),
        0,
        "other sources are served"
    );
    h.advance(AUTH_BLOCK);
    assert_eq!(code(&h.allocate(&udp(1), &mut ada(), AllocateOptions::default())), 0);
}

#[test]
fn the_failure_table_stays_bounded_under_a_flood_of_sources() {
    let mut h = Harness::new("");
    let mut wrong = turn::client::Client::new("ada", "guess");
    let mut buf = [0u8; 512];
    h.allocate(&udp(1), &mut wrong, AllocateOptions::default());
    let (_, len) = wrong.allocate(&mut buf, TransactionId([1; 12]), &AllocateOptions::default()).unwrap();
    for n in 0..4 * AUTH_TABLE_CAPACITY as u32 {
        let mut source = udp(1);
        source.client =
            std::net::SocketAddr::new(std::net::IpAddr::from((0x0a00_0000 + n).to_be_bytes()), 4000);
        let now = h.now();
        h.server.handle_client(now, &source, &buf[..len], &mut h.io);
    }
    assert!(h.server.tracked_auth_sources() <= AUTH_TABLE_CAPACITY);
    assert!(h.server.tracked_auth_sources() > AUTH_TABLE_CAPACITY / 2);
}

#[test]
fn unknown_required_attributes_are_420_and_optional_ones_ignored() {
    let mut h = Harness::new("");
    let mut client = ada();
    let response = h.exchange(&udp(1), &mut client, &|c, buf, t| {
        c.request(buf, Method::ALLOCATE, t, |m| {
            m.requested_transport(17)?.attribute(AttrType(0x0077), b"?")?.attribute(AttrType(0x0078), b"")?;
            m.attribute(AttrType(0x8077), b"fine").map(drop)
        })
    });
    assert_eq!(code(&response), 420);
    assert_eq!(response.unknown_attributes, vec![0x0077, 0x0078]);
    assert!(response.signed);

    let mut buf = [0u8; 128];
    let mut m =
        MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId([3; 12])).unwrap();
    m.attribute(AttrType(0x0003), &[0, 0, 0, 6]).unwrap(); // CHANGE-REQUEST (RFC 5780)
    let len = m.finish();
    let answer = client.handle_response(&h.client_sends(&udp(1), &buf[..len])[0]).unwrap();
    assert_eq!((code(&answer), answer.unknown_attributes), (420, vec![0x0003]));
}

#[test]
fn unknown_methods_are_400_and_indications_are_never_answered() {
    let mut h = Harness::new("");
    let mut buf = [0u8; 64];
    let len = MessageBuilder::new(&mut buf, Method(0x00d), Class::Request, TransactionId([1; 12]))
        .unwrap()
        .finish();
    let answers = h.client_sends(&udp(1), &buf[..len]);
    assert_eq!(Message::parse(&answers[0]).unwrap().error_code().unwrap().0, 400);
    let len =
        MessageBuilder::new(&mut buf, Method::DATA, Class::Request, TransactionId([1; 12])).unwrap().finish();
    assert_eq!(
        Message::parse(&h.client_sends(&udp(1), &buf[..len])[0]).unwrap().error_code().unwrap().0,
        400
    );
    for method in [Method::BINDING, Method::ALLOCATE, Method::DATA, Method::CONNECTION_ATTEMPT, Method(0x00d)]
    {
        let len = MessageBuilder::new(&mut buf, method, Class::Indication, TransactionId([1; 12]))
            .unwrap()
            .finish();
        assert!(h.client_sends(&udp(1), &buf[..len]).is_empty(), "{method:?}");
    }
    let len = MessageBuilder::new(&mut buf, Method::BINDING, Class::Success, TransactionId([1; 12]))
        .unwrap()
        .finish();
    assert!(h.client_sends(&udp(1), &buf[..len]).is_empty());
}

#[test]
fn malformed_input_is_dropped_and_counted() {
    let mut h = Harness::new("");
    let mut client = ada();
    h.allocated(&udp(1), &mut client);
    let mut buf = [0u8; 64];
    let len = client.binding(&mut buf, TransactionId([1; 12])).unwrap();
    buf[len - 1] ^= 1; // FINGERPRINT broken
    let junk: [&[u8]; 6] =
        [b"", &[0xff; 40], &[0x00, 0x01, 0x00], &[0x40, 0x00, 0x00, 0x10, 1], &[0x80, 0, 0, 0], &buf[..len]];
    for bytes in junk {
        assert!(h.client_sends(&udp(1), bytes).is_empty(), "{bytes:?}");
    }
    assert_eq!(h.metrics().drops(DropReason::Malformed), 6);
}

#[test]
fn responses_carry_fingerprint_only_when_the_request_did() {
    let mut h = Harness::new("");
    let mut buf = [0u8; 64];
    let len = MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId([1; 12]))
        .unwrap()
        .finish();
    let answer = &h.client_sends(&udp(1), &buf[..len])[0];
    assert!(Message::parse(answer).unwrap().get(AttrType::FINGERPRINT).is_none());
}

#[test]
fn metrics_render_as_prometheus_text() {
    let mut h = Harness::new("");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    h.permit(&udp(1), &mut client, &[addr(PEER)]);
    h.peer_sends(relay, addr(PEER), b"1234");
    h.client_sends(&udp(1), b"\xff");
    let mut text = String::new();
    h.server.shared().render_prometheus(&mut text);
    for line in [
        "turn_allocations 1",
        "turn_allocations_total 1",
        "turn_relayed_packets_total{direction=\"peer_to_client\"} 1",
        "turn_relayed_bytes_total{direction=\"peer_to_client\"} 4",
        "turn_relayed_packets_total{direction=\"client_to_peer\"} 0",
        "turn_auth_failures_total 0",
        "turn_quota_rejections_total 0",
        "turn_dropped_total{reason=\"malformed\"} 1",
        "turn_dropped_total{reason=\"rate_limited\"} 0",
        "turn_dropped_total{reason=\"no_permission\"} 0",
        "turn_dropped_total{reason=\"bandwidth\"} 0",
        "# TYPE turn_allocations gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    assert!(
        text.lines().all(|l| l.starts_with("turn_")
            || l.starts_with("# HELP turn_")
            || l.starts_with("# TYPE turn_"))
    );
}
