//! The `bridge` binary under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): READY=1
//! only once its control API answers, watchdog pings after that, SIGHUP survived (it reloads the
//! log level only), STOPPING=1 and exit status 0 on SIGTERM.

#[path = "../../scripts/fake_service_manager.rs"]
mod fake_service_manager;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_service_manager::{Daemon, FakeManager};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");
const SECRET: &str = "systemd-readiness-test-secret";

struct Bridge {
    child: Child,
    control: u16,
    log: Arc<Mutex<Vec<String>>>,
    _config: tempfile::TempPath,
}

impl Daemon for Bridge {
    /// `GET /v1/health` with the secret: 200 and `"status":"ok"`.
    fn answers(&mut self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.control)) else { return false };
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let request = format!(
            "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {SECRET}\r\n\
             Connection: close\r\n\r\n"
        );
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.1 200")
            && response.contains("\"status\":\"ok\"")
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn ready_once_serving_watchdog_while_healthy_stopping_on_sigterm() {
    let (control, metrics) = (free_tcp_port(), free_tcp_port());
    let config = format!(
        "[engine]\nlisten = \"127.0.0.1:0\"\nworkers = 2\npool_slots_per_worker = 1024\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
         [control]\nlisten = \"127.0.0.1:{control}\"\nsecret = \"{SECRET}\"\n"
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(config.as_bytes()).unwrap();
    let path = file.into_temp_path();

    let mut manager = FakeManager::new("bridge");
    let mut child = manager
        .command(BIN)
        .arg("--config")
        .arg(&path)
        .env("BRIDGE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bridge");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut bridge = Bridge { child, control, log, _config: path };

    manager.ready_only_when_serving(&mut bridge);
    manager.watchdog_pings(&mut bridge);
    manager.hangup_survived(&mut bridge);
    manager.stops_cleanly(&mut bridge);
    assert!(bridge.log().contains("SIGHUP: reloading the log level"), "{}", bridge.log());
}
