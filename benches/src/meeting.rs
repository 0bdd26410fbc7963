//! One measured run of the whole SFU: a bridge child (`--serve sfu`), [`crate::loadgen`] in
//! this process joining it through the control API with real ICE, DTLS and SRTP, and the
//! bridge's CPU time and resident memory read around a window inside the media.
//!
//! ```text
//! spawn child ─ join, ICE, DTLS ─ media: warm-up │ CPU₀ RSS₀ ── window ── CPU₁ RSS₁ │ tail, drain ─ leave ─ stop
//! ```
//!
//! Unlike [`crate::scenario`], the bridge is busy when its CPU time is read (the meeting goes
//! on around the window), so each read may lag by up to one scheduler tick: a few
//! milliseconds against windows of a second or more. Forwarded packets are the media
//! datagrams the participants received in the same window.

use std::io;
use std::time::{Duration, Instant};

use bridge::media::srtp::Profile;

use crate::child::Forwarder;
use crate::cpu;
use crate::drops::{all_udp_drops, udp_drops};
use crate::loadgen::connect::ProfileChoice;
use crate::loadgen::report::Report;
use crate::loadgen::schedule::{AUDIO_PPS, VideoPattern};
use crate::loadgen::{self, Config, Progress, Receive, RunOptions, Target};
use crate::perf::SyscallCounter;
use crate::serve::{Kind, ServeOptions};

/// Sending goes on this long after the window, so the window never sees the senders stop.
const TAIL: Duration = Duration::from_millis(300);
/// loadgen's media threads yield to the bridge (see [`RunOptions::nice`]).
const LOADGEN_NICE: i32 = 19;
/// Video leaves through a pacer at this multiple of its rate, as libwebrtc sends it.
pub const PACING: f64 = 2.5;
/// Receiving goes on this long after sending stops: what is still in flight arrives.
const DRAIN: Duration = Duration::from_millis(400);
/// How often the window's edges are checked for.
const POLL: Duration = Duration::from_millis(5);

/// What to run: `conferences` conferences of `size` participants, everyone sending audio (50
/// packets/s) and `video_pps` packets/s of video.
#[derive(Clone, Debug)]
pub struct Meeting {
    pub size: usize,
    pub conferences: usize,
    pub video_pps: u32,
    /// The SRTP profile the participants offer (alone, so the bridge must take it).
    pub profile: Profile,
    pub warmup: Duration,
    pub window: Duration,
    pub workers: usize,
    pub pool_slots: Option<u32>,
    pub batch_wait_us: Option<u32>,
    pub receive: Receive,
    /// loadgen's media threads.
    pub threads: usize,
    /// Whether the participants encrypt end to end (SFrame) as well.
    pub e2ee: bool,
}

impl Meeting {
    /// Copies of each packet: the other members of its conference.
    pub fn fanout(&self) -> usize {
        self.size.saturating_sub(1)
    }

    pub fn participants(&self) -> usize {
        self.size * self.conferences
    }

    /// Packets per second sent to the bridge, in total.
    pub fn offered_pps(&self) -> u64 {
        self.participants() as u64 * (u64::from(self.video_pps) + AUDIO_PPS)
    }

    /// The video rate per participant that makes the meeting offer `total_pps` in all (audio
    /// is fixed, so at least 50 packets/s per participant).
    pub fn video_pps_for(size: usize, conferences: usize, total_pps: u64) -> u32 {
        let per_participant = total_pps / (size * conferences).max(1) as u64;
        per_participant.saturating_sub(AUDIO_PPS).min(u64::from(u32::MAX)) as u32
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct MeetingSample {
    pub backend: String,
    pub workers: usize,
    /// Wall time between the two reads.
    pub span: Duration,
    /// Bridge CPU time over the window, all threads.
    pub cpu_ns: u64,
    /// Media datagrams the participants received over the window.
    pub delivered: u64,
    /// Datagrams the kernel dropped at the bridge's full sockets over the window.
    pub bridge_socket_drops: u64,
    /// The same at every other UDP socket of the machine (the participants' among them).
    pub other_socket_drops: u64,
    /// The bridge's resident memory at the window's start and end, KiB.
    pub rss_kib: (u64, u64),
    /// System calls the bridge made in the window, when counted.
    pub syscalls: Option<u64>,
    /// CPU of everything but the bridge and this process over the window, in cores.
    pub foreign_cores: f64,
    /// loadgen's view of the whole run (warm-up included): loss, latency.
    pub report: Report,
}

impl MeetingSample {
    pub fn ns_per_pkt(&self) -> f64 {
        self.cpu_ns as f64 / self.delivered.max(1) as f64
    }

    pub fn delivered_pps(&self) -> f64 {
        self.delivered as f64 / self.span.as_secs_f64()
    }

    /// Lost share of what should have arrived (0.01 = 1%).
    pub fn loss(&self) -> f64 {
        self.report.total.loss_pct() / 100.0
    }

    pub fn syscalls_per_pkt(&self) -> Option<f64> {
        self.syscalls.map(|n| n as f64 / self.delivered.max(1) as f64)
    }

    /// Growth of resident memory over the window, in percent.
    pub fn rss_growth_pct(&self) -> f64 {
        let (start, end) = self.rss_kib;
        100.0 * (end as f64 - start as f64) / start.max(1) as f64
    }
}

/// The counters read at each edge of the window.
#[derive(Clone, Copy, Debug)]
struct Edge {
    at: Instant,
    cpu_ns: u64,
    received: u64,
    drops: u64,
    all_drops: u64,
    rss_kib: u64,
    machine_busy_ns: u64,
    own_ns: u64,
}

impl Edge {
    fn read(bridge: u32, port: u16, progress: &Progress) -> io::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            cpu_ns: cpu::process_ns(bridge)?,
            received: progress.received,
            drops: udp_drops(&[port])?,
            all_drops: all_udp_drops()?,
            rss_kib: cpu::process_rss_kib(bridge)?,
            machine_busy_ns: cpu::machine_busy_ns()?,
            own_ns: cpu::process_ns(std::process::id())?,
        })
    }
}

