//! Sending a loop turn's transmits with `sendmmsg`, both backends' fast path.
//!
//! Consecutive transmits to the same destination with the same length become one message with
//! a UDP_SEGMENT control message (UDP GSO, Linux 4.18): the kernel walks the UDP/IP send path
//! once for the whole run and splits it into datagrams at the end, instead of once per
//! datagram. Media is bursty per receiver (a video frame is several full-size packets), so runs
//! are common. When the kernel refuses GSO for this socket the worker says so once and sends
//! one datagram per message from then on.
//!
//! One `sendmmsg` leaves from one socket. A turn whose transmits leave from several sockets
//! (the listener and sockets the handler opened) is grouped by socket first, each socket's
//! transmits in their original order, and a GSO run never spans two sockets.

use std::io;
use std::mem::size_of;

use super::Core;
use crate::counters::DropReason;
use crate::mesh::Transmit;
use crate::pool::SlotId;
use crate::socket;
use crate::worker::sockets::State;

/// Segments the kernel accepts in one GSO send (UDP_MAX_SEGMENTS) and the byte limit of one
/// UDP message.
const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

/// Room for one `cmsghdr` carrying a u16 (CMSG_SPACE(2) on 64-bit Linux).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SegmentControl([u8; 24]);

/// Preallocated headers, iovecs, addresses and control buffers for one `sendmmsg` batch.
pub(crate) struct SendBatch {
    headers: Box<[libc::mmsghdr]>,
    names: Box<[libc::sockaddr_in6]>,
    controls: Box<[SegmentControl]>,
    /// Segments of all messages, each message's contiguous.
    iovecs: Box<[libc::iovec]>,
    transmits: Box<[Option<Transmit>]>,
    /// First segment of each message.
    first: Box<[usize]>,
    gso: bool,
}

impl SendBatch {
    /// Up to `messages` messages of up to `MAX_SEGMENTS` segments each (fewer when `gso` is off).
    pub(crate) fn new(messages: usize, gso: bool) -> Self {
        let segments = if gso { messages * 4 } else { messages };
        Self {
            headers: (0..messages).map(|_| socket::unsafe_zeroed()).collect(),
            names: (0..messages).map(|_| socket::unsafe_zeroed()).collect(),
            controls: vec![SegmentControl([0; 24]); messages].into_boxed_slice(),
            iovecs: (0..segments)
                .map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 })
                .collect(),
            transmits: vec![None; segments].into_boxed_slice(),
            first: vec![0; messages + 1].into_boxed_slice(),
            gso,
        }
    }

    /// Whether `transmit` can join the last of `messages` messages as one more GSO segment.
    fn joins_last(&self, messages: usize, segments: usize, transmit: &Transmit) -> bool {
        if !self.gso || messages == 0 || segments == self.iovecs.len() {
            return false;
        }
        let first = self.first[messages - 1];
        let last = self.transmits[first].as_ref().expect("a message has its first segment");
        let count = segments - first;
        last.dest == transmit.dest
            && last.len == transmit.len
            && count < MAX_SEGMENTS
            && (count + 1) * usize::from(transmit.len) <= MAX_GSO_BYTES
    }

    /// Writes the UDP_SEGMENT control message of message `m` (segments of `size` bytes).
    fn set_segment_size(&mut self, m: usize, size: u16) {
        let header = &mut self.headers[m].msg_hdr;
        let control = &mut self.controls[m];
        header.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic on a length.
        header.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        // SAFETY: msg_control points at our aligned 24-byte buffer, which holds one cmsghdr
        // (16 bytes) plus a u16 as CMSG_SPACE(2) says; CMSG_FIRSTHDR/CMSG_DATA stay inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(header);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
        }
    }
}

