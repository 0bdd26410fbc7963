//! The contract between the engine and a data plane (relay, bridge media, TURN).
//!
//! For every received datagram a worker calls [`Handler::handle`] with the time, the source
//! address and the packet, in place in its pool slot. The handler answers by
//! [`forward`](Datagram::forward)ing that packet to destinations (the slot is shared, nothing is
//! copied) and/or by [`send`](Output::send)ing new packets it writes into fresh slots (what a
//! bridge does to re-encrypt per receiver). The engine carries the sends out after `handle`
//! returns. Nothing here allocates: destinations go into a preallocated list and packets into
//! pool slots; when either is exhausted the send is dropped and counted.
//!
//! Sockets: every worker receives on the listener it shares with the other workers
//! ([`SocketId::LISTENER`], SO_REUSEPORT on the configured address), and on one listener per
//! further listen address (`extra_listen`), each id answering [`SocketId::is_listener`]; a
//! handler answers from the one a datagram reached with [`Destination::from_socket`]
//! ([`Output::listener`] finds one by address). A handler may also open
//! sockets of its own on its worker ([`Output::open_udp`], up to `max_sockets_per_worker`), a
//! TURN server's relay sockets: datagrams arriving on one are handled like any other, with
//! [`Datagram::socket`] naming it, and a handler answers from it with
//! [`Destination::from_socket`]. Such a socket belongs to the worker that opened it: only that
//! worker receives on it and sends from it, and a send naming it through another worker is
//! dropped and counted ([`DropReason::UnknownSocket`]). [`Output::close_socket`] ends delivery
//! at once: no datagram that arrives on the socket afterwards reaches the handler, sends naming
//! it are dropped and counted, and its id is never reused. Sends queued before the close are
//! still sent; the descriptor is closed as soon as the kernel holds no operation on it.
//! Opening and closing make system calls and may allocate; they are for the control path
//! (once per TURN allocation), not per packet.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::counters::DropReason;
use crate::worker::Core;

/// Index of a worker thread (and of its core, when pinned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

/// Which worker sends a packet. A data plane that keeps per-receiver state on one core (SRTP
/// contexts) names that core; anything else sends from the core that received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Via {
    /// The worker handling the datagram.
    #[default]
    Here,
    /// A given worker, reached over the cross-core queue.
    Worker(WorkerId),
}

/// A UDP socket of a worker: the listener, or a socket the handler opened with
/// [`Output::open_udp`]. An id names one socket for its whole life: once that socket is
/// closed, no later socket gets the same id (an index plus a generation), so a stale id held
/// anywhere can only miss, never reach someone else's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    pub(crate) index: u16,
    pub(crate) generation: u32,
}

impl SocketId {
    /// The worker's share of the configured listen address (SO_REUSEPORT). Listeners of
    /// further listen addresses follow at indexes 1, 2, ... in `extra_listen` order; all have
    /// generation 0, which no socket a handler opens ever gets.
    pub const LISTENER: Self = Self { index: 0, generation: 0 };

    /// Whether this is one of the engine's listeners (shared by every worker, never closed)
    /// rather than a socket a handler opened.
    #[inline]
    pub fn is_listener(self) -> bool {
        self.generation == 0
    }

    /// A small number (below 65536; 0, 1, ... for the listeners) that no other open socket of
    /// this worker has, for a data plane to index per-socket state with instead of hashing. A
    /// later socket may get the same index once this one is closed: keep the whole id next to
    /// the state and compare it.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.index)
    }
}

/// The limit `max_sockets_per_worker` stopped [`Output::open_udp`]. Carried inside the
/// returned `io::Error` (`io::Error::get_ref` and `downcast_ref` find it), so a TURN server can
/// answer 508 Insufficient Capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketLimitReached {
    pub limit: usize,
}

impl std::fmt::Display for SocketLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this worker already has engine.max_sockets_per_worker = {} sockets open", self.limit)
    }
}

