//! The engine [`Handler`] of one worker: its own [`Server`], its relay sockets, its clock.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use engine::{Datagram, DropReason, Handler, Output};

use super::clock::Clock;
use super::io::EngineIo;
use super::ports::PortSpace;
use super::relays::RelaySockets;
use crate::server::{ClientTuple, PortRequest, RelayError, RelayId, Server, Shared, Transport, TurnIo};

#[derive(Debug)]
pub(crate) struct UdpWorker {
    server: Server,
    relays: RelaySockets,
    clock: Clock,
    /// The server's, held apart so that the I/O layer can borrow its kernel relay while the
    /// server is borrowed mutably.
    shared: Arc<Shared>,
}

impl UdpWorker {
    pub fn new(server: Server, ports: Arc<PortSpace>) -> Self {
        let shared = Arc::clone(server.shared());
        Self { server, relays: RelaySockets::new(ports), clock: Clock::new(Instant::now()), shared }
    }
}

impl Handler for UdpWorker {
    /// On a listener: a client's STUN or ChannelData message. On a relay socket: a peer's
    /// datagram for that relay. Anything the server refuses it counts in its own metrics.
    #[inline]
    fn handle(&mut self, now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let now = self.clock.now(now);
        let socket = packet.socket();
        if socket.is_listener() {
            // The bound address of the listener it reached names the server side of the
            // 5-tuple (one listener per listening-ip), and answers leave from that listener
            // (`EngineIo::to_client`). With a wildcard listen address that is the wildcard and
            // the port: the engine does not report which local address a datagram reached (no
            // IP_PKTINFO), so one client address reaching two addresses of this host counts as
            // one 5-tuple, and the answers leave with the kernel's choice of source address.
            let tuple = ClientTuple { transport: Transport::Udp, client: from, server: packet.local_addr() };
            let mut io =
                EngineIo { out, relays: &mut self.relays, kernel: self.shared.kernel_relay.as_ref() };
            self.server.handle_client(now, &tuple, &packet[..], &mut io);
        } else if let Some(relay) = self.relays.relay(socket) {
            let mut io =
                EngineIo { out, relays: &mut self.relays, kernel: self.shared.kernel_relay.as_ref() };
            self.server.handle_peer(now, relay, from, &packet[..], &mut io);
        } else {
            // The engine delivers only on sockets we hold open; this would be a bookkeeping bug.
            out.drop_packet(DropReason::NoRoute);
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.server.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Output<'_>) {
        let now = self.clock.now(now);
        self.server.handle_timeout(
            now,
            &mut EngineIo { out, relays: &mut self.relays, kernel: self.shared.kernel_relay.as_ref() },
        );
    }
}

impl Drop for UdpWorker {
    /// The engine has no hook that runs before a worker stops, so there is no `Output` left to
    /// close relay sockets through: the engine closes every socket of the worker itself. What
    /// the server's shutdown still does here is give the quota of its allocations back (the
    /// TCP and TLS servers share it) and release their ports.
    fn drop(&mut self) {
        self.server.shutdown(&mut Detached { relays: &mut self.relays });
    }
}

/// The I/O layer once the engine is gone: nothing can be sent, relays are only forgotten.
#[derive(Debug)]
struct Detached<'a> {
    relays: &'a mut RelaySockets,
}

impl TurnIo for Detached<'_> {
    fn to_client(&mut self, _: &ClientTuple, _: impl FnOnce(&mut [u8]) -> usize) -> bool {
        false
    }

    fn to_peer(&mut self, _: RelayId, _: SocketAddr, _: &[u8], _: bool) -> bool {
        false
    }

    fn open_relay(&mut self, _: IpAddr, _: PortRequest) -> Result<(RelayId, SocketAddr), RelayError> {
        Err(RelayError::Unavailable)
    }

    fn close_relay(&mut self, relay: RelayId) {
        self.relays.forget(relay);
    }
}
