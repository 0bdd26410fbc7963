//! One measured run: a forwarder child, paced sources routed to `fanout` sinks, and the
//! forwarder's CPU time over a window that excludes its start-up and warm-up.
//!
//! ```text
//! spawn child ─ warm-up traffic ─ settle ─ CPU₀ ─ measured traffic ─ settle ─ CPU₁ ─ stop
//! ```
//!
//! "Settle" waits until every copy arrived (or arrivals stopped), so the forwarder is asleep
//! whenever its CPU time is read and the window holds exactly the measured packets' work.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bridge::relay::Route;

use crate::child::Forwarder;
use crate::cpu;
use crate::drops::udp_drops;
use crate::load::{Sinks, Sources};
use crate::perf::SyscallCounter;
use crate::serve::{Kind, ServeOptions};

/// How long arrivals may pause before the rest counts as lost.
const SETTLE_IDLE: Duration = Duration::from_millis(200);
/// Longest wait for the last copies after the sources stop.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: Kind,
    /// Sinks each source is routed to.
    pub fanout: usize,
    /// Source sockets, all with the same route to every sink.
    pub sources: usize,
    /// Datagrams per second offered in total.
    pub rate: u64,
    pub warmup: Duration,
    pub window: Duration,
    /// Engine workers (relay), forwarder threads (per-core kernel baseline); the 1-thread
    /// kernel baseline ignores it.
    pub workers: usize,
    /// Packet slots per engine worker (relay only); `None` for the engine's default.
    pub pool_slots: Option<u32>,
    /// The engine's `batch_wait_us` (relay only); `None` for its default.
    pub batch_wait_us: Option<u32>,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Datagrams the sources sent in the window.
    pub sent: u64,
    pub fanout: usize,
    pub window: Duration,
    /// The forwarder's backend, as it announced it.
    pub backend: String,
    pub workers: usize,
    /// System calls the forwarder made in the window, when counted.
    pub syscalls: Option<u64>,
    /// Wall time between the two counter reads: the window plus the wait for the last copies.
    pub span: Duration,
    /// Counter increments over the window.
    pub delta: Counters,
}

/// Counters read at both ends of the measured window; [`Sample::delta`] is their difference.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Forwarder CPU time, all threads.
    pub cpu_ns: u64,
    /// Times the forwarder's threads went to sleep (voluntary context switches).
    pub sleeps: u64,
    /// Copies that reached the sinks.
    pub delivered: u64,
    /// Datagrams the kernel dropped because the forwarder's sockets were full.
    pub forwarder_drops: u64,
    /// Copies the kernel dropped because the sinks' sockets were full.
    pub sink_drops: u64,
    /// CPU time of the whole machine, and of this load generator.
    pub machine_busy_ns: u64,
    pub load_generator_ns: u64,
}

impl Counters {
    fn read(forwarder: &Forwarder, sinks: &Sinks, sink_ports: &[u16]) -> io::Result<Self> {
        Ok(Self {
            cpu_ns: forwarder.cpu_ns()?,
            sleeps: cpu::process_sleeps(forwarder.pid())?,
            delivered: sinks.delivered(),
            forwarder_drops: udp_drops(&[forwarder.ready().port])?,
            sink_drops: udp_drops(sink_ports)?,
            machine_busy_ns: cpu::machine_busy_ns()?,
            load_generator_ns: cpu::process_ns(std::process::id())?,
        })
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            cpu_ns: self.cpu_ns.saturating_sub(before.cpu_ns),
            sleeps: self.sleeps.saturating_sub(before.sleeps),
            delivered: self.delivered.saturating_sub(before.delivered),
            forwarder_drops: self.forwarder_drops.saturating_sub(before.forwarder_drops),
            sink_drops: self.sink_drops.saturating_sub(before.sink_drops),
            machine_busy_ns: self.machine_busy_ns.saturating_sub(before.machine_busy_ns),
            load_generator_ns: self.load_generator_ns.saturating_sub(before.load_generator_ns),
        }
    }
}

impl Sample {
    /// CPU nanoseconds per forwarded copy (each fan-out copy counts as one packet).
    pub fn ns_per_pkt(&self) -> f64 {
        self.delta.cpu_ns as f64 / self.delta.delivered.max(1) as f64
    }