impl std::error::Error for SocketLimitReached {}

/// Where a packet goes: an address, the worker that sends it and the socket it leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub addr: SocketAddr,
    pub via: Via,
    /// A listener ([`SocketId::LISTENER`] or another [`SocketId::is_listener`] id, which any
    /// worker may send from), or a socket the sending worker opened. A socket the handler
    /// opened can only be named with `Via::Here` (or `Via::Worker` of its own worker): any
    /// other worker drops the packet and counts [`DropReason::UnknownSocket`], as it does for
    /// a closed socket.
    pub socket: SocketId,
}

impl Destination {
    /// Sent from the listener by the worker that handles the datagram.
    pub fn here(addr: SocketAddr) -> Self {
        Self { addr, via: Via::Here, socket: SocketId::LISTENER }
    }

    /// Sent from `socket`, a listener or one the handling worker opened, by that worker.
    pub fn from_socket(socket: SocketId, addr: SocketAddr) -> Self {
        Self { addr, via: Via::Here, socket }
    }
}

/// A data plane driven by an engine worker. One instance per worker; it is created on and
/// never leaves its worker thread's core.
pub trait Handler: Send + 'static {
    /// One received datagram. Forwards carry the packet as it stands when this returns.
    fn handle(&mut self, now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>);

    /// The next instant [`handle_timeout`](Self::handle_timeout) should run, if any.
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    /// Called once `now` has reached the instant `poll_timeout` returned.
    fn handle_timeout(&mut self, now: Instant, out: &mut Output<'_>) {
        let _ = (now, out);
    }
}

/// Packet bytes in a pool slot: `len` bytes of payload in front of spare capacity. Only the
/// payload can be read, and it grows only by writing, so no byte of an earlier packet that used
/// the slot is ever visible.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

/// The packet could not grow: the slot is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityExceeded;

impl<'a> PacketBuf<'a> {
    pub(crate) fn new(bytes: &'a mut [u8], len: usize) -> Self {
        debug_assert!(len <= bytes.len());
        Self { bytes, len }
    }

    /// Payload length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the packet can grow to.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// Shortens the packet. The cut bytes are zeroed, so the slot never holds packet bytes
    /// beyond `len` (the engine wipes `..len` when it recycles the slot).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.bytes[len..self.len].fill(0);
            self.len = len;
        }
    }

    /// Appends bytes.
    #[inline]
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityExceeded> {
        let end = self.len.checked_add(data.len()).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CapacityExceeded)?;
        self.bytes[self.len..end].copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    /// Appends `n` zero bytes (room for a tag written afterwards).
    #[inline]
    pub fn extend_zeroed(&mut self, n: usize) -> Result<(), CapacityExceeded> {
        let end = self.len.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CapacityExceeded)?;
        self.bytes[self.len..end].fill(0);
        self.len = end;
        Ok(())
    }
}

impl std::ops::Deref for PacketBuf<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::ops::DerefMut for PacketBuf<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

/// A received datagram, with the list of destinations it will be forwarded to.
#[derive(Debug)]
pub struct Datagram<'a> {
    pub(crate) buf: PacketBuf<'a>,
    pub(crate) fanout: &'a mut Vec<Destination>,
    pub(crate) fanout_dropped: u64,
    pub(crate) socket: SocketId,
    pub(crate) local: SocketAddr,
}

impl Datagram<'_> {
    /// The socket the datagram arrived on.
    #[inline]
    pub fn socket(&self) -> SocketId {
        self.socket
    }

    /// The address that socket is bound to (for a wildcard bind, the wildcard, not the
    /// address the datagram was sent to).
    #[inline]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends this packet (as it stands when `handle` returns) to `to`, sharing the slot.
    /// Returns false, and counts a drop, past the configured `max_fanout`.
    #[inline]
    pub fn forward(&mut self, to: Destination) -> bool {
        if self.fanout.len() == self.fanout.capacity() {
            self.fanout_dropped += 1;
            return false;
        }
        self.fanout.push(to);
        true
    }
}

