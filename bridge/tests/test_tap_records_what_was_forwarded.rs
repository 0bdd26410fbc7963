//! The test tap (cargo feature `test-tap`) records exactly what the SFU forwarded: for each
//! packet a real DTLS-SRTP participant sent and the bridge forwarded, the SSRC, payload type,
//! sequence number, timestamp, marker and the decrypted payload's length and first 256 bytes,
//! as `GET /v1/test/tap` on the control API returns them; packets it did not forward leave no
//! record; and past its capacity it only counts.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bridge::media::rtp::RtpHeader;
use bridge::sfu::endpoint::MediaKind::{Audio, Video};
use common::peer::{Peer, rtp_packet};
use common::sfu::Sfu;
use serde_json::Value;

const SECRET: &str = "control-secret-0123456789";
const RECORDS: usize = 48;
/// Fewer than the tap holds, then more than it has left.
const FIRST_BATCH: usize = 30;
const SECOND_BATCH: usize = 40;
const VIDEO: u32 = 0x5E;
const AUDIO: u32 = 0x5A;

/// One packet as the sender put it on the wire (before SRTP).
#[derive(Clone, Debug)]
struct Sent {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
}

/// Packet `n`: video and audio in turn, lengths around the 256-byte prefix, content unique to it.
fn sent(n: usize) -> Sent {
    let video = n.is_multiple_of(2);
    let len = [1, 100, 255, 256, 257, 1000, 1150][n % 7];
    Sent {
        ssrc: if video { VIDEO } else { AUDIO },
        payload_type: if video { 96 } else { 111 },
        sequence: 1000 + n as u16,
        timestamp: 90_000 + 3000 * n as u32,
        marker: n.is_multiple_of(3),
        payload: (0..len).map(|i| (i * 7 + n * 31) as u8 ^ 0xA5).collect(),
    }
}

fn send(peer: &mut Peer, packet: &Sent) {
    let mut buf = [0u8; 1500];
    let p = packet;
    let len = rtp_packet(p.ssrc, p.payload_type, p.sequence, p.timestamp, &p.payload, &mut buf);
    if p.marker {
        buf[1] |= 0x80;
    }
    let protected = peer.outbound.protect_rtp(&mut buf, len).unwrap();
    peer.socket.send(&buf[..protected]).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET path` on the control API; (status, JSON body or Null).
fn get(api: SocketAddr, path: &str, secret: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = secret.map(|s| format!("Authorization: Bearer {s}\r\n")).unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The tap, once it has seen `forwarded` packets (or after 5 s, for the assertion to report).
fn tap_after(api: SocketAddr, forwarded: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, tap) = get(api, "/v1/test/tap", Some(SECRET));
        assert_eq!(status, 200, "{tap}");
        if tap["forwarded"] == forwarded || Instant::now() > deadline {
            return tap;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_recorded(record: &Value, packet: &Sent) {
    let prefix = &packet.payload[..packet.payload.len().min(256)];
    assert_eq!(record["ssrc"], packet.ssrc, "{record}");
    assert_eq!(record["payload_type"], packet.payload_type, "{record}");
    assert_eq!(record["sequence"], packet.sequence, "{record}");
    assert_eq!(record["timestamp"], packet.timestamp, "{record}");
    assert_eq!(record["marker"], packet.marker, "{record}");
    assert_eq!(record["payload_len"], packet.payload.len(), "{record}");
    assert_eq!(record["payload_prefix"], hex(prefix), "{record}");
}

/// (sequence, payload) of each RTP packet a receiver got.
fn received(peer: &mut Peer) -> Vec<(u16, Vec<u8>)> {
    let (rtp, _) = peer.receive(Instant::now() + Duration::from_millis(300));
    rtp.iter()
        .map(|packet| {
            let header = RtpHeader::parse(packet).unwrap();
            let payload = &packet[header.header_len..header.header_len + header.payload_len];
            (header.sequence, payload.to_vec())
        })
        .collect()
}

#[test]
fn the_tap_records_each_forwarded_payload_once_up_to_its_capacity() {
    let config = bridge::config::BridgeConfig::parse(&format!(
        r#"
[engine]
listen = "127.0.0.1:0"
workers = 2
lock_memory = "off"
pool_slots_per_worker = 1024
[control]
listen = "127.0.0.1:0"
secret = "{SECRET}"
[test_tap]
records = {RECORDS}
"#
    ))
    .unwrap();
    let started = bridge::run::start_sfu(&config).unwrap();
    let api = started.control.expect("the control API is on");
    let sfu = Sfu { engine: started.engine, registry: started.registry };
    let conference = sfu.conference();
    let (_, mut sender) = sfu.join(conference, "sender", &[(VIDEO, Video), (AUDIO, Audio)]);
    let mut receivers = [sfu.join(conference, "r0", &[(0x100, Audio)]).1, sfu.join(conference, "r1", &[]).1];

    // Authenticated like every control call.
    for secret in [None, Some("wrong-secret-0123456789")] {
        assert_eq!(get(api, "/v1/test/tap", secret).0, 401, "{secret:?}");
    }
    let (status, empty) = get(api, "/v1/test/tap", Some(SECRET));
    assert_eq!(status, 200);
    assert_eq!((empty["capacity"].as_u64(), empty["forwarded"].as_u64()), (Some(RECORDS as u64), Some(0)));

    let packets: Vec<Sent> = (0..FIRST_BATCH + SECOND_BATCH).map(sent).collect();
    for packet in &packets[..FIRST_BATCH] {
        send(&mut sender, packet);
        std::thread::sleep(Duration::from_millis(1));
    }
    // An SSRC the sender never signaled is dropped, not forwarded: no record.
    send(&mut sender, &Sent { ssrc: 0x77, ..sent(0) });

    let tap = tap_after(api, FIRST_BATCH);
    assert_eq!(tap["forwarded"], FIRST_BATCH, "one record per packet, not per copy");
    assert_eq!(tap["recorded"], FIRST_BATCH);
    let records = tap["records"].as_array().unwrap();
    assert_eq!(records.len(), FIRST_BATCH);
    for (record, packet) in records.iter().zip(&packets) {
        assert_recorded(record, packet);
    }
    // What the tap saw is what each receiver got.
    let expected: Vec<_> = packets[..FIRST_BATCH].iter().map(|p| (p.sequence, p.payload.clone())).collect();
    for receiver in &mut receivers {
        assert_eq!(received(receiver), expected);
    }

    for packet in &packets[FIRST_BATCH..] {
        send(&mut sender, packet);
        std::thread::sleep(Duration::from_millis(1));
    }
    let total = FIRST_BATCH + SECOND_BATCH;
    let tap = tap_after(api, total);
    assert_eq!(tap["forwarded"], total, "packets past the capacity are counted");
    assert_eq!(tap["recorded"], RECORDS, "and not recorded");
    let records = tap["records"].as_array().unwrap();
    assert_eq!(records.len(), RECORDS);
    for (record, packet) in records.iter().zip(&packets) {
        assert_recorded(record, packet);
    }
    for receiver in &mut receivers {
        assert_eq!(received(receiver).len(), SECOND_BATCH, "the bridge forwarded all of them");
    }
}
