//! The `signaling` binary under a stand-in for systemd (`Type=notify`, `WatchdogSec=`):
//! READY=1 only once `GET /api/room-name` over HTTPS answers, watchdog pings after that,
//! RELOADING=1 and READY=1 around SIGHUP's certificate reload, STOPPING=1 and exit status 0 on
//! SIGTERM.

mod common;
#[path = "../../scripts/fake_service_manager.rs"]
mod fake_service_manager;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_service_manager::{Daemon, FakeManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_signaling");

struct Signaling {
    child: Child,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    log: Arc<Mutex<Vec<String>>>,
}

impl Signaling {
    async fn room_name(addr: SocketAddr) -> std::io::Result<String> {
        let mut stream = common::try_tls(addr).await?;
        stream
            .write_all(b"GET /api/room-name HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

impl Daemon for Signaling {
    /// A fresh room name over HTTPS: 200 and a name of four words.
    fn answers(&mut self) -> bool {
        let addr = self.addr;
        let request =
            async move { tokio::time::timeout(Duration::from_secs(2), Self::room_name(addr)).await };
        match self.runtime.block_on(request) {
            Ok(Ok(response)) => response.starts_with("HTTP/1.1 200") && response.matches('-').count() >= 3,
            _ => false,
        }
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ready_once_serving_watchdog_while_healthy_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config =
        format!("[server]\nlisten = \"{addr}\"\nstate_dir = \"{}\"\n", dir.path().join("state").display());
    let path = dir.path().join("signaling.toml");
    std::fs::write(&path, config).unwrap();

    let mut manager = FakeManager::new("signaling");
    let mut child = manager
        .command(BIN)
        .arg("--config")
        .arg(&path)
        .env("SIGNALING_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start signaling");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut signaling = Signaling { child, addr, runtime, log };

    manager.ready_only_when_serving(&mut signaling);
    manager.watchdog_pings(&mut signaling);
    manager.reload(&mut signaling);
    manager.stops_cleanly(&mut signaling);
    assert!(signaling.log().contains("SIGHUP: TLS certificate reloaded"), "{}", signaling.log());
}
