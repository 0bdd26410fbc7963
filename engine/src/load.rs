//! How busy each worker is: the share of wall-clock time it spent awake (handling completions,
//! running its handler, submitting) rather than waiting in the kernel.
//!
//! A worker adds the time from returning from its wait to entering the next one to a running
//! total and publishes it with one relaxed store per wait, never per packet. Both clock readings
//! are ones the loop makes anyway, and `Instant::now()` is `clock_gettime(CLOCK_MONOTONIC)`,
//! which the vDSO answers without entering the kernel. A reader compares totals a window apart.
//!
//! A worker stuck in one long turn publishes nothing until it ends, so it looks idle here:
//! [`crate::Liveness`] is the check for that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::counters::WorkerCounters;

/// The shortest span a ratio covers: shorter ones would show single bursts, not load.
pub const LOAD_WINDOW: Duration = Duration::from_secs(1);

/// Made by [`crate::Engine::load`]; owned by whichever thread reports load.
#[derive(Debug)]
pub struct Load {
    counters: Vec<Arc<WorkerCounters>>,
    /// When the current window began, and each worker's busy total then.
    since: Instant,
    busy_then: Vec<u64>,
    /// Each worker's ratio over the last complete window (zeros before the first).
    ratios: Vec<f64>,
}

impl Load {
    pub(crate) fn new(counters: Vec<Arc<WorkerCounters>>, now: Instant) -> Self {
        let busy_then = counters.iter().map(|c| c.busy_ns()).collect();
        let ratios = vec![0.0; counters.len()];
        Self { counters, since: now, busy_then, ratios }
    }

    /// Each worker's busy share, 0 to 1, over the latest window of at least [`LOAD_WINDOW`]
    /// ending at or before `now`; zeros until the first window has passed. Callers more frequent
    /// than the window see the same figures until the next window completes.
    pub fn busy(&mut self, now: Instant) -> &[f64] {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= LOAD_WINDOW {
            let span = elapsed.as_nanos() as f64;
            for ((then, ratio), counters) in
                self.busy_then.iter_mut().zip(&mut self.ratios).zip(&self.counters)
            {
                let busy = counters.busy_ns();
                *ratio = (busy.saturating_sub(*then) as f64 / span).clamp(0.0, 1.0);
                *then = busy;
            }
            self.since = now;
        }
        &self.ratios
    }
}
