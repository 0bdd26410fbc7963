//! The SFU's per-packet path on the engine (demultiplex, look up the sender, SRTP unprotect,
//! route, SRTP protect for each receiver, send) allocates nothing in steady state. In test
//! builds (feature `test-tap`) the tap records on that path too, and allocates nothing either.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bridge::sfu::counters::MediaEvent;
use bridge::sfu::endpoint::MediaKind::{Audio, Video};
use common::ALLOCATIONS;
use common::sfu::Sfu;
use engine::DropReason;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

const RECEIVERS: usize = 3;
/// Fewer than the measured packets: the tap fills during the measurement, then only counts.
#[cfg(feature = "test-tap")]
const TAP_RECORDS: usize = 1000;

#[test]
fn forwarding_through_the_sfu_allocates_nothing() {
    #[cfg(feature = "test-tap")]
    let sfu = Sfu::start_tapped(2, TAP_RECORDS);
    #[cfg(not(feature = "test-tap"))]
    let sfu = Sfu::start(2);
    let conference = sfu.conference();
    let (_, mut sender) = sfu.join(conference, "sender", &[(0x5E, Video), (0x5A, Audio)]);
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|i| sfu.join(conference, &format!("r{i}"), &[(0x100 + i as u32, Audio)]).1)
        .collect();
    // Receivers drain their sockets without allocating, so only the bridge is measured.
    let sockets: Vec<_> = receivers.iter().map(|r| r.socket.try_clone().unwrap()).collect();
    let drains: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut count = 0u64;
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if socket.recv(&mut buf).is_ok() {
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();

    let payload = [7u8; 1000];
    let mut seq = 0u16;
    let mut send = |n: u16| {
        for _ in 0..n {
            sender.send_rtp(0x5E, 96, seq, u32::from(seq) * 3000, &payload);
            seq = seq.wrapping_add(1);
            if seq.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    send(300); // warm-up: SRTP streams registered, snapshot picked up on both workers
    std::thread::sleep(Duration::from_millis(200));
    let forwarded_before = sfu.registry.events(MediaEvent::RtpForwarded);
    let no_slot_before = sfu.engine.totals().drops(DropReason::PoolEmpty);
    #[cfg(feature = "test-tap")]
    let tapped_before = sfu.registry.tap().expect("the tap is on").forwarded();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    send(3000);
    std::thread::sleep(Duration::from_millis(200));
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    #[cfg(feature = "test-tap")]
    {
        let tapped = sfu.registry.tap().expect("the tap is on").forwarded();
        assert!(
            tapped_before < TAP_RECORDS as u64 && tapped > TAP_RECORDS as u64,
            "the measured packets both filled the tap and overflowed it: {tapped_before}..{tapped}"
        );
    }
    let forwarded = sfu.registry.events(MediaEvent::RtpForwarded) - forwarded_before;
    // On a loaded machine the kernel may drop a few of the sender's datagrams before the bridge
    // reads them, and receivers that fall behind hold send slots so that a few copies find
    // none (counted as pool_empty); every packet that arrived went to every receiver or into
    // that count.
    let totals = sfu.engine.totals();
    let no_slot = totals.drops(DropReason::PoolEmpty) - no_slot_before;
    assert!(forwarded >= 3000 * RECEIVERS as u64 * 99 / 100, "forwarded {forwarded}: {totals:?}");
    assert_eq!(
        (forwarded + no_slot) % RECEIVERS as u64,
        0,
        "every packet reached every receiver: {totals:?}"
    );
    assert_eq!(during, 0, "{during} allocations while forwarding 3,000 packets to {RECEIVERS} receivers");
    let received: u64 = drains.into_iter().map(|d| d.join().unwrap()).sum();
    assert!(received >= 3300 * RECEIVERS as u64 * 99 / 100, "receivers got {received}");
    drop(receivers);
}
