//! When each participant sends what: audio every 20 ms, video in frame bursts like an encoder.
//!
//! Everything here is a pure function of time and counters, so a participant's traffic is
//! reproducible and the average video rate is exactly what was asked for: a group of pictures
//! (keyframe interval) carries `video_pps x gop seconds` packets, the keyframe `keyframe_weight`
//! times as many as each delta frame, spread by integer rounding of the cumulative count.
//!
//! A frame is encoded at its frame time; when its packets leave is the pacer's choice
//! ([`VideoPattern::pace_pps`]). Browsers pace: libwebrtc's pacer sends video at a multiple
//! of the target rate (2.5 by default), so a keyframe leaves over tens of milliseconds rather
//! than in one burst. Unpaced, every frame leaves in one burst.

/// Audio packets per second: 20 ms Opus frames.
pub const AUDIO_PPS: u64 = 50;
pub const AUDIO_INTERVAL_NS: u64 = 1_000_000_000 / AUDIO_PPS;
/// A sender this far behind its schedule (a stalled thread) skips ahead instead of sending
/// everything it owes in one burst; skipped packets are never numbered, so never "lost".
pub const MAX_LAG_NS: u64 = 100_000_000;

/// The video pattern every participant follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoPattern {
    /// Average packets per second.
    pub pps: u32,
    pub fps: u32,
    /// Frames from one keyframe to the next (the first frame of each group is the keyframe).
    pub gop_frames: u32,
    /// A keyframe's size in delta frames; 1 = no keyframes stand out.
    pub keyframe_weight: u32,
    /// The pacer's rate in packets per second; 0 = no pacer, frames leave in one burst.
    pub pace_pps: u32,
}

impl VideoPattern {
    /// `keyframe_interval_s` 0 means no keyframes (groups of one second, all frames alike).
    pub fn new(pps: u32, fps: u32, keyframe_interval_s: u32, keyframe_weight: u32) -> Self {
        let fps = fps.max(1);
        let (gop_frames, keyframe_weight) = match keyframe_interval_s {
            0 => (fps, 1),
            s => (fps * s, keyframe_weight.max(1)),
        };
        Self { pps, fps, gop_frames, keyframe_weight, pace_pps: 0 }
    }

    /// The same pattern sent through a pacer at `factor` times the average rate (at least one
    /// packet per second); 0 = unpaced.
    pub fn paced(self, factor: f64) -> Self {
        let pace_pps = if factor > 0.0 { (f64::from(self.pps) * factor).ceil().max(1.0) as u32 } else { 0 };
        Self { pace_pps, ..self }
    }

    /// Send time of frame `frame`, relative to the stream's start.
    pub fn frame_time_ns(&self, frame: u64) -> u64 {
        frame * 1_000_000_000 / u64::from(self.fps)
    }

    /// Packets of frame `frame`.
    pub fn packets_in_frame(&self, frame: u64) -> u32 {
        let in_gop = frame % u64::from(self.gop_frames);
        (self.cumulative(in_gop + 1) - self.cumulative(in_gop)) as u32
    }

    /// The largest frame, for sizing buffers.
    pub fn max_packets_in_frame(&self) -> u32 {
        (0..u64::from(self.gop_frames)).map(|f| self.packets_in_frame(f)).max().unwrap_or(0)
    }

    /// Packets in the first `frames` frames of a group.
    fn cumulative(&self, frames: u64) -> u64 {
        let per_gop = u64::from(self.pps) * u64::from(self.gop_frames) / u64::from(self.fps);
        let weight = |f: u64| if f == 0 { 0 } else { u64::from(self.keyframe_weight) + f - 1 };
        let units = weight(u64::from(self.gop_frames));
        per_gop * weight(frames) / units
    }

    /// The RTP timestamp of a frame (90 kHz clock).
    pub fn rtp_timestamp(&self, frame: u64) -> u32 {
        (frame * crate::loadgen::wire::VIDEO_CLOCK / u64::from(self.fps)) as u32
    }
}

/// Spreads participants over a period so that they do not all send at the same instant:
/// participant `i` of `count` starts `i / count` of the way into `period_ns`.
pub fn phase_ns(i: usize, count: usize, period_ns: u64) -> u64 {
    period_ns * i as u64 / count.max(1) as u64
}

/// Where participant `i` of `count` starts: its audio and frame phases, and how far into its
/// group of pictures. Without the last, every participant's keyframe would fall in the same
/// frame interval, a burst of `count` keyframes times the fan-out that no meeting of people
/// who joined at different times ever sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    pub audio_ns: u64,
    pub video_ns: u64,
    pub first_frame: u64,
}

impl Phases {
    pub fn of(i: usize, count: usize, video: &VideoPattern) -> Self {
        let frame_ns = 1_000_000_000 / u64::from(video.fps.max(1));
        let group = video.gop_frames as usize;
        Self {
            audio_ns: phase_ns(i, count, AUDIO_INTERVAL_NS),
            video_ns: phase_ns(i, count, frame_ns),
            first_frame: (group * i / count.max(1)) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_carries_exactly_the_asked_rate() {
        let video = VideoPattern::new(300, 30, 2, 5);
        let gop: u32 = (0..60).map(|f| video.packets_in_frame(f)).sum();
        assert_eq!(gop, 600);
        // The keyframe is about five delta frames; deltas differ by one packet at most.
        let key = video.packets_in_frame(0);
        let deltas: Vec<u32> = (1..60).map(|f| video.packets_in_frame(f)).collect();
        let (lo, hi) = (*deltas.iter().min().unwrap(), *deltas.iter().max().unwrap());
        assert!(hi - lo <= 1, "{deltas:?}");
        assert!((4 * hi..=6 * hi).contains(&key), "keyframe {key}, deltas {lo}..{hi}");
        assert_eq!(video.max_packets_in_frame(), key);
        assert_eq!(video.packets_in_frame(60), key, "the next group starts with a keyframe");
    }

    #[test]
    fn keyframes_of_different_participants_fall_in_different_frames() {
        let video = VideoPattern::new(300, 30, 2, 5);
        let firsts: Vec<u64> = (0..10).map(|i| Phases::of(i, 10, &video).first_frame).collect();
        assert_eq!(firsts, [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]);
        assert_eq!(Phases::of(3, 10, &video).video_ns, 33_333_333 * 3 / 10);
        assert_eq!(Phases::of(3, 10, &video).audio_ns, 6_000_000);
    }

    #[test]
    fn without_keyframes_every_second_carries_the_rate() {
        let video = VideoPattern::new(100, 30, 0, 5);
        let second: u32 = (0..30).map(|f| video.packets_in_frame(f)).sum();
        assert_eq!(second, 100);
        assert_eq!(video.frame_time_ns(30), 1_000_000_000);
    }
}
