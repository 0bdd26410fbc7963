//! The `turn` binary under a stand-in for systemd (`Type=notify`, `WatchdogSec=`): READY=1
//! only once it answers a STUN Binding over UDP and `/health`, watchdog pings after that,
//! RELOADING=1 and READY=1 around SIGHUP's reload (credentials and certificate), STOPPING=1 and
//! exit status 0 on SIGTERM.

#[path = "../../scripts/fake_service_manager.rs"]
mod fake_service_manager;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_service_manager::{Daemon, FakeManager};
use stun::{Class, MAGIC_COOKIE, Message, Method, TransactionId};

const BIN: &str = env!("CARGO_BIN_EXE_turn");

struct Turn {
    child: Child,
    port: u16,
    metrics: u16,
    log: Arc<Mutex<Vec<String>>>,
    transactions: u32,
}

impl Turn {
    /// A Binding request over UDP gets its success response (RFC 8489 §5: no credentials).
    fn binding(&mut self) -> bool {
        self.transactions += 1;
        let id = TransactionId([0, 0, 0, 0, 0, 0, 0, 0, 0x5e, 0x7d, 0, self.transactions as u8]);
        let mut request = [0u8; 20];
        request[0..2].copy_from_slice(&stun::message_type(Method::BINDING, Class::Request).to_be_bytes());
        request[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        request[8..].copy_from_slice(&id.0);
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        if socket.send_to(&request, (Ipv4Addr::LOCALHOST, self.port)).is_err() {
            return false;
        }
        let mut answer = [0u8; 512];
        let Ok(n) = socket.recv(&mut answer) else { return false };
        Message::parse(&answer[..n]).is_ok_and(|m| {
            m.method() == Method::BINDING && m.class() == Class::Success && m.transaction_id() == id
        })
    }

    fn health(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.metrics)) else { return false };
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut response = String::new();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.1 200")
            // Every UDP and TCP/TLS worker turned its loop lately (turn/src/health.rs).
            && response.ends_with("\r\n\r\nok\n")
    }
}

impl Daemon for Turn {
    fn answers(&mut self) -> bool {
        self.binding() && self.health()
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both TCP and UDP right now (TURN listens on both with one number).
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn ready_once_serving_watchdog_while_healthy_reload_and_stopping() {
    let dir = std::env::temp_dir().join(format!("turn-systemd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    let (port, tls, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "listening-ip=127.0.0.1\nlistening-port={port}\ntls-listening-port={tls}\n\
         cert={cert}\npkey={key}\nrealm=test\nuse-auth-secret\n\
         static-auth-secret=systemd-readiness-test-secret\n\
         prometheus\nprometheus-address=127.0.0.1\nprometheus-port={metrics}\n",
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
    );
    std::fs::write(dir.join("turnserver.conf"), config).unwrap();

    let mut manager = FakeManager::new("turn");
    let mut child = manager
        .command(BIN)
        .arg("--config")
        .arg(dir.join("turnserver.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start turn");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut turn = Turn { child, port, metrics, log, transactions: 0 };

    manager.ready_only_when_serving(&mut turn);
    manager.watchdog_pings(&mut turn);
    manager.reload(&mut turn);
    manager.stops_cleanly(&mut turn);
    assert!(turn.log().contains("credentials reloaded (SIGHUP)"), "{}", turn.log());
    assert!(turn.log().contains("TLS certificate reloaded (SIGHUP)"), "{}", turn.log());
    let _ = std::fs::remove_dir_all(&dir);
}
