//! Does a listener of ours really answer? A bound socket is not enough for `READY=1`: the
//! kernel completes TCP handshakes into the backlog before any thread accepts, so a client of a
//! daemon that has bound but not started serving waits. These probes go through the whole path
//! (accept, read, answer) from the daemon itself, over loopback.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Where the daemon reaches its own listener: a wildcard address becomes the loopback address
/// of its family.
pub fn local(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `GET path` over HTTP/1.1; the response's status code. Any status proves the server answers
/// (a 401 from an API that wants a secret included).
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<u16> {
    let mut stream = connect(addr, timeout)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", local(addr))?;
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    // The status line only; the body does not matter.
    while !head.ends_with(b"\r\n") && head.len() < 256 {
        match stream.read(&mut byte)? {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|code| code.parse().ok())) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => Ok(code),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {line:?}"))),
    }
}

/// Sends `request` and waits for the server to react: any reply, or closing the connection (a
/// TLS server shown bytes that are not a handshake closes it). Only a server that accepted and
/// read does either; a listener nobody serves leaves the probe waiting until `timeout`.
pub fn stream_reacts(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<()> {
    let mut stream = connect(addr, timeout)?;
    stream.write_all(request)?;
    match stream.read(&mut [0u8; 64]) {
        Ok(_) => Ok(()),
        // A reset is a reaction too: the server closed with our bytes unread.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(e),
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&local(addr), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Retries `probe` every 20 ms until it succeeds or `within` has passed; the last error then.
pub fn until_ok<T>(within: Duration, mut probe: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
