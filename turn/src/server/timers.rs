//! Expiry of allocations, permissions, channel bindings and reservations.
//!
//! Every lookup checks expiry itself, so what has expired stops relaying at once; the sweep
//! only frees memory and relay sockets. It runs at the earliest deadline but at most once per
//! [`SWEEP_INTERVAL`], so its cost (a pass over this worker's allocations) stays bounded
//! however the deadlines fall, and a worker with no allocations never wakes.

use std::time::{Duration, Instant};

use super::Server;
use super::io::{ClientTuple, Now, TurnIo};

/// The shortest time between two sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct Sweep {
    next: Option<Instant>,
    last: Option<Instant>,
}

impl Server {
    /// When [`handle_timeout`](Self::handle_timeout) has something to do; `None`: nothing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sweep.next
    }

    /// Frees expired allocations (closing their relay sockets), permissions, channel bindings
    /// and reservations; answers Connects that timed out and closes peer data connections
    /// never bound (RFC 6062).
    pub fn handle_timeout(&mut self, now: Now, io: &mut impl TurnIo) {
        if self.sweep.next.is_none_or(|next| now.instant < next) {
            return;
        }
        self.sweep = Sweep { next: None, last: Some(now.instant) };
        let mut next: Option<Instant> = None;
        for tuple in self.table.tuples() {
            let allocation = self.table.get_mut(&tuple).expect("tuples() lists present allocations");
            if !allocation.is_live(now.instant) {
                self.free(&tuple, io);
                continue;
            }
            let at = allocation.expire(now.instant);
            next = Some(next.map_or(at, |n| n.min(at)));
            self.sync_kernel_routes(&tuple, now.instant, io);
        }
        if let Some(at) = self.expire_peer_connections(now.instant, io) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        self.table.reservations.retain(|_, reservation| {
            if now.instant < reservation.expires {
                next = Some(next.map_or(reservation.expires, |n| n.min(reservation.expires)));
                true
            } else {
                io.close_relay(reservation.relay.id);
                false
            }
        });
        if let Some(at) = next {
            self.schedule(at);
        }
    }

    /// Asks for a sweep by `deadline` (or one interval after the last, if later).
    pub(super) fn schedule(&mut self, deadline: Instant) {
        let at = self.sweep.last.map_or(deadline, |last| deadline.max(last + SWEEP_INTERVAL));
        self.sweep.next = Some(self.sweep.next.map_or(at, |next| next.min(at)));
    }

    /// Removes an allocation, closes its relay sockets and peer data connections (RFC 6062
    /// §5.2: they live no longer than their allocation) and gives its quota back.
    pub(super) fn free(&mut self, tuple: &ClientTuple, io: &mut impl TurnIo) {
        let Some(mut allocation) = self.table.remove(tuple) else { return };
        self.close_peer_connections(&allocation.connections, io);
        Self::withdraw_kernel_routes(&mut allocation, io);
        for relay in allocation.relays() {
            io.close_relay(relay.id);
        }
        if let Some(ticket) = allocation.quota {
            self.shared.quota.release(ticket);
        }
    }
}
