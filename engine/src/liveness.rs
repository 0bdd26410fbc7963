//! Whether every worker still turns its loop: the health check behind a service watchdog.
//!
//! A worker bumps its turn count at the end of every loop turn (one store, no syscall). An idle
//! worker sleeps in the kernel without a timeout and would never turn, so each check also wakes
//! every worker: by the next check each must have woken, turned and gone back to sleep. A
//! worker stuck in a handler, or a wait that no longer returns, fails the next check. The cost
//! is one eventfd write and one loop turn per worker per check, a few times a minute.

use std::sync::Arc;

use crate::counters::WorkerCounters;
use crate::wake::Waker;

/// Made by [`crate::Engine::liveness`]; owned by whichever thread runs the checks.
#[derive(Debug)]
pub struct Liveness {
    counters: Vec<Arc<WorkerCounters>>,
    wakers: Arc<[Waker]>,
    /// Each worker's turn count at the previous check.
    seen: Vec<u64>,
}

impl Liveness {
    pub(crate) fn new(counters: Vec<Arc<WorkerCounters>>, wakers: Arc<[Waker]>) -> Self {
        let seen = counters.iter().map(|c| c.turns()).collect();
        let liveness = Self { counters, wakers, seen };
        liveness.wake_all();
        liveness
    }

    /// True when every worker finished a loop turn since the previous check (or since this
    /// handle was made); then wakes them all for the next one. Checks should be further apart
    /// than a worker's longest turn (milliseconds): seconds are right.
    pub fn check(&mut self) -> bool {
        let mut alive = true;
        for (seen, counters) in self.seen.iter_mut().zip(&self.counters) {
            let turns = counters.turns();
            alive &= turns != *seen;
            *seen = turns;
        }
        self.wake_all();
        alive
    }

    fn wake_all(&self) {
        self.wakers.iter().for_each(Waker::wake);
    }
}
