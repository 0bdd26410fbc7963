//! The whole appliance with real browsers: headless Chromiums on the meeting page it serves
//! (HTTPS on 8443, its self-signed certificate), driven through `window.meetingTest`.
//!
//! Everything runs in a private network namespace (`unshare -n`), the appliance included:
//! `appliance/tests/browser/run.sh` sets lo up, starts the appliance with a fresh HOME, waits
//! until its page answers, runs `meeting.py <scenario>` and stops the appliance.
//! `scripts/install-test-deps.sh` (run once per test binary) installs Chromium and
//! chromedriver. Nothing is skipped: a missing tool, a failed install or a refused `unshare`
//! fails the test.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const APPLIANCE_BIN: &str = env!("CARGO_BIN_EXE_appliance");

/// One scenario at a time: the appliance takes fixed ports (separate namespaces would allow
/// it), but three browsers' worth of encoders on two cores would starve a second meeting.
static MEETING: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("appliance/ has a parent").to_path_buf()
}

/// Runs scripts/install-test-deps.sh once per test binary; every test gets the same verdict.
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

/// Whether we run as root (`id -u`): root may `unshare -n` directly, others need a user
/// namespace too.
fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Runs `command` in its own process group, collecting its output; after `limit` the whole
/// group is killed (the scripts bound themselves; this is the last line).
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pgid = child.id();
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
            // The process group this test created for the child (kill(1): no libc here).
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{pgid}")).status();
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

/// `unshare -n appliance/tests/browser/run.sh <scenario>` (`unshare -rn` when not root).
fn scenario(name: &str) {
    install_test_deps();
    let _one_at_a_time = MEETING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = Command::new("unshare");
    if !is_root() {
        command.arg("--map-root-user");
    }
    command
        .arg("--net")
        .arg(repo_root().join("appliance/tests/browser/run.sh"))
        .arg(name)
        .env("APPLIANCE_BIN", APPLIANCE_BIN)
        .current_dir(repo_root());
    let started = Instant::now();
    let out = run_bounded(command, Duration::from_secs(240));
    println!("{}", out.stdout);
    eprintln!("{}", out.stderr);
    eprintln!("the {name} scenario took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "the {name} scenario failed ({}):\n--- meeting.py output ---\n{}\n--- stderr (meeting.py, appliance) ---\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("\"ok\": true"), "no success line from the {name} scenario:\n{}", out.stdout);
}

#[test]
fn two_talk_p2p_three_through_the_bridge_and_back() {
    scenario("topology");
}

#[test]
fn password_lobby_and_chat() {
    scenario("lobby");
}

#[test]
fn an_emptied_room_starts_fresh() {
    scenario("fresh");
}
