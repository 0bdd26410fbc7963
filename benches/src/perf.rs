//! Counting a process's system calls with `perf stat -e raw_syscalls:sys_enter`.
//!
//! Optional: without a `perf` binary, or where the tracepoint cannot be opened (no tracefs, a
//! restrictive `perf_event_paranoid`), [`available`] says so and the report shows `null`.
//! Tracing every syscall entry costs the traced process a little per call, so syscall counts
//! come from runs of their own, never from the runs whose CPU time is reported.

use std::io::{self, BufRead};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EVENT: &str = "raw_syscalls:sys_enter";
/// Time `perf` gets to open its counters on every thread before traffic starts.
const ATTACH_TIME: Duration = Duration::from_millis(300);

/// Whether `perf stat` can count the syscall tracepoint on this machine.
pub fn available() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", EVENT, "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A `perf stat` attached to every thread of a process.
#[derive(Debug)]
pub struct SyscallCounter {
    perf: Option<Child>,
}

impl SyscallCounter {
    /// Starts counting the syscalls of `pid` and gives `perf` time to attach.
    pub fn attach(pid: u32) -> io::Result<Self> {
        let perf = Command::new("perf")
            .args(["stat", "-x,", "-e", EVENT, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(ATTACH_TIME);
        Ok(Self { perf: Some(perf) })
    }

    /// Stops `perf` and returns the count.
    pub fn finish(mut self) -> io::Result<u64> {
        let mut perf = self.perf.take().expect("a counter is finished once, by value");
        if let Err(e) = interrupt(&perf) {
            let _ = perf.kill();
            let _ = perf.wait();
            return Err(e);
        }
        let output = perf.wait_with_output()?;
        parse_count(&output.stderr).ok_or_else(|| {
            let text = String::from_utf8_lossy(&output.stderr);
            io::Error::other(format!("no {EVENT} count in perf's output: {text:?}"))
        })
    }
}

/// SIGINT: `perf stat` stops counting and prints its counts.
fn interrupt(child: &Child) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: a plain signal to our own child, which has not been reaped (the caller holds it),
    // so the pid cannot name another process.
    if unsafe { libc::kill(pid, libc::SIGINT) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

impl Drop for SyscallCounter {
    fn drop(&mut self) {
        if let Some(perf) = &mut self.perf {
            let _ = perf.kill();
            let _ = perf.wait();
        }
    }
}

/// The count from `perf stat -x,` output: `<count>,<unit>,<event>,...` on the event's line.
fn parse_count(stderr: &[u8]) -> Option<u64> {
    stderr.lines().map_while(Result::ok).find_map(|line| {
        let mut fields = line.split(',');
        let count = fields.next()?;
        (fields.nth(1)? == EVENT).then(|| count.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_comes_from_the_event_line() {
        let out = b"# started on ...\n\n4242,,raw_syscalls:sys_enter,1000,100.00,,\n";
        assert_eq!(parse_count(out), Some(4242));
        assert_eq!(parse_count(b"<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n"), None);
    }
}
