//! The watchdog's health check: idle workers (asleep in the kernel without a timeout) pass it,
//! because each check wakes them; a worker stuck in its handler fails it; on both backends.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::{BackendChoice, Datagram, Engine, EngineConfig, Handler, MemoryLock, Output};

/// Blocks in `handle` while `stuck` is raised: a worker that stopped turning its loop.
struct Stall {
    stuck: Arc<AtomicBool>,
}

impl Handler for Stall {
    fn handle(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _packet: &mut Datagram<'_>,
        _out: &mut Output<'_>,
    ) {
        while self.stuck.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn idle_workers_pass_and_a_stuck_one_fails() {
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 256,
            backend,
            ..EngineConfig::default()
        };
        let stuck = Arc::new(AtomicBool::new(false));
        let engine = Engine::start(&config, |_| Stall { stuck: stuck.clone() }).unwrap();
        let mut liveness = engine.liveness();
        for round in 0..3 {
            std::thread::sleep(Duration::from_millis(100));
            assert!(liveness.check(), "{backend:?}: idle workers are alive (round {round})");
        }

        stuck.store(true, Ordering::SeqCst);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Whichever worker the kernel picks for it gets stuck.
        client.send_to(b"stall", engine.local_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        liveness.check(); // may still count the turn that received it
        std::thread::sleep(Duration::from_millis(100));
        assert!(!liveness.check(), "{backend:?}: a worker stuck in its handler is not alive");

        stuck.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        liveness.check();
        std::thread::sleep(Duration::from_millis(100));
        assert!(liveness.check(), "{backend:?}: alive again once it returns");
        assert!(engine.stop());
    }
}
