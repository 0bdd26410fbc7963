//! A draining bridge (issue 8's rolling restarts): a conference that exists keeps forwarding,
//! and may even take a new participant, while new conferences are refused. Real ICE, DTLS and
//! SRTP over loopback against the SFU on the engine; the control API's `POST /v1/drain` sets
//! the same flag (bridge/tests/control_api.rs), SIGTERM too (both in bridge/tests/control_api.rs).

mod common;

use std::time::{Duration, Instant};

use bridge::sfu::endpoint::MediaKind::Audio;
use bridge::sfu::registry::ApiError;
use common::sfu::Sfu;

const PACKETS: u16 = 40;

#[test]
fn a_conference_keeps_forwarding_while_its_bridge_drains() {
    let sfu = Sfu::start(2);
    let meeting = sfu.conference();
    let (_, mut a) = sfu.join(meeting, "a", &[(0xA0, Audio)]);
    let (_, mut b) = sfu.join(meeting, "b", &[(0xB0, Audio)]);

    sfu.registry.set_draining(true);
    assert!(matches!(sfu.registry.create_conference(Instant::now()), Err(ApiError::Unavailable(_))));
    // Someone joins the meeting after the drain began: they are in.
    let (_, mut c) = sfu.join(meeting, "c", &[(0xC0, Audio)]);

    let payload = [0x33u8; 120];
    for seq in 0..PACKETS {
        a.send_rtp(0xA0, 111, seq, u32::from(seq) * 960, &payload);
        std::thread::sleep(Duration::from_millis(2));
    }
    let received =
        |peer: &mut common::peer::Peer| peer.receive(Instant::now() + Duration::from_millis(300)).0.len();
    assert_eq!(received(&mut b), usize::from(PACKETS), "B still receives all of A while draining");
    assert_eq!(received(&mut c), usize::from(PACKETS), "and so does C, who joined during the drain");
    assert_eq!(sfu.registry.sizes(), (1, 3));
}
