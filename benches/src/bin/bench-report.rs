//! `bench-report`: CPU time per forwarded packet of the engine in relay mode and with SRTP
//! re-encryption, against two kernel baselines measured in the same run on the same load.
//!
//! ```text
//! bench-report              5 repetitions of 3 s windows per scenario
//! bench-report --quick      3 repetitions of 1 s windows
//!     [--rate PPS] [--secs S] [--reps N] [--sources N] [--pool-slots N] [--workers N]
//!     [--batch-wait-us N] [--no-syscalls] [--no-sfu] [--video-pps N] [--soak] [--svg PATH]
//! bench-report --e2ee-only  only `meeting` and `meeting-e2ee`, alternating, --reps times each
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
//! SFU scenarios ([`benches::sfu_report`]), interleaved with the above: the whole bridge
//! (`--serve sfu`: engine, media workers, control API) driven by loadgen from this process
//! through real ICE, DTLS and SRTP. `sfu-gcm` and `sfu-cm` (the participants offer only
//! AEAD_AES_128_GCM or only AES_CM_128_HMAC_SHA1_80) in conferences of 2 (fan-out 1) and of 5
//! (fan-out 4), offered `--rate` packets/s in all (audio 50 and `--video-pps` video packets/s
//! per participant; the conference count follows); and `meeting`, conferences of 10 with
//! everyone sending audio and video (fan-out 9, GCM) at 4/9 of `--rate`, so it forwards as
//! many copies as fan-out 4; and `meeting-e2ee`, the same meeting with every payload
//! SFrame-encrypted end to end (loadgen's `--e2ee`: packets of the same lengths), run next to
//! `meeting` in every repetition, the two taking turns going first, so that
//! `e2ee_cost_ratio` (the median of one over the median of the other) shows what forwarding
//! ciphertext costs the bridge. Then, for the meeting: the highest offered rate with loss under
//! 0.1% (doubling, then bisecting; short runs), a run at half that rate for its p99 latency,
//! and a long run for the growth of the bridge's resident memory after warm-up (`--soak`: 5
//! minutes). `--svg PATH` writes a bar chart of CPU per forwarded packet of every
//! configuration. Latency is from the sender's stamp to the kernel's arrival stamp at the
//! receiver, warm-up excluded; video leaves through a pacer at 2.5 times its rate, as
//! browsers send it, and participants' keyframes fall at different times.
//!
//! Output: a table, then one JSON object as the last line of stdout. In it `kernel_*` is the
//! same-topology baseline and `kernel_1thread_*` the single-threaded one; `gcm_*` and `cm_*`
//! are the SRTP forwarders at fan-out 1. Progress goes to stderr.

