//! TURN over TCP and TLS (RFC 8656 §3.1): stream listeners that drive the sans-IO
//! [`Server`](crate::server::Server), and the daemon's metrics endpoint.
//!
//! Each worker thread owns one `Server`, one epoll instance, its share of the connections
//! and the UDP relay sockets of their allocations; it polls its own duplicate of every
//! listening socket and takes connections from their shared accept queues, handing each to
//! the worker that serves its client address (so a RESERVATION-TOKEN minted on one
//! connection is found from the client's next one). A worker turn:
//!
//! ```text
//! epoll_wait(until server.poll_timeout() or the next housekeeping; forever when idle)
//! listener readable -> accept (up to the connection limit), register the connection
//! client readable   -> read (TLS: decrypt) into its buffer; each whole message, as
//!                      frame_len measures it -> server.handle_client(now, tuple, message)
//! relay readable    -> each datagram -> server.handle_peer(now, relay, peer, datagram)
//!                      (a TCP relay: each peer accepted -> server.handle_peer_accepted)
//! peer connection   -> connected? server.handle_peer_connected; then the pump moves bytes
//!                      between it and its client data connection (RFC 6062, see below)
//! deadline          -> server.handle_timeout(now)
//! then              -> flush every connection that got output this turn (one write each)
//! ```
//! The server answers through [`TurnIo`](crate::server::TurnIo): `to_client` appends to the
//! connection's fixed-size write buffer (full: dropped and counted, never grown), `to_peer`
//! sends on the relay socket, `open_relay` binds one in `[min-port, max-port]` and registers it.
//!
//! Why mio rather than raw epoll: registration and the socket types are safe code, and
//! mio's edge-triggered epoll is the loop we would write by hand; the only `unsafe` left is
//! the setsockopt for the DF bit. Why not the io_uring engine: these are byte streams with
//! TLS over them, a control-plane-sized load next to the UDP data plane, which the engine
//! serves.
//!
//! TCP allocations (RFC 6062): a TCP relay is a listening socket; peer data connections are
//! accepted on it or made from its address (`peer_stream.rs`), and once ConnectionBind joins
//! one to a new client connection, the worker stops parsing that connection and moves bytes
//! both ways through two fixed buffers (`pipe.rs`), reading a side only while the buffer it
//! fills has room. Peer connections count toward the connection limit like client
//! connections, and the server caps them per allocation
//! ([`MAX_PEER_CONNECTIONS`](crate::server::MAX_PEER_CONNECTIONS)).
//!
//! Limits (see [`Limits`]): a total connection cap, a deadline for the TLS handshake, and an
//! idle deadline measured from the last *whole* message, so a client that trickles bytes of
//! a message it never finishes is closed like one that sends nothing (slowloris); reads are
//! bounded per connection and per turn, and buffers by the largest message.

mod conn;
mod http;
mod listener;
mod liveness;
mod peer_stream;
mod pipe;
mod relay;
mod slab;
mod stats;
mod tls;
mod worker;

use std::time::Duration;

pub use http::MetricsEndpoint;
pub use listener::{StreamListener, listening_ips};
pub use liveness::StreamLiveness;
pub use stats::{CloseReason, NetStats};
pub use tls::CertStore;
pub use worker::{WorkerHandle, WorkerSetup, spawn_all};

use crate::server::MAX_LIFETIME;

/// Connections at once over all stream workers, unless configured otherwise. Each costs two
/// descriptors at most (the connection, its relay) and up to about 200 KiB of buffers at
/// their fullest (64 KiB out, one largest message in, rustls's own), so 4096 stay under a
/// GiB and within the usual descriptor limits raised for a server. A peer connection of a
/// TCP allocation counts as one too (one descriptor, 128 KiB of pipe buffers).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once over every worker; more are accepted and closed at once.
    pub max_connections: u64,
    /// A connection without an allocation is closed this long after its last whole message
    /// (or its handshake): it is there to allocate, and 30 s is ample for that.
    pub idle_without_allocation: Duration,
    /// With an allocation: the allocation expires unless refreshed within its lifetime, so a
    /// connection quiet for longer than the longest lifetime has none left.
    pub idle_with_allocation: Duration,
    /// From accept to the end of the TLS handshake.
    pub tls_handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_without_allocation: Duration::from_secs(30),
            idle_with_allocation: MAX_LIFETIME + Duration::from_secs(60),
            tls_handshake: Duration::from_secs(10),
        }
    }
}
