//! Participants who number codecs and header extensions differently share a conference: each
//! receives every packet in its own numbers (payload type, extension ids, RTX payload type),
//! participants who number alike get the sender's bytes unchanged, and a receiver without the
//! codec gets nothing of it, counted.

mod common;

use std::time::{Duration, Instant};

use bridge::media::rtcp::Writer;
use bridge::media::rtp::RtpHeader;
use bridge::sfu::counters::MediaDrop;
use bridge::sfu::endpoint::MediaKind::{Audio, Video};
use bridge::sfu::endpoint::{HeaderExtension, MediaKind, PayloadType, Source};
use bridge::sfu::ids::{ConferenceId, EndpointId};
use bridge::sfu::registry::EndpointUpdate;
use common::peer::Peer;
use common::sfu::Sfu;

const VIDEO: u32 = 0xA1;
const RTX: u32 = 0xA2;
const AUDIO: u32 = 0xA3;

const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

/// How one participant numbers things: (opus, vp8, rtx of vp8) and (audio level, abs-send-time).
struct Dialect {
    opus: u8,
    vp8: Option<u8>,
    rtx: Option<u8>,
    audio_level: u8,
    abs_send_time: Option<u8>,
}

/// Chromium's numbers.
const CHROMIUM: Dialect =
    Dialect { opus: 111, vp8: Some(96), rtx: Some(97), audio_level: 1, abs_send_time: Some(2) };
/// aiortc's payload types, and extension ids no browser uses.
const OTHER: Dialect =
    Dialect { opus: 96, vp8: Some(97), rtx: Some(98), audio_level: 10, abs_send_time: None };
/// Audio only, with Chromium's numbers for Opus.
const AUDIO_ONLY: Dialect = Dialect { opus: 111, vp8: None, rtx: None, audio_level: 1, abs_send_time: None };

fn signal(sfu: &Sfu, conference: ConferenceId, id: EndpointId, dialect: &Dialect, sources: Vec<Source>) {
    let pt = |pt, name: &str, kind, apt| PayloadType {
        pt,
        kind,
        name: name.into(),
        clock_rate: if kind == MediaKind::Audio { 48_000 } else { 90_000 },
        channels: (kind == MediaKind::Audio).then_some(2),
        apt,
    };
    let mut payload_types = vec![pt(dialect.opus, "opus", Audio, None)];
    if let (Some(vp8), Some(rtx)) = (dialect.vp8, dialect.rtx) {
        payload_types.push(pt(vp8, "VP8", Video, None));
        payload_types.push(pt(rtx, "rtx", Video, Some(vp8)));
    }
    let mut header_extensions = vec![HeaderExtension { id: dialect.audio_level, uri: AUDIO_LEVEL.into() }];
    if let Some(id) = dialect.abs_send_time {
        header_extensions.push(HeaderExtension { id, uri: ABS_SEND_TIME.into() });
    }
    let update = EndpointUpdate {
        sources: Some(sources),
        payload_types: Some(payload_types),
        header_extensions: Some(header_extensions),
        ..EndpointUpdate::default()
    };
    sfu.registry.update_endpoint(conference, id, update).unwrap();
}

fn join(sfu: &Sfu, conference: ConferenceId, name: &str, ssrc: u32, dialect: &Dialect) -> Peer {
    let (id, peer) = sfu.join(conference, name, &[(ssrc, Audio)]);
    signal(sfu, conference, id, dialect, vec![Source { ssrc, kind: Audio, msid: None, rtx_ssrc: None }]);
    peer
}

/// Chromium-numbered video (VP8, abs-send-time) and audio (Opus, audio level and abs-send-time).
fn packet(ssrc: u32, pt: u8, seq: u16, audio_level: bool) -> Vec<u8> {
    let mut p = vec![0x90, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 2];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    // abs-send-time (id 2, 3 bytes), then the audio level (id 1) or padding.
    p.extend_from_slice(&[0x22, 0x01, 0x02, 0x03]);
    p.extend_from_slice(if audio_level { &[0x10, 0x85, 0, 0] } else { &[0, 0, 0, 0] });
    p.extend((0..300u16).map(|i| (i.wrapping_mul(7).wrapping_add(seq)) as u8));
    p
}

