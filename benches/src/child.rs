//! The parent side of a forwarder child: start it, learn its port, read its CPU time, and make
//! sure it is gone afterwards.
//!
//! A child has three ways to end, so none outlives `bench-report`: [`Forwarder::stop`] closes
//! its stdin and waits; dropping a [`Forwarder`] (an error, an early return) kills it; and if
//! the parent dies without either (a panic aborts in release builds), the kernel closes the
//! pipe and the child sees end of file on stdin.

use std::io::{self, BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cpu;
use crate::serve::{Ready, ServeOptions};

/// How long a child may take to bind and start its workers.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a child may take to exit once its stdin closed (the engine drains queued sends).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running forwarder child.
#[derive(Debug)]
pub struct Forwarder {
    child: Child,
    /// Closing it tells the child to stop.
    stdin: Option<ChildStdin>,
    ready: Ready,
}

impl Forwarder {
    /// Re-executes this binary as a forwarder child and waits for its ready line.
    pub fn spawn(options: &ServeOptions) -> io::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(options.to_args());
        if let Some(secret) = &options.control_secret {
            command.env("BRIDGE_CONTROL_SECRET", secret);
        }
        let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        // From here on `KillOnDrop` ends the child on every early return.
        let mut guard = KillOnDrop(Some(child));
        let child = guard.0.as_mut().expect("the guard holds the child until defused");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped above");
        let line = read_line_within(stdout, START_TIMEOUT)?;
        let ready = line.parse().map_err(|e: String| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let child = guard.0.take().expect("the guard holds the child until defused");
        Ok(Self { child, stdin, ready })
    }

    /// What the child announced: its port, backend and worker count.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Nanoseconds on CPU of all the child's threads so far.
    pub fn cpu_ns(&self) -> io::Result<u64> {
        cpu::process_ns(self.pid())
    }

    /// Fails when the child has exited: a forwarder that died mid-run invalidates the run.
    pub fn check_alive(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!("forwarder exited during the run ({status})"))),
        }
    }

    /// Closes the child's stdin and waits for it to exit; kills it if it does not in time.
    pub fn stop(mut self) -> io::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("forwarder exited with {status}")))
                };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(io::Error::other("forwarder did not exit within 5 s of its stdin closing; killed it"))
        // Drop kills and reaps it.
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Kills a child that has not been handed over yet.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_and_reap(child);
        }
    }
}

fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill(); // SIGKILL; fails only if it exited meanwhile
    }
    let _ = child.wait();
}

/// The first line the child writes, or an error if none comes within `timeout`. A thread
/// does the read, because a pipe read cannot time out; it ends when the child's stdout closes.
fn read_line_within(stdout: std::process::ChildStdout, timeout: Duration) -> io::Result<String> {
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::Builder::new().name("child-stdout".to_owned()).spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = line_tx.send(result);
    })?;
    match line_rx.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.is_empty() => Ok(line),
        Ok(Ok(_)) => Err(io::Error::other("forwarder exited before it was ready")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "forwarder not ready within 15 s")),
    }
}
