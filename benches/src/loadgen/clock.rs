//! The one clock loadgen reads: CLOCK_MONOTONIC in nanoseconds. Senders stamp it into every
//! packet and receivers subtract it from their own reading; both run on the same host, so the
//! difference is the one-way latency. The kernel stamps arrivals in CLOCK_REALTIME
//! ([`crate::mmsg::timestamp_arrivals`]); [`Clocks`] maps such a stamp onto CLOCK_MONOTONIC.

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through the pointer, a live local; the clock
    // id is a constant every Linux kernel supports, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Nanoseconds of CLOCK_REALTIME.
pub fn realtime_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as in `now_ns`.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Both clocks read together, to carry a kernel arrival stamp (CLOCK_REALTIME) over to
/// CLOCK_MONOTONIC. Read once per receive batch, the mapping is off only by the realtime
/// clock's slew since (at most 500 ppm of microseconds); a step of the realtime clock
/// between the arrival and the read is caught by the clamp in [`Clocks::monotonic`].
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub monotonic_ns: u64,
    pub realtime_ns: u64,
}

impl Clocks {
    pub fn now() -> Self {
        Self { monotonic_ns: now_ns(), realtime_ns: realtime_ns() }
    }

    /// The monotonic time of a realtime stamp taken before this reading; a stamp that claims
    /// to be later (the realtime clock was stepped back) maps to the reading itself.
    pub fn monotonic(&self, realtime_ns: u64) -> u64 {
        let age = self.realtime_ns.saturating_sub(realtime_ns);
        self.monotonic_ns.saturating_sub(age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realtime_stamp_maps_to_as_long_ago_on_the_monotonic_clock() {
        let clocks = Clocks { monotonic_ns: 5_000, realtime_ns: 1_000_000 };
        assert_eq!(clocks.monotonic(999_000), 4_000);
        assert_eq!(clocks.monotonic(1_000_000), 5_000);
        // Stepped back: no arrival from the future.
        assert_eq!(clocks.monotonic(1_000_500), 5_000);
        // Older than the monotonic clock itself: saturate, never wrap.
        assert_eq!(clocks.monotonic(0), 0);
    }
}
