//! The socket side of TCP allocations (RFC 6062): the relay's listening socket, and the peer
//! data connections, accepted on it or made from its address.
//!
//! A TCP relay must both accept peers on its relayed address and connect out *from* that same
//! address (§5.2), which Linux allows only with SO_REUSEPORT on both sockets. The listener is
//! bound without it first, so that the bind is exclusive (two allocations never share a
//! relayed address, and nothing else holds the port), and takes SO_REUSEPORT after the bind;
//! outgoing sockets set it before theirs. Outgoing sockets never listen, so no connection
//! meant for the relay can land on one.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use super::pipe::PipeBuf;
use super::relay::{Rng, bind_in_range};
use crate::server::{ConnectionId, PortRequest, RelayError};

/// Peers waiting to be accepted on one relayed address.
const RELAY_BACKLOG: i32 = 64;

/// The listening socket of one TCP relayed transport address.
#[derive(Debug)]
pub(super) struct TcpRelay {
    pub listener: TcpListener,
    pub local: SocketAddr,
}

impl TcpRelay {
    /// Binds and listens on `ip`, on a port of `range` drawn as for UDP relays.
    pub fn open(ip: IpAddr, range: (u16, u16), rng: &mut Rng) -> Result<Self, RelayError> {
        let socket = bind_in_range(PortRequest::Any, range, rng, |port| {
            let socket = Socket::new(
                Domain::for_address(SocketAddr::new(ip, port)),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            // A relayed address in TIME_WAIT from an earlier allocation is free to take.
            socket.set_reuse_address(true)?;
            if ip.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&SocketAddr::new(ip, port).into())?;
            Ok(socket)
        })?;
        let ready = || -> io::Result<SocketAddr> {
            socket.set_reuse_port(true)?;
            socket.listen(RELAY_BACKLOG)?;
            socket.set_nonblocking(true)?;
            socket.local_addr()?.as_socket().ok_or_else(|| io::ErrorKind::InvalidInput.into())
        };
        let local = ready().map_err(|_| RelayError::Unavailable)?;
        let listener = TcpListener::from_std(socket.into());
        Ok(Self { listener, local })
    }
}

/// Starts a non-blocking connection from `local` (a TCP relay's address) to `peer`.
pub(super) fn connect_from(local: SocketAddr, peer: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(local), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&local.into())?;
    socket.set_nonblocking(true)?;
    match socket.connect(&peer.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into());
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One peer data connection, and the pipe buffers between it and its client data connection.
#[derive(Debug)]
pub(super) struct PeerStream {
    pub stream: TcpStream,
    pub id: ConnectionId,
    /// Still connecting out for a Connect request.
    pub connecting: bool,
    /// The client data connection, once ConnectionBind joined it (its index among the
    /// worker's connections).
    pub data: Option<usize>,
    /// Peer to client. Filled from the moment the connection is up: what the peer sends
    /// before ConnectionBind waits here (RFC 6062 §5.2, §5.3), and when it is full the peer
    /// is not read any more until the client takes some.
    pub to_client: PipeBuf,
    /// Client to peer.
    pub to_peer: PipeBuf,
    /// The peer closed its side: the pipe closes once `to_client` is delivered.
    pub peer_done: bool,
    /// The client closed its side: the pipe closes once `to_peer` is delivered.
    pub client_done: bool,
}

impl PeerStream {
    pub fn new(stream: TcpStream, id: ConnectionId, connecting: bool) -> Self {
        Self {
            stream,
            id,
            connecting,
            data: None,
            to_client: PipeBuf::new(),
            to_peer: PipeBuf::new(),
            peer_done: false,
            client_done: false,
        }
    }

    /// Whether a connection started by [`connect_from`] is up: `Some(true)` connected,
    /// `Some(false)` failed, `None` still under way (a spurious wake-up).
    pub fn connect_outcome(&self) -> Option<bool> {
        match self.stream.take_error() {
            Ok(Some(_)) | Err(_) => return Some(false),
            Ok(None) => {}
        }
        match self.stream.peer_addr() {
            Ok(_) => Some(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(_) => Some(false),
        }
    }

    /// Whether the pipe has nothing more to do: a side closed and what it sent is delivered.
    pub fn finished(&self) -> bool {
        (self.peer_done && self.to_client.is_empty()) || (self.client_done && self.to_peer.is_empty())
    }
}
