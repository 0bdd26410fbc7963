//! loadgen's measurements against known truths.
//!
//! - Relay mode with the relay's `drop_every = 10` fault injection: loadgen must report 10%
//!   loss, no duplicates, no reordering.
//! - The SFU joined through its HTTP control API, with real ICE, DTLS and SRTP: 3
//!   participants in one conference and 2 in another receive every packet of both streams of
//!   every other member of their own conference, nothing of the other conference, with
//!   positive one-way latencies under 50 ms (p99.9 over all packets, and every stream's mean:
//!   a single packet delayed by a descheduled thread on a busy 2-core machine is not a
//!   failure of the bridge).
//!
//! The bridge runs in this process, wired from a parsed configuration file exactly as
//! `bridge::run` wires the daemon (engine + relay table, or engine + media workers + control
//! API over HTTP). Cargo provides `CARGO_BIN_EXE_bridge` to the bridge crate's own tests only,
//! and building the binary from a test would wait on the lock of the `cargo test` that runs
//! it; in process, the test needs nothing built beforehand and every port is ephemeral.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use benches::loadgen::connect::ProfileChoice;
use benches::loadgen::report::Report;
use benches::loadgen::wire::StreamKind;
use benches::loadgen::{self, Target};
use bridge::config::BridgeConfig;
use bridge::media::srtp::Profile;
use bridge::relay::{self, Relay};
use engine::Engine;

mod common;
use common::{ENGINE, SECRET, load, start_sfu};

/// One test at a time: each measures latency and loss, which a neighbour's load would blur.
static TURN: Mutex<()> = Mutex::new(());

/// `count` consecutive free UDP ports on 127.0.0.1, from a random base: relay mode needs
/// fixed source ports, and other tests of the workspace may run at the same time.
fn free_port_range(count: usize) -> u16 {
    for _ in 0..50 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
        let base = 20_000 + (hasher.finish() % 30_000) as u16;
        let all_free = (0..count as u16).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free UDP ports");
}

fn totals_line(report: &Report) -> String {
    format!("{}\n{}", report.table(), serde_json::to_string(&report.to_json()["total"]).unwrap())
}

#[test]
fn relay_dropping_every_tenth_datagram_is_ten_percent_loss() {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Two conferences of three: every datagram has the same fan-out (2), so the share of
    // stream packets lost is the share of datagrams dropped.
    let (participants, conferences) = (6, 2);
    let base_port = free_port_range(participants);
    let text = format!("{ENGINE}{}", loadgen::relay_routes(participants, conferences, base_port, 10));
    let config = BridgeConfig::parse(&text).expect("loadgen's relay table parses");
    assert_eq!(config.relay.drop_every, 10);
    let table = relay::table(&config.relay, config.engine.worker_count());
    let engine = Engine::start(&config.engine, |_| Relay::new(table.clone())).expect("relay starts");
    let relay_addr = engine.local_addr();

    let target = Target::Relay { relay: relay_addr, base_port };
    let report = loadgen::run(&load(participants, conferences, 2.0, target), |_| {}).expect("loadgen runs");
    engine.stop();

    let total = report.total;
    let summary = totals_line(&report);
    assert!(total.sent > 5_000, "{summary}");
    assert!(
        (9.5..=10.5).contains(&total.loss_pct()),
        "loss {:.3}%, expected 10%\n{summary}",
        total.loss_pct()
    );
    assert_eq!(total.duplicates, 0, "{summary}");
    assert_eq!(total.reordered, 0, "{summary}");
    assert_eq!(report.unexpected.misrouted, 0, "{summary}");
    assert_eq!(report.send_failed, 0, "{summary}");
    assert_eq!(total.received + total.lost, total.sent, "{summary}");
}

fn sfu_target(api: SocketAddr, profiles: ProfileChoice) -> Target {
    Target::ControlApi {
        api,
        secret: SECRET.into(),
        media: None,
        profiles,
        handshake_timeout: Duration::from_secs(5),
    }
}

