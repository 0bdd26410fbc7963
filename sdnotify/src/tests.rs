//! Every notification through a real unix datagram socket, bound where systemd binds its own.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

/// A socket in a fresh directory, removed when dropped.
struct PathSocket {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl PathSocket {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sdnotify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self { dir, socket }
    }

    fn address(&self) -> String {
        self.dir.join("notify").to_str().unwrap().to_owned()
    }
}

impl Drop for PathSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn every_message_arrives_as_one_datagram_on_a_path_socket() {
    let socket = PathSocket::new("path");
    let notifier = Notifier::for_address(&socket.address()).unwrap();
    assert!(notifier.is_enabled());

    notifier.ready().unwrap();
    assert_eq!(receive(&socket.socket), "READY=1");
    notifier.watchdog().unwrap();
    assert_eq!(receive(&socket.socket), "WATCHDOG=1");
    notifier.stopping().unwrap();
    assert_eq!(receive(&socket.socket), "STOPPING=1");
    notifier.status("serving\non two lines").unwrap();
    assert_eq!(receive(&socket.socket), "STATUS=serving on two lines");
}

#[test]
fn reloading_carries_the_monotonic_clock_in_microseconds() {
    let socket = PathSocket::new("reload");
    let notifier = Notifier::for_address(&socket.address()).unwrap();
    // Instant is CLOCK_MONOTONIC on Linux: the stamp must fall between two readings of it, which
    // we can only compare by their distance, so check it against the clock read the same way.
    let before = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    notifier.reloading().unwrap();
    let message = receive(&socket.socket);
    let mut lines = message.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let usec: u64 = lines.next().unwrap().strip_prefix("MONOTONIC_USEC=").unwrap().parse().unwrap();
    let before_usec = before.tv_sec as u64 * 1_000_000 + before.tv_nsec as u64 / 1_000;
    assert!(usec >= before_usec && usec - before_usec < 5_000_000, "{usec} vs {before_usec}");
    assert_eq!(lines.next(), None);
}

#[test]
fn an_abstract_socket_is_named_with_an_at_sign() {
    let name = format!("sdnotify-test-{}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let notifier = Notifier::for_address(&format!("@{name}")).unwrap();
    notifier.ready().unwrap();
    assert_eq!(receive(&socket), "READY=1");
}

#[test]
fn without_a_socket_everything_is_a_silent_success() {
    let notifier = Notifier::default();
    assert!(!notifier.is_enabled());
    notifier.ready().unwrap();
    notifier.reloading().unwrap();
    notifier.watchdog().unwrap();
    notifier.stopping().unwrap();
    notifier.status("x").unwrap();
}

#[test]
fn an_address_of_another_kind_is_refused() {
    assert!(Notifier::for_address("vsock:2:1234").is_err());
    assert!(Notifier::for_address("relative/path").is_err());
}

#[test]
fn a_socket_nobody_listens_on_is_an_error_to_the_caller() {
    let notifier = Notifier::for_address("/nonexistent/sdnotify/socket").unwrap();
    assert!(notifier.ready().is_err());
}

#[test]
fn the_watchdog_interval_is_for_this_process_only() {
    assert_eq!(parse_watchdog(Some("2000000"), None, 42), Some(Duration::from_secs(2)));
    assert_eq!(parse_watchdog(Some("2000000"), Some("42"), 42), Some(Duration::from_secs(2)));
    assert_eq!(parse_watchdog(Some("2000000"), Some("41"), 42), None, "another process's watchdog");
    assert_eq!(parse_watchdog(Some("0"), None, 42), None);
    assert_eq!(parse_watchdog(Some("soon"), None, 42), None);
    assert_eq!(parse_watchdog(None, Some("42"), 42), None);
}

#[test]
fn the_watchdog_pings_every_half_interval_only_while_healthy_and_stops_when_dropped() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let socket = PathSocket::new("watchdog");
    let notifier = Notifier::for_address(&socket.address()).unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let check = Arc::clone(&healthy);
    let start = Instant::now();
    let watchdog =
        Watchdog::start(notifier, Duration::from_millis(200), move || check.load(Ordering::SeqCst)).unwrap();
    for _ in 0..3 {
        assert_eq!(receive(&socket.socket), "WATCHDOG=1");
    }
    // Three pings at 100, 200 and 300 ms.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(2), "{elapsed:?}");

    healthy.store(false, Ordering::SeqCst);
    // At most one ping whose check ran before the store.
    socket.socket.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    let _ = socket.socket.recv(&mut [0u8; 64]);
    socket.socket.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    assert!(socket.socket.recv(&mut [0u8; 64]).is_err(), "no ping while unhealthy");

    healthy.store(true, Ordering::SeqCst);
    socket.socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(receive(&socket.socket), "WATCHDOG=1", "pings resume once healthy");

    let dropped = Instant::now();
    drop(watchdog);
    assert!(dropped.elapsed() < Duration::from_millis(50), "drop does not wait out the period");
    socket.socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    while socket.socket.recv(&mut [0u8; 64]).is_ok() {} // one may have been in flight
    socket.socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(socket.socket.recv(&mut [0u8; 64]).is_err(), "no ping after drop");
}

#[test]
fn probes_tell_a_serving_listener_from_a_merely_bound_one() {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    let timeout = Duration::from_millis(300);
    // Bound, never accepted: the kernel completes the handshake, nobody answers.
    let bound = TcpListener::bind("127.0.0.1:0").unwrap();
    let idle = bound.local_addr().unwrap();
    assert!(probe::http_status(idle, "/", timeout).is_err());
    assert!(probe::stream_reacts(idle, b"hello", timeout).is_err());

    let serving = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = serving.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (i, stream) in serving.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            if i == 0 {
                let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
            } // the second connection is closed unanswered, as a TLS server does with junk
        }
    });
    // Through the wildcard address, as a daemon probes its own `[::]:port` or `0.0.0.0:port`.
    let wildcard: std::net::SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    assert_eq!(probe::local(wildcard), format!("127.0.0.1:{port}").parse().unwrap());
    assert_eq!(probe::http_status(wildcard, "/v1/health", timeout).unwrap(), 401);
    probe::stream_reacts(wildcard, b"not tls", timeout).unwrap();

    let mut tries = 0;
    let result = probe::until_ok(Duration::from_millis(100), || {
        tries += 1;
        probe::http_status(idle, "/", Duration::from_millis(10))
    });
    assert!(result.is_err() && tries > 1, "retried until the deadline ({tries} tries)");
}
