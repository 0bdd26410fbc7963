//! The metrics endpoint: `GET /metrics` (Prometheus text format) and `GET /health` (`200 ok`,
//! or `503` with the reason, from [`Health`]).
//!
//! One thread, one request per connection, each bounded in size and time: a scraper sends a
//! few hundred bytes, and a client that sends slowly or too much is cut off rather than
//! holding the thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::NetStats;
use crate::health::Health;
use crate::server::Shared;

const MAX_REQUEST: usize = 4096;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the endpoint; [`serve`](MetricsEndpoint::serve) runs it.
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
    shared: Arc<Shared>,
    stats: Arc<NetStats>,
    health: Arc<Health>,
}

impl MetricsEndpoint {
    pub fn bind(
        addr: SocketAddr,
        shared: Arc<Shared>,
        stats: Arc<NetStats>,
        health: Arc<Health>,
    ) -> io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr)?, shared, stats, health })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the process exits.
    pub fn serve(self) {
        for stream in self.listener.incoming() {
            match stream {
                Ok(stream) => drop(self.answer(stream)),
                // A client that left, or descriptors out: pause rather than spin on it.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn answer(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut request = [0u8; MAX_REQUEST];
        let mut len = 0;
        while !request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            if len == request.len() {
                return respond(&mut stream, "431 Request Header Fields Too Large", "");
            }
            match stream.read(&mut request[len..])? {
                0 => return Ok(()),
                n => len += n,
            }
        }
        let line = request[..len].split(|&b| b == b'\r').next().unwrap_or_default();
        let mut parts = line.split(|&b| b == b' ');
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        if method != b"GET" {
            return respond(&mut stream, "405 Method Not Allowed", "");
        }
        match path {
            b"/metrics" => {
                let mut body = String::with_capacity(8192);
                self.shared.render_prometheus(&mut body);
                self.stats.render_prometheus(&mut body);
                respond(&mut stream, "200 OK", &body)
            }
            b"/health" => match self.health.check(Instant::now()) {
                Ok(()) => respond(&mut stream, "200 OK", "ok\n"),
                Err(why) => respond(&mut stream, "503 Service Unavailable", &format!("{why}\n")),
            },
            _ => respond(&mut stream, "404 Not Found", ""),
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
