//! The seam to the I/O layer: what the server is told (time, 5-tuples, relay handles) and what
//! it asks for ([`TurnIo`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::kernel_routes::ChannelRoute;

/// The time of an input. The server never reads a clock: lifetimes run on `instant`, nonces
/// and REST API usernames on `unix_s`.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub unix_s: u64,
}

/// How the client reached the server (RFC 8656 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Stream transports carry ChannelData padded to a multiple of 4 (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }
}

/// The 5-tuple between client and server that names an allocation (RFC 8656 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientTuple {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// The I/O layer's handle of one relay socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RelayId(pub u32);

/// CONNECTION-ID (RFC 6062 §6.2): names one peer data connection of a TCP allocation, to the
/// client and to the I/O layer alike. Minted by the server, unique within its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u32);

/// Which port a relay socket asks for, within `[min_port, max_port]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRequest {
    Any,
    /// An even port (EVEN-PORT, RFC 8656 §7.2).
    Even,
    /// Exactly this port: the odd port after an even one, held for a RESERVATION-TOKEN.
    Specific(u16),
}

/// Why no relay socket could be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayError {
    /// No free port of the kind asked for.
    PortsExhausted,
    /// The socket could not be bound for another reason (address gone, descriptors out).
    Unavailable,
}

/// What the server needs from the I/O layer. Every call is non-blocking: a full queue or an
/// empty pool drops the datagram and answers `false`.
pub trait TurnIo {
    /// Sends a message to a client on its 5-tuple; `write` fills the buffer (at least 1504
    /// bytes) and returns the length, 0 for nothing. `false`: dropped.
    fn to_client(&mut self, client: &ClientTuple, write: impl FnOnce(&mut [u8]) -> usize) -> bool;
    /// Sends `payload` from relay socket `relay` to `peer`, with the IP DF bit if asked.
    fn to_peer(&mut self, relay: RelayId, peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> bool;
    /// Binds a UDP relay socket on `ip`; returns its handle and local address.
    fn open_relay(&mut self, ip: IpAddr, port: PortRequest) -> Result<(RelayId, SocketAddr), RelayError>;
    fn close_relay(&mut self, relay: RelayId);
    /// Has the kernel relay a channel binding until `route.until`, replacing the route's
    /// older version; `false`: it stays with this layer. Only asked when the kernel relay is
    /// configured.
    fn install_channel(&mut self, route: &ChannelRoute) -> bool {
        let _ = route;
        false
    }
    /// Takes a route back from the kernel.
    fn withdraw_channel(&mut self, route: &ChannelRoute) {
        let _ = route;
    }

    // TCP allocations (RFC 6062). Only the stream workers implement them: a UDP client never
    // gets a TCP allocation (the server answers 400), so the defaults refuse.

    /// Opens a TCP relay: a listening socket on `ip` in `[min_port, max_port]`, from whose
    /// address connections to peers are also made. Peers that connect to it are offered with
    /// [`Server::handle_peer_accepted`](super::Server::handle_peer_accepted); closed with
    /// [`close_relay`](Self::close_relay).
    fn open_tcp_relay(&mut self, ip: IpAddr) -> Result<(RelayId, SocketAddr), RelayError> {
        let _ = ip;
        Err(RelayError::Unavailable)
    }
    /// Starts a TCP connection from `relay`'s address to `peer`, named `connection`; the
    /// outcome comes back through [`Server::handle_peer_connected`](super::Server::handle_peer_connected).
    /// `false`: it could not even start (no descriptor, the connection limit).
    fn connect_peer(&mut self, relay: RelayId, connection: ConnectionId, peer: SocketAddr) -> bool {
        let _ = (relay, connection, peer);
        false
    }
    /// Turns the client connection `data` into a byte pipe to peer connection `connection`:
    /// what is queued on `data` (the ConnectionBind response) goes first, then bytes flow both
    /// ways as they are, and no more messages are read from `data`. `false`: either is gone.
    fn bind_data(&mut self, connection: ConnectionId, data: &ClientTuple) -> bool {
        let _ = (connection, data);
        false
    }
    /// Closes peer connection `connection`, and its client data connection when bound.
    fn close_peer(&mut self, connection: ConnectionId) {
        let _ = connection;
    }
}