fn send(peer: &mut Peer, plain: &[u8]) {
    let mut buf = [0u8; 1500];
    buf[..plain.len()].copy_from_slice(plain);
    let len = peer.outbound.protect_rtp(&mut buf, plain.len()).unwrap();
    peer.socket.send(&buf[..len]).unwrap();
}

fn extensions(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
    RtpHeader::parse(p).unwrap().extensions().map(|(id, v)| (id, v.to_vec())).collect()
}

#[test]
fn every_receiver_gets_the_senders_media_in_its_own_numbers() {
    let sfu = Sfu::start(2);
    let x = sfu.conference();
    let (sender_id, mut sender) = sfu.join(x, "chromiumsender", &[(VIDEO, Video), (AUDIO, Audio)]);
    signal(
        &sfu,
        x,
        sender_id,
        &CHROMIUM,
        vec![
            Source { ssrc: VIDEO, kind: Video, msid: None, rtx_ssrc: Some(RTX) },
            Source { ssrc: AUDIO, kind: Audio, msid: None, rtx_ssrc: None },
        ],
    );
    let mut alike = join(&sfu, x, "chromiumreceiver", 0xB1, &CHROMIUM);
    let mut other = join(&sfu, x, "otherreceiver", 0xB2, &OTHER);
    let mut audio_only = join(&sfu, x, "audioonly", 0xB3, &AUDIO_ONLY);

    let mut sent = Vec::new();
    for seq in 100..140u16 {
        let p = if seq % 2 == 0 { packet(VIDEO, 96, seq, false) } else { packet(AUDIO, 111, seq, true) };
        send(&mut sender, &p);
        sent.push(p);
    }
    // Each socket holds what arrived while another one is read.
    let soon = || Instant::now() + Duration::from_millis(300);
    let (got_alike, _) = alike.receive(soon());
    let (got_other, _) = other.receive(soon());
    let (got_audio_only, _) = audio_only.receive(soon());

    assert_eq!(got_alike, sent, "numbered alike: the sender's bytes, unchanged");

    assert_eq!(got_other.len(), sent.len());
    for (got, original) in got_other.iter().zip(&sent) {
        let video = original[8..12] == VIDEO.to_be_bytes();
        assert_eq!(got[1], if video { 97 } else { 96 }, "VP8 is 97 and Opus 96 for this receiver");
        let expected: Vec<(u8, Vec<u8>)> = if video { vec![] } else { vec![(10, vec![0x85])] };
        assert_eq!(extensions(got), expected, "abs-send-time is not its own: padding; the level moves to 10");
        assert_eq!(got.len(), original.len());
        assert_eq!(got[2..12], original[2..12], "sequence, timestamp and SSRC stay");
        assert_eq!(got[24..], original[24..], "the payload stays");
    }

    let audio: Vec<_> = sent.iter().filter(|p| p[8..12] == AUDIO.to_be_bytes()).collect();
    assert_eq!(got_audio_only.len(), audio.len(), "no video for a receiver without VP8");
    assert!(got_audio_only.iter().all(|p| p[1] == 111 && extensions(p) == vec![(1, vec![0x85])]));
    assert_eq!(sfu.registry.drops(MediaDrop::CodecNotNegotiated), 20, "one per video packet not sent to it");

    // A NACK from the receiver with other numbers: RTX in its payload type and extension ids.
    let mut buf = [0u8; 200];
    let mut writer = Writer::new(&mut buf);
    writer.receiver_report(0xB2, &[]).unwrap();
    writer.nack(0xB2, VIDEO, &[110]).unwrap();
    let len = writer.finish();
    other.send_rtcp(&buf[..len]);
    std::thread::sleep(Duration::from_millis(100));
    send(&mut sender, &packet(VIDEO, 96, 140, false)); // the sender's worker serves NACKs on its packets
    let (got, _) = other.receive(Instant::now() + Duration::from_millis(400));
    let rtx: Vec<_> = got.iter().filter(|p| p[8..12] == RTX.to_be_bytes()).collect();
    assert_eq!(rtx.len(), 1, "one retransmission: {got:?}");
    assert_eq!(rtx[0][1] & 0x7f, 98, "this receiver's RTX payload type");
    assert_eq!(extensions(rtx[0]), vec![], "abs-send-time padded out in the retransmission too");
    assert_eq!(u16::from_be_bytes([rtx[0][24], rtx[0][25]]), 110, "OSN");
}
