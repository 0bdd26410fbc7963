//! Arbitrary bytes from clients and peers, and valid messages mutated, never panic the server:
//! they are answered or dropped, and the server keeps relaying afterwards.

mod common;

use common::*;
use proptest::prelude::*;
use stun::{AttrType, Class, MessageBuilder, Method, PasswordAlgorithm, TransactionId};
use turn::client::{AuthOptions, Client, write_channel_data};
use turn::server::{ChannelNumber, ClientTuple, ConnectionId, RelayId, Transport, frame_len};

const PEER: &str = "93.184.216.34:5000";

/// A server with an allocation on UDP and on TCP, each with a permission and a channel, and
/// a TCP allocation (RFC 6062) with a peer connection waiting for its ConnectionBind.
fn established() -> (Harness, Client, RelayId) {
    let mut h = Harness::new("max-bps=100000\nuser-quota=4");
    let mut client = ada();
    let relay = h.allocated_relay(&udp(1), &mut client);
    assert_eq!(code(&h.bind(&udp(1), &mut client, 0x4000, addr(PEER))), 0);
    let mut tcp_client = ada();
    h.allocated(&tuple(Transport::Tcp, 2), &mut tcp_client);
    assert_eq!(code(&h.bind(&tuple(Transport::Tcp, 2), &mut tcp_client, 0x4000, addr(PEER))), 0);
    let mut relaying_client = ada();
    let tcp = turn::client::AllocateOptions { transport: 6, ..Default::default() };
    assert_eq!(code(&h.allocate(&tuple(Transport::Tcp, 4), &mut relaying_client, tcp)), 0);
    let connect = h.try_once(&tuple(Transport::Tcp, 4), &mut relaying_client, &|c, buf, t| {
        c.connect(buf, t, addr(PEER))
    });
    assert!(connect.is_none(), "answered once connected");
    let (_, id, _) = h.io.connects[0];
    let now = h.now();
    h.server.handle_peer_connected(now, id, true, &mut h.io);
    (h, client, relay)
}

/// The server still relays a ChannelData message after whatever came before.
fn still_relays(h: &mut Harness) {
    let before = h.io.to_peer.len();
    let mut buf = [0u8; 16];
    let len = write_channel_data(&mut buf, ChannelNumber::new(0x4000).unwrap(), b"ok", false).unwrap();
    h.client_sends(&udp(1), &buf[..len]);
    assert_eq!(h.io.to_peer.len(), before + 1);
}

/// Valid requests and indications of every kind, signed, to mutate; and requests with RFC
/// 8489's USERHASH, PASSWORD-ALGORITHM(S) and MESSAGE-INTEGRITY-SHA256 from a client the harness
/// challenged.
fn valid_messages(h: &mut Harness, client: &Client) -> Vec<Vec<u8>> {
    let t = TransactionId([4; 12]);
    let mut out = Vec::new();
    let mut buf = [0u8; 1504];
    let mut push = |len: usize, buf: &[u8]| out.push(buf[..len].to_vec());
    push(client.allocate(&mut buf, t, &Default::default()).unwrap().1, &buf);
    push(client.refresh(&mut buf, t, Some(600), None).unwrap().1, &buf);
    push(client.create_permission(&mut buf, t, &[addr(PEER), addr("[2606:4700::1]:1")]).unwrap().1, &buf);
    push(client.channel_bind(&mut buf, t, 0x4001, addr(PEER)).unwrap().1, &buf);
    push(client.send_indication(&mut buf, t, addr(PEER), b"payload", true).unwrap(), &buf);
    push(client.binding(&mut buf, t).unwrap(), &buf);
    push(client.connect(&mut buf, t, addr(PEER)).unwrap().1, &buf);
    let pending = h.io.connects[0].1;
    push(client.connection_bind(&mut buf, t, pending.0).unwrap().1, &buf);
    push(write_channel_data(&mut buf, ChannelNumber::new(0x4000).unwrap(), b"data", true).unwrap(), &buf);
    let options = AuthOptions {
        sha256: true,
        userhash: true,
        password_algorithm: Some(PasswordAlgorithm::Sha256),
        ..AuthOptions::default()
    };
    let mut modern = Client::with_options("ada", "lovelace", options);
    h.once(&udp(5), &mut modern, &|c, buf, t| c.refresh(buf, t, None, None));
    push(modern.allocate(&mut buf, t, &Default::default()).unwrap().1, &buf);
    push(modern.refresh(&mut buf, t, Some(600), None).unwrap().1, &buf);
    out
}

fn client_tuple() -> impl Strategy<Value = ClientTuple> {
    prop_oneof![
        Just(udp(1)),
        Just(tuple(Transport::Tcp, 2)),
        Just(udp(3)),
        Just(tuple(Transport::Tcp, 4)),
        Just(tuple(Transport::Tls, 5)),
    ]
}

