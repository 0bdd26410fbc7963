//! The `appliance` binary under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): exactly
//! one READY=1, and only once both the bridge's control API and the signaling daemon's HTTPS
//! listener answer; watchdog pings after it; STOPPING=1 and exit status 0 on SIGTERM.
//!
//! The appliance takes fixed ports (8080, 8443, 10000, ...), so the test runs itself again in a
//! private network namespace (`unshare --net`, with `--map-root-user` when not root), where it
//! sets lo up and starts the appliance.

#[path = "../../scripts/fake_service_manager.rs"]
mod fake_service_manager;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_service_manager::{Daemon, FakeManager};
use sdnotify::probe;

const BIN: &str = env!("CARGO_BIN_EXE_appliance");
/// Set in the copy of this test that runs inside the namespace.
const INSIDE: &str = "APPLIANCE_SYSTEMD_TEST_INSIDE";
const TEST: &str = "one_ready_once_both_serve_one_watchdog_stopping";

struct Appliance {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon for Appliance {
    /// Both halves: the bridge's control API (`/health` answers 200 without the secret) and
    /// the signaling daemon's HTTPS listener (bytes that are not TLS make it close).
    fn answers(&mut self) -> bool {
        let control: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let signaling: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let timeout = Duration::from_secs(2);
        probe::http_status(control, "/health", timeout).is_ok_and(|status| status == 200)
            && probe::stream_reacts(signaling, b"probe\r\n", timeout).is_ok()
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_ready_once_both_serve_one_watchdog_stopping() {
    if std::env::var_os(INSIDE).is_none() {
        return run_inside_a_private_network();
    }
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
    assert!(status.success(), "ip link set lo up");
    // A fresh HOME: the signaling daemon writes its self-signed certificate under it.
    let home = std::env::temp_dir().join(format!("appliance-systemd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();

    let mut manager = FakeManager::new("appliance");
    let mut child = manager
        .command(BIN)
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the appliance");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut appliance = Appliance { child, log };

    manager.ready_only_when_serving(&mut appliance);
    manager.watchdog_pings(&mut appliance);
    manager.stops_cleanly(&mut appliance);
    let count = |line: &str| manager.received.iter().filter(|(_, m)| m.lines().any(|l| l == line)).count();
    let history: Vec<_> = manager.received.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(count("READY=1"), 1, "one service, one READY=1: {history:?}");
    assert_eq!(count("STOPPING=1"), 1, "{history:?}");
    let _ = std::fs::remove_dir_all(&home);
}

/// Runs this test again inside `unshare --net`, and passes on its verdict.
fn run_inside_a_private_network() {
    let id = Command::new("id").arg("-u").output().expect("run id -u");
    let mut command = Command::new("unshare");
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        command.arg("--map-root-user");
    }
    let out = command
        .arg("--net")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inside the namespace: {}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "the test did not run inside the namespace:\n{stdout}\n{stderr}");
}