    /// Share of the expected copies that never arrived.
    pub fn loss(&self) -> f64 {
        let expected = self.sent * self.fanout as u64;
        if expected == 0 { 0.0 } else { 1.0 - self.delta.delivered as f64 / expected as f64 }
    }

    /// Datagrams per second the sources achieved.
    pub fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.window.as_secs_f64()
    }

    /// Copies per second the sinks received.
    pub fn delivered_pps(&self) -> f64 {
        self.delta.delivered as f64 / self.window.as_secs_f64()
    }

    pub fn syscalls_per_pkt(&self) -> Option<f64> {
        self.syscalls.map(|n| n as f64 / self.delta.delivered.max(1) as f64)
    }

    /// Wake-ups of the forwarder per forwarded copy.
    pub fn sleeps_per_pkt(&self) -> f64 {
        self.delta.sleeps as f64 / self.delta.delivered.max(1) as f64
    }

    /// CPU this load generator (sources, sinks, and for SRTP the protecting of every packet)
    /// used during the window, in cores.
    pub fn load_generator_cores(&self) -> f64 {
        self.delta.load_generator_ns as f64 / self.span.as_secs_f64() / 1e9
    }

    /// CPU the rest of the machine used during the window (neither the forwarder nor this
    /// load generator), in cores: 1.0 means another process kept one core busy. A noisy
    /// neighbour inflates and scatters the forwarder's CPU per packet.
    pub fn foreign_cores(&self) -> f64 {
        let own = self.delta.cpu_ns + self.delta.load_generator_ns;
        let foreign = self.delta.machine_busy_ns.saturating_sub(own);
        foreign as f64 / self.span.as_secs_f64() / 1e9
    }
}

/// Runs `scenario` once. With `count_syscalls`, `perf` is attached for the window (which
/// inflates the CPU time: use such a sample for its syscall count only).
pub fn measure(scenario: &Scenario, count_syscalls: bool) -> io::Result<Sample> {
    let mut sources = Sources::bind(scenario.sources, scenario.kind.srtp_profile())?;
    // The SRTP forwarders re-encrypt every copy with the sinks' key, in the same profile, so
    // copies are as long as what the sources send.
    let sinks = Sinks::spawn(scenario.fanout, sources.datagram_len())?;
    let routes =
        sources.addrs()?.into_iter().map(|from| Route { from, to: sinks.addrs().to_vec() }).collect();
    let options = ServeOptions {
        kind: scenario.kind,
        routes,
        workers: scenario.workers,
        pool_slots: scenario.pool_slots,
        batch_wait_us: scenario.batch_wait_us,
        lifetime: scenario.warmup + scenario.window + Duration::from_secs(60),
        control_secret: None,
    };
    let mut forwarder = Forwarder::spawn(&options)?;
    let to = SocketAddr::from(([127, 0, 0, 1], forwarder.ready().port));
    let fanout = scenario.fanout as u64;
    let sink_ports: Vec<u16> = sinks.addrs().iter().map(SocketAddr::port).collect();

    // Warm-up: the first packets fault in buffers, rings and caches. Not measured.
    let warm = sources.send_paced(to, scenario.rate, scenario.warmup)?;
    sinks.settle(warm * fanout, SETTLE_IDLE, SETTLE_LIMIT);

    let counter = count_syscalls.then(|| SyscallCounter::attach(forwarder.pid())).transpose()?;
    let before = Counters::read(&forwarder, &sinks, &sink_ports)?;
    let started = Instant::now();
    let sent = sources.send_paced(to, scenario.rate, scenario.window)?;
    sinks.settle(before.delivered + sent * fanout, SETTLE_IDLE, SETTLE_LIMIT);
    let delta = Counters::read(&forwarder, &sinks, &sink_ports)?.since(&before);
    let span = started.elapsed();
    let syscalls = counter.map(SyscallCounter::finish).transpose()?;

    forwarder.check_alive()?;
    let ready = forwarder.ready().clone();
    forwarder.stop()?;
    sinks.stop()?;
    Ok(Sample {
        sent,
        fanout: scenario.fanout,
        window: scenario.window,
        backend: ready.backend,
        workers: ready.workers,
        syscalls,
        span,
        delta,
    })
}
