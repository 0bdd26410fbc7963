//! `bench-report`: CPU time per forwarded packet of the engine in relay mode and with SRTP
//! re-encryption, against two kernel baselines measured in the same run on the same load.
//!
//! ```text
//! bench-report              5 repetitions of 3 s windows per scenario (about 2 min)
//! bench-report --quick      3 repetitions of 1 s windows (about 45 s)
//!     [--rate PPS] [--secs S] [--reps N] [--sources N] [--pool-slots N] [--workers N]
//!     [--batch-wait-us N] [--no-syscalls]
//! ```
//!
//! `--pool-slots` sets the engine's `pool_slots_per_worker` (default: the engine's default),
//! which also sets how many buffers its receive ring cycles through; `--workers` its worker
//! count, and the per-core baseline's thread count (default: one per core); `--batch-wait-us`
//! the engine's io_uring min-wait batching. All are for diagnosis; the defaults are what to
//! report.
//!
//! Forwarders ([`benches::kernel`] describes the baselines):
//!
//! - `kernel-per-core`: the minimal recvmmsg/sendmmsg forwarder in the engine's thread layout,
//!   one thread per relay worker, each pinned to its core with its own SO_REUSEPORT socket on
//!   the shared port. This is the yardstick: with few packets per wake-up, sleeping and waking
//!   per small burst on every core dominates the cost per packet, and this baseline pays it
//!   exactly as the relay does, so relay / kernel-per-core isolates the engine's per-packet
//!   machinery from the thread layout.
//! - `kernel`: the same forwarder on one unpinned thread and one socket. Its ratio to the
//!   per-core baseline shows what the per-core layout itself costs on this machine (on a
//!   2-core box, mostly extra wake-ups), which no change to the engine's per-packet work
//!   can remove.
//! - `relay`: the engine in relay mode.
//! - `srtp-gcm`, `srtp-cm`: the engine, configured as for `relay`, running
//!   [`bridge::media::srtp_relay::SrtpRelay`] on the same routes: every packet is decrypted on
//!   arrival and each copy re-encrypted with the sink's key, in AEAD_AES_128_GCM and
//!   AES_CM_128_HMAC_SHA1_80 respectively. The sources send real SRTP for these (keys and
//!   streams from [`benches::srtp`]), so their datagrams are 1200 bytes plus the profile's
//!   overhead (16 or 10 bytes).
//!
//! Scenarios: {kernel, kernel-per-core, relay, srtp-gcm, srtp-cm} x fan-out 1 and {kernel,
//! kernel-per-core, relay} x fan-out 4. Each run starts the forwarder in a child process (this
//! binary with the hidden `--serve` subcommand) and reads the child's CPU time from /proc
//! around the measured window. Runs are interleaved, the forwarders of a fan-out taking turns
//! going first, so that a noisy neighbour or a frequency change hits all alike, and each
//! scenario reports the median of its repetitions.
//!
//! Output: a table, then one JSON object as the last line of stdout. In it `kernel_*` is the
//! same-topology baseline and `kernel_1thread_*` the single-threaded one; `gcm_*` and `cm_*`
//! are the SRTP forwarders at fan-out 1. Progress goes to stderr.

use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use benches::scenario::{self, Sample, Scenario};
use benches::serve::{self, Kind, ServeOptions};
use benches::{PACKET_LEN, kernel, perf};
use engine::EngineConfig;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: bench-report [--quick] [--rate PPS] [--secs S] [--reps N] [--sources N] \
                     [--pool-slots N] [--workers N] [--batch-wait-us N] [--no-syscalls]";

