//! [`TurnIo`] over the engine's [`Output`]: what the server sends goes straight into pool
//! slots, relay sockets are engine sockets of this worker.

use std::net::{IpAddr, SocketAddr};

use engine::{Destination, Output};

use super::relays::RelaySockets;
use crate::offload::KernelRelay;
use crate::server::{ChannelRoute, ClientTuple, PortRequest, RelayError, RelayId, TurnIo};

/// The I/O layer for one call into the server (one datagram or one timeout).
#[derive(Debug)]
pub(crate) struct EngineIo<'a, 'o> {
    pub out: &'a mut Output<'o>,
    pub relays: &'a mut RelaySockets,
    pub kernel: Option<&'a KernelRelay>,
}

impl TurnIo for EngineIo<'_, '_> {
    /// From the listener the client talks to (the one bound to the tuple's server address),
    /// written in place into a fresh slot. The server gets the whole slot
    /// ([`engine::SLOT_SIZE`] bytes, above the 1504 it needs) zeroed, so it never sees an
    /// earlier packet's bytes; what it leaves unused is cut off again (a memset of the slot per
    /// message: the price of a safe `&mut [u8]`, as `PacketBuf` exposes no uninitialised
    /// capacity).
    #[inline]
    fn to_client(&mut self, client: &ClientTuple, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        debug_assert!(!client.transport.is_stream(), "only UDP clients reach this listener");
        // A few address comparisons: the tuple's server address came from a listener.
        let Some(listener) = self.out.listener(client.server) else {
            debug_assert!(false, "{} is no listener's address", client.server);
            return false;
        };
        self.out.send(Destination::from_socket(listener, client.client), |buf| {
            if buf.extend_zeroed(buf.capacity()).is_ok() {
                let len = write(buf);
                buf.truncate(len);
            }
        })
    }

    /// From the relay's own socket, the payload copied once into a fresh slot.
    ///
    /// DONT-FRAGMENT (RFC 8656 §7.2, §11.2) is set on the relay socket when a send first asks
    /// for it and cleared when one later does not; until a client asks, the kernel's default
    /// applies (IPv4 `IP_PMTUDISC_WANT`).
    #[inline]
    fn to_peer(&mut self, relay: RelayId, peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> bool {
        let Some(socket) = self.relays.socket_for_send(relay, dont_fragment, self.out) else { return false };
        self.out.send(Destination::from_socket(socket, peer), |buf| {
            // A payload larger than a slot cannot have come in through one; nothing is sent.
            let _ = buf.extend_from_slice(payload);
        })
    }

    fn open_relay(&mut self, ip: IpAddr, port: PortRequest) -> Result<(RelayId, SocketAddr), RelayError> {
        self.relays.open(ip, port, self.out)
    }

    fn close_relay(&mut self, relay: RelayId) {
        self.relays.close(relay, self.out);
    }

    fn install_channel(&mut self, route: &ChannelRoute) -> bool {
        self.kernel.is_some_and(|kernel| kernel.install(route))
    }

    fn withdraw_channel(&mut self, route: &ChannelRoute) {
        if let Some(kernel) = self.kernel {
            kernel.withdraw(route);
        }
    }
}
