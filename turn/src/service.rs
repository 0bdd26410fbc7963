//! Running under systemd (`Type=notify`, `WatchdogSec=`): `READY=1` once every listener answers
//! a request, a watchdog fed while the UDP workers turn and the listeners answer, and the reload
//! and stop notices. Outside systemd every notification is a no-op.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sdnotify::{Notifier, Watchdog, probe};
use stun::{Class, HEADER_LEN, MAGIC_COOKIE, Message, Method, TransactionId};

use crate::health::Health;
use crate::server::Transport;

/// How long the listeners get to answer their first request before start-up fails.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// One probe's patience: loopback answers in microseconds unless something is stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the daemon serves, to probe: one address per kind is enough, every worker of a kind
/// runs the same loop.
#[derive(Debug, Default)]
pub struct Listeners {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

impl Listeners {
    pub fn stream(&mut self, addr: SocketAddr, transport: Transport) {
        let slot = if transport == Transport::Tls { &mut self.tls } else { &mut self.tcp };
        slot.get_or_insert(addr);
    }

    /// Ok when each listener answers: a STUN Binding over UDP and over TCP (answered without
    /// credentials, RFC 8489 §5), bytes that are not a handshake on TLS (the worker reads
    /// them and closes), `GET /health` on the metrics endpoint.
    fn answer(&self) -> io::Result<()> {
        if let Some(addr) = self.udp {
            udp_binding(addr)?;
        }
        if let Some(addr) = self.tcp {
            tcp_binding(addr)?;
        }
        if let Some(addr) = self.tls {
            probe::stream_reacts(addr, b"probe\r\n", PROBE_TIMEOUT)?;
        }
        if let Some(addr) = self.metrics {
            match probe::http_status(addr, "/health", PROBE_TIMEOUT)? {
                200 => {}
                status => return Err(io::Error::other(format!("/health answered {status}"))),
            }
        }
        Ok(())
    }
}

/// The daemon's side of the service manager's protocol.
#[derive(Debug)]
pub struct Service {
    notifier: Notifier,
    watchdog: Option<Watchdog>,
}

impl Service {
    /// Waits until every listener answers, then sends `READY=1` and starts the watchdog, which
    /// also needs every worker to turn its loop (`health`, the check behind `/health`).
    pub fn ready(listeners: Listeners, health: Arc<Health>) -> Result<Self, String> {
        probe::until_ok(READY_WITHIN, || listeners.answer())
            .map_err(|e| format!("the listeners do not answer: {e}"))?;
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!("NOTIFY_SOCKET: {e}; not notifying the service manager");
            Notifier::default()
        });
        if let Err(e) = notifier.ready() {
            tracing::warn!("cannot notify the service manager: {e}");
        }
        let healthy = move || {
            // The workers first: `/health`, probed next, then answers from the same verdict.
            let workers = health.check(Instant::now());
            let answered = listeners.answer();
            if let Err(why) = workers {
                tracing::warn!("health check failed, not feeding the watchdog: {why}");
            } else if let Err(e) = &answered {
                tracing::warn!("health check failed, not feeding the watchdog: {e}");
            }
            workers.is_ok() && answered.is_ok()
        };
        let watchdog = Watchdog::from_env(&notifier, healthy).map_err(|e| format!("watchdog thread: {e}"))?;
        Ok(Self { notifier, watchdog })
    }

    /// A reload (SIGHUP) begins; [`reloaded`](Self::reloaded) ends it.
    pub fn reloading(&self) {
        let _ = self.notifier.reloading();
    }

    pub fn reloaded(&self) {
        let _ = self.notifier.ready();
    }

    /// Shutdown has begun: the watchdog ends (stopping workers stop answering, which is no
    /// failure) and the manager hears so.
    pub fn stopping(&mut self) {
        drop(self.watchdog.take());
        let _ = self.notifier.stopping();
    }
}

/// A Binding request with a fresh transaction id (20 bytes, no attributes).
fn binding_request() -> ([u8; HEADER_LEN], TransactionId) {
    // Not a secret: it only pairs the answer with the probe.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&(nanos.as_nanos() as u64).to_be_bytes());
    id[8..].copy_from_slice(&std::process::id().to_be_bytes());
    let mut request = [0u8; HEADER_LEN];
    request[0..2].copy_from_slice(&stun::message_type(Method::BINDING, Class::Request).to_be_bytes());
    request[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    request[8..].copy_from_slice(&id);
    (request, TransactionId(id))
}

fn is_binding_success(answer: &[u8], id: TransactionId) -> io::Result<()> {
    match Message::parse(answer) {
        Ok(m) if m.method() == Method::BINDING && m.class() == Class::Success && m.transaction_id() == id => {
            Ok(())
        }
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "not a Binding success response")),
    }
}

fn udp_binding(addr: SocketAddr) -> io::Result<()> {
    let server = probe::local(addr);
    let socket = UdpSocket::bind(SocketAddr::new(server.ip(), 0))?;
    socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
    socket.connect(server)?;
    let (request, id) = binding_request();
    socket.send(&request)?;
    let mut answer = [0u8; 512];
    let n = socket.recv(&mut answer)?;
    is_binding_success(&answer[..n], id)
}

fn tcp_binding(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&probe::local(addr), PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    let (request, id) = binding_request();
    stream.write_all(&request)?;
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header)?;
    let mut answer = vec![0u8; HEADER_LEN + usize::from(u16::from_be_bytes([header[2], header[3]]))];
    answer[..HEADER_LEN].copy_from_slice(&header);
    stream.read_exact(&mut answer[HEADER_LEN..])?;
    is_binding_success(&answer, id)
}
