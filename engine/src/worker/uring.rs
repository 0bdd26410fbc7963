//! The io_uring backend.
//!
//! Receives with one multishot `RECVMSG` whose buffers come from a provided-buffer ring made of
//! this worker's pool slots: the kernel writes each datagram (behind a small header and the
//! source address) straight into a slot, and a slot goes back into the ring only after its
//! last send. The turn's sends leave from the same slots in `sendmmsg` batches: UDP copies a
//! datagram during the call, so slots are released at once and no per-send SQE, msghdr
//! import or CQE is paid (bench-report measured `SENDMSG` SQEs as the costlier path on
//! loopback). Only what the socket cannot take right now (EAGAIN) is queued as `SENDMSG` SQEs,
//! which io_uring retries when the socket has room; those are submitted with the wait for the
//! next completions, one `io_uring_enter` per turn.
//!
//! Every socket of the worker (the listeners and those the handler opened) has its own
//! multishot `RECVMSG`, all drawing from the one buffer ring; a completion's user data carries
//! the socket's table index. When the ring runs dry each receive that finds it empty ends
//! (ENOBUFS) and goes on the `unarmed` list, to be re-armed once slots are back in the ring.
//!
//! Closing a socket the handler opened: from the `close_socket` call on, the table drops what
//! still arrives on it and refuses sends naming it. The backend then cancels its receive
//! (ASYNC_CANCEL on its user data) and keeps the descriptor open, and the index unused, until
//! the receive's last completion has arrived and no send from the socket waits in io_uring or
//! in the backlog; only then is the descriptor closed and the index freed (`close_finished`).
//! So no operation in the kernel, and no completion still to come, refers to a descriptor that
//! was closed or an index that now names another socket.
//!
//! Kernel features used: multishot recvmsg (6.0), provided buffer rings (5.19), SINGLE_ISSUER
//! (6.0) and DEFER_TASKRUN (6.1). The last two are optional; without a buffer ring or
//! multishot recvmsg the engine falls back to [`super::mmsg`].

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

use super::sockets::State;
use super::{Core, Received, WorkerSetup, send, until};
use crate::counters::DropReason;
use crate::handler::{Handler, Output};
use crate::mesh::Transmit;
use crate::pool::{SLOT_SIZE, SlotId};
use crate::socket::{self, NAME_LEN};

const BUFFER_GROUP: u16 = 0;
const TAG_MASK: u64 = 0xff << 56;
const TAG_RECV: u64 = 1 << 56;
const TAG_SEND: u64 = 2 << 56;
const TAG_WAKE: u64 = 3 << 56;
const TAG_CANCEL: u64 = 4 << 56;
/// Below the tag: a receive's socket index, a send's op index.
const INDEX_MASK: u64 = 0xffff_ffff;
/// Submission queue depth. A turn with more sends than this submits early (one extra enter).
const RING_ENTRIES: u32 = 1024;
/// Datagrams per sendmmsg call.
const SEND_BATCH: usize = 64;
/// Completions a batching wait returns early for.
const BATCH_WANT: usize = 64;
/// Upper bound of a batching wait after a burst when the handler has no deadline.
const BUSY_SLEEP_BOUND: Duration = Duration::from_secs(10);
/// How often a draining worker looks at its peers' progress.
const DRAIN_TICK: Duration = Duration::from_millis(5);

/// Creates a ring with the flags a worker wants, dropping the optional ones the kernel lacks.
/// Returns whether SINGLE_ISSUER and DEFER_TASKRUN are on.
fn build_ring(entries: u32) -> io::Result<(IoUring, bool)> {
    // Completions are reaped every turn; a deeper CQ only costs locked memory (rings count
    // against RLIMIT_MEMLOCK for processes without CAP_IPC_LOCK). Overflow is not loss: the
    // kernel keeps overflowed completions (IORING_FEAT_NODROP) until we reap them.
    let cq = entries * 4;
    let attempt = |single_issuer: bool| {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq).setup_clamp();
        if single_issuer {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        builder.build(entries).map(|ring| (ring, single_issuer))
    };
    match attempt(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => attempt(false),
        other => other,
    }
}