use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use benches::meeting::{self, MeetingSample};
use benches::scenario::{self, Sample, Scenario};
use benches::serve::{self, Kind, ServeOptions};
use benches::sfu_report::{self, CASES, MEETING, MEETING_E2EE, Search, SfuCase, SfuSettings, SfuSummary};
use benches::svg::{self, Bar};
use benches::{PACKET_LEN, kernel, perf};
use engine::EngineConfig;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: bench-report [--quick] [--rate PPS] [--secs S] [--reps N] [--sources N] \
                     [--pool-slots N] [--workers N] [--batch-wait-us N] [--no-syscalls] [--no-sfu] \
                     [--video-pps N] [--soak] [--svg PATH] [--e2ee-only]";

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
    /// Whether the SFU scenarios run.
    sfu: bool,
    /// Only the meeting without and with end-to-end encryption (`--e2ee-only`).
    e2ee_only: bool,
    /// Video packets/s per SFU participant.
    video_pps: u32,
    /// Runs of the lossless-rate search, and the window of each.
    search_steps: usize,
    search_window: Duration,
    /// The memory soak: warm-up, then the window between the two samples.
    soak_warmup: Duration,
    soak_window: Duration,
    /// Where to write the SVG chart.
    svg: Option<String>,
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
                sfu: true,
                e2ee_only: false,
                video_pps: 450,
                search_steps: 5,
                search_window: Duration::from_secs(1),
                soak_warmup: Duration::from_secs(2),
                soak_window: Duration::from_secs(20),
                svg: None,
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
                sfu: true,
                e2ee_only: false,
                video_pps: 450,
                search_steps: 8,
                search_window: Duration::from_secs(2),
                soak_warmup: Duration::from_secs(5),
                soak_window: Duration::from_secs(60),
                svg: None,
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
                "--no-sfu" => {
                    settings.sfu = false;
                    continue;
                }
                "--e2ee-only" => {
                    settings.e2ee_only = true;
                    continue;
                }
                "--soak" => {
                    settings.soak_warmup = Duration::from_secs(10);
                    settings.soak_window = Duration::from_secs(300);
                    continue;
                }
                "--video-pps" => settings.video_pps = number(flag, value)?,
                "--svg" => settings.svg = Some(value.ok_or("--svg needs a path")?.to_owned()),
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

    fn sfu(&self, workers: usize) -> SfuSettings {
        SfuSettings {
            rate: self.rate,
            video_pps: self.video_pps,
            warmup: self.warmup.max(Duration::from_millis(500)),
            window: self.window,
            workers,
            pool_slots: self.pool_slots,
            batch_wait_us: self.batch_wait_us,
            // One per core, as many as the bridge's workers.
            threads: workers,
        }
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
    if settings.e2ee_only {
        return e2ee_only(settings, &settings.sfu(workers));
    }
    let sfu = settings.sfu.then(|| settings.sfu(workers));
    let (samples, sfu_samples) = run_interleaved(settings, workers, sfu.as_ref())?;
    let counting = settings.syscall_window.filter(|_| perf::available());
    let syscalls = match counting {
        Some(window) => count_syscalls(settings, workers, window),
        None => BTreeMap::new(),
    };
    let summaries: Vec<Summary> = scenarios()
        .map(|(kind, fanout)| Summary::of(kind, fanout, &samples, syscalls.get(&(kind, fanout))))
        .collect();
    let sfu_report = match &sfu {
        Some(sfu) => Some(sfu_extras(settings, sfu, &sfu_samples, counting)?),
        None => None,
    };
    print_table(settings, &summaries);
    if let Some(extras) = &sfu_report {
        print_sfu_table(&summaries, extras);
    }
    if let Some(path) = &settings.svg {
        std::fs::write(path, chart(settings, &summaries, sfu_report.as_ref()))?;
        eprintln!("bench-report: chart written to {path}");
    }
    let mut json = report_json(settings, &summaries);
    if let Some(extras) = &sfu_report {
        add_sfu_json(&mut json, &summaries, extras);
    }
    println!("{json}");
    Ok(())
}

/// What the SFU part adds to the report.
struct SfuExtras {
    summaries: Vec<SfuSummary>,
    search: Search,
    soak: MeetingSample,
}

/// The meeting's bridge CPU per packet with end-to-end encryption over that without: medians
/// over the same repetitions, in each of which the two ran back to back.
fn e2ee_cost_ratio(summaries: &[SfuSummary]) -> Option<f64> {
    Some(sfu_summary(summaries, MEETING_E2EE)?.median() / sfu_summary(summaries, MEETING)?.median())
}

fn sfu_summary(summaries: &[SfuSummary], case: SfuCase) -> Option<&SfuSummary> {
    summaries.iter().find(|s| s.case == case)
}

/// The line that compares the meeting with and without end-to-end encryption.
fn print_e2ee_cost(summaries: &[SfuSummary]) {
    let plain = sfu_summary(summaries, MEETING);
    let e2ee = sfu_summary(summaries, MEETING_E2EE);
    let (Some(ratio), Some(plain), Some(e2ee)) = (e2ee_cost_ratio(summaries), plain, e2ee) else {
        return;
    };
    println!(
        "meeting-e2ee / meeting, bridge CPU per packet: {ratio:.3}x ({:.1} / {:.1} ns/pkt, medians of {} runs \
         each, back to back, alternating which goes first; payloads SFrame-encrypted end to end, same packet \
         lengths)",
        e2ee.median(),
        plain.median(),
        plain.ns_per_pkt.len()
    );
}

