//! A worker: one thread, one core, its sockets (the shared listeners, one per listen address,
//! and those its handler opened), one share of the pool.
//!
//! [`Core`] is what both backends share: it runs the handler on a received slot, turns its
//! answer into transmits (queued locally or handed to another core), releases slots when
//! their last send is done, and keeps the socket table. The backends ([`uring`], [`mmsg`])
//! only move datagrams between the sockets and the pool, and tell the table when the kernel
//! is done with a closing socket.

pub mod mmsg;
mod send;
pub(crate) mod sockets;
pub mod uring;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::counters::{Counts, DropReason, WorkerCounters};
use crate::handler::{Datagram, Destination, Handler, Output, PacketBuf, SocketId, Via, WorkerId};
use crate::mesh::{MeshPort, Transmit};
use crate::pool::{FreeList, PacketPool, SLOT_SIZE, SlotId};
use sockets::SocketTable;

const KERNEL_DROPS_PERIOD: Duration = Duration::from_millis(500);

/// Worker state shared by both backends.
#[derive(Debug)]
pub struct Core {
    pub(crate) id: WorkerId,
    pub(crate) pool: Arc<PacketPool>,
    pub(crate) free: FreeList,
    pub(crate) mesh: MeshPort,
    pub(crate) counters: Counts,
    published: Arc<WorkerCounters>,
    /// Transmits for this loop turn; the backend drains it into the kernel once per turn.
    pub(crate) pending: Vec<Transmit>,
    /// Destinations of the datagram being handled (capacity = `max_fanout`).
    fanout: Vec<Destination>,
    /// When the kernel's drop count for our socket was last read.
    drops_sampled: Instant,
    /// The listeners and the sockets the handler opened.
    pub(crate) sockets: SocketTable,
    /// When the worker last came back from a wait; `None` while it waits (or before its first).
    awake_since: Option<Instant>,
    /// Time spent awake since start, in nanoseconds (published before each wait).
    busy_ns: u64,
}

/// A datagram a backend took in: `len` bytes at `offset` in `slot`, which it owns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    /// Index of the socket it arrived on.
    pub socket: u16,
    pub from: SocketAddr,
    pub slot: SlotId,
    pub offset: usize,
    pub len: usize,
}

impl Core {
    pub(crate) fn new(
        id: WorkerId,
        pool: Arc<PacketPool>,
        mesh: MeshPort,
        published: Arc<WorkerCounters>,
        send_queue: usize,
        max_fanout: usize,
        sockets: SocketTable,
    ) -> Self {
        let free = FreeList::full(pool.worker_slots(id));
        Self {
            id,
            pool,
            free,
            mesh,
            counters: Counts::default(),
            published,
            pending: Vec::with_capacity(send_queue),
            fanout: Vec::with_capacity(max_fanout),
            drops_sampled: Instant::now(),
            sockets,
            awake_since: None,
            busy_ns: 0,
        }
    }

    /// The worker is back from a wait (or about to start a turn without one: then it stays
    /// awake from the earlier stamp). `now` is the turn's own clock reading, so measuring costs
    /// no extra one.
    #[inline]
    pub(crate) fn awake(&mut self, now: Instant) {
        self.awake_since.get_or_insert(now);
    }

    /// The worker is about to wait: the time since it woke counts as busy, published with one
    /// relaxed store (per wait, never per packet) for [`crate::Load`].
    #[inline]
    pub(crate) fn going_to_wait(&mut self, now: Instant) {
        if let Some(since) = self.awake_since.take() {
            self.busy_ns += now.saturating_duration_since(since).as_nanos() as u64;
            self.published.set_busy_ns(self.busy_ns);
        }
    }

    /// Runs the handler on a received datagram and dispatches its forwards. The slot is
    /// released or shared out before returning. A datagram that arrived on a socket the handler
    /// has closed (it was already in the kernel's queue, or in the same batch) is not handled.
    pub(crate) fn handle_received<H: Handler>(&mut self, handler: &mut H, now: Instant, rx: Received) {
        let Received { socket, from, slot, offset, len } = rx;
        if !self.sockets.delivers(socket) {
            self.recycle(slot, offset..offset + len);
            return;
        }
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += len as u64;
        let mut fanout = std::mem::take(&mut self.fanout);
        // SAFETY: the slot came out of a receive completion, so this worker holds it alone
        // until it is released or handed to sends below, after `handle` has returned. The
        // slice points into the pool mapping, which outlives the worker.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(self.pool.slot_ptr(slot).add(offset), SLOT_SIZE - offset)
        };
        let mut datagram = Datagram {
            buf: PacketBuf::new(bytes, len),
            fanout: &mut fanout,
            fanout_dropped: 0,
            socket: self.sockets.id(socket),
            local: self.sockets.entries[usize::from(socket)].local,
        };
        handler.handle(now, from, &mut datagram, &mut Output { core: self });
        let len = datagram.buf.len();
        self.counters.drops[DropReason::FanoutLimit as usize] += datagram.fanout_dropped;

