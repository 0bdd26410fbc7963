//! In steady state the relay path allocates nothing: a counting global allocator sees no
//! allocation while tens of thousands of packets are received, handed across cores and sent,
//! on both backends.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bridge::relay::{self, Relay, RelayConfig, Route, SendFrom};
use common::{ALLOCATIONS, packet, udp};
use engine::{BackendChoice, Engine, EngineConfig, MemoryLock};

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Sends `count` packets from `source` and receives their copies at both sinks, using only
/// stack buffers (std's send_to/recv_from do not allocate).
fn pump(
    source: &std::net::UdpSocket,
    sinks: &[std::net::UdpSocket; 2],
    to: std::net::SocketAddr,
    count: u32,
) {
    let mut buf = [0u8; 2048];
    let mut received = 0u32;
    for seq in 0..count {
        let len = packet(0, seq, &mut buf);
        source.send_to(&buf[..len], to).unwrap();
        // Keep at most a few packets in flight so no kernel buffer overflows.
        while seq + 1 - received / 2 > 16 {
            for sink in sinks {
                if sink.recv_from(&mut buf).is_ok() {
                    received += 1;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while received < count * 2 && Instant::now() < deadline {
        for sink in sinks {
            if sink.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
    }
    assert_eq!(received, count * 2, "every packet reaches both sinks");
}

fn steady_state_allocations(backend: BackendChoice) -> u64 {
    let source = udp("127.0.0.1:0");
    let sinks = [udp("127.0.0.1:0"), udp("127.0.0.1:0")];
    let route = Route {
        from: source.local_addr().unwrap(),
        to: sinks.iter().map(|s| s.local_addr().unwrap()).collect(),
    };
    // Spread: one copy is sent locally, the other crosses to the other worker.
    let relay_config =
        RelayConfig { routes: vec![route], send_from: SendFrom::Spread, ..RelayConfig::default() };
    let config = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 256,
        backend,
        ..EngineConfig::default()
    };
    let table = relay::table(&relay_config, 2);
    let engine = Engine::start(&config, |_| Relay::new(table.clone())).unwrap();
    let to = engine.local_addr();

    pump(&source, &sinks, to, 2_000); // warm up: lazy statics, thread-locals, first wakes
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    pump(&source, &sinks, to, 20_000);
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;

    let totals = engine.totals();
    assert!(totals.handoffs >= 20_000, "the measured path crossed cores: {totals:?}");
    assert!(engine.stop());
    during
}

#[test]
fn relay_path_allocates_nothing_per_packet() {
    // One test function, so no other test thread of this binary allocates during the window.
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let allocations = steady_state_allocations(backend);
        assert_eq!(allocations, 0, "{backend:?}: {allocations} allocations while relaying 20,000 packets");
    }
}
