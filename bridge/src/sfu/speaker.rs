//! Dominant speaker selection for one conference, from the audio levels (RFC 6464) senders
//! put in their packets.
//!
//! Every tick (a few per second) each endpoint's mean loudness since the last tick feeds a
//! moving average. The dominant speaker changes only when someone else is clearly louder for a
//! while, so a cough or a short overlap does not move it: the challenger must beat the current
//! speaker's average by [`SWITCH_MARGIN`] and be above [`SPEECH_FLOOR`].

use super::ids::EndpointId;

/// Loudness (127 minus the level in -dBov) below which an endpoint counts as silent: -85 dBov.
pub const SPEECH_FLOOR: f32 = 42.0;
/// How much louder a challenger must be than the current dominant speaker.
pub const SWITCH_MARGIN: f32 = 1.25;
/// Weight of the newest tick in the moving average.
const SMOOTHING: f32 = 0.4;

#[derive(Debug, Default)]
pub struct SpeakerSelector {
    current: Option<EndpointId>,
    averages: Vec<(EndpointId, f32)>,
}

impl SpeakerSelector {
    pub fn dominant(&self) -> Option<EndpointId> {
        self.current
    }

    /// One tick: each endpoint's (loudness sum, sample count) since the last. Endpoints not
    /// listed have left. Returns the dominant speaker after the tick.
    pub fn update(&mut self, samples: &[(EndpointId, u32, u32)]) -> Option<EndpointId> {
        self.averages.retain(|(id, _)| samples.iter().any(|(s, _, _)| s == id));
        for &(id, sum, count) in samples {
            let mean = if count == 0 { 0.0 } else { sum as f32 / count as f32 };
            match self.averages.iter_mut().find(|(a, _)| *a == id) {
                Some((_, avg)) => *avg += SMOOTHING * (mean - *avg),
                None => self.averages.push((id, SMOOTHING * mean)),
            }
        }
        let average_of = |id| self.averages.iter().find(|(a, _)| *a == id).map(|(_, v)| *v);
        let current_average = self.current.and_then(average_of);
        if current_average.is_none() {
            self.current = None; // left the conference
        }
        let loudest = self.averages.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((challenger, level)) = loudest {
            let bar = current_average.map_or(SPEECH_FLOOR, |c| (c * SWITCH_MARGIN).max(SPEECH_FLOOR));
            if Some(challenger) != self.current && level > bar {
                self.current = Some(challenger);
            }
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EndpointId = EndpointId(1);
    const B: EndpointId = EndpointId(2);

    fn ticks(selector: &mut SpeakerSelector, a: u32, b: u32, n: usize) -> Option<EndpointId> {
        let mut dominant = None;
        for _ in 0..n {
            dominant = selector.update(&[(A, a * 50, 50), (B, b * 50, 50)]);
        }
        dominant
    }

    #[test]
    fn silence_has_no_dominant_speaker() {
        let mut selector = SpeakerSelector::default();
        assert_eq!(ticks(&mut selector, 0, 10, 20), None);
    }

    #[test]
    fn the_loudest_speaker_dominates_and_a_blip_does_not_switch() {
        let mut selector = SpeakerSelector::default();
        assert_eq!(ticks(&mut selector, 90, 0, 10), Some(A));
        // B speaks up for one tick as loud as A: not enough.
        assert_eq!(ticks(&mut selector, 90, 95, 1), Some(A));
        // A falls silent while B keeps talking: B takes over.
        assert_eq!(ticks(&mut selector, 0, 95, 10), Some(B));
    }

    #[test]
    fn a_dominant_speaker_who_leaves_is_forgotten() {
        let mut selector = SpeakerSelector::default();
        assert_eq!(ticks(&mut selector, 90, 0, 10), Some(A));
        assert_eq!(selector.update(&[(B, 0, 0)]), None);
    }
}
