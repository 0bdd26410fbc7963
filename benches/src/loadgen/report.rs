//! The result of a run: per-stream and total counts, loss, duplicates, reordering and latency
//! percentiles, as a table for people and as JSON for `bench-report` and the tests.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::histogram::Histogram;
use super::layout::Layout;
use super::participant::{Participant, Unexpected};
use super::wire::StreamKind;

/// One receiver's view of one sender's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReport {
    pub receiver: u32,
    pub sender: u32,
    pub conference: usize,
    pub kind: StreamKind,
    /// Packets the sender sent on this stream.
    pub sent: u64,
    /// Distinct packets received.
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// First arrivals after a higher sequence number.
    pub reordered: u64,
    pub latency_min_us: Option<f64>,
    pub latency_mean_us: Option<f64>,
    pub latency_max_us: Option<f64>,
}

/// Latency percentiles in microseconds (`None` when nothing arrived).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
}

impl Latency {
    fn of(histogram: &Histogram) -> Self {
        let us = |ns: Option<u64>| ns.map(|ns| ns as f64 / 1000.0);
        Self {
            p50_us: us(histogram.quantile(0.5)),
            p99_us: us(histogram.quantile(0.99)),
            p999_us: us(histogram.quantile(0.999)),
            min_us: us(histogram.min()),
            max_us: us(histogram.max()),
        }
    }
}

/// Sums over a set of streams.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub streams: usize,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub latency: Latency,
}

impl Totals {
    fn add(&mut self, stream: &StreamReport) {
        self.streams += 1;
        self.sent += stream.sent;
        self.received += stream.received;
        self.lost += stream.lost;
        self.duplicates += stream.duplicates;
        self.reordered += stream.reordered;
    }

    /// Lost as a percentage of the packets that should have arrived.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { 100.0 * self.lost as f64 / self.sent as f64 }
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    /// The run's settings, as JSON (echoed into the result file).
    pub config: Value,
    /// The SRTP profile the bridge chose ("none" in relay mode).
    pub profile: String,
    /// Whether the media was end-to-end encrypted (SFrame) as well.
    pub e2ee: bool,
    pub duration: Duration,
    pub streams: Vec<StreamReport>,
    pub audio: Totals,
    pub video: Totals,
    pub total: Totals,
    /// Media packets sent by all participants (each sent once, however many receive it).
    pub packets_out: u64,
    /// Media datagrams received by all participants, duplicates included.
    pub packets_in: u64,
    /// Packets the kernel (or SRTP) refused to send.
    pub send_failed: u64,
    pub unexpected: Unexpected,
}

/// Everything the workers handed back, for [`Report::build`].
#[derive(Debug)]
pub struct Collected {
    /// Every participant, in index order.
    pub participants: Vec<Participant>,
    pub latency: [Histogram; 2],
    pub packets_out: u64,
    pub packets_in: u64,
    pub send_failed: u64,
}

impl Report {
    pub fn build(
        config: Value,
        duration: Duration,
        layout: &Layout,
        collected: &Collected,
        e2ee: bool,
    ) -> Self {
        let participants = &collected.participants;
        let mut streams = Vec::new();
        let (mut audio, mut video) = (Totals::default(), Totals::default());
        let mut unexpected = Unexpected::default();
        for receiver in participants {
            let conference = receiver.conference();
            for &sender in layout.members(conference) {
                if sender == receiver.index {
                    continue;
                }
                for kind in StreamKind::BOTH {
                    let stats = receiver.incoming(layout.slot(sender as usize), kind);
                    let sent = participants[sender as usize].sent(kind);
                    let us = |ns: u64| ns as f64 / 1000.0;
                    let got = stats.seq.unique() > 0;
                    let stream = StreamReport {
                        receiver: receiver.index,
                        sender,
                        conference,
                        kind,
                        sent,
                        received: stats.seq.unique(),
                        lost: stats.seq.lost(sent),
                        duplicates: stats.duplicates(),
                        reordered: stats.seq.late(),
                        latency_min_us: got.then(|| us(stats.latency_min_ns)),
                        latency_mean_us: stats.latency_mean_ns().map(us),
                        latency_max_us: got.then(|| us(stats.latency_max_ns)),
                    };
                    match kind {
                        StreamKind::Audio => audio.add(&stream),
                        StreamKind::Video => video.add(&stream),
                    }
                    streams.push(stream);
                }
            }
            let u = receiver.unexpected;
            unexpected.misrouted += u.misrouted;
            unexpected.malformed += u.malformed;
            unexpected.srtp_failed += u.srtp_failed;
            unexpected.sframe_failed += u.sframe_failed;
            unexpected.rtcp += u.rtcp;
            unexpected.stun += u.stun;
            unexpected.other += u.other;
        }
        let [audio_latency, video_latency] = &collected.latency;
        let mut all = audio_latency.clone();
        all.merge(video_latency);
        audio.latency = Latency::of(audio_latency);
        video.latency = Latency::of(video_latency);
        let mut total = Totals::default();
        for t in [&audio, &video] {
            total.streams += t.streams;
            total.sent += t.sent;
            total.received += t.received;
            total.lost += t.lost;
            total.duplicates += t.duplicates;
            total.reordered += t.reordered;
        }
        total.latency = Latency::of(&all);
        let profile = participants
            .first()
            .and_then(Participant::profile)
            .map_or_else(|| "none".to_owned(), |p| format!("{p:?}"));
        Self {
            config,
            profile,
            e2ee,
            duration,
            streams,
            audio,
            video,
            total,
            packets_out: collected.packets_out,
            packets_in: collected.packets_in,
            send_failed: collected.send_failed,
            unexpected,
        }
    }