/// Without CAP_IPC_LOCK, ring memory counts against RLIMIT_MEMLOCK; say so.
fn explain_enomem(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    io::Error::other(format!(
        "io_uring setup: {e}; io_uring rings count against the locked-memory limit: raise \
         LimitMEMLOCK= in the systemd unit (or `ulimit -l`), or set engine.backend = \"mmsg\""
    ))
}

/// Checks, once at start, that this kernel and process may use what the backend needs.
/// An error here (EPERM under a seccomp profile, ENOSYS, EINVAL on old kernels) selects the
/// fallback backend.
/// Returns whether DEFER_TASKRUN is available.
pub fn probe() -> io::Result<bool> {
    let (ring, defer_taskrun) = build_ring(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for code in [opcode::RecvMsgMulti::CODE, opcode::SendMsg::CODE, opcode::AsyncCancel::CODE] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring opcode {code} unsupported"),
            ));
        }
    }
    let buffers = BufRing::new(1)?;
    // SAFETY: the ring memory stays mapped until after it is unregistered below.
    unsafe { ring.submitter().register_buf_ring_with_flags(buffers.base as u64, 1, BUFFER_GROUP, 0)? };
    ring.submitter().unregister_buf_ring(BUFFER_GROUP)?;
    Ok(defer_taskrun)
}

/// A provided-buffer ring: page-aligned entries the kernel takes buffers from.
struct BufRing {
    base: *mut BufRingEntry,
    entries: u16,
    bytes: usize,
    /// Our next write position (the kernel reads up to the published tail).
    tail: u16,
    /// Buffers in the ring the kernel has not used yet.
    available: usize,
}

