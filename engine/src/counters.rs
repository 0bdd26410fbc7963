//! Per-worker packet counters.
//!
//! A worker counts into plain integers on its own stack of state and publishes them to shared
//! atomics once per loop turn (plain stores: each atomic has exactly one writer), so counting
//! costs no atomic read-modify-write per packet. Readers (the metrics exporter, tests) load the
//! atomics at any time and see values at most one loop turn old.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Why a packet was not sent. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The worker's share of the packet pool was empty when the handler asked for a new packet.
    /// (An empty share at receive time pauses receiving instead: see `Counts::rx_stalls`.)
    PoolEmpty,
    /// The cross-core queue to the sending worker was full.
    HandoffFull,
    /// The worker's send queue for this loop turn was full.
    SendQueueFull,
    /// More destinations than `max_fanout` for one datagram.
    FanoutLimit,
    /// The kernel refused the send.
    SendFailed,
    /// The datagram did not fit in a slot.
    Truncated,
    /// The data plane had no destination for it.
    NoRoute,
    /// The data plane rejected it (malformed, unauthenticated, unknown sender).
    Rejected,
    /// The engine was stopping and its drain time ran out.
    Shutdown,
    /// The destination named a socket the sending worker does not have open: closed, never
    /// opened, or opened by another worker (only the worker that opened a socket sends from it).
    UnknownSocket,
}

impl DropReason {
    pub const ALL: [DropReason; 10] = [
        Self::PoolEmpty,
        Self::HandoffFull,
        Self::SendQueueFull,
        Self::FanoutLimit,
        Self::SendFailed,
        Self::Truncated,
        Self::NoRoute,
        Self::Rejected,
        Self::Shutdown,
        Self::UnknownSocket,
    ];

    /// Label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PoolEmpty => "pool_empty",
            Self::HandoffFull => "handoff_full",
            Self::SendQueueFull => "send_queue_full",
            Self::FanoutLimit => "fanout_limit",
            Self::SendFailed => "send_failed",
            Self::Truncated => "truncated",
            Self::NoRoute => "no_route",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
            Self::UnknownSocket => "unknown_socket",
        }
    }
}

const REASONS: usize = DropReason::ALL.len();
/// Scalar fields of `Counts` before the drop array.
const FIELDS: usize = 10;

/// A snapshot of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets this worker handed to another worker to send.
    pub handoffs: u64,
    /// Times receiving paused because the worker's share of the pool was empty. Datagrams
    /// wait in the socket meanwhile; those the kernel had to drop are in `kernel_rx_drops`.
    pub rx_stalls: u64,
    /// Datagrams the kernel dropped on this worker's listeners (receive buffer full), as the
    /// kernel counts them (SO_MEMINFO), sampled twice a second.
    pub kernel_rx_drops: u64,
    /// System calls the worker made (io_uring_enter, recvmmsg, sendmmsg, poll, wakes, ...):
    /// the proof that the hot path makes none per packet.
    pub syscalls: u64,
    /// Sockets the handler opened (`Output::open_udp`) whose descriptor is still open: a gauge,
    /// not a total. A closed socket leaves it once the kernel is done with the descriptor.
    pub sockets_open: u64,
    /// `Output::open_udp` calls that failed (the kernel refused, or the worker's limit).
    pub socket_open_failures: u64,
    pub drops: [u64; REASONS],
}

impl Counts {
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Field-wise sum, for totals over workers.
    pub fn add(&mut self, other: &Counts) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.handoffs += other.handoffs;
        self.rx_stalls += other.rx_stalls;
        self.kernel_rx_drops += other.kernel_rx_drops;
        self.syscalls += other.syscalls;
        self.sockets_open += other.sockets_open;
        self.socket_open_failures += other.socket_open_failures;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
    }

    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}

/// The shared, published copy of a worker's counters.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    values: CachePadded<[AtomicU64; FIELDS + REASONS]>,
    /// Loop turns finished: the worker's heartbeat, read by [`crate::Liveness`].
    turns: AtomicU64,
    /// Nanoseconds the worker spent awake (not waiting in the kernel), read by [`crate::Load`].
    busy_ns: AtomicU64,
}

impl WorkerCounters {
    /// Counts a finished loop turn. Called only by the worker, so a load and a store suffice
    /// (no read-modify-write): one more store per turn, next to the counters' own.
    pub(crate) fn turn_ended(&self) {
        self.turns.store(self.turns.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Loop turns the worker has finished.
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }

    /// Stores the worker's running total of busy time. Called only by the worker, once before
    /// each wait; relaxed, because readers want a recent figure, not an order with other data.
    pub(crate) fn set_busy_ns(&self, nanos: u64) {
        self.busy_ns.store(nanos, Ordering::Relaxed);
    }

    /// Nanoseconds the worker has spent awake since it started, up to its latest wait.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns.load(Ordering::Relaxed)
    }

    /// Stores a worker's running totals. Called only by that worker.
    pub(crate) fn publish(&self, counts: &Counts) {
        let v = &self.values;
        let fields = [
            counts.rx_packets,
            counts.rx_bytes,
            counts.tx_packets,
            counts.tx_bytes,
            counts.handoffs,
            counts.rx_stalls,
            counts.kernel_rx_drops,
            counts.syscalls,
            counts.sockets_open,
            counts.socket_open_failures,
        ];
        for (slot, value) in v.iter().zip(fields.into_iter().chain(counts.drops)) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    /// Reads the latest published totals.
    pub fn load(&self) -> Counts {
        let v: [u64; FIELDS + REASONS] = std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed));
        Counts {
            rx_packets: v[0],
            rx_bytes: v[1],
            tx_packets: v[2],
            tx_bytes: v[3],
            handoffs: v[4],
            rx_stalls: v[5],
            kernel_rx_drops: v[6],
            syscalls: v[7],
            sockets_open: v[8],
            socket_open_failures: v[9],
            drops: std::array::from_fn(|i| v[FIELDS + i]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_read_back_field_by_field() {
        let mut counts = Counts {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            handoffs: 5,
            rx_stalls: 6,
            kernel_rx_drops: 7,
            syscalls: 8,
            sockets_open: 9,
            socket_open_failures: 10,
            drops: [0; REASONS],
        };
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            counts.drops[reason as usize] = 100 + i as u64;
        }
        let shared = WorkerCounters::default();
        shared.publish(&counts);
        let read = shared.load();
        assert_eq!(read, counts);
        assert_eq!(read.drops(DropReason::NoRoute), 106);
    }
}
