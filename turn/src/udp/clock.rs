//! The server's [`Now`] from the engine's monotonic `Instant`, plus wall-clock seconds.
//!
//! Wall-clock time only matters to nonces and REST API usernames, whose resolution is
//! seconds. So the wall clock is read once per [`RESYNC`] of engine time (a vDSO call, no
//! system call) and extrapolated on the monotonic clock in between: relayed packets cost no
//! clock read at all, and a step of the system clock shows within a second.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::server::Now;

/// How long wall-clock time is extrapolated before the system clock is read again.
pub(crate) const RESYNC: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Clock {
    anchor: Instant,
    /// Time since the Unix epoch at `anchor`.
    unix_at_anchor: Duration,
}

impl Clock {
    pub fn new(now: Instant) -> Self {
        Self { anchor: now, unix_at_anchor: unix() }
    }

    /// The time of an input the engine stamped `instant`.
    #[inline]
    pub fn now(&mut self, instant: Instant) -> Now {
        let since = instant.saturating_duration_since(self.anchor);
        if since >= RESYNC {
            *self = Self::new(instant);
            return Now { instant, unix_s: self.unix_at_anchor.as_secs() };
        }
        Now { instant, unix_s: (self.unix_at_anchor + since).as_secs() }
    }
}

fn unix() -> Duration {
    // A clock set before 1970 reads as the epoch: every REST credential looks valid for longer
    // than it is, nonces look fresh; the operator has bigger problems then.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_follow_the_wall_clock_and_resync() {
        let start = Instant::now();
        let mut clock = Clock::new(start);
        let wall = unix().as_secs();
        let now = clock.now(start);
        assert!(now.unix_s.abs_diff(wall) <= 1);
        let later = clock.now(start + Duration::from_millis(500));
        assert!(later.unix_s >= now.unix_s && later.unix_s <= now.unix_s + 1);
        // Past RESYNC the wall clock is read again: virtual engine time does not move it.
        let resynced = clock.now(start + Duration::from_secs(100));
        assert!(resynced.unix_s.abs_diff(unix().as_secs()) <= 1);
        // An earlier instant (a previous turn's) never goes before the anchor.
        assert_eq!(clock.now(start).unix_s, resynced.unix_s);
    }
}