        if fanout.is_empty() {
            self.recycle(slot, offset..offset + len);
        } else {
            let transmit = |dest: SocketAddr| Transmit {
                slot: slot.0,
                offset: offset as u16,
                len: len as u16,
                socket: 0,
                dest,
                order: 0,
            };
            self.pool.set_refs(slot, fanout.len() as u32);
            for to in fanout.drain(..) {
                self.dispatch(transmit(to.addr), to);
            }
        }
        self.fanout = fanout;
    }

    /// Writes a new packet into a fresh slot and dispatches it.
    pub(crate) fn send_new(&mut self, to: Destination, write: impl FnOnce(&mut PacketBuf<'_>)) -> bool {
        let Some(slot) = self.free.pop() else {
            self.counters.drop(DropReason::PoolEmpty);
            return false;
        };
        // SAFETY: the slot came off our free list, so nobody else holds it; the pool outlives
        // the worker.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.pool.slot_ptr(slot), SLOT_SIZE) };
        let mut buf = PacketBuf::new(bytes, 0);
        write(&mut buf);
        let len = buf.len();
        if len == 0 {
            self.free.push(slot);
            return false;
        }
        self.pool.set_refs(slot, 1);
        let transmit =
            Transmit { slot: slot.0, offset: 0, len: len as u16, socket: 0, dest: to.addr, order: 0 };
        self.dispatch(transmit, to)
    }

    /// Queues a transmit here or hands it to the worker that must send it. A listener sits
    /// at the same index on every worker, so any worker sends from it; any other socket must
    /// be open on this worker and sent from here: hand-offs carry listener sends only.
    #[inline]
    fn dispatch(&mut self, mut transmit: Transmit, to: Destination) -> bool {
        let index = if to.socket.is_listener() {
            // Not one of ours only when the id came from an engine with more listen addresses.
            self.sockets.is_listener(to.socket.index).then_some(to.socket.index)
        } else {
            let here = match to.via {
                Via::Here => true,
                Via::Worker(worker) => worker == self.id,
            };
            self.sockets.sending_index(to.socket).filter(|_| here)
        };
        let Some(index) = index else {
            self.counters.drop(DropReason::UnknownSocket);
            self.release(&transmit);
            return false;
        };
        transmit.socket = index;
        match to.via {
            Via::Worker(worker) if worker != self.id => match self.mesh.hand_off(worker, transmit) {
                Ok(()) => {
                    self.counters.handoffs += 1;
                    true
                }
                Err(transmit) => {
                    self.counters.drop(DropReason::HandoffFull);
                    self.release(&transmit);
                    false
                }
            },
            _ => self.queue_local(transmit),
        }
    }

    #[inline]
    fn queue_local(&mut self, transmit: Transmit) -> bool {
        if self.pending.len() == self.pending.capacity() {
            self.counters.drop(DropReason::SendQueueFull);
            self.release(&transmit);
            return false;
        }
        self.pending.push(transmit);
        true
    }

    /// Drops one reference to a transmit's slot; the last one recycles it.
    #[inline]
    pub(crate) fn release(&mut self, transmit: &Transmit) {
        let slot = SlotId(transmit.slot);
        if self.pool.unref(slot) {
            let start = usize::from(transmit.offset);
            self.recycle(slot, start..start + usize::from(transmit.len));
        }
    }

    /// Wipes the bytes a packet used and sends the slot home. The caller holds the slot alone.
    #[inline]
    pub(crate) fn recycle(&mut self, slot: SlotId, used: std::ops::Range<usize>) {
        // SAFETY: the caller dropped the last reference (or never shared the slot), so no send
        // and no other worker reads it.
        unsafe { self.pool.wipe(slot, used) };
        let owner = self.pool.owner(slot);
        if owner == self.id {
            self.free.push(slot);
        } else {
            self.mesh.return_slot(owner, slot.0);
        }
    }

    /// Takes home-coming slots and, while the send queue has room, packets handed to us.
    /// Whatever does not fit stays in the hand-off queue, pushing back on its producer.
    pub(crate) fn drain_inbound(&mut self) {
        while let Some(slot) = self.mesh.next_return() {
            self.free.push(SlotId(slot));
        }
        while self.pending.len() < self.pending.capacity() {
            let Some(transmit) = self.mesh.next_inbound() else {
                break;
            };
            self.pending.push(transmit);
        }
    }

    /// Opens an extra socket for the handler (control path) and counts the outcome.
    pub(crate) fn open_udp(&mut self, local: SocketAddr) -> io::Result<(SocketId, SocketAddr)> {
        let opened = self.sockets.open(local, &mut self.counters.syscalls);
        match &opened {
            Ok(_) => self.counters.sockets_open = self.sockets.held() as u64,
            Err(_) => self.counters.socket_open_failures += 1,
        }
        opened
    }

    /// Ends the handler's use of a socket; the backend closes the descriptor when the kernel
    /// is done with it (`finish_close`).
    pub(crate) fn close_socket(&mut self, id: SocketId) -> bool {
        self.sockets.close(id)
    }

    /// Closes the descriptor of closing socket `index` and frees its id's index.
    pub(crate) fn finish_close(&mut self, index: u16) {
        self.sockets.finish_close(index, &mut self.counters.syscalls);
        self.counters.sockets_open = self.sockets.held() as u64;
    }

    /// Reads the kernel's drop counters for the listeners, at most twice a second (one syscall
    /// per listen address). (Sockets the handler opened are not sampled: one syscall each would
    /// not stay cheap.)
    pub(crate) fn sample_kernel_drops(&mut self, now: Instant) {
        if now.duration_since(self.drops_sampled) >= KERNEL_DROPS_PERIOD {
            self.drops_sampled = now;
            let mut total = None;
            for listener in self.sockets.listeners() {
                self.counters.syscalls += 1;
                if let Some(drops) = crate::socket::kernel_drops(listener) {
                    total = Some(total.unwrap_or(0) + drops);
                }
            }
            if let Some(drops) = total {
                self.counters.kernel_rx_drops = drops;
            }
        }
    }

    /// Whether the turn's queued sends must go out before another datagram is handled: one
    /// datagram may need a fresh slot and a queue entry for each of up to `max_fanout` copies
    /// (an SFU encrypts every copy on its own), and a burst handled in one turn (say, after the
    /// worker was descheduled) would otherwise run out of both and drop copies.
    #[inline]
    pub(crate) fn sends_must_go(&self) -> bool {
        let reserve = self.fanout.capacity();
        self.free.len() < reserve || self.pending.len() + reserve > self.pending.capacity()
    }

    /// End of a loop turn: wake peers we gave work to, publish counters.
    pub(crate) fn end_turn(&mut self) {
        self.counters.syscalls += self.mesh.wake_touched();
        self.published.publish(&self.counters);
        self.published.turn_ended();
    }
}

