//! The allocations of one worker, found by 5-tuple (client messages) and by relay socket (peer
//! datagrams), and the ports held for RESERVATION-TOKENs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stun::AddressFamily;

use super::allocation::{Allocation, Relay, family_index};
use super::io::{ClientTuple, RelayId};

/// RFC 8656 §7.2: a reserved port is held for 30 seconds.
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// Ports held for reservations at once, per worker; each is also bounded by its allocation's
/// quota, this bounds the table under a burst of EVEN-PORT requests (508 beyond it).
pub const MAX_RESERVATIONS: usize = 1024;

#[derive(Debug)]
pub(crate) struct Reservation {
    pub relay: Relay,
    pub expires: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    allocations: HashMap<ClientTuple, Allocation>,
    by_relay: HashMap<RelayId, ClientTuple>,
    pub reservations: HashMap<[u8; 8], Reservation>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.allocations.len()
    }

    pub fn get(&self, tuple: &ClientTuple) -> Option<&Allocation> {
        self.allocations.get(tuple)
    }

    pub fn get_mut(&mut self, tuple: &ClientTuple) -> Option<&mut Allocation> {
        self.allocations.get_mut(tuple)
    }

    /// The allocation that owns relay socket `relay`, with its 5-tuple.
    pub fn by_relay_mut(&mut self, relay: RelayId) -> Option<(ClientTuple, &mut Allocation)> {
        let tuple = *self.by_relay.get(&relay)?;
        self.allocations.get_mut(&tuple).map(|allocation| (tuple, allocation))
    }

    pub fn insert(&mut self, tuple: ClientTuple, allocation: Allocation) {
        for relay in allocation.relays() {
            self.by_relay.insert(relay.id, tuple);
        }
        self.allocations.insert(tuple, allocation);
    }

    pub fn remove(&mut self, tuple: &ClientTuple) -> Option<Allocation> {
        let allocation = self.allocations.remove(tuple)?;
        for relay in allocation.relays() {
            self.by_relay.remove(&relay.id);
        }
        Some(allocation)
    }

    /// Takes one family's relayed address out of a dual allocation.
    pub fn remove_relay(&mut self, tuple: &ClientTuple, family: AddressFamily) -> Option<Relay> {
        let relay = self.allocations.get_mut(tuple)?.relays[family_index(family)].take()?;
        self.by_relay.remove(&relay.id);
        Some(relay)
    }

    /// The 5-tuples of every allocation, for a sweep.
    pub fn tuples(&self) -> Vec<ClientTuple> {
        self.allocations.keys().copied().collect()
    }
}