/// Attribute types the server reads, and a few it does not.
fn attribute_type() -> impl Strategy<Value = AttrType> {
    prop_oneof![
        Just(AttrType::USERNAME),
        Just(AttrType::REALM),
        Just(AttrType::NONCE),
        Just(AttrType::MESSAGE_INTEGRITY),
        Just(AttrType::MESSAGE_INTEGRITY_SHA256),
        Just(AttrType::PASSWORD_ALGORITHM),
        Just(AttrType::PASSWORD_ALGORITHMS),
        Just(AttrType::USERHASH),
        Just(AttrType::LIFETIME),
        Just(AttrType::XOR_PEER_ADDRESS),
        Just(AttrType::DATA),
        Just(AttrType::CHANNEL_NUMBER),
        Just(AttrType::REQUESTED_TRANSPORT),
        Just(AttrType::REQUESTED_ADDRESS_FAMILY),
        Just(AttrType::ADDITIONAL_ADDRESS_FAMILY),
        Just(AttrType::EVEN_PORT),
        Just(AttrType::RESERVATION_TOKEN),
        Just(AttrType::DONT_FRAGMENT),
        Just(AttrType::CONNECTION_ID),
        any::<u16>().prop_map(AttrType),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_from_clients_and_peers(
        datagrams in prop::collection::vec((client_tuple(), prop::collection::vec(any::<u8>(), 0..1600)), 1..8),
        from_peers in prop::collection::vec((0u32..8, any::<[u8; 4]>(), any::<u16>(), prop::collection::vec(any::<u8>(), 0..1600)), 0..8),
    ) {
        let (mut h, _, relay) = established();
        for (tuple, bytes) in &datagrams {
            h.client_sends(tuple, bytes);
            let _ = frame_len(bytes);
        }
        for (i, (id, ip, port, bytes)) in from_peers.iter().enumerate() {
            let relay = if *id == 0 { relay } else { RelayId(*id) };
            let from = std::net::SocketAddr::from((*ip, *port));
            h.peer_sends(relay, from, bytes);
            h.peer_sends(relay, addr(PEER), bytes);
            // TCP peers connecting to any relay, and I/O reports about connections the server
            // may or may not know (ids of their own, so the fake I/O never sees one twice).
            let now = h.now();
            h.server.handle_peer_accepted(now, relay, from, &mut h.io);
            let stranger = ConnectionId(0xffff_0000 + i as u32);
            h.server.handle_peer_connected(now, stranger, bytes.first().is_some_and(|b| b & 1 == 1), &mut h.io);
            h.server.handle_peer_closed(ConnectionId(0xfffe_0000 + i as u32), &mut h.io);
        }
        still_relays(&mut h);
    }

    #[test]
    fn mutated_valid_messages(
        which in 0usize..11,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        tuple in client_tuple(),
    ) {
        let (mut h, client, _) = established();
        let mut message = valid_messages(&mut h, &client)[which].clone();
        for (at, byte) in &flips {
            let i = at.index(message.len());
            message[i] ^= byte;
        }
        if truncate {
            message.truncate(cut.index(message.len() + 1));
        }
        h.client_sends(&tuple, &message);
        h.advance(std::time::Duration::from_secs(1));
        still_relays(&mut h);
    }

    #[test]
    fn well_framed_requests_with_arbitrary_attributes(
        method in prop_oneof![Just(Method::ALLOCATE), Just(Method::REFRESH), Just(Method::CREATE_PERMISSION), Just(Method::CHANNEL_BIND), Just(Method::SEND), Just(Method::BINDING), Just(Method::CONNECT), Just(Method::CONNECTION_BIND), Just(Method::CONNECTION_ATTEMPT)],
        indication in any::<bool>(),
        attributes in prop::collection::vec((attribute_type(), prop::collection::vec(any::<u8>(), 0..24)), 0..8),
        tuple in client_tuple(),
    ) {
        let (mut h, client, _) = established();
        let mut buf = [0u8; 1504];
        let class = if indication { Class::Indication } else { Class::Request };
        let mut m = MessageBuilder::new(&mut buf, method, class, TransactionId([8; 12])).unwrap();
        for (typ, value) in &attributes {
            if *typ != AttrType::MESSAGE_INTEGRITY {
                m.attribute(*typ, value).unwrap();
            }
        }
        let len = m.finish();
        h.client_sends(&tuple, &buf[..len]);
        // The same attributes inside a properly signed request.
        let (_, len) = client.request(&mut buf, method, TransactionId([9; 12]), |m| {
            for (typ, value) in &attributes {
                if *typ != AttrType::MESSAGE_INTEGRITY {
                    m.attribute(*typ, value)?;
                }
            }
            Ok(())
        }).unwrap();
        h.client_sends(&tuple, &buf[..len]);
        still_relays(&mut h);
    }
}
