//! systemd's side of sd_notify(3), for the daemons' tests (included with `#[path]` by
//! `bridge/tests/systemd_readiness.rs`, `signaling/tests/systemd_readiness.rs` and
//! `turn/tests/systemd_readiness.rs`): a unix datagram socket that a daemon started with
//! [`FakeManager::command`] notifies, and the checks every daemon must pass: `READY=1` only
//! once it answers requests, `WATCHDOG=1` after that, `RELOADING=1` and `READY=1` around a
//! SIGHUP where it reloads, `STOPPING=1` and a clean exit on SIGTERM.

#![allow(dead_code)] // each daemon uses the SIGHUP check that fits it

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The watchdog interval the tests ask for: pings every half second.
pub const WATCHDOG: Duration = Duration::from_secs(1);
/// A daemon that does not answer within this is broken (they start in well under a second).
const START_LIMIT: Duration = Duration::from_secs(20);

pub struct FakeManager {
    dir: PathBuf,
    socket: UnixDatagram,
    /// Every notification so far, with when it arrived.
    pub received: Vec<(Instant, String)>,
}

impl Drop for FakeManager {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the daemon under test is reached and stopped.
pub trait Daemon {
    /// One request the daemon serves (its API, a page, a STUN Binding) answered correctly.
    fn answers(&mut self) -> bool;
    fn child(&mut self) -> &mut Child;
    /// The log so far, for failure messages.
    fn log(&self) -> String;
}

impl FakeManager {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fake-systemd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
        socket.set_nonblocking(true).unwrap();
        Self { dir, socket, received: Vec::new() }
    }

    /// `program` with the environment systemd gives a `Type=notify` service with `WatchdogSec=`
    /// (WATCHDOG_PID left out: the daemon is the process we start, and unset means "you").
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("NOTIFY_SOCKET", self.dir.join("notify"))
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env_remove("WATCHDOG_PID");
        command
    }

    /// Takes what has arrived; returns how many notifications that was.
    fn drain(&mut self) -> usize {
        let mut buf = [0u8; 4096];
        let before = self.received.len();
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.received.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
        self.received.len() - before
    }

    fn count(&self, message: &str) -> usize {
        self.received.iter().filter(|(_, m)| m.lines().any(|l| l == message)).count()
    }

    /// Waits up to `limit` for a notification with the line `message` beyond the first `seen`.
    fn wait_for(&mut self, message: &str, seen: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.drain();
            if self.count(message) > seen {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn history(&self) -> String {
        self.received.iter().map(|(_, m)| format!("{m:?}")).collect::<Vec<_>>().join(", ")
    }

    /// Start-up: polls the daemon while waiting for `READY=1`. At the moment READY arrives the
    /// daemon must answer at once; nothing but STATUS may come before it.
    pub fn ready_only_when_serving(&mut self, daemon: &mut impl Daemon) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            self.drain();
            if self.count("READY=1") > 0 {
                break;
            }
            if let Some(status) = daemon.child().try_wait().unwrap() {
                panic!("the daemon exited ({status}) before READY=1; log:\n{}", daemon.log());
            }
            assert!(Instant::now() < deadline, "no READY=1 within {START_LIMIT:?}; log:\n{}", daemon.log());
            // Polling before READY keeps the test honest: a daemon that answers early is fine.
            let _ = daemon.answers();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(daemon.answers(), "READY=1 came but the daemon does not answer; log:\n{}", daemon.log());
        let first = self.received.iter().position(|(_, m)| m.lines().any(|l| l == "READY=1")).unwrap();
        // Nothing but a status line before READY=1: no watchdog ping, no reload, no stop.
        for (_, message) in &self.received[..first] {
            assert!(message.starts_with("STATUS="), "{message:?} before READY=1: {}", self.history());
        }
    }

    /// After READY: `WATCHDOG=1` every half interval (at least 3 in 2.5 intervals).
    pub fn watchdog_pings(&mut self, daemon: &mut impl Daemon) {
        let start = Instant::now();
        let seen = self.count("WATCHDOG=1");
        for ping in 1..=3 {
            assert!(
                self.wait_for("WATCHDOG=1", seen + ping - 1, WATCHDOG * 3),
                "watchdog ping {ping} did not come: {}; log:\n{}",
                self.history(),
                daemon.log()
            );
        }
        let elapsed = start.elapsed();
        assert!(elapsed < WATCHDOG * 5 / 2, "3 pings took {elapsed:?} with WATCHDOG_USEC {WATCHDOG:?}");
        assert!(daemon.answers(), "still serving after the pings");
    }

    /// SIGHUP where the daemon reloads: `RELOADING=1` with `MONOTONIC_USEC=`, then `READY=1`,
    /// and it still answers.
    pub fn reload(&mut self, daemon: &mut impl Daemon) {
        let readies = self.count("READY=1");
        signal(daemon.child(), "HUP");
        assert!(
            self.wait_for("RELOADING=1", 0, Duration::from_secs(5)),
            "no RELOADING=1 after SIGHUP: {}; log:\n{}",
            self.history(),
            daemon.log()
        );
        let reloading = self.received.iter().find(|(_, m)| m.starts_with("RELOADING=1")).unwrap();
        assert!(reloading.1.contains("\nMONOTONIC_USEC="), "{:?}", reloading.1);
        assert!(self.wait_for("READY=1", readies, Duration::from_secs(5)), "no READY=1 after the reload");
        assert!(daemon.answers(), "serving after the reload; log:\n{}", daemon.log());
    }

    /// SIGHUP where the daemon has nothing to reload: it must survive it (SIGHUP's default
    /// action ends a process) and keep serving.
    pub fn hangup_survived(&mut self, daemon: &mut impl Daemon) {
        signal(daemon.child(), "HUP");
        std::thread::sleep(Duration::from_millis(300));
        assert!(daemon.child().try_wait().unwrap().is_none(), "SIGHUP ended it; log:\n{}", daemon.log());
        assert!(daemon.answers(), "serving after SIGHUP");
    }

    /// SIGTERM: `STOPPING=1`, then exit status 0.
    pub fn stops_cleanly(&mut self, daemon: &mut impl Daemon) {
        signal(daemon.child(), "TERM");
        assert!(
            self.wait_for("STOPPING=1", 0, Duration::from_secs(10)),
            "no STOPPING=1 after SIGTERM: {}; log:\n{}",
            self.history(),
            daemon.log()
        );
        let status = wait_exit(daemon.child(), Duration::from_secs(15));
        assert!(status.success(), "exit after SIGTERM: {status}; log:\n{}", daemon.log());
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{name}");
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