/// Stop coordination shared by all workers of an engine.
#[derive(Debug)]
pub struct Shutdown {
    pub(crate) stop: AtomicBool,
    /// Per worker: may it still hand packets to others? A worker leaves only once all are
    /// false, so no hand-off is pushed to a worker that already exited.
    producing: Box<[AtomicBool]>,
    pub(crate) drain_timeout: Duration,
}

impl Shutdown {
    pub(crate) fn new(workers: usize, drain_timeout: Duration) -> Self {
        let producing = (0..workers).map(|_| AtomicBool::new(true)).collect();
        Self { stop: AtomicBool::new(false), producing, drain_timeout }
    }

    pub(crate) fn request(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub(crate) fn requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Idempotent: also called for a worker that failed.
    pub(crate) fn done_producing(&self, worker: WorkerId) {
        self.producing[usize::from(worker.0)].store(false, Ordering::Release);
    }

    pub(crate) fn all_done_producing(&self) -> bool {
        self.producing.iter().all(|p| !p.load(Ordering::Acquire))
    }
}

/// Tells `Engine::start` that a worker finished setting up.
#[derive(Debug)]
pub struct Ready(pub(crate) mpsc::Sender<Result<WorkerId, (WorkerId, std::io::Error)>>);

impl Ready {
    pub(crate) fn signal(&self, worker: WorkerId) {
        let _ = self.0.send(Ok(worker)); // start() may have given up waiting already
    }
}

/// Everything a worker thread needs; consumed by a backend's `run`.
#[derive(Debug)]
pub struct WorkerSetup {
    /// Holds the worker's listeners in its socket table.
    pub core: Core,
    pub shutdown: Arc<Shutdown>,
    pub mmsg_batch: usize,
    pub gso: bool,
    pub batch_wait_us: u32,
    pub ready: Ready,
}

/// Time until the handler's next deadline, for the sleep of a loop turn.
pub(crate) fn until(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(now))
}
