//! The cross-core queues between workers.
//!
//! Every ordered pair of workers has a bounded SPSC hand-off queue carrying packets to send
//! (a slot handle, not the bytes). Slots come home over one lock-free queue per owner, sized to
//! hold the owner's whole share of the pool so that returning a slot can never fail.

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::handler::WorkerId;
use crate::spsc::{self, Consumer, Producer};
use crate::wake::Waker;

/// A packet to send: slot `slot`, payload `offset..offset + len`.
#[derive(Clone, Copy, Debug)]
pub struct Transmit {
    pub slot: u32,
    pub offset: u16,
    pub len: u16,
    /// Index of the sending worker's socket it leaves from (a listener's, the same on every
    /// worker, for every packet handed to another worker).
    pub socket: u16,
    pub dest: SocketAddr,
    /// Position in the sender's queue, so grouping by destination keeps each destination's
    /// packets in order (see `send::send_pending`).
    pub order: u32,
}

/// One worker's ends of the mesh.
#[derive(Debug)]
pub struct MeshPort {
    pub id: WorkerId,
    /// Hand-off producers, indexed by target worker (`None` at our own index).
    outbound: Vec<Option<Producer<Transmit>>>,
    /// Hand-off consumers, one per other worker.
    inbound: Vec<Consumer<Transmit>>,
    /// Slots of ours that other workers finished with.
    returns: Arc<ArrayQueue<u32>>,
    /// Every worker's return queue, indexed by owner.
    return_to: Vec<Arc<ArrayQueue<u32>>>,
    wakers: Arc<[Waker]>,
    /// Peers we pushed to this turn and may need to wake.
    touched: Vec<bool>,
}

/// Builds the mesh for `wakers.len()` workers.
pub fn build(wakers: Arc<[Waker]>, queue: usize, slots_per_worker: usize) -> Vec<MeshPort> {
    let n = wakers.len();
    let returns: Vec<_> = (0..n).map(|_| Arc::new(ArrayQueue::new(slots_per_worker))).collect();
    let mut outbound: Vec<Vec<Option<Producer<Transmit>>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut inbound: Vec<Vec<Consumer<Transmit>>> = (0..n).map(|_| Vec::new()).collect();
    for (from, producers) in outbound.iter_mut().enumerate() {
        for (to, consumers) in inbound.iter_mut().enumerate().filter(|&(to, _)| to != from) {
            let (tx, rx) = spsc::channel(queue);
            producers[to] = Some(tx);
            consumers.push(rx);
        }
    }
    outbound
        .into_iter()
        .zip(inbound)
        .enumerate()
        .map(|(i, (outbound, inbound))| MeshPort {
            id: WorkerId(i as u16),
            outbound,
            inbound,
            returns: returns[i].clone(),
            return_to: returns.clone(),
            wakers: wakers.clone(),
            touched: vec![false; n],
        })
        .collect()
}

impl MeshPort {
    /// Queues a packet for `to`. Hands it back when that queue is full or `to` is not a worker
    /// (or is us: local sends never cross the mesh).
    #[inline]
    pub fn hand_off(&mut self, to: WorkerId, packet: Transmit) -> Result<(), Transmit> {
        let Some(Some(queue)) = self.outbound.get_mut(usize::from(to.0)) else {
            return Err(packet);
        };
        queue.push(packet)?;
        self.touched[usize::from(to.0)] = true;
        Ok(())
    }

    /// Sends a slot home to its owner.
    #[inline]
    pub fn return_slot(&mut self, owner: WorkerId, slot: u32) {
        let owner = usize::from(owner.0);
        // The owner's return queue holds its whole share, and a slot is in at most one place.
        self.return_to[owner].push(slot).expect("return queue sized to the owner's whole share");
        self.touched[owner] = true;
    }

    /// Takes the next packet other workers handed us.
    #[inline]
    pub fn next_inbound(&mut self) -> Option<Transmit> {
        self.inbound.iter_mut().find_map(|q| q.pop())
    }

    /// Takes the next slot of ours that came home.
    #[inline]
    pub fn next_return(&mut self) -> Option<u32> {
        self.returns.pop()
    }

    /// Whether anything waits for us. Checked before sleeping.
    pub fn has_inbound(&self) -> bool {
        !self.returns.is_empty() || self.inbound.iter().any(|q| !q.is_empty())
    }

    /// Wakes the peers we pushed to this turn, if they sleep. One check per peer per turn.
    /// Returns how many wakes (eventfd writes) it made.
    pub fn wake_touched(&mut self) -> u64 {
        let mut wakes = 0;
        for (i, touched) in self.touched.iter_mut().enumerate() {
            if std::mem::take(touched) {
                wakes += u64::from(self.wakers[i].wake_if_sleeping());
            }
        }
        wakes
    }

    pub fn waker(&self) -> &Waker {
        &self.wakers[usize::from(self.id.0)]
    }
}
