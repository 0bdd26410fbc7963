//! `Engine::load`: a worker kept busy by its handler shows a busy share well above zero, while
//! an idle one (asleep in the kernel) stays near zero; on both backends.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{BackendChoice, Datagram, Engine, EngineConfig, Handler, LOAD_WINDOW, MemoryLock, Output};

/// Takes `cost` of the worker's time per datagram, as a heavy handler would.
struct Slow {
    cost: Duration,
}

impl Handler for Slow {
    fn handle(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _packet: &mut Datagram<'_>,
        _out: &mut Output<'_>,
    ) {
        // Spinning, not sleeping: the test is about time spent working.
        let until = Instant::now() + self.cost;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn a_busy_worker_shows_load_and_an_idle_one_does_not() {
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 256,
            backend,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, |_| Slow { cost: Duration::from_millis(2) }).unwrap();
        let mut load = engine.load();
        assert_eq!(load.busy(Instant::now()), [0.0, 0.0], "{backend:?}: no figures before a window");

        std::thread::sleep(LOAD_WINDOW + Duration::from_millis(50));
        let idle = load.busy(Instant::now()).to_vec();
        assert!(idle.iter().all(|&r| r < 0.05), "{backend:?}: idle workers are not busy: {idle:?}");

        // One source address and port: the kernel's 4-tuple hash gives every datagram to the same
        // worker. About 2 ms of work every 4 ms keeps it half busy.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        while start.elapsed() < LOAD_WINDOW + Duration::from_millis(100) {
            client.send_to(b"work", engine.local_addr()).unwrap();
            std::thread::sleep(Duration::from_millis(4));
        }
        let busy = load.busy(Instant::now()).to_vec();
        let (low, high) = (busy[0].min(busy[1]), busy[0].max(busy[1]));
        assert!(high > 0.2 && high <= 1.0, "{backend:?}: the worker with work is busy: {busy:?}");
        assert!(low < 0.05, "{backend:?}: the other stays idle: {busy:?}");
        assert!(engine.stop());
    }
}
