//! The SFU's part of `bench-report`: which meetings it runs ([`SfuCase`]), their summaries
//! over repetitions, the search for the highest lossless rate, and the memory soak.
//!
//! Every case is the whole bridge ([`crate::meeting`]) under loadgen with real ICE, DTLS and
//! SRTP, the participants napping between receives ([`Receive::Nap`]) so that the bridge's
//! CPU per packet is not inflated by waking them. Latency ends at the kernel's arrival stamp
//! on the receiver's socket, so the nap is no part of it.

use std::io;
use std::time::Duration;

use bridge::media::srtp::Profile;

use crate::loadgen::Receive;
use crate::meeting::{self, Meeting, MeetingSample};

/// One SFU configuration of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SfuCase {
    pub name: &'static str,
    pub profile: Profile,
    /// Participants per conference: fan-out is one less.
    pub size: usize,
    /// Whether the media is end-to-end encrypted (SFrame) as well ([`crate::loadgen::e2ee`]).
    pub e2ee: bool,
}

impl SfuCase {
    pub fn fanout(&self) -> usize {
        self.size - 1
    }

    /// The JSON field prefix: `sfu_gcm`, `sfu_cm_fanout4`, `meeting`, `meeting_e2ee`.
    pub fn key(&self) -> String {
        let base = self.name.replace('-', "_");
        match self.fanout() {
            1 | 9 => base,
            f => format!("{base}_fanout{f}"),
        }
    }
}

pub const MEETING: SfuCase =
    SfuCase { name: "meeting", profile: Profile::AeadAes128Gcm, size: 10, e2ee: false };

/// The meeting with every payload SFrame-encrypted end to end, all else equal. Its packets
/// have the same lengths, so its CPU per packet over the meeting's is what E2EE costs the
/// bridge: nothing, if the bridge treats the payload as the opaque bytes it is.
pub const MEETING_E2EE: SfuCase = SfuCase { name: "meeting-e2ee", e2ee: true, ..MEETING };

/// In report order: fan-out 1, fan-out 4, then the 10-participant meeting without and with
/// end-to-end encryption.
pub const CASES: [SfuCase; 6] = [
    SfuCase { name: "sfu-gcm", profile: Profile::AeadAes128Gcm, size: 2, e2ee: false },
    SfuCase { name: "sfu-cm", profile: Profile::Aes128CmHmacSha1_80, size: 2, e2ee: false },
    SfuCase { name: "sfu-gcm", profile: Profile::AeadAes128Gcm, size: 5, e2ee: false },
    SfuCase { name: "sfu-cm", profile: Profile::Aes128CmHmacSha1_80, size: 5, e2ee: false },
    MEETING,
    MEETING_E2EE,
];

/// What the SFU runs share.
#[derive(Clone, Debug)]
pub struct SfuSettings {
    /// Packets per second offered at fan-out 1 and 4 (as the kernel runs get); the meeting
    /// gets 4/9 of it, so that it forwards as many copies as the fan-out 4 runs.
    pub rate: u64,
    /// Video packets per second per participant; the number of conferences follows.
    pub video_pps: u32,
    pub warmup: Duration,
    pub window: Duration,
    pub workers: usize,
    pub pool_slots: Option<u32>,
    pub batch_wait_us: Option<u32>,
    /// loadgen's media threads.
    pub threads: usize,
}

impl SfuSettings {
    /// The meeting `case` runs as.
    pub fn meeting(&self, case: SfuCase, window: Duration) -> Meeting {
        let offered = if case.size == MEETING.size { self.rate * 4 / 9 } else { self.rate };
        let per_conference =
            case.size as u64 * (u64::from(self.video_pps) + crate::loadgen::schedule::AUDIO_PPS);
        let conferences = ((offered as f64 / per_conference as f64).round() as usize).max(1);
        Meeting {
            size: case.size,
            conferences,
            video_pps: self.video_pps,
            profile: case.profile,
            warmup: self.warmup,
            window,
            workers: self.workers,
            pool_slots: self.pool_slots,
            batch_wait_us: self.batch_wait_us,
            receive: Receive::Nap,
            threads: self.threads,
            e2ee: case.e2ee,
        }
    }
}

/// One case over its repetitions.
#[derive(Clone, Debug)]
pub struct SfuSummary {
    pub case: SfuCase,
    pub conferences: usize,
    pub participants: usize,
    pub offered_pps: u64,
    pub ns_per_pkt: Vec<f64>,
    pub delivered_pps: f64,
    pub worst_loss: f64,
    /// Medians over the runs, microseconds (receivers napping: up to 1 ms is theirs).
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub foreign_cores: f64,
    pub backend: String,
    pub workers: usize,
    pub profile: String,
    pub syscalls_per_pkt: Option<f64>,
}

