//! Allocation quotas shared by every worker: `total-quota` (allocations at once) and
//! `user-quota` (allocations at once per user name), as atomics so that no worker waits.
//!
//! A client's 5-tuples spread over workers (SO_REUSEPORT hashes each one), so a per-worker
//! count would multiply every quota by the number of cores. Per-user counts live in a small
//! count-min sketch: a fixed table of counters, two cells per user name under two hashes. A
//! name's count is the smaller of its two cells, which can only be too high (when both cells
//! are shared with other active names), never too low: a quota is never exceeded, and the
//! table never grows however many names (REST API names are new every day) pass through.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::TurnConfig;

const USER_ROWS: usize = 2;
const USER_WIDTH: usize = 4096;

/// The quota that refused an allocation; both are answered 486 (RFC 8656 §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaExceeded {
    Total,
    User,
}

/// Proof of one counted allocation; give it back with [`Quota::release`].
#[derive(Debug)]
pub(crate) struct QuotaTicket {
    user_cells: Option<[usize; USER_ROWS]>,
}

#[derive(Debug)]
pub struct Quota {
    current: AtomicU32,
    cap: u32,
    user_quota: u32,
    users: Box<[AtomicU32]>,
    hasher: RandomState,
}

impl Quota {
    /// With `total-quota=0` the cap is still finite: the size of the relay port range, the most
    /// allocations one relay address can hold, so an allocation flood meets a bound on memory
    /// before the kernel runs out of ports.
    pub fn new(config: &TurnConfig) -> Self {
        let ports = u32::from(config.max_port.saturating_sub(config.min_port)) + 1;
        let cap = if config.total_quota > 0 { config.total_quota } else { ports };
        Self {
            current: AtomicU32::new(0),
            cap,
            user_quota: config.user_quota,
            users: (0..USER_ROWS * USER_WIDTH).map(|_| AtomicU32::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Allocations open now, over all workers.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// The most allocations at once.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Counts one allocation for `username`, unless a quota is reached. Two workers racing for
    /// the last slot may both be refused, never both admitted: each adds first, then checks.
    pub(crate) fn acquire(&self, username: &str) -> Result<QuotaTicket, QuotaExceeded> {
        if self.current.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.current.fetch_sub(1, Ordering::Relaxed);
            return Err(QuotaExceeded::Total);
        }
        if self.user_quota == 0 {
            return Ok(QuotaTicket { user_cells: None });
        }
        let cells = self.user_cells(username);
        let before = cells.map(|cell| self.users[cell].fetch_add(1, Ordering::Relaxed));
        if before.iter().min().is_some_and(|&count| count >= self.user_quota) {
            self.release(QuotaTicket { user_cells: Some(cells) });
            return Err(QuotaExceeded::User);
        }
        Ok(QuotaTicket { user_cells: Some(cells) })
    }

    pub(crate) fn release(&self, ticket: QuotaTicket) {
        self.current.fetch_sub(1, Ordering::Relaxed);
        for cell in ticket.user_cells.into_iter().flatten() {
            self.users[cell].fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn user_cells(&self, username: &str) -> [usize; USER_ROWS] {
        std::array::from_fn(|row| {
            row * USER_WIDTH + (self.hasher.hash_one((row, username)) as usize) % USER_WIDTH
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_user_and_in_total() {
        let config = TurnConfig { user_quota: 2, total_quota: 3, ..TurnConfig::default() };
        let quota = Quota::new(&config);
        let a1 = quota.acquire("ada").unwrap();
        let _a2 = quota.acquire("ada").unwrap();
        assert_eq!(quota.acquire("ada").unwrap_err(), QuotaExceeded::User);
        let _b1 = quota.acquire("bob").unwrap();
        assert_eq!(quota.acquire("cy").unwrap_err(), QuotaExceeded::Total);
        assert_eq!(quota.current(), 3);
        quota.release(a1);
        assert!(quota.acquire("ada").is_ok());
    }

    #[test]
    fn no_total_quota_still_caps_at_the_port_range() {
        let config = TurnConfig { min_port: 50000, max_port: 50009, ..TurnConfig::default() };
        assert_eq!(Quota::new(&config).cap(), 10);
    }
}
