//! RTCP through the SFU: keyframe requests reach the right sender (and only inside the
//! conference), NACKs are answered from the bridge's history as RTX, and the bridge sends its
//! own receiver reports to senders and sender reports to receivers.

mod common;

use std::time::{Duration, Instant};

use bridge::media::rtcp::{Compound, Packet, SenderInfo, Writer};
use bridge::sfu::endpoint::MediaKind::{Audio, Video};
use bridge::sfu::endpoint::{MediaKind, PayloadType, Source};
use bridge::sfu::registry::EndpointUpdate;
use common::peer::Peer;
use common::sfu::Sfu;

const VIDEO: u32 = 0xA1;
const RTX: u32 = 0xA2;
const AUDIO: u32 = 0xA3;

fn rtcp(write: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut buf = [0u8; 1200];
    let mut writer = Writer::new(&mut buf);
    writer.receiver_report(0xB0B, &[]).unwrap();
    write(&mut writer);
    let len = writer.finish();
    buf[..len].to_vec()
}

fn payload(seq: u16) -> Vec<u8> {
    (0..400).map(|i| (i as u16).wrapping_mul(31).wrapping_add(seq) as u8).collect()
}

/// A sender of video with RTX (pt 96, RTX pt 97) and audio.
fn video_sender(sfu: &Sfu, conference: bridge::sfu::ids::ConferenceId) -> Peer {
    let (id, peer) = sfu.join(conference, "sender", &[(VIDEO, Video), (AUDIO, Audio)]);
    let pt = |pt, name: &str, kind, apt| PayloadType {
        pt,
        kind,
        name: name.into(),
        clock_rate: if kind == MediaKind::Audio { 48_000 } else { 90_000 },
        channels: None,
        apt,
    };
    let update = EndpointUpdate {
        sources: Some(vec![
            Source { ssrc: VIDEO, kind: Video, msid: None, rtx_ssrc: Some(RTX) },
            Source { ssrc: AUDIO, kind: Audio, msid: None, rtx_ssrc: None },
        ]),
        payload_types: Some(vec![
            pt(96, "VP8", Video, None),
            pt(97, "rtx", Video, Some(96)),
            pt(111, "opus", Audio, None),
        ]),
        ..EndpointUpdate::default()
    };
    sfu.registry.update_endpoint(conference, id, update).unwrap();
    peer
}

fn packets_of(rtcp: &[Vec<u8>]) -> Vec<String> {
    let mut seen = Vec::new();
    for compound in rtcp {
        for packet in Compound::new(compound).flatten() {
            seen.push(match packet {
                Packet::Pli { media_ssrc, .. } => format!("pli {media_ssrc:x}"),
                Packet::ReceiverReport { reports, .. } => {
                    let blocks: Vec<String> =
                        reports.map(|b| format!("{:x}@{}", b.ssrc, b.highest_seq & 0xffff)).collect();
                    format!("rr [{}]", blocks.join(" "))
                }
                Packet::SenderReport { ssrc, .. } => format!("sr {ssrc:x}"),
                other => format!("{other:?}"),
            });
        }
    }
    seen
}

#[test]
fn keyframe_requests_reach_the_sender_and_stay_in_the_conference() {
    let sfu = Sfu::start(2);
    let (x, y) = (sfu.conference(), sfu.conference());
    let mut sender = video_sender(&sfu, x);
    let (_, mut receiver) = sfu.join(x, "receiver", &[(0xB0, Audio)]);
    let (_, mut stranger) = sfu.join(y, "stranger", &[(0xC0, Audio)]);

    stranger.send_rtcp(&rtcp(|w| drop(w.pli(0xC0, VIDEO))));
    receiver.send_rtcp(&rtcp(|w| drop(w.pli(0xB0, VIDEO))));
    std::thread::sleep(Duration::from_millis(100));
    // The request waits in the sender's mailbox until the sender's next packet.
    sender.send_rtp(VIDEO, 96, 1, 3000, &payload(1));
    let (_, rtcp) = sender.receive(Instant::now() + Duration::from_millis(400));
    let plis: Vec<_> = packets_of(&rtcp).into_iter().filter(|p| p.starts_with("pli")).collect();
    assert_eq!(plis, vec![format!("pli {VIDEO:x}")], "one PLI, from the receiver of the same conference");
}

