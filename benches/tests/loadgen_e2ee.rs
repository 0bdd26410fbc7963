//! loadgen with `--e2ee` against the SFU joined through its HTTP control API: every media
//! payload is an SFrame frame (RFC 9605, AES_128_GCM_SHA256_128), encrypted by its sender
//! before SRTP and decrypted by each receiver after SRTP, which only then reads the stamp.
//!
//! Three participants in one conference and two in another, 3 s of audio and video:
//! - every packet of both streams of every other member of a participant's own conference
//!   arrives, nothing is lost or duplicated;
//! - every one of them decrypts (no SFrame failure), so the bridge forwarded each payload
//!   exactly as its sender encrypted it: a payload it had altered, or replaced with anything
//!   but that ciphertext (the plaintext among others), would fail authentication and be
//!   counted;
//! - nothing crosses conferences: receivers hold the keys of their own conference only, so a
//!   frame from the other conference would be counted as an SFrame failure too.
//!
//! That the payloads on the wire are ciphertext of unchanged lengths, and that a flipped byte
//! is counted, is checked by the unit tests of `loadgen::e2ee` and `loadgen::participant`.

use std::time::Duration;

use benches::loadgen::connect::ProfileChoice;
use benches::loadgen::wire::StreamKind;
use benches::loadgen::{self, Config, Target};

mod common;
use common::{SECRET, load, start_sfu};

#[test]
fn sfu_meeting_with_e2ee_decrypts_every_packet_and_loses_nothing() {
    let sfu = start_sfu();
    let target = Target::ControlApi {
        api: sfu.control.expect("the SFU has a control API"),
        secret: SECRET.into(),
        media: None,
        profiles: ProfileChoice::Both,
        handshake_timeout: Duration::from_secs(5),
    };
    let config = Config { e2ee: true, ..load(5, 2, 3.0, target) };
    let report = loadgen::run(&config, |_| {}).expect("loadgen runs");
    sfu.engine.stop();

    let json = report.to_json();
    let summary = format!("{}{}", report.table(), json["unexpected"]);
    assert!(report.e2ee, "{summary}");
    assert_eq!(json["config"]["e2ee"], "sframe AES_128_GCM_SHA256_128", "{summary}");
    // Conferences of 3 and 2: 3 * 2 + 2 * 1 sender-receiver pairs, two streams each.
    assert_eq!(report.streams.len(), 16, "{summary}");
    for stream in &report.streams {
        assert!(stream.sent > 0, "{stream:?}");
        assert_eq!(stream.received, stream.sent, "{stream:?}\n{summary}");
        assert_eq!((stream.lost, stream.duplicates), (0, 0), "{stream:?}\n{summary}");
    }
    // 3 s of audio at 50 packets/s per stream: the senders kept their schedule while sealing.
    assert!(
        report.streams.iter().filter(|s| s.kind == StreamKind::Audio).all(|s| s.sent == 150),
        "{summary}"
    );
    let u = report.unexpected;
    assert_eq!(u.sframe_failed, 0, "every payload decrypted\n{summary}");
    assert_eq!(json["unexpected"]["sframe_failed"], 0, "{summary}");
    assert_eq!((u.misrouted, u.malformed, u.srtp_failed), (0, 0, 0), "{summary}");
    assert_eq!(report.send_failed, 0, "every payload sealed\n{summary}");
    assert_eq!(report.total.received, report.total.sent, "{summary}");
}