impl SfuSummary {
    pub fn of(
        settings: &SfuSettings,
        case: SfuCase,
        samples: &[MeetingSample],
        syscalls: Option<f64>,
    ) -> Self {
        let meeting = settings.meeting(case, settings.window);
        let first = samples.first().expect("every case ran at least once (reps > 0)");
        let median_of = |f: &dyn Fn(&MeetingSample) -> Option<f64>| {
            let values: Vec<f64> = samples.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| median(values))
        };
        Self {
            case,
            conferences: meeting.conferences,
            participants: meeting.participants(),
            offered_pps: meeting.offered_pps(),
            ns_per_pkt: samples.iter().map(MeetingSample::ns_per_pkt).collect(),
            delivered_pps: median_of(&|s| Some(s.delivered_pps())).unwrap_or(0.0),
            worst_loss: samples.iter().map(MeetingSample::loss).fold(0.0, f64::max),
            p50_us: median_of(&|s| s.report.total.latency.p50_us),
            p99_us: median_of(&|s| s.report.total.latency.p99_us),
            p999_us: median_of(&|s| s.report.total.latency.p999_us),
            foreign_cores: median_of(&|s| Some(s.foreign_cores)).unwrap_or(0.0),
            backend: first.backend.clone(),
            workers: first.workers,
            profile: first.report.profile.clone(),
            syscalls_per_pkt: syscalls,
        }
    }

    pub fn median(&self) -> f64 {
        median(self.ns_per_pkt.clone())
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Loss below which a rate counts as lossless.
pub const LOSSLESS: f64 = 0.001;
/// The share of the offered rate loadgen must really send for a run to count. A sender that
/// falls behind skips frames rather than numbering them, so they are never lost: without this
/// check, an overloaded load generator would look like a lossless bridge.
pub const KEPT_UP: f64 = 0.97;

/// One run of the search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub offered_pps: u64,
    /// What loadgen really sent, packets/s.
    pub sent_pps: f64,
    pub loss: f64,
}

impl Step {
    pub fn kept_up(&self) -> bool {
        self.sent_pps >= KEPT_UP * self.offered_pps as f64
    }

    pub fn lossless(&self) -> bool {
        self.loss < LOSSLESS && self.kept_up()
    }
}

/// The outcome of [`max_pps_lossless`].
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// The highest offered rate that lost less than [`LOSSLESS`] and that loadgen kept up
    /// with ([`KEPT_UP`]); 0 if none did.
    pub max_pps_lossless: u64,
    pub steps: Vec<Step>,
    /// The run at half of `max_pps_lossless`.
    pub half_load: Option<MeetingSample>,
}

/// Searches the highest offered rate of the meeting configuration with loss under
/// [`LOSSLESS`]: doubling (or halving) from the meeting's own rate until the outcome flips,
/// then bisecting, `steps` runs in all, each `window` long; then runs at half that rate.
/// The conferences stay as the meeting has them; the video rate per participant varies.
pub fn max_pps_lossless(settings: &SfuSettings, steps: usize, window: Duration) -> io::Result<Search> {
    let base = settings.meeting(MEETING, window);
    // Audio alone: the lowest rate the meeting can offer.
    let floor = base.participants() as u64 * crate::loadgen::schedule::AUDIO_PPS;
    let at = |rate: u64, receive: Receive, window: Duration| Meeting {
        video_pps: Meeting::video_pps_for(base.size, base.conferences, rate),
        receive,
        window,
        ..base.clone()
    };
    let mut search = Search::default();
    let (mut good, mut bad): (Option<u64>, Option<u64>) = (None, None);
    let mut rate = base.offered_pps();
    for _ in 0..steps {
        let run = at(rate, Receive::Nap, window);
        let offered = run.offered_pps();
        let sample = meeting::measure(&run, false)?;
        let report = &sample.report;
        let sent_pps = report.packets_out as f64 / report.duration.as_secs_f64().max(1e-9);
        let step = Step { offered_pps: offered, sent_pps, loss: sample.loss() };
        eprintln!(
            "[max-pps] {offered:>7} pkt/s offered, {sent_pps:>9.0} sent: loss {:.3}%{}",
            step.loss * 100.0,
            if step.kept_up() { "" } else { " (loadgen fell behind: does not count)" }
        );
        search.steps.push(step);
        if step.lossless() {
            good = good.max(Some(offered));
        } else {
            bad = Some(bad.map_or(offered, |b: u64| b.min(offered)));
        }
        rate = match (good, bad) {
            (Some(g), None) => g * 2,
            (None, Some(b)) if b / 2 >= floor => b / 2,
            (None, Some(_)) => break,
            (Some(g), Some(b)) if b > g + g / 20 => (g + b) / 2,
            _ => break,
        };
    }
    search.max_pps_lossless = good.unwrap_or(0);
    if let Some(good) = good {
        let half = (good / 2).max(floor);
        let run = at(half, Receive::Nap, settings.window);
        search.half_load = Some(meeting::measure(&run, false)?);
    }
    Ok(search)
}

/// A meeting run for the growth of the bridge's resident memory: sampled after `warmup`
/// and again `window` later ([`MeetingSample::rss_growth_pct`]).
pub fn rss_growth(settings: &SfuSettings, warmup: Duration, window: Duration) -> io::Result<MeetingSample> {
    let run = Meeting { warmup, ..settings.meeting(MEETING, window) };
    meeting::measure(&run, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_fanout_except_the_first() {
        let keys: Vec<String> = CASES.iter().map(SfuCase::key).collect();
        assert_eq!(
            keys,
            ["sfu_gcm", "sfu_cm", "sfu_gcm_fanout4", "sfu_cm_fanout4", "meeting", "meeting_e2ee"]
        );
    }

    #[test]
    fn conferences_follow_the_rate() {
        let settings = SfuSettings {
            rate: 50_000,
            video_pps: 450,
            warmup: Duration::ZERO,
            window: Duration::from_secs(1),
            workers: 2,
            pool_slots: None,
            batch_wait_us: None,
            threads: 2,
        };
        let window = settings.window;
        assert_eq!(settings.meeting(CASES[0], window).conferences, 50);
        assert_eq!(settings.meeting(CASES[2], window).conferences, 20);
        assert_eq!(settings.meeting(MEETING, window).conferences, 4);
        let (plain, e2ee) = (settings.meeting(MEETING, window), settings.meeting(MEETING_E2EE, window));
        assert!(!plain.e2ee && e2ee.e2ee);
        assert_eq!((e2ee.conferences, e2ee.video_pps), (plain.conferences, plain.video_pps), "same load");
    }
}
