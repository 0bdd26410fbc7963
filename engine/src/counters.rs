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
    /// The worker's share of the packet pool was empty (receive or new packet).
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
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        Self::PoolEmpty,
        Self::HandoffFull,
        Self::SendQueueFull,
        Self::FanoutLimit,
        Self::SendFailed,
        Self::Truncated,
        Self::NoRoute,
        Self::Rejected,
        Self::Shutdown,
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
        }
    }
}

const REASONS: usize = DropReason::ALL.len();

/// A snapshot of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets this worker handed to another worker to send.
    pub handoffs: u64,
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
    values: CachePadded<[AtomicU64; 5 + REASONS]>,
}

impl WorkerCounters {
    /// Stores a worker's running totals. Called only by that worker.
    pub(crate) fn publish(&self, counts: &Counts) {
        let v = &self.values;
        let fields =
            [counts.rx_packets, counts.rx_bytes, counts.tx_packets, counts.tx_bytes, counts.handoffs];
        for (slot, value) in v.iter().zip(fields.into_iter().chain(counts.drops)) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    /// Reads the latest published totals.
    pub fn load(&self) -> Counts {
        let v: [u64; 5 + REASONS] = std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed));
        Counts {
            rx_packets: v[0],
            rx_bytes: v[1],
            tx_packets: v[2],
            tx_bytes: v[3],
            handoffs: v[4],
            drops: std::array::from_fn(|i| v[5 + i]),
        }
    }
}
