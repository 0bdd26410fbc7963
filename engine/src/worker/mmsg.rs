//! The fallback backend: `recvmmsg`/`sendmmsg` batches and `poll`, for kernels or sandboxes
//! without io_uring (Docker's default seccomp profile refuses `io_uring_setup` with EPERM).
//!
//! A loop turn receives up to `mmsg_batch` datagrams into free pool slots with one call, runs
//! the handler on each, and sends the turn's transmits with one `sendmmsg` per batch. Sends
//! complete synchronously, so their slots are released within the turn. With nothing to read
//! the worker sleeps in `poll` on its socket and its eventfd.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::send::{SendBatch, send_pending};
use super::{Core, WorkerSetup, until};
use crate::counters::DropReason;
use crate::handler::{Handler, Output};
use crate::pool::{SLOT_SIZE, SlotId};
use crate::socket::{self, NAME_LEN};

const DRAIN_TICK: Duration = Duration::from_millis(5);

/// Preallocated `recvmmsg` batch with the iovecs and addresses it points into.
struct Batch {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_in6]>,
    slots: Box<[SlotId]>,
}

impl Batch {
    fn new(size: usize) -> Self {
        Self {
            headers: (0..size).map(|_| socket::unsafe_zeroed()).collect(),
            iovecs: (0..size).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            names: (0..size).map(|_| socket::unsafe_zeroed()).collect(),
            slots: vec![SlotId(0); size].into_boxed_slice(),
        }
    }

    /// Points header `i` at its iovec and address.
    fn link(&mut self, i: usize, name_len: libc::socklen_t) {
        let (name, iov) = (&raw mut self.names[i], &raw mut self.iovecs[i]);
        socket::point_header(&mut self.headers[i].msg_hdr, name, name_len, iov);
    }
}

/// The sending side of the socket.
struct Sender {
    tx: SendBatch,
    /// What the socket refused this turn (its send buffer was full).
    blocked: Vec<crate::mesh::Transmit>,
    fd: i32,
    family: libc::c_int,
}

impl Sender {
    /// Sends the turn's transmits. A full socket send buffer: this backend does not wait for
    /// room, it drops and counts.
    fn flush(&mut self, core: &mut Core) {
        send_pending(core, &mut self.tx, self.fd, self.family, &mut self.blocked);
        for transmit in self.blocked.drain(..) {
            core.counters.drop(DropReason::SendFailed);
            core.release(&transmit);
        }
    }
}

/// Runs a worker until shutdown.
pub fn run<H: Handler>(setup: WorkerSetup, mut handler: H) -> io::Result<()> {
    let WorkerSetup { mut core, socket, shutdown, mmsg_batch, gso, ready, .. } = setup;
    let fd = socket.as_raw_fd();
    let family = socket::family(&socket)?;
    let mut rx = Batch::new(mmsg_batch);
    let mut sender = Sender {
        tx: SendBatch::new(mmsg_batch, gso),
        blocked: Vec::with_capacity(core.pending.capacity()),
        fd,
        family,
    };
    let mut draining: Option<Instant> = None;
    ready.signal(core.id);

    loop {
        let now = Instant::now();
        let mut received = 0;
        if draining.is_none() {
            received = receive_batch(&mut core, &mut handler, &mut rx, &mut sender, now)?;
        }
        core.drain_inbound();
        if draining.is_none()
            && let Some(deadline) = handler.poll_timeout()
            && deadline <= now
        {
            handler.handle_timeout(now, &mut Output { core: &mut core });
        }
        sender.flush(&mut core);
        core.sample_kernel_drops(&socket, now);
        core.end_turn();

        if let Some(deadline) = draining {
            if shutdown.all_done_producing() && !core.mesh.has_inbound() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(worker = core.id.0, "drain time ran out");
                return Ok(());
            }
        } else if shutdown.requested() {
            // Nothing is queued after send_pending: from here on we hand nothing to anyone.
            draining = Some(Instant::now() + shutdown.drain_timeout);
            shutdown.done_producing(core.id);
            continue;
        }
        if received > 0 {
            continue; // the socket may hold more; read again before sleeping
        }

        let timeout = match draining {
            Some(_) => Some(DRAIN_TICK),
            None => until(handler.poll_timeout(), Instant::now()),
        };
        let waker = core.mesh.waker();
        waker.prepare_sleep();
        if !core.mesh.has_inbound() {
            // Without free slots we cannot take datagrams: wait for slots to come home instead.
            let socket_events = if draining.is_none() && !core.free.is_empty() { libc::POLLIN } else { 0 };
            let mut fds = [
                libc::pollfd { fd, events: socket_events, revents: 0 },
                libc::pollfd { fd: waker.fd(), events: libc::POLLIN, revents: 0 },
            ];
            let ms = timeout.map_or(-1, |t| {
                t.as_millis().min(i32::MAX as u128) as i32 + i32::from(t.subsec_nanos() % 1_000_000 != 0)
            });
            // SAFETY: fds is a live array of two pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            core.counters.syscalls += 1;
        }
        waker.awake();
        waker.clear();
        core.counters.syscalls += 1;
    }
}

/// Receives up to one batch into free slots and handles each datagram. Returns how many came.
/// When the copies the batch makes would not fit (see `Core::sends_must_go`), the queued ones
/// are sent before the next datagram is handled.
fn receive_batch<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    rx: &mut Batch,
    sender: &mut Sender,
    now: Instant,
) -> io::Result<usize> {
    let fd = sender.fd;
    let mut ready = 0;
    while ready < rx.slots.len() {
        let Some(slot) = core.free.pop() else { break };
        rx.slots[ready] = slot;
        rx.iovecs[ready] = libc::iovec { iov_base: core.pool.slot_ptr(slot).cast(), iov_len: SLOT_SIZE };
        rx.link(ready, NAME_LEN as libc::socklen_t);
        ready += 1;
    }
    if ready == 0 {
        core.counters.rx_stalls += 1;
        return Ok(0);
    }
    // SAFETY: the first `ready` headers point at live iovecs, addresses and free pool slots
    // that this worker owns for the duration of the call.
    let n = unsafe {
        libc::recvmmsg(fd, rx.headers.as_mut_ptr(), ready as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    core.counters.syscalls += 1;
    let received = if n < 0 {
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => 0,
            // ICMP errors queued on the socket surface here; they are not ours to act on.
            Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => 0,
            _ => {
                release_unused(core, rx, 0, ready);
                return Err(error);
            }
        }
    } else {
        n as usize
    };
    for i in 0..received {
        let slot = rx.slots[i];
        let header = &rx.headers[i];
        let len = header.msg_len as usize;
        // SAFETY: the kernel wrote `msg_namelen` bytes of address into names[i].
        let name = unsafe {
            std::slice::from_raw_parts(
                (&raw const rx.names[i]).cast::<u8>(),
                (header.msg_hdr.msg_namelen as usize).min(NAME_LEN),
            )
        };
        match socket::decode(name) {
            Some(from) if header.msg_hdr.msg_flags & libc::MSG_TRUNC == 0 => {
                core.handle_received(handler, now, from, slot, 0, len);
                if core.sends_must_go() {
                    sender.flush(core);
                }
            }
            _ => {
                core.counters.drop(DropReason::Truncated);
                core.recycle(slot, 0..len.min(SLOT_SIZE));
            }
        }
    }
    release_unused(core, rx, received, ready);
    Ok(received)
}

fn release_unused(core: &mut Core, rx: &Batch, from: usize, to: usize) {
    for &slot in &rx.slots[from..to] {
        core.free.push(slot);
    }
}
