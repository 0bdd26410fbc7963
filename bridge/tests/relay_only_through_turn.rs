//! Participants behind a firewall that lets nothing but TURN through: three headless Chromium
//! participants whose peer connections are forced to relay-only (`iceTransportPolicy:
//! "relay"`) reach the bridge through our `turn` daemon and decode each other, with the
//! browsers talking to the TURN server over UDP, over TCP, and over TLS (`turns:`, a
//! self-signed certificate that Chromium takes with `--ignore-certificate-errors`). The relay
//! to the bridge is UDP in every case.
//!
//! `bridge/tests/clients/run_meeting.sh relay` runs in a private network namespace
//! (`unshare -n`) as the other real-client meetings do: it starts the bridge on 127.0.0.1,
//! then `relay_meeting.py` starts the `turn` daemon on 127.0.0.2 (REST API credentials,
//! `allowed-peer-ip=127.0.0.1` for the bridge), runs the meeting and reads the TURN server's
//! `/metrics`. This test then checks the driver's report: for every participant, video decoded
//! from each other participant, and a selected candidate pair that succeeded from a local
//! candidate of type "relay" (with the asked relayProtocol, at the TURN server) to the bridge;
//! and the TURN server relayed datagrams in both directions, as many as the browsers counted on
//! those pairs (give or take the moment between the two readings).
//!
//! The `turn` binary: the daemon must run inside the namespace, so it is a process, not a
//! thread of this test (which stays outside). Cargo gives `CARGO_BIN_EXE_<name>` only for the
//! binaries of the test's own package, so [`turn_binary`] asks Cargo to build it (`cargo build
//! -p turn --bin turn`, same profile and target dir as this test) and takes the path Cargo
//! reports. In the workspace test run it was built already and this is a freshness check of a
//! second or so; with `cargo test -p bridge` it builds it, and it is never a stale binary lying
//! around in target/. Cargo holds no lock on the target dir while tests run (it is released
//! after the build), so the nested build does not wait for the outer one.

#[path = "../../scripts/test_harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use harness::{in_private_network, install_test_deps, run_bounded};
use serde_json::Value;

const BRIDGE_BIN: &str = env!("CARGO_BIN_EXE_bridge");

/// One meeting at a time: two cores.
static MEETING: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    harness::repo_root(env!("CARGO_MANIFEST_DIR"))
}

/// The `turn` daemon's executable, built by Cargo for this test's profile (see the module doc).
fn turn_binary() -> PathBuf {
    static TURN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = TURN.get_or_init(|| {
        // The cargo running this test, or the one that built it.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--locked", "-p", "turn", "--bin", "turn", "--message-format=json"])
            .current_dir(repo_root());
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let out = run_bounded(command, Duration::from_secs(900));
        if !out.status.success() {
            return Err(format!("cargo build -p turn failed ({}):\n{}", out.status, out.stderr));
        }
        // The compiler-artifact message for the turn binary names its executable.
        out.stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "turn")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| format!("cargo build -p turn named no turn executable:\n{}", out.stdout))
    });
    match built {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Runs the relay meeting with the browsers reaching the TURN server over `transport` (udp, tcp
/// or tls: what getStats reports as the relay candidate's relayProtocol), and
/// returns the driver's report after checking that it says ok.
fn relay_meeting(transport: &str) -> Value {
    install_test_deps(&repo_root());
    let turn = turn_binary();
    let _one_at_a_time = MEETING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = in_private_network(&repo_root().join("bridge/tests/clients/run_meeting.sh"));
    command
        .args(["relay", "--transport", transport])
        .env("BRIDGE_BIN", BRIDGE_BIN)
        .env("TURN_BIN", &turn)
        .current_dir(repo_root());
    let out = run_bounded(command, Duration::from_secs(300));
    println!("{}", out.stdout);
    eprintln!("{}", out.stderr);
    assert!(
        out.status.success(),
        "the relay meeting over {transport} failed ({}):\n--- driver output ---\n{}\n--- stderr (driver, \
         bridge, turn) ---\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let report = out
        .stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .unwrap_or_else(|| panic!("no JSON report from the relay driver:\n{}", out.stdout));
    assert_eq!(report["ok"], true, "{report:#}");
    report
}

/// What the driver checked, checked again here so the test states it.
fn assert_relayed(report: &Value, transport: &str) {
    let participants = report["participants"].as_object().expect("a report per participant");
    assert_eq!(participants.len(), 3, "{report:#}");
    let (mut sent, mut received, mut fewest_frames) = (0, 0, u64::MAX);
    for (name, p) in participants {
        let video = p["video"].as_object().expect("video from the others");
        assert_eq!(video.len(), 2, "{name} decoded video from both others: {p:#}");
        for (from, v) in video {
            let frames = v["framesDecoded"].as_u64().unwrap_or(0);
            assert!(frames > 0, "{name} decoded no frame from {from}: {p:#}");
            fewest_frames = fewest_frames.min(frames);
        }
        let path = &p["path"];
        assert_eq!(path["pair"]["state"], "succeeded", "{name}: {path:#}");
        assert_eq!(path["local"]["candidateType"], "relay", "{name}'s selected local candidate: {path:#}");
        assert_eq!(path["local"]["relayProtocol"], transport, "{name}: {path:#}");
        assert_eq!(
            path["local"]["address"], "127.0.0.2",
            "{name}: a relay address of our TURN server: {path:#}"
        );
        assert_eq!(path["remote"]["address"], "127.0.0.1", "{name}: the bridge on the other side: {path:#}");
        sent += path["pair"]["packetsSent"].as_u64().expect("packetsSent");
        received += path["pair"]["packetsReceived"].as_u64().expect("packetsReceived");
    }
    let turn = &report["turn"];
    let up = turn["client_to_peer"].as_u64().expect("client_to_peer");
    let down = turn["peer_to_client"].as_u64().expect("peer_to_client");
    // The two readings are a moment apart: 90% of what the browsers counted, at least.
    assert!(
        up > 0 && up * 10 >= sent * 9,
        "TURN relayed {up} datagrams to the bridge; the browsers sent {sent}"
    );
    assert!(
        down > 0 && down * 10 >= received * 9,
        "TURN relayed {down} datagrams from the bridge; the browsers received {received}"
    );
    assert!(turn["allocations_total"].as_u64() >= Some(3), "an allocation per participant: {turn}");
    assert_eq!(report["turn_exit"], 0, "the turn daemon exits 0 on SIGTERM: {report:#}");
    eprintln!(
        "relay-only over {transport}: TURN relayed {up} datagrams to the bridge and {down} back (the browsers \
         counted {sent} sent, {received} received on their selected pairs); each decoded at least \
         {fewest_frames} frames from each other"
    );
}

#[test]
fn relay_only_chromium_participants_reach_the_bridge_through_turn_over_udp() {
    let report = relay_meeting("udp");
    assert_relayed(&report, "udp");
}

#[test]
fn relay_only_chromium_participants_reach_the_bridge_through_turn_over_tcp() {
    let report = relay_meeting("tcp");
    assert_relayed(&report, "tcp");
}

#[test]
fn relay_only_chromium_participants_reach_the_bridge_through_turn_over_tls() {
    let report = relay_meeting("tls");
    assert_relayed(&report, "tls");
}