/// A fresh control API secret: 24 random bytes in hex.
fn random_secret() -> io::Result<String> {
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw).map_err(io::Error::other)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `meeting` once. With `count_syscalls`, `perf` is attached for the window (which
/// inflates the CPU time: use such a sample for its syscall count only).
pub fn measure(meeting: &Meeting, count_syscalls: bool) -> io::Result<MeetingSample> {
    let secret = random_secret()?;
    let options = ServeOptions {
        kind: Kind::Sfu,
        routes: Vec::new(),
        workers: meeting.workers,
        pool_slots: meeting.pool_slots,
        batch_wait_us: meeting.batch_wait_us,
        // Setup (a DTLS handshake per participant) comes on top of the media.
        lifetime: meeting.warmup + meeting.window + Duration::from_secs(120),
        control_secret: Some(secret.clone()),
    };
    let mut bridge = Forwarder::spawn(&options)?;
    let ready = bridge.ready().clone();
    let api = ready.control.ok_or_else(|| io::Error::other("the SFU child announced no control API"))?;
    let config = Config {
        participants: meeting.participants(),
        conferences: meeting.conferences,
        duration: meeting.warmup + meeting.window + TAIL,
        drain: DRAIN,
        warmup: meeting.warmup,
        video: VideoPattern::new(meeting.video_pps, 30, 2, 5).paced(PACING),
        audio_level_id: 1,
        threads: meeting.threads,
        e2ee: meeting.e2ee,
        target: Target::ControlApi {
            api,
            secret,
            media: Some(ready.media()),
            profiles: ProfileChoice::Only(meeting.profile),
            handshake_timeout: Duration::from_secs(10),
        },
    };
    let pid = bridge.pid();
    let mut counter = None;
    let mut edges: (Option<Edge>, Option<Edge>) = (None, None);
    let mut failure = None;
    let run_options = RunOptions { receive: meeting.receive, progress_every: POLL, nice: LOADGEN_NICE };
    let report = loadgen::run_with(&config, &run_options, |progress| {
        if failure.is_some() {
            return;
        }
        let mut step = || -> io::Result<()> {
            if edges.0.is_none() && progress.elapsed >= meeting.warmup {
                if count_syscalls {
                    counter = Some(SyscallCounter::attach(pid)?);
                }
                edges.0 = Some(Edge::read(pid, ready.port, progress)?);
            } else if let Some(start) = edges.0
                && edges.1.is_none()
                && start.at.elapsed() >= meeting.window
            {
                edges.1 = Some(Edge::read(pid, ready.port, progress)?);
            }
            Ok(())
        };
        failure = step().err();
    })
    .map_err(io::Error::other)?;
    let syscalls = counter.map(SyscallCounter::finish).transpose()?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (Some(start), Some(end)) = edges else {
        return Err(io::Error::other("the meeting ended before its measured window did"));
    };
    bridge.check_alive()?;
    bridge.stop()?;
    let span = end.at - start.at;
    let cpu_ns = end.cpu_ns.saturating_sub(start.cpu_ns);
    let own = cpu_ns + end.own_ns.saturating_sub(start.own_ns);
    let foreign = end.machine_busy_ns.saturating_sub(start.machine_busy_ns).saturating_sub(own);
    Ok(MeetingSample {
        backend: ready.backend,
        workers: ready.workers,
        span,
        cpu_ns,
        delivered: end.received.saturating_sub(start.received),
        bridge_socket_drops: end.drops.saturating_sub(start.drops),
        other_socket_drops: (end.all_drops.saturating_sub(start.all_drops))
            .saturating_sub(end.drops.saturating_sub(start.drops)),
        rss_kib: (start.rss_kib, end.rss_kib),
        syscalls,
        foreign_cores: foreign as f64 / span.as_secs_f64() / 1e9,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_rate_fills_the_offered_total() {
        assert_eq!(Meeting::video_pps_for(2, 50, 50_000), 450);
        assert_eq!(Meeting::video_pps_for(10, 4, 1_000), 0, "audio alone is already more");
    }
}