#[test]
fn nacks_are_answered_from_history_as_rtx() {
    let sfu = Sfu::start(2);
    let x = sfu.conference();
    let mut sender = video_sender(&sfu, x);
    let (_, mut receiver) = sfu.join(x, "receiver", &[(0xB0, Audio)]);
    for seq in 100..200u16 {
        sender.send_rtp(VIDEO, 96, seq, u32::from(seq) * 3000, &payload(seq));
    }
    let (forwarded, _) = receiver.receive(Instant::now() + Duration::from_millis(300));
    assert_eq!(forwarded.len(), 100);

    receiver.send_rtcp(&rtcp(|w| drop(w.nack(0xB0, VIDEO, &[120, 150, 151]))));
    receiver.send_rtcp(&rtcp(|w| drop(w.nack(0xB0, VIDEO, &[7])))); // never sent: not in history
    std::thread::sleep(Duration::from_millis(100));
    sender.send_rtp(VIDEO, 96, 200, 600_000, &payload(200));
    let (got, _) = receiver.receive(Instant::now() + Duration::from_millis(400));
    let retransmissions: Vec<_> = got.iter().filter(|p| p[8..12] == RTX.to_be_bytes()).collect();
    assert_eq!(retransmissions.len(), 3, "one RTX packet per NACKed packet in history");
    let mut rtx_seqs = Vec::new();
    for (rtx, original_seq) in retransmissions.iter().zip([120u16, 150, 151]) {
        assert_eq!(rtx[1] & 0x7f, 97, "RTX payload type");
        assert_eq!(u16::from_be_bytes([rtx[12], rtx[13]]), original_seq, "OSN");
        assert_eq!(&rtx[14..], &payload(original_seq)[..], "original payload");
        rtx_seqs.push(u16::from_be_bytes([rtx[2], rtx[3]]));
    }
    assert_eq!(rtx_seqs[1], rtx_seqs[0].wrapping_add(1), "RTX has its own sequence");
    assert_eq!(rtx_seqs[2], rtx_seqs[0].wrapping_add(2));
}

#[test]
fn the_bridge_reports_to_senders_and_receivers() {
    let sfu = Sfu::start(2);
    let x = sfu.conference();
    let mut sender = video_sender(&sfu, x);
    let (_, mut receiver) = sfu.join(x, "receiver", &[(0xB0, Audio)]);
    let report = SenderInfo {
        ssrc: VIDEO,
        ntp: 0xE000_0000_0000_0000,
        rtp_ts: 3000,
        packet_count: 1,
        octet_count: 400,
    };
    let mut buf = [0u8; 200];
    let mut writer = Writer::new(&mut buf);
    writer.sender_report(&report, &[]).unwrap();
    let len = writer.finish();
    sender.send_rtcp(&buf[..len]);
    let start = Instant::now();
    let mut seq = 0u16;
    while start.elapsed() < Duration::from_millis(1300) {
        sender.send_rtp(VIDEO, 96, seq, u32::from(seq) * 3000, &payload(seq));
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    // The receiver's RTCP (here an empty RR) lets the bridge report to it.
    receiver.send_rtcp(&rtcp(|_| {}));
    let (_, to_sender) = sender.receive(Instant::now() + Duration::from_millis(300));
    let (_, to_receiver) = receiver.receive(Instant::now() + Duration::from_millis(300));
    let to_sender = packets_of(&to_sender);
    let to_receiver = packets_of(&to_receiver);
    assert!(
        to_sender.iter().any(|p| p.starts_with(&format!("rr [{VIDEO:x}@"))),
        "a receiver report on the video stream: {to_sender:?}"
    );
    assert!(
        to_receiver.contains(&format!("sr {VIDEO:x}")),
        "a sender report for the forwarded stream: {to_receiver:?}"
    );
}