    pub fn pps_out(&self) -> f64 {
        self.packets_out as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    pub fn pps_in(&self) -> f64 {
        self.packets_in as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Streams (receiver, sender, kind) that should have had packets and had none.
    pub fn silent_streams(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams.iter().filter(|s| s.sent > 0 && s.received == 0)
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "{:<6} {:>7} {:>10} {:>10} {:>8} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "stream",
            "streams",
            "sent",
            "received",
            "lost",
            "loss%",
            "dup",
            "reord",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        );
        for (name, t) in [("audio", &self.audio), ("video", &self.video), ("total", &self.total)] {
            let _ = writeln!(
                out,
                "{:<6} {:>7} {:>10} {:>10} {:>8} {:>7.3} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9}",
                name,
                t.streams,
                t.sent,
                t.received,
                t.lost,
                t.loss_pct(),
                t.duplicates,
                t.reordered,
                opt(t.latency.p50_us),
                opt(t.latency.p99_us),
                opt(t.latency.p999_us),
                opt(t.latency.max_us),
            );
        }
        let _ = writeln!(
            out,
            "packets/s out {:.0}, in {:.0} over {:.1} s; SRTP {}; E2EE {}; send failures {}",
            self.pps_out(),
            self.pps_in(),
            self.duration.as_secs_f64(),
            self.profile,
            if self.e2ee { "SFrame AES_128_GCM_SHA256_128" } else { "off" },
            self.send_failed
        );
        let u = &self.unexpected;
        if u.misrouted + u.malformed + u.srtp_failed + u.sframe_failed > 0 {
            let _ = writeln!(
                out,
                "unexpected: {} misrouted, {} malformed, {} failed SRTP, {} failed SFrame",
                u.misrouted, u.malformed, u.srtp_failed, u.sframe_failed
            );
        }
        let silent = self.silent_streams().count();
        if silent > 0 {
            let _ = writeln!(out, "{silent} streams received nothing");
        }
        let mut worst: Vec<&StreamReport> = self.streams.iter().filter(|s| s.lost > 0).collect();
        worst.sort_by_key(|s| std::cmp::Reverse(s.lost));
        for s in worst.iter().take(5) {
            let _ = writeln!(
                out,
                "  lossiest: {} -> {} {}: {} of {} lost",
                s.sender,
                s.receiver,
                s.kind.name(),
                s.lost,
                s.sent
            );
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let latency = |l: &Latency| json!({"p50_us": l.p50_us, "p99_us": l.p99_us, "p999_us": l.p999_us, "min_us": l.min_us, "max_us": l.max_us});
        let totals = |t: &Totals| {
            json!({
                "streams": t.streams, "sent": t.sent, "received": t.received, "lost": t.lost,
                "loss_pct": t.loss_pct(), "duplicates": t.duplicates, "reordered": t.reordered,
                "latency": latency(&t.latency),
            })
        };
        let streams: Vec<Value> = self
            .streams
            .iter()
            .map(|s| {
                json!({
                    "receiver": s.receiver, "sender": s.sender, "conference": s.conference,
                    "kind": s.kind.name(), "sent": s.sent, "received": s.received, "lost": s.lost,
                    "duplicates": s.duplicates, "reordered": s.reordered,
                    "latency_min_us": s.latency_min_us, "latency_mean_us": s.latency_mean_us,
                    "latency_max_us": s.latency_max_us,
                })
            })
            .collect();
        let u = &self.unexpected;
        json!({
            "config": self.config,
            "srtp_profile": self.profile,
            "e2ee": self.e2ee,
            "duration_s": self.duration.as_secs_f64(),
            "packets_out": self.packets_out,
            "packets_in": self.packets_in,
            "pps_out": self.pps_out(),
            "pps_in": self.pps_in(),
            "send_failed": self.send_failed,
            "audio": totals(&self.audio),
            "video": totals(&self.video),
            "total": totals(&self.total),
            "unexpected": {
                "misrouted": u.misrouted, "malformed": u.malformed, "srtp_failed": u.srtp_failed,
                "sframe_failed": u.sframe_failed,
                "rtcp": u.rtcp, "stun": u.stun, "other": u.other,
            },
            "streams": streams,
        })
    }
}
