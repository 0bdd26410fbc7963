//! Real WebRTC clients through the bridge: three aiortc participants, then three headless
//! Chromium participants, then two Chromium and one aiortc (which number codecs differently,
//! so the bridge renumbers between them) meet in one conference created through the control
//! API, each sending audio and video, and each must decode the others (Chromium over
//! AEAD_AES_128_GCM).
//!
//! Everything runs in a private network namespace (`unshare -n`), the bridge daemon included:
//! `bridge/tests/clients/run_meeting.sh` starts the bridge, waits for `/v1/health`, runs the
//! Python driver and stops the bridge. `scripts/install-test-deps.sh` (run once per test
//! binary) installs Chromium, chromedriver and the aiortc venv. Nothing is skipped: a missing
//! tool, a failed install or a refused `unshare` fails the test.
//!
//! `sdp_composer_unit_tests` runs the Python unit tests of the SDP composer (stdlib only).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const BRIDGE_BIN: &str = env!("CARGO_BIN_EXE_bridge");

/// The meetings must not overlap: same fixed ports in separate namespaces would be fine, but
/// two browsers' worth of encoders on two cores would starve each other.
static MEETING: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("bridge/ has a parent").to_path_buf()
}

fn clients_dir() -> PathBuf {
    repo_root().join("bridge/tests/clients")
}

/// Runs scripts/install-test-deps.sh once per test binary; every test that needs it gets the
/// same verdict.
fn install_test_deps() {
    static DEPS: OnceLock<Result<(), String>> = OnceLock::new();
    let verdict = DEPS.get_or_init(|| {
        let script = repo_root().join("scripts/install-test-deps.sh");
        let status = Command::new("bash")
            .arg(&script)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if status.success() { Ok(()) } else { Err(format!("{} failed: {status}", script.display())) }
    });
    if let Err(e) = verdict {
        panic!("test dependencies are not installed: {e}");
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` in its own process group, collecting its output; after `limit` the whole
/// group is killed (the scripts bound themselves; this is the last line).
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pgid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group this test created for the child; no memory
            // is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            timed_out = true;
            break child.wait().expect("wait for killed child");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if timed_out {
        panic!(
            "{command:?} did not finish within {limit:?} (killed)\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out_reader.join().unwrap_or_default(),
            err_reader.join().unwrap_or_default()
        );
    }
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// `unshare -n bridge/tests/clients/run_meeting.sh <driver>` (`unshare -rn` when not root).
fn meeting(driver: &str) {
    install_test_deps();
    let _one_at_a_time = MEETING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: geteuid has no preconditions and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = Command::new("unshare");
    if !root {
        command.arg("--map-root-user");
    }
    command
        .arg("--net")
        .arg(clients_dir().join("run_meeting.sh"))
        .arg(driver)
        .env("BRIDGE_BIN", BRIDGE_BIN)
        .current_dir(repo_root());
    let out = run_bounded(command, Duration::from_secs(300));
    println!("{}", out.stdout);
    eprintln!("{}", out.stderr);
    assert!(
        out.status.success(),
        "the {driver} meeting failed ({}):\n--- driver output ---\n{}\n--- stderr (driver, bridge) ---\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("\"ok\": true"), "no success line from the {driver} driver:\n{}", out.stdout);
}

#[test]
fn three_aiortc_participants_decode_each_other() {
    meeting("aiortc");
}

#[test]
fn three_chromium_participants_decode_each_other_over_aes_gcm() {
    meeting("chromium");
}

#[test]
fn chromium_and_aiortc_decode_each_other_through_renumbering() {
    meeting("mixed");
}

#[test]
fn sdp_composer_unit_tests() {
    let mut command = Command::new("python3");
    command
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(clients_dir())
        .args(["-p", "test_*.py"])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_bounded(command, Duration::from_secs(120));
    // unittest reports on stderr.
    eprintln!("{}", out.stderr);
    assert!(
        out.status.success(),
        "python3 -m unittest failed ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains("\nOK"), "unittest ran no test?\n{}", out.stderr);
}