impl BufRing {
    fn new(entries: u16) -> io::Result<Self> {
        let entries = entries.max(1).next_power_of_two();
        let bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous mapping, page-aligned as the kernel requires; result checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { base: ptr.cast(), entries, bytes, tail: 0, available: 0 })
    }

    /// Adds a buffer; visible to the kernel after [`publish`](Self::publish).
    fn push(&mut self, addr: *mut u8, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: index < entries, inside the mapping. The kernel only reads entries between
        // its head and the published tail; this one is past the published tail.
        let entry = unsafe { &mut *self.base.add(index) };
        entry.set_addr(addr as u64);
        entry.set_len(SLOT_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.available += 1;
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of our mapping, and the kernel reads
        // it as an atomic u16; the Release store orders the entry writes before it.
        let tail = unsafe { &*BufRingEntry::tail(self.base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly our mapping; callers unregister it (or leak it) first.
        unsafe { libc::munmap(self.base.cast(), self.bytes) };
    }
}

/// The kernel's view of one queued send: it reads these until the completion arrives.
struct SendOp {
    header: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_in6,
    transmit: Option<Transmit>,
}

/// Sends waiting in io_uring for room in the socket buffer (the slow path).
struct QueuedSends {
    ops: Box<[SendOp]>,
    free: Vec<u32>,
}

impl QueuedSends {
    fn new(capacity: usize) -> Self {
        let ops = (0..capacity)
            .map(|_| SendOp {
                header: socket::unsafe_zeroed(),
                iov: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
                addr: socket::unsafe_zeroed(),
                transmit: None,
            })
            .collect();
        Self { ops, free: (0..capacity as u32).rev().collect() }
    }

    fn in_flight(&self) -> usize {
        self.ops.len() - self.free.len()
    }
}

#[derive(PartialEq)]
enum Phase {
    Running,
    Draining { deadline: Instant, producing_done: bool },
}

/// What the shutdown bookkeeping of a turn decided.
enum Next {
    /// Wait for completions and go on.
    Wait,
    /// Skip the wait: a new phase needs another turn first.
    Turn,
    /// Leave: everything drained.
    Exit,
    /// Leave now, with sends still in the kernel (drain time ran out).
    Abandon,
}

/// One io_uring worker's state.
struct Worker<H> {
    core: Core,
    handler: H,
    shutdown: std::sync::Arc<super::Shutdown>,
    ring: IoUring,
    buffers: BufRing,
    /// First slot of our share: buffer id `bid` is slot `first_slot + bid`.
    first_slot: u32,
    /// Buffers kept in the ring; the rest of the share serves packets the handler writes.
    ring_target: usize,
    /// Every multishot receive reads msg_namelen/msg_controllen from this header for its
    /// whole life (they are the same for all sockets); boxed so its address is stable.
    rx_header: Box<libc::msghdr>,
    wake_buffer: Box<u64>,
    waker_fd: Fd,
    queued: QueuedSends,
    tx_batch: send::SendBatch,
    blocked: Vec<Transmit>,
    /// Sends waiting for the socket, in order, behind the chain in io_uring (see `send_turn`).
    backlog: std::collections::VecDeque<Transmit>,
    /// Multishot receives in the kernel, over all sockets.
    armed: usize,
    wake_armed: bool,
    /// Whether the last turn received anything: then the next wait batches (see `wait`).
    busy: bool,
    batch_wait_us: u32,
    phase: Phase,
}

/// Runs a worker until shutdown.
pub fn run<H: Handler>(setup: WorkerSetup, handler: H) -> io::Result<()> {
    let WorkerSetup { mut core, shutdown, ready, gso, batch_wait_us, .. } = setup;
    let listeners = core.sockets.listener_indexes();
    core.sockets.unarmed.extend(listeners);
    let slots = core.pool.worker_slots(core.id);
    let send_capacity = core.pending.capacity();
    let (ring, _) = build_ring(RING_ENTRIES).map_err(explain_enomem)?;
    let buffers = BufRing::new(slots.len() as u16)?;
    // SAFETY: the buffer ring stays mapped until it is unregistered at the end of `run` (or,
    // when the drain time runs out, leaked).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(buffers.base as u64, buffers.entries, BUFFER_GROUP, 0)
            .map_err(explain_enomem)?;
    }
    let mut rx_header: Box<libc::msghdr> = Box::new(socket::unsafe_zeroed());
    rx_header.msg_namelen = NAME_LEN as u32;
    let mut worker = Worker {
        waker_fd: Fd(core.mesh.waker().fd()),
        first_slot: slots.start,
        // Keep an eighth of the share off the ring for packets the handler writes itself.
        ring_target: slots.len() - slots.len() / 8,
        core,
        handler,
        shutdown,
        ring,
        buffers,
        rx_header,
        wake_buffer: Box::new(0),
        queued: QueuedSends::new(send_capacity),
        tx_batch: send::SendBatch::new(SEND_BATCH, gso),
        blocked: Vec::with_capacity(send_capacity),
        backlog: std::collections::VecDeque::with_capacity(send_capacity),
        armed: 0,
        wake_armed: false,
        busy: false,
        batch_wait_us,
        phase: Phase::Running,
    };
    ready.signal(worker.core.id);
    loop {
        worker.refill_buffer_ring();
        worker.arm()?;
        worker.send_turn()?;
        worker.close_finished()?;
        worker.core.end_turn();
        match worker.shutdown_step()? {
            Next::Wait => {}
            Next::Turn => continue,
            Next::Exit => break,
            Next::Abandon => {
                // The kernel may still read in-flight send headers and pool slots while the
                // ring is torn down asynchronously: keep that memory alive until the process
                // exits.
                std::mem::forget(worker.core.pool.clone());
                std::mem::forget(worker);
                return Ok(());
            }
        }
        worker.wait()?;
        let now = worker.reap()?;
        worker.after_completions(now);
    }
    worker.ring.submitter().unregister_buf_ring(BUFFER_GROUP)?;
    Ok(())
}

impl<H: Handler> Worker<H> {
    /// Gives free slots back to the kernel's buffer ring, up to the target.
    fn refill_buffer_ring(&mut self) {
        let before = self.buffers.tail;
        while self.buffers.available < self.ring_target {
            let Some(slot) = self.core.free.pop() else { break };
            self.buffers.push(self.core.pool.slot_ptr(slot), (slot.0 - self.first_slot) as u16);
        }
        if self.buffers.tail != before {
            self.buffers.publish();
        }
    }

    /// (Re)arms the multishot receives that have ended, of sockets still open, and the wake-up
    /// read.
    fn arm(&mut self) -> io::Result<()> {
        while self.phase == Phase::Running && self.buffers.available > 0 {
            let Some(index) = self.core.sockets.unarmed.pop() else { break };
            let socket = &mut self.core.sockets.entries[usize::from(index)];
            if socket.state != State::Open || socket.recv_armed {
                continue;
            }
            socket.recv_armed = true;
            let entry = opcode::RecvMsgMulti::new(Fd(socket.fd), &raw const *self.rx_header, BUFFER_GROUP)
                .build()
                .user_data(TAG_RECV | u64::from(index));
            self.armed += 1;
            self.push(&entry)?;
        }
        if !self.wake_armed {
            let buffer = (&raw mut *self.wake_buffer).cast();
            let entry = opcode::Read::new(self.waker_fd, buffer, 8).build().user_data(TAG_WAKE);
            self.push(&entry)?;
            self.wake_armed = true;
        }
        Ok(())
    }

    /// Sends this turn's transmits with sendmmsg: UDP copies datagrams synchronously, so their
    /// slots are released at once, with no per-send SQE, msghdr import or CQE (all measured by
    /// bench-report as costlier than the syscall they save). What the socket cannot take right
    /// now goes to io_uring as SENDMSGs, which wait for room.
    ///
    /// Order: once the socket was full, packets leave strictly in the order they were queued.
    /// While earlier packets wait (in io_uring or in the backlog), a turn's new sends queue
    /// behind them instead of overtaking through sendmmsg; and the waiting packets go to
    /// io_uring as one linked chain at a time (IOSQE_IO_LINK), because independent SENDMSGs
    /// waiting for room complete in no fixed order. The order is the worker's, over all its
    /// sockets: while one socket's sends wait for room, the others' queue behind them too
    /// (a full UDP send buffer is rare and short; per-socket chains would cost a queue each).
    fn send_turn(&mut self) -> io::Result<()> {
        let core = &mut self.core;
        if self.queued.in_flight() == 0 && self.backlog.is_empty() {
            send::send_pending(core, &mut self.tx_batch, &mut self.blocked);
        } else {
            self.blocked.append(&mut core.pending);
        }
        for transmit in self.blocked.drain(..) {
            if self.backlog.len() == self.backlog.capacity() {
                core.counters.drop(DropReason::SendQueueFull);
                core.release(&transmit);
            } else {
                // Keeps the socket's descriptor open until this send has left.
                core.sockets.entries[usize::from(transmit.socket)].sends_waiting += 1;
                self.backlog.push_back(transmit);
            }
        }
        if self.queued.in_flight() == 0 {
            self.submit_chain()?;
        }
        Ok(())
    }

    /// Hands the backlog's head to io_uring as one chain of linked SENDMSGs, each starting once
    /// the one before it has completed. The chain fits the submission queue, so it is never
    /// split across submissions (which would break the link).
    fn submit_chain(&mut self) -> io::Result<()> {
        let room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        let length = self.backlog.len().min(self.queued.free.len()).min(room);
        let core = &mut self.core;
        for n in 0..length {
            let transmit = self.backlog.pop_front().expect("length <= backlog");
            let index = self.queued.free.pop().expect("length <= free ops");
            let op = &mut self.queued.ops[index as usize];
            let socket = &mut core.sockets.entries[usize::from(transmit.socket)];
            let (fd, family) = (Fd(socket.fd), socket.family);
            let Some(addr_len) = socket::encode(transmit.dest, family, &mut op.addr) else {
                socket.sends_waiting -= 1;
                self.queued.free.push(index);
                core.counters.drop(DropReason::SendFailed);
                core.release(&transmit);
                continue;
            };
            // SAFETY: offset + len lies within the slot (set when the packet was received or
            // written); the pool mapping outlives the send.
            let base = unsafe { core.pool.slot_ptr(SlotId(transmit.slot)).add(usize::from(transmit.offset)) };
            op.iov = libc::iovec { iov_base: base.cast(), iov_len: usize::from(transmit.len) };
            socket::point_header(&mut op.header, &raw mut op.addr, addr_len, &raw mut op.iov);
            op.transmit = Some(transmit);
            let mut entry =
                opcode::SendMsg::new(fd, &raw const op.header).build().user_data(TAG_SEND | u64::from(index));
            if n + 1 < length {
                entry = entry.flags(squeue::Flags::IO_LINK);
            }
            push_sqe(&mut self.ring, &entry, &mut core.counters.syscalls)?;
        }
        Ok(())
    }

    /// Cancels the multishot receive of socket `index`, once.
    fn cancel_recv(&mut self, index: u16) -> io::Result<()> {
        let socket = &mut self.core.sockets.entries[usize::from(index)];
        if !socket.recv_armed || socket.cancel_queued {
            return Ok(());
        }
        socket.cancel_queued = true;
        let entry = opcode::AsyncCancel::new(TAG_RECV | u64::from(index)).build().user_data(TAG_CANCEL);
        self.push(&entry)
    }

    /// Moves sockets the handler closed towards closing: cancels their receive, and closes the
    /// descriptor (freeing the index) once the receive's last completion has arrived and no
    /// send from it waits. Runs after `send_turn`, so no transmit of this turn names them.
    fn close_finished(&mut self) -> io::Result<()> {
        let mut i = 0;
        while i < self.core.sockets.closing.len() {
            let index = self.core.sockets.closing[i];
            self.cancel_recv(index)?;
            let socket = &self.core.sockets.entries[usize::from(index)];
            if socket.recv_armed || socket.sends_waiting > 0 {
                i += 1;
                continue;
            }
            self.core.sockets.closing.swap_remove(i);
            self.core.finish_close(index);
        }
        Ok(())
    }

    /// Starts draining when shutdown is requested and decides when the worker may leave.
    fn shutdown_step(&mut self) -> io::Result<Next> {
        let Phase::Draining { deadline, producing_done } = &mut self.phase else {
            if !self.shutdown.requested() {
                return Ok(Next::Wait);
            }
            let deadline = Instant::now() + self.shutdown.drain_timeout;
            self.phase = Phase::Draining { deadline, producing_done: false };
            // Control path, once: every socket's receive ends.
            for index in 0..self.core.sockets.entries.len() {
                self.cancel_recv(index as u16)?;
            }
            return Ok(Next::Turn);
        };
        // Receiving has stopped once every cancelled multishot reports its end; our sends of
        // this turn are queued, so we hand nothing more to other workers.
        if !*producing_done && self.armed == 0 {
            self.shutdown.done_producing(self.core.id);
            *producing_done = true;
        }
        let in_flight = self.queued.in_flight() + self.backlog.len();
        if *producing_done
            && self.shutdown.all_done_producing()
            && !self.core.mesh.has_inbound()
            && in_flight == 0
        {
            return Ok(Next::Exit);
        }
        if Instant::now() >= *deadline {
            self.core.counters.drops[DropReason::Shutdown as usize] += in_flight as u64;
            self.core.end_turn();
            tracing::warn!(worker = self.core.id.0, in_flight, "drain time ran out");
            return Ok(Next::Abandon);
        }
        Ok(Next::Wait)
    }

    /// Submits what is queued and sleeps until completions arrive (or the handler's deadline),
    /// unless work is already waiting.
    fn wait(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let timeout = match self.phase {
            Phase::Running => until(self.handler.poll_timeout(), now),
            Phase::Draining { .. } => Some(DRAIN_TICK),
        };
        self.core.going_to_wait(now);
        let waker = self.core.mesh.waker();
        waker.prepare_sleep();
        let result =
            if self.core.mesh.has_inbound() || self.shutdown.requested() && self.phase == Phase::Running {
                self.ring.submit()
            } else if self.busy && self.batch_wait_us > 0 {
                // Traffic is flowing: let completions gather for up to `batch_wait_us` (the
                // kernel's min-wait, 6.12+) rather than waking for each datagram of a burst; bigger
                // turns also make longer GSO runs. Once the min-wait passes with nothing to reap,
                // the first completion wakes us at once; the outer bound only ends a sleep after the
                // last burst, so an idle worker wakes once and then sleeps without a timeout.
                let t = timeout.unwrap_or(BUSY_SLEEP_BOUND);
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().min_wait_usec(self.batch_wait_us).timespec(&ts);
                self.ring.submitter().submit_with_args(BATCH_WANT, &args)
            } else {
                match timeout {
                    None => self.ring.submit_and_wait(1),
                    Some(t) => {
                        let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                        self.ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(&ts))
                    }
                }
            };
        waker.awake();
        self.core.counters.syscalls += 1;
        match result {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Handles every completion: received datagrams, finished slow-path sends, wake-ups.
    /// Returns the time it stamped the datagrams with.
    ///
    /// When a burst fills the turn's sends (slots or queue, see `Core::sends_must_go`), they go
    /// out before the next completion is handled, instead of copies being dropped: a turn
    /// after a long sleep may hold more datagrams than the share of slots kept off the
    /// receive ring can take copies of.
    fn reap(&mut self) -> io::Result<Instant> {
        let now = Instant::now();
        self.core.awake(now);
        self.busy = false;
        while self.reap_until_sends_must_go(now) {
            self.send_turn()?;
        }
        Ok(now)
    }

    /// Handles completions until there are none or sends must go first; true in the second case.
    fn reap_until_sends_must_go(&mut self, now: Instant) -> bool {
        for cqe in self.ring.completion() {
            let data = cqe.user_data();
            match data & TAG_MASK {
                TAG_RECV => {
                    let index = (data & INDEX_MASK) as u16;
                    if !cqueue::more(cqe.flags()) {
                        // The receive ended: ENOBUFS, cancelled, or an error. The last
                        // completion of a closing socket's receive lets it close.
                        let socket = &mut self.core.sockets.entries[usize::from(index)];
                        socket.recv_armed = false;
                        socket.cancel_queued = false;
                        self.armed -= 1;
                        if socket.state == State::Open {
                            self.core.sockets.unarmed.push(index);
                        }
                    }
                    if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                        self.busy = true;
                        self.buffers.available -= 1;
                        let slot = SlotId(self.first_slot + u32::from(bid));
                        receive(&mut self.core, &mut self.handler, now, index, slot, &self.rx_header);
                    } else if cqe.result() == -libc::ENOBUFS {
                        self.core.counters.rx_stalls += 1;
                    }
                }
                TAG_SEND => {
                    let index = (data & INDEX_MASK) as u32;
                    let op = &mut self.queued.ops[index as usize];
                    let transmit = op.transmit.take().expect("a send completion belongs to a queued send");
                    self.queued.free.push(index);
                    self.core.sockets.entries[usize::from(transmit.socket)].sends_waiting -= 1;
                    if cqe.result() >= 0 {
                        self.core.counters.tx_packets += 1;
                        self.core.counters.tx_bytes += u64::from(transmit.len);
                    } else {
                        self.core.counters.drop(DropReason::SendFailed);
                    }
                    self.core.release(&transmit);
                }
                TAG_WAKE => self.wake_armed = false,
                _ => {}
            }
            if self.core.sends_must_go() {
                return true;
            }
        }
        false
    }

    /// Takes what other workers handed over, samples kernel drops, runs due timers.
    fn after_completions(&mut self, now: Instant) {
        self.core.drain_inbound();
        self.core.sample_kernel_drops(now);
        if self.phase == Phase::Running
            && let Some(deadline) = self.handler.poll_timeout()
            && deadline <= now
        {
            self.handler.handle_timeout(now, &mut Output { core: &mut self.core });
        }
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        push_sqe(&mut self.ring, entry, &mut self.core.counters.syscalls)
    }
}

/// Hands one datagram received on socket `socket` to the core, or drops it when it was cut
/// short.
fn receive<H: Handler>(
    core: &mut Core,
    handler: &mut H,
    now: Instant,
    socket: u16,
    slot: SlotId,
    header: &libc::msghdr,
) {
    // SAFETY: the kernel filled this slot and gave it to us with the completion; nobody else
    // holds it until we release it.
    let bytes = unsafe { core.pool.slot_mut(slot) };
    let Ok(message) = io_uring::types::RecvMsgOut::parse(bytes, header) else {
        core.counters.drop(DropReason::Truncated);
        core.recycle(slot, 0..SLOT_SIZE);
        return;
    };
    let payload = message.payload_data();
    let offset = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    let len = payload.len();
    match socket::decode(message.name_data()) {
        Some(from) if !message.is_payload_truncated() => {
            core.handle_received(handler, now, Received { socket, from, slot, offset, len })
        }
        _ => {
            core.counters.drop(DropReason::Truncated);
            core.recycle(slot, 0..offset + len);
        }
    }
}

/// Queues an SQE, submitting first if the queue is full (only in bursts larger than the ring).
fn push_sqe(ring: &mut IoUring, entry: &io_uring::squeue::Entry, syscalls: &mut u64) -> io::Result<()> {
    loop {
        // SAFETY: every pointer in `entry` (headers, iovecs, buffers) lives in worker state
        // that outlives the operation: send ops are freed only on their completion, and the
        // receive header, wake buffer and buffer ring live until `run` returns.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
        *syscalls += 1;
    }
}
