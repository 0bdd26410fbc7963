//! The fallback backend: `recvmmsg`/`sendmmsg` batches and `poll`, for kernels or sandboxes
//! without io_uring (Docker's default seccomp profile refuses `io_uring_setup` with EPERM).
//!
//! A loop turn receives up to `mmsg_batch` datagrams into free pool slots with one call per
//! readable socket, runs the handler on each, and sends the turn's transmits with one
//! `sendmmsg` per batch and socket. Sends complete synchronously, so their slots are released
//! within the turn, and a socket the handler closed is closed at the end of the turn: nothing
//! can still refer to it.
//!
//! Readiness comes from one epoll instance (level-triggered) holding the listeners, every
//! socket the handler opened and the worker's eventfd; the sockets it reports go on a ready
//! list, and a socket stays on it while its reads fill whole batches. So a turn costs a read
//! per socket that has datagrams, not per socket open. With nothing to read the worker sleeps
//! in `epoll_wait`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::send::{SendBatch, send_pending};
use super::sockets::epoll_ctl;
use super::{Core, Received, WorkerSetup, until};
use crate::counters::DropReason;
use crate::handler::{Handler, Output};
use crate::pool::{SLOT_SIZE, SlotId};
use crate::socket::{self, NAME_LEN};

const DRAIN_TICK: Duration = Duration::from_millis(5);
/// epoll data of the eventfd; sockets use their table index.
const WAKER_TOKEN: u64 = u64::MAX;
/// Readiness events taken per `epoll_wait`; level-triggered, so the rest come next time.
const EVENTS: usize = 64;

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

/// The sending side of the sockets.
struct Sender {
    tx: SendBatch,
    /// What the sockets refused this turn (their send buffer was full).
    blocked: Vec<crate::mesh::Transmit>,
}

impl Sender {
    /// Sends the turn's transmits. A full socket send buffer: this backend does not wait for
    /// room, it drops and counts.
    fn flush(&mut self, core: &mut Core) {
        send_pending(core, &mut self.tx, &mut self.blocked);
        for transmit in self.blocked.drain(..) {
            core.counters.drop(DropReason::SendFailed);
            core.release(&transmit);
        }
    }
}

/// The worker's epoll instance.
struct Poller {
    epoll: OwnedFd,
    events: [libc::epoll_event; EVENTS],
}

impl Poller {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { epoll, events: [libc::epoll_event { events: 0, u64: 0 }; EVENTS] })
    }

    /// Waits up to `timeout` (`None`: no limit, zero: just look) and puts the sockets it
    /// reports readable on the ready list.
    fn wait(&mut self, core: &mut Core, timeout: Option<Duration>) {
        // SAFETY: `events` is a live array of EVENTS entries the kernel fills.
        let n = unsafe {
            libc::epoll_wait(self.epoll.as_raw_fd(), self.events.as_mut_ptr(), EVENTS as i32, millis(timeout))
        };
        core.counters.syscalls += 1;
        for event in &self.events[..n.max(0) as usize] {
            let token = event.u64;
            if token == WAKER_TOKEN {
                continue; // cleared after every sleep
            }
            let index = token as u16;
            if core.sockets.delivers(index) && !core.sockets.entries[usize::from(index)].ready {
                core.sockets.entries[usize::from(index)].ready = true;
                core.sockets.ready.push(index);
            }
        }
    }
}

/// A poll/epoll timeout in milliseconds, rounded up so a deadline is never woken early.
fn millis(timeout: Option<Duration>) -> i32 {
    timeout.map_or(-1, |t| {
        t.as_millis().min(i32::MAX as u128 - 1) as i32 + i32::from(t.subsec_nanos() % 1_000_000 != 0)
    })
}

