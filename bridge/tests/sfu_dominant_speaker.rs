//! The dominant speaker follows the audio levels (RFC 6464) participants send, through the
//! SFU's real packet path.

mod common;

use std::time::{Duration, Instant};

use bridge::sfu::endpoint::MediaKind::Audio;
use bridge::sfu::endpoint::{AUDIO_LEVEL_URI, HeaderExtension};
use bridge::sfu::ids::{ConferenceId, EndpointId};
use bridge::sfu::registry::EndpointUpdate;
use common::peer::Peer;
use common::sfu::Sfu;

const LEVEL_ID: u8 = 1;

fn join(sfu: &Sfu, conference: ConferenceId, name: &str, ssrc: u32) -> (EndpointId, Peer) {
    let (id, peer) = sfu.join(conference, name, &[(ssrc, Audio)]);
    let extensions = vec![HeaderExtension { id: LEVEL_ID, uri: AUDIO_LEVEL_URI.into() }];
    let update = EndpointUpdate { header_extensions: Some(extensions), ..EndpointUpdate::default() };
    sfu.registry.update_endpoint(conference, id, update).unwrap();
    (id, peer)
}

/// 20 ms audio frames for `ms` from each peer at its level (-dBov: 0 loud, 127 silent), with
/// the registry's speaker selection ticking as the control thread would.
fn talk(sfu: &Sfu, peers: &mut [(&mut Peer, u32, u8)], seq: &mut u16, ms: u64) {
    let start = Instant::now();
    let mut next_tick = start;
    while start.elapsed() < Duration::from_millis(ms) {
        for (peer, ssrc, level) in peers.iter_mut() {
            peer.send_audio_with_level(*ssrc, LEVEL_ID, *level, *seq);
        }
        *seq = seq.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_tick {
            sfu.registry.tick(Instant::now());
            next_tick += Duration::from_millis(250);
        }
    }
}

fn dominant(sfu: &Sfu, conference: ConferenceId) -> Option<String> {
    sfu.registry.conference_status(conference).unwrap().dominant_speaker
}

#[test]
fn the_loudest_participant_becomes_dominant_speaker() {
    let sfu = Sfu::start(2);
    let conference = sfu.conference();
    let (a_id, mut a) = join(&sfu, conference, "a", 0xA0);
    let (b_id, mut b) = join(&sfu, conference, "b", 0xB0);
    let (_, mut c) = join(&sfu, conference, "c", 0xC0);
    let mut seq = 0;
    assert_eq!(dominant(&sfu, conference), None);

    talk(&sfu, &mut [(&mut a, 0xA0, 20), (&mut b, 0xB0, 110), (&mut c, 0xC0, 127)], &mut seq, 1500);
    assert_eq!(dominant(&sfu, conference), Some(a_id.to_string()), "A talks, B murmurs, C is silent");

    talk(&sfu, &mut [(&mut a, 0xA0, 127), (&mut b, 0xB0, 25), (&mut c, 0xC0, 127)], &mut seq, 2000);
    assert_eq!(dominant(&sfu, conference), Some(b_id.to_string()), "A stops, B takes over");
}