const FANOUTS: [usize; 2] = [1, 4];
/// Forwarders measured at every fan-out, in report order.
const KINDS: [Kind; 3] = [Kind::Kernel, Kind::KernelPerCore, Kind::Relay];
/// All forwarders, in report order: the SRTP ones run at [`SRTP_FANOUT`] only, which keeps
/// `--quick` short.
const ALL_KINDS: [Kind; 5] = [Kind::Kernel, Kind::KernelPerCore, Kind::Relay, Kind::SrtpGcm, Kind::SrtpCm];
const SRTP_FANOUT: usize = 1;
/// Source sockets. The kernel picks a worker socket per source by a hash of its address, so
/// with few sources one worker often gets most of them (with 4, all land on one worker in one
/// run out of eight); 16 spread the load evenly enough that neither worker saturates.
const SOURCES: usize = 16;

/// How the report runs.
#[derive(Clone, Debug)]
struct Settings {
    quick: bool,
    /// Datagrams per second offered, in total over all sources.
    rate: u64,
    window: Duration,
    warmup: Duration,
    reps: usize,
    sources: usize,
    /// Packet slots per engine worker; `None` for the engine's default.
    pool_slots: Option<u32>,
    batch_wait_us: Option<u32>,
    /// Engine workers; `None` for one per core.
    workers: Option<usize>,
    /// Window of the extra runs that count syscalls; `None` skips them.
    syscall_window: Option<Duration>,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Self, String> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut settings = if quick {
            Self {
                quick,
                rate: 50_000,
                window: Duration::from_secs(1),
                warmup: Duration::from_millis(250),
                reps: 3,
                sources: SOURCES,
                pool_slots: None,
                batch_wait_us: None,
                workers: None,
                syscall_window: Some(Duration::from_millis(500)),
            }
        } else {
            Self {
                quick,
                rate: 50_000,
                window: Duration::from_secs(3),
                warmup: Duration::from_millis(500),
                reps: 5,
                sources: SOURCES,
                pool_slots: None,
                batch_wait_us: None,
                workers: None,
                syscall_window: Some(Duration::from_secs(1)),
            }
        };
        let mut rest = args;
        while let [flag, tail @ ..] = rest {
            rest = tail;
            let value = tail.first().map(String::as_str);
            match flag.as_str() {
                "--quick" => continue,
                "--no-syscalls" => {
                    settings.syscall_window = None;
                    continue;
                }
                "--rate" => settings.rate = number(flag, value)?,
                "--secs" => settings.window = Duration::from_secs_f64(number(flag, value)?),
                "--reps" => settings.reps = number(flag, value)?,
                "--sources" => settings.sources = number(flag, value)?,
                "--pool-slots" => settings.pool_slots = Some(number(flag, value)?),
                "--batch-wait-us" => settings.batch_wait_us = Some(number(flag, value)?),
                "--workers" => settings.workers = Some(number(flag, value)?),
                other => return Err(format!("unknown option {other}")),
            }
            rest = &tail[1..]; // the value consumed above
        }
        let in_range = settings.rate > 0
            && settings.reps > 0
            && settings.sources > 0
            && settings.workers != Some(0)
            && (0.1..=600.0).contains(&settings.window.as_secs_f64());
        if !in_range {
            return Err(
                "--rate, --reps, --sources and --workers must be positive, --secs between 0.1 and 600"
                    .to_owned(),
            );
        }
        Ok(settings)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<&str>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value.parse().map_err(|_| format!("{flag} {value}: not a number"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(("--serve", serve_args)) = args.split_first().map(|(first, rest)| (first.as_str(), rest)) {
        return match ServeOptions::parse(serve_args).and_then(|options| serve::run(&options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-report --serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::parse(&args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("bench-report: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match report(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(settings: &Settings) -> io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = settings.workers.unwrap_or(cores);
    let samples = run_interleaved(settings, workers)?;
    let syscalls = match settings.syscall_window {
        Some(window) if perf::available() => count_syscalls(settings, workers, window),
        _ => BTreeMap::new(),
    };
    let summaries: Vec<Summary> = scenarios()
        .map(|(kind, fanout)| Summary::of(kind, fanout, &samples, syscalls.get(&(kind, fanout))))
        .collect();
    print_table(settings, &summaries);
    println!("{}", report_json(settings, &summaries));
    Ok(())
}

/// The forwarders measured at `fanout`, in report order.
fn kinds(fanout: usize) -> &'static [Kind] {
    if fanout == SRTP_FANOUT { &ALL_KINDS } else { &KINDS }
}

/// Every (forwarder, fan-out) pair, in report order.
fn scenarios() -> impl Iterator<Item = (Kind, usize)> {
    FANOUTS.into_iter().flat_map(|fanout| kinds(fanout).iter().map(move |&kind| (kind, fanout)))
}

fn scenario(settings: &Settings, kind: Kind, fanout: usize, workers: usize, window: Duration) -> Scenario {
    Scenario {
        kind,
        fanout,
        sources: settings.sources,
        rate: settings.rate,
        warmup: settings.warmup,
        window,
        workers,
        pool_slots: settings.pool_slots,
        batch_wait_us: settings.batch_wait_us,
    }
}

/// All measured runs: for each repetition and fan-out, one run of each forwarder, taking turns
/// going first.
fn run_interleaved(settings: &Settings, workers: usize) -> io::Result<Vec<(Kind, Sample)>> {
    let total = settings.reps * scenarios().count();
    let mut samples = Vec::with_capacity(total);
    for rep in 0..settings.reps {
        for fanout in FANOUTS {
            let kinds = kinds(fanout);
            let mut order = kinds.to_vec();
            order.rotate_left(rep % kinds.len());
            for kind in order {
                let sample =
                    scenario::measure(&scenario(settings, kind, fanout, workers, settings.window), false)
                        .map_err(|e| io::Error::new(e.kind(), format!("{kind} fan-out {fanout}: {e}")))?;
                eprintln!(
                    "[{:>2}/{total}] {kind:<15} fan-out {fanout}: {}",
                    samples.len() + 1,
                    progress(&sample)
                );
                samples.push((kind, sample));
            }
        }
    }
    Ok(samples)
}

fn progress(sample: &Sample) -> String {
    format!(
        "{:7.1} ns/pkt, {:.3} wake-ups/pkt, loss {:.3}% (full-socket drops: {} at the forwarder, {} at the \
         sinks), {:.0} pkt/s in, load generator {:.2} cores, other processes {:.2} cores",
        sample.ns_per_pkt(),
        sample.sleeps_per_pkt(),
        sample.loss() * 100.0,
        sample.delta.forwarder_drops,
        sample.delta.sink_drops,
        sample.offered_pps(),
        sample.load_generator_cores(),
        sample.foreign_cores(),
    )
}

/// Syscalls per forwarded packet of each scenario, from one extra run each with `perf`
/// attached. A scenario whose count fails is left out (reported as null) with a warning.
fn count_syscalls(settings: &Settings, workers: usize, window: Duration) -> BTreeMap<(Kind, usize), f64> {
    let mut counts = BTreeMap::new();
    for (kind, fanout) in scenarios() {
        match scenario::measure(&scenario(settings, kind, fanout, workers, window), true) {
            Ok(sample) => {
                if let Some(per_pkt) = sample.syscalls_per_pkt() {
                    eprintln!("[perf] {kind:<15} fan-out {fanout}: {per_pkt:.3} syscalls/pkt");
                    counts.insert((kind, fanout), per_pkt);
                }
            }
            Err(e) => eprintln!("[perf] {kind} fan-out {fanout}: not counted: {e}"),
        }
    }
    counts
}

/// One scenario over its repetitions.
#[derive(Debug)]
struct Summary {
    kind: Kind,
    fanout: usize,
    ns_per_pkt: Vec<f64>,
    worst_loss: f64,
    /// Full-socket drops over all runs: at the forwarder's sockets, at the sinks'.
    drops: (u64, u64),
    offered_pps: f64,
    delivered_pps: f64,
    sleeps_per_pkt: f64,
    /// Median CPU other processes used during the windows, in cores.
    foreign_cores: f64,
    /// Median CPU of this load generator (sources and sinks) during the windows, in cores.
    load_generator_cores: f64,
    backend: String,
    workers: usize,
    syscalls_per_pkt: Option<f64>,
}

impl Summary {
    fn of(kind: Kind, fanout: usize, samples: &[(Kind, Sample)], syscalls: Option<&f64>) -> Self {
        let mine: Vec<&Sample> =
            samples.iter().filter(|(k, s)| *k == kind && s.fanout == fanout).map(|(_, s)| s).collect();
        let first = mine.first().expect("every scenario ran at least once (reps > 0)");
        let median_of = |f: fn(&Sample) -> f64| median(mine.iter().map(|s| f(s)).collect());
        Self {
            kind,
            fanout,
            ns_per_pkt: mine.iter().map(|s| s.ns_per_pkt()).collect(),
            worst_loss: mine.iter().map(|s| s.loss()).fold(0.0, f64::max),
            drops: mine
                .iter()
                .fold((0, 0), |(f, k), s| (f + s.delta.forwarder_drops, k + s.delta.sink_drops)),
            offered_pps: median_of(Sample::offered_pps),
            delivered_pps: median_of(Sample::delivered_pps),
            sleeps_per_pkt: median_of(Sample::sleeps_per_pkt),
            foreign_cores: median_of(Sample::foreign_cores),
            load_generator_cores: median_of(Sample::load_generator_cores),
            backend: first.backend.clone(),
            workers: first.workers,
            syscalls_per_pkt: syscalls.copied(),
        }
    }

    fn median(&self) -> f64 {
        median(self.ns_per_pkt.clone())
    }

    fn min(&self) -> f64 {
        self.ns_per_pkt.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.ns_per_pkt.iter().copied().fold(0.0, f64::max)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn find(summaries: &[Summary], kind: Kind, fanout: usize) -> &Summary {
    summaries
        .iter()
        .find(|s| s.kind == kind && s.fanout == fanout)
        .expect("a summary exists for every (forwarder, fan-out) pair")
}

fn relay_backend(summaries: &[Summary]) -> String {
    find(summaries, Kind::Relay, FANOUTS[0]).backend.clone()
}

/// Median CPU per packet of `kind` over that of `baseline` at `fanout`.
fn ratio(summaries: &[Summary], kind: Kind, baseline: Kind, fanout: usize) -> f64 {
    find(summaries, kind, fanout).median() / find(summaries, baseline, fanout).median()
}

fn print_table(settings: &Settings, summaries: &[Summary]) {
    let relay = find(summaries, Kind::Relay, FANOUTS[0]);
    let per_core = find(summaries, Kind::KernelPerCore, FANOUTS[0]);
    println!(
        "bench-report{}: {PACKET_LEN}-byte datagrams on 127.0.0.1, {} pkt/s offered from {} sources, \
         {:.1} s windows, median of {} runs",
        if settings.quick { " --quick" } else { "" },
        settings.rate,
        settings.sources,
        settings.window.as_secs_f64(),
        settings.reps,
    );
    println!("kernel = recvmmsg(MSG_WAITFORONE)/sendmmsg, batch {}, one unpinned thread", kernel::BATCH);
    println!(
        "kernel-per-core = the same, {} threads pinned one per core, one SO_REUSEPORT socket each \
         (the yardstick: same thread layout as the relay)",
        per_core.workers
    );
    println!("relay = engine, {} workers, {}", relay.workers, relay.backend);
    println!(
        "srtp-gcm, srtp-cm = the same engine running SrtpRelay: decrypt each packet, re-encrypt each copy \
         (AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80; real SRTP in, {PACKET_LEN} bytes + overhead; fan-out \
         {SRTP_FANOUT} only)"
    );
    println!("ns/pkt = forwarder CPU time / copies delivered to the sinks (median, min, max over runs)");
    println!("other = CPU cores used by other processes during the window (noise); loadgen = this process's");
    println!();
    println!(
        "{:<15} {:>6} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11} {:>12} {:>6} {:>7}",
        "forwarder",
        "fanout",
        "ns/pkt",
        "min",
        "max",
        "out pkt/s",
        "worst loss",
        "wakeups/pkt",
        "syscalls/pkt",
        "other",
        "loadgen"
    );
    for s in summaries {
        let syscalls = s.syscalls_per_pkt.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
        println!(
            "{:<15} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>9.3}% {:>11.3} {:>12} {:>6.2} {:>7.2}",
            s.kind.to_string(),
            s.fanout,
            s.median(),
            s.min(),
            s.max(),
            s.delivered_pps,
            s.worst_loss * 100.0,
            s.sleeps_per_pkt,
            syscalls,
            s.foreign_cores,
            s.load_generator_cores,
        );
    }
    let ratios = |kind, baseline| {
        let ratios: Vec<String> = FANOUTS
            .iter()
            .map(|&f| format!("fan-out {f}: {:.3}x", ratio(summaries, kind, baseline, f)))
            .collect();
        ratios.join(", ")
    };
    println!();
    println!(
        "relay / kernel-per-core ({} threads) CPU per packet: {}",
        per_core.workers,
        ratios(Kind::Relay, Kind::KernelPerCore)
    );
    println!("relay / kernel (1 thread) CPU per packet:         {}", ratios(Kind::Relay, Kind::Kernel));
    println!(
        "kernel-per-core / kernel (1 thread), the layout's own cost: {}",
        ratios(Kind::KernelPerCore, Kind::Kernel)
    );
    let relay_ns = find(summaries, Kind::Relay, SRTP_FANOUT).median();
    for kind in [Kind::SrtpGcm, Kind::SrtpCm] {
        let ns = find(summaries, kind, SRTP_FANOUT).median();
        println!(
            "{kind} fan-out {SRTP_FANOUT}: {ns:.1} ns/pkt = {:.3}x kernel-per-core, {:.3}x kernel (1 thread), \
             {:.3}x relay ({:+.1} ns/pkt for decrypt + re-encrypt)",
            ratio(summaries, kind, Kind::KernelPerCore, SRTP_FANOUT),
            ratio(summaries, kind, Kind::Kernel, SRTP_FANOUT),
            ratio(summaries, kind, Kind::Relay, SRTP_FANOUT),
            ns - relay_ns,
        );
    }
    for s in summaries.iter().filter(|s| s.worst_loss > 0.0) {
        println!(
            "loss, {} fan-out {}: the kernel dropped {} datagrams at the forwarder's full socket and {} at \
             the sinks' over all runs",
            s.kind, s.fanout, s.drops.0, s.drops.1
        );
    }
}

/// Rounds for the JSON line: nanoseconds to 0.1, ratios and rates to 3 decimals.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn report_json(settings: &Settings, summaries: &[Summary]) -> serde_json::Value {
    let ns = |kind, fanout| round(find(summaries, kind, fanout).median(), 1);
    let ratio_of = |kind, baseline, fanout| round(ratio(summaries, kind, baseline, fanout), 3);
    let ratio = |baseline, fanout| ratio_of(Kind::Relay, baseline, fanout);
    let syscalls = |kind, fanout| find(summaries, kind, fanout).syscalls_per_pkt.map(|v| round(v, 3));
    let worst_loss = summaries.iter().map(|s| s.worst_loss).fold(0.0, f64::max);
    let scenarios: Vec<_> = summaries
        .iter()
        .map(|s| {
            json!({
                "forwarder": s.kind.to_string(),
                "fanout": s.fanout,
                "backend": s.backend,
                "ns_per_pkt_samples": s.ns_per_pkt.iter().map(|&v| round(v, 1)).collect::<Vec<_>>(),
                "worst_loss": round(s.worst_loss, 6),
                "forwarder_socket_drops": s.drops.0,
                "sink_socket_drops": s.drops.1,
                "offered_pps": round(s.offered_pps, 0),
                "delivered_pps": round(s.delivered_pps, 0),
                "wakeups_per_pkt": round(s.sleeps_per_pkt, 4),
                "other_processes_cores": round(s.foreign_cores, 2),
                "load_generator_cores": round(s.load_generator_cores, 2),
            })
        })
        .collect();
    json!({
        "kernel_ns_per_pkt": ns(Kind::KernelPerCore, 1),
        "relay_ns_per_pkt": ns(Kind::Relay, 1),
        "kernel_fanout4_ns_per_pkt": ns(Kind::KernelPerCore, 4),
        "relay_fanout4_ns_per_pkt": ns(Kind::Relay, 4),
        "kernel_1thread_ns_per_pkt": ns(Kind::Kernel, 1),
        "kernel_1thread_fanout4_ns_per_pkt": ns(Kind::Kernel, 4),
        "kernel_threads": find(summaries, Kind::KernelPerCore, 1).workers,
        "relay_over_kernel": ratio(Kind::KernelPerCore, 1),
        "relay_over_kernel_fanout4": ratio(Kind::KernelPerCore, 4),
        "relay_over_kernel_1thread": ratio(Kind::Kernel, 1),
        "relay_over_kernel_1thread_fanout4": ratio(Kind::Kernel, 4),
        "gcm_ns_per_pkt": ns(Kind::SrtpGcm, SRTP_FANOUT),
        "cm_ns_per_pkt": ns(Kind::SrtpCm, SRTP_FANOUT),
        "gcm_over_kernel": ratio_of(Kind::SrtpGcm, Kind::KernelPerCore, SRTP_FANOUT),
        "cm_over_kernel": ratio_of(Kind::SrtpCm, Kind::KernelPerCore, SRTP_FANOUT),
        "gcm_over_kernel_1thread": ratio_of(Kind::SrtpGcm, Kind::Kernel, SRTP_FANOUT),
        "cm_over_kernel_1thread": ratio_of(Kind::SrtpCm, Kind::Kernel, SRTP_FANOUT),
        "gcm_over_relay": ratio_of(Kind::SrtpGcm, Kind::Relay, SRTP_FANOUT),
        "cm_over_relay": ratio_of(Kind::SrtpCm, Kind::Relay, SRTP_FANOUT),
        "loss": round(worst_loss, 6),
        "kernel_syscalls_per_pkt": syscalls(Kind::KernelPerCore, 1),
        "relay_syscalls_per_pkt": syscalls(Kind::Relay, 1),
        "kernel_fanout4_syscalls_per_pkt": syscalls(Kind::KernelPerCore, 4),
        "relay_fanout4_syscalls_per_pkt": syscalls(Kind::Relay, 4),
        "kernel_1thread_syscalls_per_pkt": syscalls(Kind::Kernel, 1),
        "kernel_1thread_fanout4_syscalls_per_pkt": syscalls(Kind::Kernel, 4),
        "gcm_syscalls_per_pkt": syscalls(Kind::SrtpGcm, SRTP_FANOUT),
        "cm_syscalls_per_pkt": syscalls(Kind::SrtpCm, SRTP_FANOUT),
        "backend": relay_backend(summaries),
        "workers": find(summaries, Kind::Relay, 1).workers,
        "relay_pool_slots_per_worker": settings.pool_slots.unwrap_or(EngineConfig::default().pool_slots_per_worker),
        "packet_bytes": PACKET_LEN,
        "offered_pps": settings.rate,
        "sources": settings.sources,
        "window_s": settings.window.as_secs_f64(),
        "repetitions": settings.reps,
        "quick": settings.quick,
        "scenarios": scenarios,
    })
}