/// Runs a worker until shutdown.
pub fn run<H: Handler>(setup: WorkerSetup, mut handler: H) -> io::Result<()> {
    let WorkerSetup { mut core, shutdown, mmsg_batch, gso, ready, .. } = setup;
    let mut poller = Poller::new()?;
    let epoll = poller.epoll.as_raw_fd();
    for index in core.sockets.listener_indexes() {
        let entry = &mut core.sockets.entries[usize::from(index)];
        epoll_ctl(epoll, libc::EPOLL_CTL_ADD, entry.fd, u64::from(index))?;
        entry.ready = true;
        core.sockets.ready.push(index);
    }
    epoll_ctl(epoll, libc::EPOLL_CTL_ADD, core.mesh.waker().fd(), WAKER_TOKEN)?;
    // From here on sockets the handler opens join the epoll set as they open.
    core.sockets.epoll = Some(epoll);
    let mut rx = Batch::new(mmsg_batch);
    let mut sender =
        Sender { tx: SendBatch::new(mmsg_batch, gso), blocked: Vec::with_capacity(core.pending.capacity()) };
    let mut draining: Option<Instant> = None;
    ready.signal(core.id);

    loop {
        let now = Instant::now();
        core.awake(now);
        // Whether a socket filled its batch, and so may hold more.
        let mut more = false;
        if draining.is_none() {
            more = receive_ready(&mut core, &mut handler, &mut rx, &mut sender, now)?;
        }
        core.drain_inbound();
        if draining.is_none()
            && let Some(deadline) = handler.poll_timeout()
            && deadline <= now
        {
            handler.handle_timeout(now, &mut Output { core: &mut core });
        }
        sender.flush(&mut core);
        // Sends are synchronous: after the flush no transmit names a closing socket.
        while let Some(index) = core.sockets.closing.pop() {
            core.finish_close(index);
        }
        core.sample_kernel_drops(now);
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
        if more {
            // Read again before sleeping. Sockets that became readable meanwhile join the
            // ready list now, or one busy socket would keep the others waiting.
            if core.sockets.several() {
                poller.wait(&mut core, Some(Duration::ZERO));
            }
            continue;
        }

        let now = Instant::now();
        let timeout = match draining {
            Some(_) => Some(DRAIN_TICK),
            None => until(handler.poll_timeout(), now),
        };
        core.going_to_wait(now);
        let waker = core.mesh.waker();
        waker.prepare_sleep();
        if !core.mesh.has_inbound() {
            if draining.is_none() && !core.free.is_empty() {
                poller.wait(&mut core, timeout);
            } else {
                // Without free slots we cannot take datagrams (and draining takes none): wait
                // for slots to come home, or the drain tick, instead.
                let mut fds = [libc::pollfd { fd: waker.fd(), events: libc::POLLIN, revents: 0 }];
                // SAFETY: fds is a live array of one pollfd.
                unsafe { libc::poll(fds.as_mut_ptr(), 1, millis(timeout)) };
                core.counters.syscalls += 1;
            }
        }
        let waker = core.mesh.waker();
        waker.awake();
        waker.clear();
        core.counters.syscalls += 1;
    }
}

/// Reads a batch from each socket on the ready list. A socket whose read came back short has
/// no more waiting and leaves the list (epoll reports it again when datagrams arrive); one
/// that filled the batch stays. Returns whether any stayed.
fn receive_ready<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    rx: &mut Batch,
    sender: &mut Sender,
    now: Instant,
) -> io::Result<bool> {
    let mut more = false;
    let mut i = 0;
    // The handler may open and close sockets meanwhile; neither touches the ready list (a
    // closed socket leaves it at the end of the turn), so indexes into it stay valid.
    while i < core.sockets.ready.len() {
        let index = core.sockets.ready[i];
        let received = if core.sockets.delivers(index) {
            receive_batch(core, handler, rx, sender, index, now)?
        } else {
            0
        };
        if received == rx.slots.len() {
            more = true;
            i += 1;
        } else {
            core.sockets.ready.swap_remove(i);
            core.sockets.entries[usize::from(index)].ready = false;
        }
    }
    Ok(more)
}

/// Receives up to one batch into free slots and handles each datagram. Returns how many came.
/// When the copies the batch makes would not fit (see `Core::sends_must_go`), the queued ones
/// are sent before the next datagram is handled.
fn receive_batch<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    rx: &mut Batch,
    sender: &mut Sender,
    socket: u16,
    now: Instant,
) -> io::Result<usize> {
    let fd = core.sockets.entries[usize::from(socket)].fd;
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
            // A listener failing is the worker failing; a socket the handler opened failing
            // is that socket's problem (it is read again when epoll reports it).
            _ if !core.sockets.is_listener(socket) => 0,
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
                core.handle_received(handler, now, Received { socket, from, slot, offset: 0, len });
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