/// `--e2ee-only`: the meeting without and with end-to-end encryption and nothing else, back
/// to back and taking turns going first, `--reps` times: `e2ee_cost_ratio` in a minute or
/// two, for a busy machine or a change to the bridge's forwarding path.
fn e2ee_only(settings: &Settings, sfu: &SfuSettings) -> io::Result<()> {
    let cases = [MEETING, MEETING_E2EE];
    let mut samples: [Vec<MeetingSample>; 2] = Default::default();
    for rep in 0..settings.reps {
        for turn in 0..cases.len() {
            let index = (rep + turn) % cases.len();
            let case = cases[index];
            let sample = meeting::measure(&sfu.meeting(case, settings.window), false)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", case.name)))?;
            eprintln!(
                "[{}/{}] {:<15} {}",
                2 * rep + turn + 1,
                2 * settings.reps,
                case.name,
                sfu_progress(&sample)
            );
            samples[index].push(sample);
        }
    }
    let summaries: Vec<SfuSummary> =
        cases.iter().zip(&samples).map(|(&case, mine)| SfuSummary::of(sfu, case, mine, None)).collect();
    print_e2ee_cost(&summaries);
    let mut json = json!({
        "e2ee_cost_ratio": e2ee_cost_ratio(&summaries).map(|r| round(r, 3)),
        "repetitions": settings.reps,
        "window_s": settings.window.as_secs_f64(),
    });
    let object = json.as_object_mut().expect("a JSON object");
    for s in &summaries {
        let key = s.case.key();
        object.insert(format!("{key}_ns_per_pkt"), json!(round(s.median(), 1)));
        object.insert(
            format!("{key}_ns_per_pkt_samples"),
            json!(s.ns_per_pkt.iter().map(|&v| round(v, 1)).collect::<Vec<_>>()),
        );
        object.insert(format!("{key}_loss"), json!(round(s.worst_loss, 6)));
        object.insert(format!("{key}_p99_latency_us"), json!(s.p99_us.map(|v| round(v, 1))));
        object.insert(format!("{key}_other_processes_cores"), json!(round(s.foreign_cores, 2)));
    }
    println!("{json}");
    Ok(())
}

