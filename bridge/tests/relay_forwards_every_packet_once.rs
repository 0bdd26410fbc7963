//! The bridge in relay mode, two workers: 100,000 packets from several sources each arrive
//! exactly once, byte-identical, at every destination their route names. On both backends,
//! with sends from the receiving worker and spread across workers (cross-core hand-off), and
//! on a dual-stack socket with IPv4 and IPv6 peers.

mod common;

use std::sync::atomic::Ordering;

use bridge::relay::{self, Relay, RelayConfig, Route, SendFrom};
use common::{Sink, send_paced, udp};
use engine::{BackendChoice, Engine, EngineConfig, MemoryLock};

const PACKETS: u32 = 100_000;

struct Case {
    backend: BackendChoice,
    send_from: SendFrom,
    listen: &'static str,
    /// Local address of each source and sink.
    sources: [&'static str; 4],
    sinks: [&'static str; 3],
    /// All packets 1000 bytes long.
    fixed_len: bool,
}

/// Which sinks each source is routed to.
const ROUTES: [&[usize]; 4] = [&[0], &[0, 1], &[1, 2], &[0, 1, 2]];

fn run(case: Case) {
    let per_source = PACKETS / case.sources.len() as u32;
    let sources: Vec<_> = case.sources.iter().map(|a| udp(a)).collect();
    let sinks: Vec<_> = (0..case.sinks.len())
        .map(|s| {
            let expected = ROUTES.iter().filter(|r| r.contains(&s)).count() as u64 * u64::from(per_source);
            Sink::spawn(case.sinks[s], sources.len(), per_source, expected)
        })
        .collect();

    let routes = ROUTES
        .iter()
        .zip(&sources)
        .map(|(dests, src)| Route {
            from: src.local_addr().unwrap(),
            to: dests.iter().map(|&d| sinks[d].addr).collect(),
        })
        .collect();
    let relay_config = RelayConfig { routes, send_from: case.send_from, ..RelayConfig::default() };
    relay_config.validate().unwrap();
    let config = EngineConfig {
        listen: case.listen.parse().unwrap(),
        workers: 2,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 1024,
        backend: case.backend,
        ..EngineConfig::default()
    };
    let table = relay::table(&relay_config, 2);
    let engine = Engine::start(&config, |_| Relay::new(table.clone())).expect("engine starts");
    let relay_addr = match (engine.local_addr(), sources[0].local_addr().unwrap()) {
        (a, s) if a.ip().is_unspecified() => std::net::SocketAddr::new(s.ip(), a.port()),
        (a, _) => a,
    };

    let id_flag = if case.fixed_len { common::FIXED_LEN_SOURCE } else { 0 };
    let fanout: Vec<u64> = ROUTES.iter().map(|r| r.len() as u64).collect();
    let counters: Vec<_> = sinks.iter().map(|s| s.received.clone()).collect();
    let delivered = || counters.iter().map(|c| c.load(Ordering::Acquire)).sum::<u64>();
    // Dual-stack: IPv6 sources send to ::1 on the same port.
    if case.sources.iter().any(|s| s.starts_with('[')) {
        let mut buf = [0u8; 2048];
        let mut forwarded = 0;
        for seq in 0..per_source {
            for (i, socket) in sources.iter().enumerate() {
                while forwarded - delivered() > 256 {
                    std::thread::yield_now();
                }
                let to =
                    std::net::SocketAddr::new(socket.local_addr().unwrap().ip(), engine.local_addr().port());
                let len = common::packet(i as u16 | id_flag, seq, &mut buf);
                socket.send_to(&buf[..len], to).unwrap();
                forwarded += fanout[i];
            }
        }
    } else {
        send_paced(&sources, id_flag, relay_addr, per_source, &fanout, &delivered, 256);
    }

    for (s, sink) in sinks.into_iter().enumerate() {
        let (seen, invalid) = sink.join();
        assert_eq!(invalid, 0, "sink {s} got packets that were not sent");
        for (source, counts) in seen.iter().enumerate() {
            let want = u8::from(ROUTES[source].contains(&s));
            let wrong = counts.iter().filter(|&&c| c != want).count();
            assert_eq!(
                wrong, 0,
                "sink {s}: {wrong} packets of source {source} not received exactly {want} time(s)"
            );
        }
    }
    // Workers publish counters at the end of a loop turn, just after their sends: read them
    // once the engine has stopped, when every turn has ended.
    let counters = engine.counter_handles();
    assert!(engine.stop(), "engine stops in time");
    let mut totals = engine::Counts::default();
    counters.iter().for_each(|c| totals.add(&c.load()));
    assert_eq!(totals.rx_packets, u64::from(PACKETS));
    assert_eq!(totals.tx_packets, fanout.iter().sum::<u64>() * u64::from(per_source));
    assert_eq!(totals.total_drops(), 0, "{totals:?}");
    if case.send_from == SendFrom::Spread {
        assert!(totals.handoffs > 0, "spread sends must cross cores: {totals:?}");
    }
}

const V4_SOURCES: [&str; 4] = ["127.0.0.1:0"; 4];
const V4_SINKS: [&str; 3] = ["127.0.0.1:0"; 3];

#[test]
fn io_uring_sends_from_receiver() {
    run(Case {
        backend: BackendChoice::IoUring,
        send_from: SendFrom::Receiver,
        listen: "127.0.0.1:0",
        sources: V4_SOURCES,
        sinks: V4_SINKS,
        fixed_len: false,
    });
}

#[test]
fn io_uring_spreads_sends_across_workers() {
    run(Case {
        backend: BackendChoice::IoUring,
        send_from: SendFrom::Spread,
        listen: "127.0.0.1:0",
        sources: V4_SOURCES,
        sinks: V4_SINKS,
        fixed_len: false,
    });
}

#[test]
fn mmsg_sends_from_receiver() {
    run(Case {
        backend: BackendChoice::Mmsg,
        send_from: SendFrom::Receiver,
        listen: "127.0.0.1:0",
        sources: V4_SOURCES,
        sinks: V4_SINKS,
        fixed_len: false,
    });
}

#[test]
fn mmsg_spreads_sends_across_workers() {
    run(Case {
        backend: BackendChoice::Mmsg,
        send_from: SendFrom::Spread,
        listen: "127.0.0.1:0",
        sources: V4_SOURCES,
        sinks: V4_SINKS,
        fixed_len: false,
    });
}

#[test]
fn equal_size_runs_leave_as_separate_datagrams() {
    // Every packet 1000 bytes: runs to one sink become UDP GSO messages, which the kernel must
    // split back into the original datagrams, each once and byte-identical.
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        run(Case {
            backend,
            send_from: SendFrom::Receiver,
            listen: "127.0.0.1:0",
            sources: V4_SOURCES,
            sinks: V4_SINKS,
            fixed_len: true,
        });
    }
}

#[test]
fn io_uring_dual_stack_mixes_ipv4_and_ipv6() {
    run(Case {
        backend: BackendChoice::IoUring,
        send_from: SendFrom::Spread,
        listen: "[::]:0",
        sources: ["127.0.0.1:0", "[::1]:0", "127.0.0.1:0", "[::1]:0"],
        sinks: ["[::1]:0", "127.0.0.1:0", "[::1]:0"],
        fixed_len: false,
    });
}

#[test]
fn mmsg_dual_stack_mixes_ipv4_and_ipv6() {
    run(Case {
        backend: BackendChoice::Mmsg,
        send_from: SendFrom::Receiver,
        listen: "[::]:0",
        sources: ["127.0.0.1:0", "[::1]:0", "127.0.0.1:0", "[::1]:0"],
        sinks: ["[::1]:0", "127.0.0.1:0", "[::1]:0"],
        fixed_len: false,
    });
}
