//! The contract between the engine and a data plane (relay, bridge media, TURN).
//!
//! For every received datagram a worker calls [`Handler::handle`] with the time, the source
//! address and the packet, in place in its pool slot. The handler answers by
//! [`forward`](Datagram::forward)ing that packet to destinations (the slot is shared, nothing is
//! copied) and/or by [`send`](Output::send)ing new packets it writes into fresh slots (what a
//! bridge does to re-encrypt per receiver). The engine carries the sends out after `handle`
//! returns. Nothing here allocates: destinations go into a preallocated list and packets into
//! pool slots; when either is exhausted the send is dropped and counted.

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

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub addr: SocketAddr,
    pub via: Via,
}

impl Destination {
    /// Sent by the worker that handles the datagram.
    pub fn here(addr: SocketAddr) -> Self {
        Self { addr, via: Via::Here }
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
}

impl Datagram<'_> {
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
