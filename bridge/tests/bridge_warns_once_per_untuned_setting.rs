//! The bridge daemon, started on this host, logs exactly one "host tuning" warning per setting
//! `bridge::host` finds below recommendation here (the same process context: limits and
//! capabilities are inherited), each naming its key, and nothing more.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bridge::host::{DROP_IN, Shortfall, pool_bytes, recommendations, shortfalls};

const CONFIG: &str = "[engine]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nlock_memory = \"best-effort\"\n\
                      pool_slots_per_worker = 64\n[metrics]\nlisten = \"\"\n";

#[test]
fn one_warning_per_shortfall_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config = bridge::config::BridgeConfig::parse(CONFIG).unwrap();
    let expected = shortfalls(Path::new("/"), &recommendations(DROP_IN).unwrap(), pool_bytes(&config.engine));

    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .arg("--config")
        .arg(&path)
        .env("BRIDGE_LOG", "info")
        .env_remove("BRIDGE_CONTROL_SECRET")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start bridge");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let started = line.contains("bridge media on");
        log.push(line);
        if started {
            break;
        }
    }
    // SAFETY: signals our own child, still unreaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(log.iter().any(|l| l.contains("bridge media on")), "bridge did not start:\n{}", log.join("\n"));

    let warnings: Vec<_> = log.iter().filter(|l| l.contains("host tuning:")).collect();
    assert_eq!(warnings.len(), expected.len(), "expected {expected:?}, logged {warnings:#?}");
    for shortfall in &expected {
        let needle = match shortfall {
            Shortfall::Sysctl { key, .. } => format!("{key} is "),
            Shortfall::Memlock { .. } => "locked-memory limit".to_owned(),
        };
        assert_eq!(warnings.iter().filter(|w| w.contains(&needle)).count(), 1, "{needle}: {warnings:#?}");
    }
}
