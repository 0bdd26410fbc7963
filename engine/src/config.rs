//! Engine settings, read from the `[engine]` table of a daemon's configuration file.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Which I/O backend the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// io_uring when the kernel (and any seccomp profile) allows it, otherwise recvmmsg.
    #[default]
    Auto,
    /// io_uring or fail to start.
    IoUring,
    /// recvmmsg/sendmmsg on every kernel.
    Mmsg,
}

/// What to do about locking the packet pool in RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryLock {
    /// Refuse to start unless the pool is locked (packets must never reach swap).
    #[default]
    Required,
    /// Try to lock; when refused, start anyway and say why in one log line.
    BestEffort,
    /// Do not try (tests and benchmarks only).
    Off,
}

/// Listen addresses besides `listen` at most: each costs every worker a socket.
const MAX_EXTRA_LISTEN: usize = 64;

/// Settings of the packet engine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Address of the shared media port. `[::]:port` is dual-stack (IPv4 and IPv6).
    pub listen: SocketAddr,
    /// Further listen addresses, each served like `listen` (every worker binds its share of
    /// each with SO_REUSEPORT; port 0 picks a free port per address). For a data plane that
    /// answers from the address a client reached (TURN's repeatable `listening-ip`): it finds
    /// the listener in [`Datagram::socket`](crate::Datagram::socket) and
    /// [`Datagram::local_addr`](crate::Datagram::local_addr), and sends from it. Set by that
    /// data plane, not read from a configuration file: the bridge answers from `listen` only.
    #[serde(skip)]
    pub extra_listen: Vec<SocketAddr>,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Pin each worker to its own core.
    pub pin_workers: bool,
    /// Packet slots per worker (2 KiB each), allocated and locked at start.
    pub pool_slots_per_worker: u32,
    /// Locking the pool in RAM: "required", "best-effort" or "off".
    pub lock_memory: MemoryLock,
    /// I/O backend: "auto", "io_uring" or "mmsg".
    pub backend: BackendChoice,
    /// Capacity of each cross-core hand-off queue (one per ordered pair of workers).
    pub handoff_queue: usize,
    /// Sends a worker may queue in one loop turn before it drops.
    pub send_queue: usize,
    /// Destinations one received datagram may be forwarded to.
    pub max_fanout: usize,
    /// Datagrams per recvmmsg/sendmmsg call in the fallback backend.
    pub mmsg_batch: usize,
    /// Send consecutive same-size datagrams to one destination as one UDP GSO message.
    pub gso: bool,
    /// io_uring: while traffic flows, how long a worker lets datagrams gather before it wakes,
    /// in microseconds (the kernel's min-wait, 6.12+; 0 wakes for every completion). Trades at
    /// most this much added latency for fewer wake-ups and longer GSO runs: at 250 µs,
    /// bench-report measured about a third less CPU per packet at fan-out 1.
    pub batch_wait_us: u32,
    /// Kernel socket buffer size in bytes (SO_RCVBUF and SO_SNDBUF), 0 for the kernel default.
    pub socket_buffer: usize,
    /// How long SIGTERM waits for queued packets to leave, in milliseconds.
    pub drain_timeout_ms: u64,
    /// Sockets a worker's handler may hold open besides the listener (`Output::open_udp`: a
    /// TURN server's relay sockets); 0 allows none. Each is one file descriptor, so the
    /// process's descriptor limit must cover `workers x max_sockets_per_worker`.
    pub max_sockets_per_worker: usize,
    /// Deliver every datagram from one source IP address to the same worker, whatever its
    /// source port, instead of spreading them by the kernel's hash of the 4-tuple. A data plane
    /// that keeps per-client state on one core needs it: a TURN client's two allocations (an
    /// RTP/RTCP pair, a RESERVATION-TOKEN) must meet on the worker that holds the first.
    /// [`worker_for_source_ip`](crate::worker_for_source_ip) says which worker an address
    /// reaches. Attaches a classic BPF program to the listener's SO_REUSEPORT group (Linux 4.5+);
    /// the engine must own the whole group (no other process bound to the same port with
    /// SO_REUSEPORT) and fails to start when the kernel refuses the program. Many clients
    /// behind one NAT address all land on one worker. No effect with one worker.
    pub steer_by_source_ip: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0u16; 8], 10000)),
            extra_listen: Vec::new(),
            workers: 0,
            pin_workers: true,
            pool_slots_per_worker: 8192,
            lock_memory: MemoryLock::Required,
            backend: BackendChoice::Auto,
            handoff_queue: 1024,
            send_queue: 4096,
            max_fanout: 256,
            mmsg_batch: 32,
            gso: true,
            batch_wait_us: 250,
            socket_buffer: 4 << 20,
            drain_timeout_ms: 2000,
            max_sockets_per_worker: 0,
            steer_by_source_ip: false,
        }
    }
}

/// A setting outside what the engine can run with. Names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "engine.{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl EngineConfig {
    /// Worker count after resolving 0 to the number of available cores.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers
        }
    }

    /// `listen`, then `extra_listen`: the listeners' order, which their socket ids follow.
    pub fn listen_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.listen).chain(self.extra_listen.iter().copied())
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// Checks the ranges the engine depends on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, problem: &str| Err(ConfigError { key, problem: problem.to_owned() });
        if self.worker_count() > 1024 {
            return err("workers", "at most 1024 workers");
        }
        // Buffer ids in an io_uring buffer ring are 16 bits and a ring holds at most 32768.
        if !(64..=32768).contains(&self.pool_slots_per_worker) {
            return err("pool_slots_per_worker", "must be between 64 and 32768");
        }
        if !(2..=1 << 20).contains(&self.handoff_queue) {
            return err("handoff_queue", "must be between 2 and 1048576");
        }
        if !(16..=1 << 16).contains(&self.send_queue) {
            return err("send_queue", "must be between 16 and 65536");
        }
        if !(1..=4096).contains(&self.max_fanout) {
            return err("max_fanout", "must be between 1 and 4096");
        }
        if !(1..=1024).contains(&self.mmsg_batch) {
            return err("mmsg_batch", "must be between 1 and 1024");
        }
        if self.batch_wait_us > 10_000 {
            return err("batch_wait_us", "at most 10000 (10 ms)");
        }
        // Socket ids carry a 16-bit index, shared with sockets still closing.
        if self.max_sockets_per_worker > 65_000 {
            return err("max_sockets_per_worker", "at most 65000");
        }
        if self.extra_listen.len() > MAX_EXTRA_LISTEN {
            return err("extra_listen", "at most 64 further listen addresses");
        }
        // Two binds of one address and port would join one SO_REUSEPORT group, whose socket
        // numbers the steering program takes for worker indexes.
        let fixed: Vec<_> = self.listen_addrs().filter(|a| a.port() != 0).collect();
        if fixed.iter().enumerate().any(|(i, a)| fixed[..i].contains(a)) {
            return err("extra_listen", "a listen address is given twice");
        }
        if self.drain_timeout_ms > 60_000 {
            return err("drain_timeout_ms", "at most 60000 (one minute)");
        }
        Ok(())
    }
}