/// Every stream of every other member arrives whole, nothing crosses conferences, and the
/// latencies are plausible.
fn assert_complete(report: &Report, conference_sizes: &[usize]) {
    let summary = totals_line(report);
    let expected_streams: usize = conference_sizes.iter().map(|n| 2 * n * (n - 1)).sum();
    assert_eq!(report.streams.len(), expected_streams, "{summary}");
    for stream in &report.streams {
        assert!(stream.sent > 0, "{stream:?}");
        assert_eq!(stream.received, stream.sent, "{stream:?}\n{summary}");
        assert_eq!((stream.lost, stream.duplicates, stream.reordered), (0, 0, 0), "{stream:?}");
        let (min, mean) = (stream.latency_min_us.unwrap(), stream.latency_mean_us.unwrap());
        assert!(min > 0.0 && mean < 50_000.0, "latency min {min} µs, mean {mean} µs: {stream:?}");
    }
    for kind in StreamKind::BOTH {
        let receivers_of = |sender: u32| {
            let mut r: Vec<u32> = report
                .streams
                .iter()
                .filter(|s| s.sender == sender && s.kind == kind)
                .map(|s| s.receiver)
                .collect();
            r.sort();
            r
        };
        // Participant p is in conference p mod 2.
        assert_eq!(receivers_of(0), [2, 4], "{kind:?}");
        assert_eq!(receivers_of(1), [3], "{kind:?}");
    }
    assert_eq!(report.unexpected.misrouted, 0, "nothing from the other conference\n{summary}");
    assert_eq!(report.unexpected.malformed + report.unexpected.srtp_failed, 0, "{summary}");
    assert_eq!(report.total.lost, 0, "{summary}");
    let latency = report.total.latency;
    assert!(latency.min_us.unwrap() > 0.0, "{summary}");
    assert!(latency.p50_us.unwrap() <= latency.p99_us.unwrap(), "{summary}");
    assert!(latency.p999_us.unwrap() < 50_000.0, "{summary}");
    assert!(report.pps_in() > report.pps_out(), "fan-out 1 or 2 per packet\n{summary}");
}

#[test]
fn sfu_meetings_through_the_control_api_lose_nothing_and_stay_apart() {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sfu = start_sfu();
    let config = load(5, 2, 3.0, sfu_target(sfu.control.unwrap(), ProfileChoice::Both));
    let report = loadgen::run(&config, |_| {}).expect("loadgen runs");
    sfu.engine.stop();
    assert_eq!(report.profile, "AeadAes128Gcm", "the bridge prefers GCM when offered");
    assert_complete(&report, &[3, 2]);
    // 3 s of audio at 50 packets/s per stream.
    assert!(report.streams.iter().filter(|s| s.kind == StreamKind::Audio).all(|s| s.sent == 150));
}

#[test]
fn sfu_with_only_aes_cm_offered_uses_it() {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sfu = start_sfu();
    let config =
        load(5, 2, 1.0, sfu_target(sfu.control.unwrap(), ProfileChoice::Only(Profile::Aes128CmHmacSha1_80)));
    let report = loadgen::run(&config, |_| {}).expect("loadgen runs");
    sfu.engine.stop();
    assert_eq!(report.profile, "Aes128CmHmacSha1_80");
    assert_complete(&report, &[3, 2]);
}

/// The statistics on a scripted stream, through the public API the report uses (the
/// modules' own unit tests cover the edge cases: window sliding, bucket tiling).
#[test]
fn scripted_stream_statistics() {
    use benches::loadgen::histogram::Histogram;
    use benches::loadgen::stats::{Arrival, StreamStats};

    // 20 packets sent: 4 and 13 never arrive, 7 arrives after 9, 11 arrives three times.
    let script = [0, 1, 2, 3, 5, 6, 8, 9, 7, 10, 11, 11, 12, 11, 14, 15, 16, 17, 18, 19];
    let mut stream = StreamStats::default();
    let mut latency = Histogram::default();
    for (i, &seq) in script.iter().enumerate() {
        // Latencies 100 µs .. 2 ms, the late packet slowest.
        let one_way = if seq == 7 { 2_000_000 } else { 100_000 + 1_000 * i as u64 };
        if stream.record(seq, one_way) != Arrival::Duplicate {
            latency.record(one_way);
        }
    }
    assert_eq!(stream.seq.unique(), 18);
    assert_eq!(stream.seq.lost(20), 2);
    assert_eq!(stream.duplicates(), 2);
    assert_eq!(stream.seq.late(), 1);
    assert_eq!(latency.count(), 18);
    let p50 = latency.quantile(0.5).unwrap();
    assert!((105_000..=112_000).contains(&p50), "p50 {p50}");
    assert_eq!(latency.quantile(0.999), Some(2_000_000), "the tail is the late packet");
    assert_eq!(latency.min(), Some(100_000));
}