impl<'a> std::ops::Deref for Datagram<'a> {
    type Target = PacketBuf<'a>;
    #[inline]
    fn deref(&self) -> &PacketBuf<'a> {
        &self.buf
    }
}

impl<'a> std::ops::DerefMut for Datagram<'a> {
    #[inline]
    fn deref_mut(&mut self) -> &mut PacketBuf<'a> {
        &mut self.buf
    }
}

/// What a handler can send besides forwarding the packet it was given.
#[derive(Debug)]
pub struct Output<'a> {
    pub(crate) core: &'a mut Core,
}

impl Output<'_> {
    /// Writes a new packet into a fresh slot and sends it to `to`. `write` starts with an empty
    /// packet; if it leaves the packet empty nothing is sent. Returns false, and counts a drop,
    /// when the worker's share of the pool is exhausted or its send queue is full.
    #[inline]
    pub fn send(&mut self, to: Destination, write: impl FnOnce(&mut PacketBuf<'_>)) -> bool {
        self.core.send_new(to, write)
    }

    /// Opens a UDP socket on `local` (port 0: any free port; IPv6 addresses are IPv6-only) for
    /// this worker: datagrams arriving on it are handed to this handler with
    /// [`Datagram::socket`] naming it, and [`Destination::from_socket`] sends from it. Returns
    /// its id and the address it is bound to. Fails (and counts `socket_open_failures`) when
    /// the kernel refuses the bind, or with [`SocketLimitReached`] inside the error when the
    /// worker already holds `max_sockets_per_worker` sockets (0 by default: none).
    ///
    /// Control path: a few system calls; nothing on the packet path depends on how many
    /// sockets are open.
    pub fn open_udp(&mut self, local: SocketAddr) -> io::Result<(SocketId, SocketAddr)> {
        self.core.open_udp(local)
    }

    /// Closes a socket this handler opened: nothing that arrives on it from now on is handled,
    /// later sends naming it are dropped and counted ([`DropReason::UnknownSocket`]), sends
    /// queued before are still sent, and no later socket gets its id. The descriptor is closed
    /// once the kernel holds no operation on it: within a loop turn or two, later only while
    /// sends from it wait for room in its send buffer. Returns false, and does nothing, for the
    /// listener, an unknown id or one already closed.
    pub fn close_socket(&mut self, id: SocketId) -> bool {
        self.core.close_socket(id)
    }

    /// Sets whether what this handler's socket `id` sends may be fragmented (IPv4: the DF bit
    /// set by "do"; IPv6: no fragmenting at this host). One system call: for a data plane that
    /// changes it rarely (TURN's DONT-FRAGMENT), never per packet. `NotFound` for the listener
    /// and for sockets not open.
    pub fn set_dont_fragment(&mut self, id: SocketId, on: bool) -> io::Result<()> {
        self.core.sockets.set_dont_fragment(id, on, &mut self.core.counters.syscalls)
    }

    /// The address an open socket of this worker is bound to.
    pub fn local_addr(&self, id: SocketId) -> Option<SocketAddr> {
        self.core.sockets.local_addr(id)
    }

    /// The listener bound to `local` (its port resolved), for a data plane that answers a
    /// client from the address the client reached when it no longer holds the datagram (a
    /// TURN server relaying a peer's packet). A scan of the few listeners, no system call.
    #[inline]
    pub fn listener(&self, local: SocketAddr) -> Option<SocketId> {
        self.core.sockets.listener_at(local)
    }

    /// Counts a datagram the handler decided not to forward.
    #[inline]
    pub fn drop_packet(&mut self, reason: DropReason) {
        self.core.counters.drop(reason);
    }

    /// The worker running this handler.
    pub fn worker(&self) -> WorkerId {
        self.core.id
    }
}
