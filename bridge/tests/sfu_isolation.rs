//! Isolation: media of a participant of conference X never reaches conference Y; datagrams
//! from addresses that never completed ICE, forged checks, and unsignaled SSRCs are dropped and
//! counted. Real ICE, DTLS and SRTP over loopback against the SFU on the engine.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bridge::sfu::counters::{MediaDrop, MediaEvent};
use bridge::sfu::endpoint::MediaKind::Audio;
use common::peer::{BridgeEndpoint, binding_request, identity};
use common::sfu::Sfu;

const PACKETS: u16 = 50;

fn ssrcs(packets: &[Vec<u8>]) -> Vec<u32> {
    let mut ssrcs: Vec<u32> =
        packets.iter().map(|p| u32::from_be_bytes(p[8..12].try_into().unwrap())).collect();
    ssrcs.sort();
    ssrcs
}

#[test]
fn media_stays_in_its_conference() {
    let sfu = Sfu::start(2);
    let (x, y) = (sfu.conference(), sfu.conference());
    let (_, mut a) = sfu.join(x, "a", &[(0xA0, Audio)]);
    let (_, mut b) = sfu.join(x, "b", &[(0xB0, Audio)]);
    let (_, mut c) = sfu.join(y, "c", &[(0xC0, Audio)]);
    let (_, mut d) = sfu.join(y, "d", &[(0xD0, Audio)]);

    let payload = [0x55u8; 160];
    for seq in 0..PACKETS {
        a.send_rtp(0xA0, 111, seq, u32::from(seq) * 960, &payload);
        c.send_rtp(0xC0, 111, seq, u32::from(seq) * 960, &payload);
        std::thread::sleep(Duration::from_millis(2));
    }
    // Datagrams wait in each socket's buffer; each peer reads its own for a while.
    let drain =
        |peer: &mut common::peer::Peer| ssrcs(&peer.receive(Instant::now() + Duration::from_millis(300)).0);
    let (got_b, got_d, got_a, got_c) = (drain(&mut b), drain(&mut d), drain(&mut a), drain(&mut c));
    assert_eq!(got_b, vec![0xA0; PACKETS as usize], "B gets all of A and nothing of conference Y");
    assert_eq!(got_d, vec![0xC0; PACKETS as usize], "D gets all of C and nothing of conference X");
    assert!(got_a.is_empty() && got_c.is_empty(), "senders get nothing back: {got_a:x?} {got_c:x?}");
    assert_eq!(sfu.registry.events(MediaEvent::RtpForwarded), 2 * u64::from(PACKETS));
}

#[test]
fn strangers_forged_checks_and_unsignaled_ssrcs_are_dropped_and_counted() {
    let sfu = Sfu::start(2);
    let x = sfu.conference();
    let (_, mut a) = sfu.join(x, "a", &[(0xA0, Audio)]);
    let (_, mut b) = sfu.join(x, "b", &[(0xB0, Audio)]);
    let bridge = sfu.engine.local_addr();

    // A stranger who knows B's endpoint ufrag but not its password, sends everything.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let identity = identity("stranger");
    let (_, victim) = sfu.signal(x, &identity, &[]);
    let forged = BridgeEndpoint { ufrag: victim.ufrag.clone(), pwd: "not-the-password-at-all".into() };
    let mut buf = [0u8; 1500];
    let len = binding_request(&forged, &identity, 1, &forged.pwd, &mut buf);
    stranger.send_to(&buf[..len], bridge).unwrap();
    let n = stranger.recv(&mut buf).expect("a 401 answer");
    let answer = stun::Message::parse(&buf[..n]).unwrap();
    assert_eq!(answer.error_code().map(|(code, _)| code), Ok(401));

    let rtp = [0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0xA0, 0xA0, 1, 2, 3, 4];
    let rtcp = [0x81, 201, 0, 1, 0, 0, 0, 1];
    let dtls = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for datagram in [&rtp[..], &rtcp[..], &dtls[..]] {
        stranger.send_to(datagram, bridge).unwrap();
    }
    stranger.send_to(&[0xff, 1, 2, 3], bridge).unwrap();

    // A signaled 0xA0 only; a packet with another SSRC goes nowhere.
    a.send_rtp(0xA1, 111, 1, 960, &[1; 100]);
    a.send_rtp(0xA0, 111, 1, 960, &[2; 100]);

    let (got, _) = b.receive(Instant::now() + Duration::from_millis(500));
    assert_eq!(ssrcs(&got), vec![0xA0], "only A's signaled stream reaches B");
    assert!(stranger.recv(&mut buf).is_err(), "the stranger hears nothing");
    let registry = &sfu.registry;
    assert_eq!(registry.drops(MediaDrop::StunUnauthorized), 1);
    assert_eq!(registry.drops(MediaDrop::UnknownAddress), 3, "RTP, RTCP and DTLS from the stranger");
    assert_eq!(registry.drops(MediaDrop::UnknownProtocol), 1);
    assert_eq!(registry.drops(MediaDrop::UnknownSsrc), 1);
}

#[test]
fn media_stops_when_consent_expires() {
    let sfu = Sfu::start(2);
    let x = sfu.conference();
    let (_, mut a) = sfu.join(x, "a", &[(0xA0, Audio)]);
    let (b_id, mut b) = sfu.join(x, "b", &[(0xB0, Audio)]);
    a.send_rtp(0xA0, 111, 1, 960, &[1; 100]);
    assert_eq!(b.receive(Instant::now() + Duration::from_millis(300)).0.len(), 1);

    // 31 s without an authenticated check from anyone (the housekeeping tick sees the future).
    sfu.registry.tick(Instant::now() + Duration::from_secs(31));
    let state = sfu.registry.conference_status(x).unwrap();
    let b_state = state.endpoints.iter().find(|e| e.id == b_id.to_string()).unwrap();
    assert_eq!(serde_json::to_value(b_state.ice).unwrap(), "expired");
    a.send_rtp(0xA0, 111, 2, 1920, &[2; 100]);
    assert!(b.receive(Instant::now() + Duration::from_millis(300)).0.is_empty(), "no consent, no media");
    assert!(sfu.registry.drops(MediaDrop::UnknownAddress) >= 1, "A's address is unknown again");
}