/// Sends every queued transmit, a batch per `sendmmsg` from one socket, and releases their
/// slots. When a socket's send buffer is full (EAGAIN), its transmits not yet sent go to
/// `blocked`, still holding their slot references, for the caller to retry or drop; the other
/// sockets' transmits are still sent.
pub(crate) fn send_pending(core: &mut Core, tx: &mut SendBatch, blocked: &mut Vec<Transmit>) {
    let mut pending = std::mem::take(&mut core.pending);
    let first = pending.first().map(|t| t.socket);
    let mixed = pending.iter().any(|t| Some(t.socket) != first);
    let runs = tx.gso && pending.len() > 2;
    if runs || mixed {
        // Fan-out interleaves destinations (p1→A, p1→B, p2→A, p2→B); grouping the turn's sends
        // by destination, each destination's in their original order, turns that into runs
        // GSO can batch. Unstable sort on (socket, destination, position): no allocation,
        // stable result.
        for (i, transmit) in pending.iter_mut().enumerate() {
            transmit.order = i as u32;
        }
        if runs {
            pending.sort_unstable_by(|a, b| {
                (a.socket, a.dest).cmp(&(b.socket, b.dest)).then(a.order.cmp(&b.order))
            });
        } else {
            pending.sort_unstable_by_key(|t| (t.socket, t.order));
        }
    }
    let mut queued = pending.drain(..).peekable();
    while let Some(&Transmit { socket: index, .. }) = queued.peek() {
        let entry = &core.sockets.entries[usize::from(index)];
        let (fd, family) = (entry.fd, entry.family);
        if entry.state == State::Free {
            // Not reached: a socket's descriptor stays open until no transmit names it.
            debug_assert!(false, "a queued transmit names a closed socket");
            while let Some(transmit) = queued.next_if(|t| t.socket == index) {
                core.counters.drop(DropReason::UnknownSocket);
                core.release(&transmit);
            }
            continue;
        }
        let (mut messages, mut segments) = (0, 0);
        while let Some(transmit) = queued.peek().copied() {
            if transmit.socket != index {
                break;
            }
            if tx.joins_last(messages, segments, &transmit) {
                tx.headers[messages - 1].msg_hdr.msg_iovlen += 1;
            } else if messages == tx.headers.len() || segments == tx.iovecs.len() {
                break;
            } else {
                let Some(name_len) = socket::encode(transmit.dest, family, &mut tx.names[messages]) else {
                    queued.next();
                    core.counters.drop(DropReason::SendFailed);
                    core.release(&transmit);
                    continue;
                };
                let (name, iov) = (&raw mut tx.names[messages], &raw mut tx.iovecs[segments]);
                socket::point_header(&mut tx.headers[messages].msg_hdr, name, name_len, iov);
                tx.first[messages] = segments;
                messages += 1;
            }
            queued.next();
            // SAFETY: offset + len lies within the slot; the mapping outlives the call.
            let base = unsafe { core.pool.slot_ptr(SlotId(transmit.slot)).add(usize::from(transmit.offset)) };
            tx.iovecs[segments] = libc::iovec { iov_base: base.cast(), iov_len: usize::from(transmit.len) };
            tx.transmits[segments] = Some(transmit);
            segments += 1;
        }
        tx.first[messages] = segments;
        for m in 0..messages {
            if tx.first[m + 1] - tx.first[m] > 1 {
                let size = tx.transmits[tx.first[m]].as_ref().expect("segment").len;
                tx.set_segment_size(m, size);
            }
        }
        if !send_messages(core, tx, fd, messages, blocked) {
            while let Some(transmit) = queued.next_if(|t| t.socket == index) {
                blocked.push(transmit);
            }
        }
    }
    drop(queued);
    core.pending = pending;
}

/// Sends messages `0..messages`; returns false when the socket is full (their unsent
/// transmits are in `blocked`).
fn send_messages(
    core: &mut Core,
    tx: &mut SendBatch,
    fd: i32,
    messages: usize,
    blocked: &mut Vec<Transmit>,
) -> bool {
    let mut done = 0;
    while done < messages {
        // SAFETY: headers done..messages point at live names, iovecs, controls and pool slots
        // that we hold references to until they are released below.
        let n = unsafe {
            libc::sendmmsg(fd, tx.headers[done..].as_mut_ptr(), (messages - done) as u32, libc::MSG_DONTWAIT)
        };
        core.counters.syscalls += 1;
        let error = (n < 0).then(io::Error::last_os_error);
        match error.as_ref().and_then(io::Error::raw_os_error) {
            Some(libc::EAGAIN | libc::ENOBUFS) => {
                let unsent = tx.first[done]..tx.first[messages];
                blocked.extend(tx.transmits[unsent].iter_mut().map(|t| t.take().expect("queued segment")));
                return false;
            }
            Some(code @ (libc::EIO | libc::EINVAL | libc::EOPNOTSUPP))
                if tx.gso && tx.first[done + 1] - tx.first[done] > 1 =>
            {
                tx.gso = false;
                tracing::warn!(
                    worker = core.id.0,
                    "the kernel refused UDP GSO ({}); sending one datagram per message from now on",
                    io::Error::from_raw_os_error(code)
                );
            }
            _ => {}
        }
        // A failed first message is reported as -1: count it and go on with the rest.
        let (sent, failed) = if n > 0 { (n as usize, 0) } else { (0, 1) };
        for m in done..done + sent + failed {
            for segment in tx.first[m]..tx.first[m + 1] {
                let transmit = tx.transmits[segment].take().expect("each segment has its transmit");
                if m < done + sent {
                    core.counters.tx_packets += 1;
                    core.counters.tx_bytes += u64::from(transmit.len);
                } else {
                    core.counters.drop(DropReason::SendFailed);
                }
                core.release(&transmit);
            }
        }
        done += sent + failed;
    }
    true
}
