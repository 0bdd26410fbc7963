//! The whole appliance with real browsers: headless Chromiums on the meeting page it serves
//! (HTTPS on 8443, its self-signed certificate), driven through `window.meetingTest`.
//!
//! Everything runs in a private network namespace (`unshare -n`), the appliance included:
//! `appliance/tests/browser/run.sh` sets lo up, starts the appliance with a fresh HOME, waits
//! until its page answers, runs `meeting.py <scenario>` and stops the appliance.
//! `scripts/install-test-deps.sh` (run once per test binary) installs Chromium and
//! chromedriver. Nothing is skipped: a missing tool, a failed install or a refused `unshare`
//! fails the test.

#[path = "../../scripts/test_harness.rs"]
mod harness;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{in_private_network, install_test_deps, run_bounded};

const APPLIANCE_BIN: &str = env!("CARGO_BIN_EXE_appliance");

/// One scenario at a time: the appliance takes fixed ports (separate namespaces would allow
/// it), but three browsers' worth of encoders on two cores would starve a second meeting.
static MEETING: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    harness::repo_root(env!("CARGO_MANIFEST_DIR"))
}

/// `unshare -n appliance/tests/browser/run.sh <scenario>` (`unshare -rn` when not root).
fn scenario(name: &str) {
    scenario_within(name, Duration::from_secs(150));
}

/// A scenario that meeting.py bounds to `limit` (run.sh and this test allow a little more).
fn scenario_within(name: &str, limit: Duration) {
    install_test_deps(&repo_root());
    let _one_at_a_time = MEETING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = in_private_network(&repo_root().join("appliance/tests/browser/run.sh"));
    command
        .arg(name)
        .arg(format!("--timeout={}", limit.as_secs()))
        .env("APPLIANCE_BIN", APPLIANCE_BIN)
        .env("MEETING_TIMEOUT_S", (limit.as_secs() + 30).to_string())
        .current_dir(repo_root());
    let started = Instant::now();
    let out = run_bounded(command, limit + Duration::from_secs(90));
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

/// Issue 7's browser test: end-to-end encryption through P2P, the bridge and back, another
/// passphrase, the bridge's test tap and a passphrase change. Needs the appliance built with
/// the `test-tap` feature, as `scripts/test.sh` builds it.
#[test]
fn end_to_end_encryption_with_a_shared_passphrase() {
    scenario_within("e2ee", Duration::from_secs(240));
}
