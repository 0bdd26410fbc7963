//! Counters of the stream listeners, shared by their workers and read by the metrics endpoint.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed by us rather than by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or the socket failed.
    Client,
    /// Bytes that are neither STUN nor ChannelData: a stream cannot be resynchronised.
    Framing,
    /// No complete message for too long (see [`Limits`](super::Limits)).
    Idle,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The TLS handshake or a record failed.
    Tls,
    /// The server is stopping.
    Shutdown,
    /// The other side of its TCP allocation's byte pipe closed (RFC 6062), or the server
    /// closed the peer connection.
    Pipe,
}

/// All relaxed atomics: each counter is read on its own, no ordering between them matters.
#[derive(Debug, Default)]
pub struct NetStats {
    open: AtomicU64,
    accepted_tcp: AtomicU64,
    accepted_tls: AtomicU64,
    /// Over the connection limit, or the process out of descriptors.
    refused: AtomicU64,
    closed_framing: AtomicU64,
    closed_idle: AtomicU64,
    tls_handshake_failures: AtomicU64,
    cert_reloads: AtomicU64,
    cert_reload_failures: AtomicU64,
    relay_sockets: AtomicU64,
}

impl NetStats {
    /// Connections open right now, over every worker.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Claims a connection slot unless `limit` are open; `false`: refused (and counted).
    pub(crate) fn try_open(&self, limit: u64) -> bool {
        let claimed = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| (open < limit).then_some(open + 1));
        if claimed.is_err() {
            self.refused();
        }
        claimed.is_ok()
    }

    pub(crate) fn accepted(&self, tls: bool) {
        let counter = if tls { &self.accepted_tls } else { &self.accepted_tcp };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let counter = match reason {
            CloseReason::Framing => &self.closed_framing,
            CloseReason::Idle => &self.closed_idle,
            CloseReason::HandshakeTimeout | CloseReason::Tls => &self.tls_handshake_failures,
            CloseReason::Client | CloseReason::Shutdown | CloseReason::Pipe => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A certificate reload, taken or refused.
    pub(crate) fn cert_reloaded(&self, ok: bool) {
        let counter = if ok { &self.cert_reloads } else { &self.cert_reload_failures };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn relay_opened(&self) {
        self.relay_sockets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn relay_closed(&self) {
        self.relay_sockets.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn tls_handshake_failures(&self) -> u64 {
        self.tls_handshake_failures.load(Ordering::Relaxed)
    }

    pub fn cert_reloads(&self) -> u64 {
        self.cert_reloads.load(Ordering::Relaxed)
    }

    /// Prometheus text format, names prefixed `turn_` like the server's own.
    pub fn render_prometheus(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP turn_{name} {help}\n# TYPE turn_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "turn_{name}{labels} {value}");
            }
        };
        metric(
            "stream_connections_open",
            "gauge",
            "TCP and TLS client connections open.",
            &[("", get(&self.open))],
        );
        metric(
            "stream_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            &[
                ("{transport=\"tcp\"}", get(&self.accepted_tcp)),
                ("{transport=\"tls\"}", get(&self.accepted_tls)),
            ],
        );
        metric(
            "stream_connections_refused_total",
            "counter",
            "Client connections refused: over the connection limit or out of descriptors.",
            &[("", get(&self.refused))],
        );
        metric(
            "stream_connections_closed_total",
            "counter",
            "Client connections closed by the server.",
            &[
                ("{reason=\"framing\"}", get(&self.closed_framing)),
                ("{reason=\"idle\"}", get(&self.closed_idle)),
            ],
        );
        metric(
            "tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out.",
            &[("", get(&self.tls_handshake_failures))],
        );
        metric(
            "tls_certificate_reloads_total",
            "counter",
            "TLS certificate reloads.",
            &[
                ("{result=\"ok\"}", get(&self.cert_reloads)),
                ("{result=\"failed\"}", get(&self.cert_reload_failures)),
            ],
        );
        metric(
            "stream_relay_sockets",
            "gauge",
            "Relay sockets of the stream listeners' allocations.",
            &[("", get(&self.relay_sockets))],
        );
    }
}
