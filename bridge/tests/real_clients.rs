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

#[path = "../../scripts/test_harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use harness::{in_private_network, install_test_deps, run_bounded};

const BRIDGE_BIN: &str = env!("CARGO_BIN_EXE_bridge");

/// The meetings must not overlap: same fixed ports in separate namespaces would be fine, but
/// two browsers' worth of encoders on two cores would starve each other.
static MEETING: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    harness::repo_root(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    repo_root().join("bridge/tests/clients")
}

/// `unshare -n bridge/tests/clients/run_meeting.sh <driver>` (`unshare -rn` when not root).
fn meeting(driver: &str) {
    install_test_deps(&repo_root());
    let _one_at_a_time = MEETING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = in_private_network(&clients_dir().join("run_meeting.sh"));
    command.arg(driver).env("BRIDGE_BIN", BRIDGE_BIN).current_dir(repo_root());
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