/// The SFU summaries (with their syscall counts from extra runs), the lossless-rate search
/// and the memory soak.
fn sfu_extras(
    settings: &Settings,
    sfu: &SfuSettings,
    samples: &[(usize, MeetingSample)],
    counting: Option<Duration>,
) -> io::Result<SfuExtras> {
    let mut summaries = Vec::with_capacity(CASES.len());
    for (index, case) in CASES.into_iter().enumerate() {
        let mine: Vec<MeetingSample> =
            samples.iter().filter(|(i, _)| *i == index).map(|(_, s)| s.clone()).collect();
        let syscalls = match counting {
            Some(window) => match meeting::measure(&sfu.meeting(case, window), true) {
                Ok(sample) => {
                    let per_pkt = sample.syscalls_per_pkt();
                    if let Some(per_pkt) = per_pkt {
                        eprintln!(
                            "[perf] {:<15} fan-out {}: {per_pkt:.3} syscalls/pkt",
                            case.name,
                            case.fanout()
                        );
                    }
                    per_pkt
                }
                Err(e) => {
                    eprintln!("[perf] {} fan-out {}: not counted: {e}", case.name, case.fanout());
                    None
                }
            },
            None => None,
        };
        summaries.push(SfuSummary::of(sfu, case, &mine, syscalls));
    }
    let search = sfu_report::max_pps_lossless(sfu, settings.search_steps, settings.search_window)?;
    eprintln!(
        "[rss] meeting for {:.0} s after {:.0} s of warm-up",
        settings.soak_window.as_secs_f64(),
        settings.soak_warmup.as_secs_f64()
    );
    let soak = sfu_report::rss_growth(sfu, settings.soak_warmup, settings.soak_window)?;
    eprintln!("[rss] {} KiB -> {} KiB: {:+.2}%", soak.rss_kib.0, soak.rss_kib.1, soak.rss_growth_pct());
    Ok(SfuExtras { summaries, search, soak })
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

/// One measured run of [`run_interleaved`].
#[derive(Clone, Copy, Debug)]
enum Step {
    Forwarder(Kind),
    /// An index into [`CASES`].
    Sfu(usize),
}

/// The runs of one fan-out, in report order: the forwarders, then the SFU cases (with `sfu`).
/// Fan-out 9 is the meeting alone.
fn steps(fanout: usize, sfu: bool) -> Vec<Step> {
    let forwarders = if FANOUTS.contains(&fanout) { kinds(fanout) } else { &[] };
    let cases = CASES.iter().enumerate().filter(|(_, case)| sfu && case.fanout() == fanout);
    forwarders.iter().map(|&kind| Step::Forwarder(kind)).chain(cases.map(|(i, _)| Step::Sfu(i))).collect()
}

/// All measured runs: for each repetition and fan-out, one run of each forwarder and SFU case,
/// taking turns going first; the meeting last in each repetition.
type Samples = (Vec<(Kind, Sample)>, Vec<(usize, MeetingSample)>);

fn run_interleaved(settings: &Settings, workers: usize, sfu: Option<&SfuSettings>) -> io::Result<Samples> {
    let fanouts: Vec<usize> = FANOUTS.into_iter().chain(sfu.map(|_| MEETING.fanout())).collect();
    let total = settings.reps * fanouts.iter().map(|&f| steps(f, sfu.is_some()).len()).sum::<usize>();
    let mut samples = Vec::with_capacity(total);
    let mut sfu_samples = Vec::new();
    for rep in 0..settings.reps {
        for &fanout in &fanouts {
            let mut order = steps(fanout, sfu.is_some());
            let len = order.len();
            order.rotate_left(rep % len);
            for step in order {
                let done = samples.len() + sfu_samples.len() + 1;
                match (step, sfu) {
                    (Step::Forwarder(kind), _) => {
                        let scenario = scenario(settings, kind, fanout, workers, settings.window);
                        let sample = scenario::measure(&scenario, false)
                            .map_err(|e| io::Error::new(e.kind(), format!("{kind} fan-out {fanout}: {e}")))?;
                        eprintln!("[{done:>2}/{total}] {kind:<15} fan-out {fanout}: {}", progress(&sample));
                        samples.push((kind, sample));
                    }
                    (Step::Sfu(index), Some(sfu)) => {
                        let case = CASES[index];
                        let sample =
                            meeting::measure(&sfu.meeting(case, settings.window), false).map_err(|e| {
                                io::Error::new(e.kind(), format!("{} fan-out {fanout}: {e}", case.name))
                            })?;
                        eprintln!(
                            "[{done:>2}/{total}] {:<15} fan-out {fanout}: {}",
                            case.name,
                            sfu_progress(&sample)
                        );
                        sfu_samples.push((index, sample));
                    }
                    (Step::Sfu(_), None) => unreachable!("SFU steps exist only with SFU settings"),
                }
            }
        }
    }
    Ok((samples, sfu_samples))
}

fn sfu_progress(sample: &MeetingSample) -> String {
    let latency = sample.report.total.latency;
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    let unexpected = sample.report.unexpected;
    let e2ee = if sample.report.e2ee {
        format!(" + SFrame ({} failed)", unexpected.sframe_failed)
    } else {
        String::new()
    };
    format!(
        "{:7.1} ns/pkt, {:.0} pkt/s out, loss {:.3}% (full-socket drops in the window: {} at the bridge, {} elsewhere), \
         latency p50/p99/p99.9 {}/{}/{} µs, SRTP {}{e2ee}, other processes {:.2} cores",
        sample.ns_per_pkt(),
        sample.delivered_pps(),
        sample.loss() * 100.0,
        sample.bridge_socket_drops,
        sample.other_socket_drops,
        us(latency.p50_us),
        us(latency.p99_us),
        us(latency.p999_us),
        sample.report.profile,
        sample.foreign_cores,
    )
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

/// The kernel fan-out an SFU case is compared with: its own, or fan-out 1 for the meeting
/// (the kernel runs go no higher than 4).
fn baseline_fanout(case: SfuCase) -> usize {
    if FANOUTS.contains(&case.fanout()) { case.fanout() } else { FANOUTS[0] }
}

/// CPU per packet of an SFU case over that of a kernel baseline (see [`baseline_fanout`]).
fn sfu_ratio(summaries: &[Summary], sfu: &SfuSummary, baseline: Kind) -> f64 {
    sfu.median() / find(summaries, baseline, baseline_fanout(sfu.case)).median()
}

fn print_sfu_table(summaries: &[Summary], extras: &SfuExtras) {
    let first = &extras.summaries[0];
    println!();
    println!(
        "SFU = bridge (engine {} workers, {}, media workers, control API) joined by loadgen with ICE, DTLS \
         and SRTP; every participant sends audio (50 pkt/s, ~100 B) and video (1200 B, frame bursts)",
        first.workers, first.backend
    );
    println!(
        "ns/pkt = bridge CPU time / media packets the participants received; x kpc, x k1 = over \
         kernel-per-core, kernel (1 thread) at the same fan-out (fan-out 1 for the meeting)"
    );
    println!(
        "latency = one-way, sender's stamp to the kernel's arrival stamp at the receiver, warm-up excluded; video paced at 2.5x its rate"
    );
    println!();
    println!(
        "{:<12} {:>6} {:>5} {:>8} {:>9} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>12} {:>6}",
        "config",
        "fanout",
        "confs",
        "in pkt/s",
        "out pkt/s",
        "ns/pkt",
        "x kpc",
        "x k1",
        "loss",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "syscalls/pkt",
        "other"
    );
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    for s in &extras.summaries {
        let syscalls = s.syscalls_per_pkt.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
        println!(
            "{:<12} {:>6} {:>5} {:>8} {:>9.0} {:>9.1} {:>7.3} {:>7.3} {:>7.3}% {:>7} {:>7} {:>8} {:>12} {:>6.2}",
            s.case.name,
            s.case.fanout(),
            s.conferences,
            s.offered_pps,
            s.delivered_pps,
            s.median(),
            sfu_ratio(summaries, s, Kind::KernelPerCore),
            sfu_ratio(summaries, s, Kind::Kernel),
            s.worst_loss * 100.0,
            us(s.p50_us),
            us(s.p99_us),
            us(s.p999_us),
            syscalls,
            s.foreign_cores,
        );
    }
    println!();
    print_e2ee_cost(&extras.summaries);
    let search = &extras.search;
    let steps: Vec<String> = search
        .steps
        .iter()
        .map(|s| format!("{} ({:.3}%, sent {:.0})", s.offered_pps, s.loss * 100.0, s.sent_pps))
        .collect();
    println!();
    println!(
        "meeting, highest offered rate with loss < {:.1}%: {} pkt/s in (steps: {})",
        sfu_report::LOSSLESS * 100.0,
        search.max_pps_lossless,
        steps.join(", ")
    );
    if let Some(half) = &search.half_load {
        let latency = half.report.total.latency;
        println!(
            "meeting at half that rate: loss {:.3}%, latency p50/p99/p99.9 \
             {}/{}/{} µs",
            half.loss() * 100.0,
            us(latency.p50_us),
            us(latency.p99_us),
            us(latency.p999_us)
        );
    }
    let soak = &extras.soak;
    println!(
        "meeting, bridge resident memory over {:.0} s after warm-up: {} KiB -> {} KiB ({:+.2}%)",
        soak.span.as_secs_f64(),
        soak.rss_kib.0,
        soak.rss_kib.1,
        soak.rss_growth_pct()
    );
}

/// Adds the SFU fields to the report's JSON object.
fn add_sfu_json(json: &mut serde_json::Value, summaries: &[Summary], extras: &SfuExtras) {
    let object = json.as_object_mut().expect("the report is a JSON object");
    for s in &extras.summaries {
        let key = s.case.key();
        object.insert(format!("{key}_ns_per_pkt"), json!(round(s.median(), 1)));
        object.insert(
            format!("{key}_over_kernel"),
            json!(round(sfu_ratio(summaries, s, Kind::KernelPerCore), 3)),
        );
        object.insert(
            format!("{key}_over_kernel_1thread"),
            json!(round(sfu_ratio(summaries, s, Kind::Kernel), 3)),
        );
        object.insert(format!("{key}_syscalls_per_pkt"), json!(s.syscalls_per_pkt.map(|v| round(v, 3))));
        object.insert(format!("{key}_loss"), json!(round(s.worst_loss, 6)));
        object.insert(format!("{key}_p99_latency_us"), json!(s.p99_us.map(|v| round(v, 1))));
    }
    object
        .insert("e2ee_cost_ratio".to_owned(), json!(e2ee_cost_ratio(&extras.summaries).map(|r| round(r, 3))));
    let half = extras.search.half_load.as_ref();
    object.insert("max_pps_lossless".to_owned(), json!(extras.search.max_pps_lossless));
    object.insert(
        "p99_latency_us_at_half_load".to_owned(),
        json!(half.and_then(|h| h.report.total.latency.p99_us).map(|v| round(v, 1))),
    );
    object.insert("loss_at_half_load".to_owned(), json!(half.map(|h| round(h.loss(), 6))));
    object.insert("rss_growth_pct".to_owned(), json!(round(extras.soak.rss_growth_pct(), 3)));
    object.insert("rss_window_s".to_owned(), json!(round(extras.soak.span.as_secs_f64(), 1)));
    let cases: Vec<_> = extras
        .summaries
        .iter()
        .map(|s| {
            json!({
                "config": s.case.name,
                "fanout": s.case.fanout(),
                "srtp_profile": s.profile,
                "e2ee": s.case.e2ee,
                "conferences": s.conferences,
                "participants": s.participants,
                "offered_pps": s.offered_pps,
                "delivered_pps": round(s.delivered_pps, 0),
                "ns_per_pkt_samples": s.ns_per_pkt.iter().map(|&v| round(v, 1)).collect::<Vec<_>>(),
                "worst_loss": round(s.worst_loss, 6),
                "p50_latency_us": s.p50_us.map(|v| round(v, 1)),
                "p99_latency_us": s.p99_us.map(|v| round(v, 1)),
                "p999_latency_us": s.p999_us.map(|v| round(v, 1)),
                "other_processes_cores": round(s.foreign_cores, 2),
            })
        })
        .collect();
    object.insert("sfu_scenarios".to_owned(), json!(cases));
    let steps: Vec<_> = extras
        .search
        .steps
        .iter()
        .map(|s| json!({"offered_pps": s.offered_pps, "sent_pps": round(s.sent_pps, 0), "loss": round(s.loss, 6)}))
        .collect();
    object.insert("max_pps_search".to_owned(), json!(steps));
}

/// The SVG bar chart of CPU per forwarded packet, every configuration.
fn chart(settings: &Settings, summaries: &[Summary], extras: Option<&SfuExtras>) -> String {
    let mut bars: Vec<Bar> = summaries
        .iter()
        .map(|s| Bar { label: format!("{} fan-out {}", s.kind, s.fanout), value: s.median(), accent: false })
        .collect();
    for s in extras.map_or(&[][..], |e| &e.summaries[..]) {
        bars.push(Bar {
            label: format!("{} fan-out {}", s.case.name, s.case.fanout()),
            value: s.median(),
            accent: true,
        });
    }
    let subtitle = format!(
        "bridge CPU time per forwarded packet, median of {} runs of {:.1} s{}; blue: forwarders on {PACKET_LEN}-byte \
         datagrams, orange: the SFU under loadgen",
        settings.reps,
        settings.window.as_secs_f64(),
        if settings.quick { " (--quick)" } else { "" },
    );
    svg::bar_chart("bench-report: ns per forwarded packet", &subtitle, "ns", &bars)
}
