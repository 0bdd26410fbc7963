//! An idle engine costs nothing: its workers sleep in the kernel, make no system calls and use
//! no measurable CPU until a datagram arrives.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output};

#[derive(Clone, Copy)]
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, _out: &mut Output<'_>) {
        packet.forward(Destination::here(from));
    }
}

/// On-CPU nanoseconds of this process's engine worker threads (/proc schedstat).
fn worker_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("engine-") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

#[test]
fn idle_workers_make_no_syscalls_and_use_no_cpu() {
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 256,
            backend,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, |_| Echo).unwrap();
        // Wake it once so both the first turn and a packet's turn are behind us.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        client.send_to(b"ping", engine.local_addr()).unwrap();
        loop {
            match client.recv_from(&mut [0u8; 16]) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("echo arrives: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));

        let (syscalls, cpu) = (engine.totals().syscalls, worker_cpu_ns());
        std::thread::sleep(Duration::from_secs(1));
        let idle_syscalls = engine.totals().syscalls - syscalls;
        let idle_cpu = worker_cpu_ns() - cpu;

        assert_eq!(idle_syscalls, 0, "{backend:?}: idle workers made {idle_syscalls} syscalls in 1 s");
        assert!(idle_cpu < 2_000_000, "{backend:?}: idle workers used {idle_cpu} ns of CPU in 1 s");
        assert!(engine.stop());
    }
}
