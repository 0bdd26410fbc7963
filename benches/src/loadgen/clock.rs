//! The one clock loadgen reads: CLOCK_MONOTONIC in nanoseconds. Senders stamp it into every
//! packet and receivers subtract it from their own reading; both run on the same host, so the
//! difference is the one-way latency (bridge, kernel and our own queueing included).

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through the pointer, a live local; the clock
    // id is a constant every Linux kernel supports, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
