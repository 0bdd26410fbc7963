//! Whether every stream worker still turns its loop, as `engine::Liveness` tells for the UDP
//! workers: each worker bumps a counter at the end of every turn, and each check wakes them all
//! (a mio `Waker`: the worker finds its hand-off queue empty and turns once), so an idle worker
//! passes the next check and only one stuck in a turn fails it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mio::Waker;

use super::WorkerHandle;

/// Made from the running workers' handles; owned by whichever thread runs the checks.
#[derive(Debug)]
pub struct StreamLiveness {
    workers: Vec<(Arc<AtomicU64>, Arc<Waker>)>,
    /// Each worker's turn count at the previous check.
    seen: Vec<u64>,
}

impl StreamLiveness {
    pub fn new(handles: &[WorkerHandle]) -> Self {
        let workers: Vec<_> = handles.iter().map(WorkerHandle::heartbeat).collect();
        let seen = workers.iter().map(|(turns, _)| turns.load(Ordering::Relaxed)).collect();
        let liveness = Self { workers, seen };
        liveness.wake_all();
        liveness
    }

    /// True when every worker finished a turn since the previous check (or since this was
    /// made); then wakes them all for the next one. Checks belong seconds apart.
    pub fn check(&mut self) -> bool {
        let mut alive = true;
        for (seen, (turns, _)) in self.seen.iter_mut().zip(&self.workers) {
            let turns = turns.load(Ordering::Relaxed);
            alive &= turns != *seen;
            *seen = turns;
        }
        self.wake_all();
        alive
    }

    fn wake_all(&self) {
        // A worker that has stopped has no one to wake: its failure shows in the next check.
        self.workers.iter().for_each(|(_, waker)| drop(waker.wake()));
    }
}
