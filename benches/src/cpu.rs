//! CPU time (and resident memory) of another process, from `/proc`.
//!
//! The first field of `/proc/<pid>/task/<tid>/schedstat` is the thread's time on CPU in
//! nanoseconds (the scheduler's `sum_exec_runtime`), far finer than the clock ticks of
//! `/proc/<pid>/stat`. It is updated when the thread is switched out or at a scheduler tick,
//! so a thread that is running right now may be behind by up to one tick; `bench-report`
//! reads it while the forwarder is idle, between bursts of traffic, where it is exact.

use std::fs;
use std::io;

/// Nanoseconds on CPU of every thread of process `pid`, summed.
///
/// Threads that exit between listing and reading are skipped; a forwarder's threads live as
/// long as the measurement, so none goes missing from a window.
pub fn process_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        match fs::read_to_string(&path) {
            Ok(text) => total += parse_schedstat(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Resident memory of process `pid` (`VmRSS` in `/proc/<pid>/status`), in KiB.
pub fn process_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    // "VmRSS:	  123456 kB": the unit follows the number.
    let value = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
    value
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/<pid>/status"))
}

/// Voluntary context switches of every thread of process `pid`, summed: how often the
/// process went to sleep waiting for work, so (in a window where it ends idle) how often it
/// was woken.
pub fn process_sleeps(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        match fs::read_to_string(task?.path().join("status")) {
            Ok(text) => total += status_field(&text, "voluntary_ctxt_switches:").unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)).and_then(|value| value.trim().parse().ok())
}

/// Nanoseconds the whole machine spent busy (every CPU, any process, kernel included; steal
/// time excluded), from the first line of `/proc/stat`. Tick-sampled, so only good to about
/// 10 ms: enough to tell how much CPU others took during a window of a second or more.
pub fn machine_busy_ns() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected first line in /proc/stat");
    let line = stat.lines().next().filter(|l| l.starts_with("cpu ")).ok_or_else(bad)?;
    let ticks: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().map_err(|_| bad()))
        .collect::<io::Result<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| ticks.get(i)).sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    Ok(busy * 1_000_000_000 / hz)
}

/// The first field of a schedstat line: "<ns on cpu> <ns waiting> <timeslices>".
fn parse_schedstat(text: &str) -> io::Result<u64> {
    text.split_ascii_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unexpected schedstat: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_first_field_is_cpu_time() {
        assert_eq!(parse_schedstat("123456 789 10\n").unwrap(), 123_456);
        assert!(parse_schedstat("").is_err());
    }

    #[test]
    fn status_fields_are_found_by_key() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t42\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_field(status, "voluntary_ctxt_switches:"), Some(42));
        assert_eq!(status_field(status, "nonvoluntary_ctxt_switches:"), Some(7));
    }

    #[test]
    fn own_process_has_spent_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        assert!(process_ns(std::process::id()).unwrap() > 10_000_000);
    }
}
