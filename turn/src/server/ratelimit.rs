//! Rate limit on failed authentication, per source IP (privacy invariant 7: guesses are
//! rate-limited per source).
//!
//! A fixed table, allocated once: 4-way set-associative by a keyed hash of the address. A
//! flood of distinct (or spoofed) sources evicts entries, oldest first and blocked ones last;
//! it never grows the table. The table is per worker, and every packet and connection from one
//! source address reaches the same UDP worker (the engine steers by source IP) and the same
//! stream worker (connections are handed to the worker of their client address), so a source
//! gets the threshold once over UDP and once over TCP and TLS: still a few guesses a second.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed authentications within [`WINDOW`] that block a source.
pub const FAILURE_THRESHOLD: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(10);
/// How long a blocked source gets no answers.
pub const BLOCK: Duration = Duration::from_secs(60);

const WAYS: usize = 4;
const SETS: usize = 256;
/// Sources tracked at once, per worker.
pub const CAPACITY: usize = WAYS * SETS;

#[derive(Clone, Copy, Debug)]
struct Entry {
    source: IpAddr,
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }
}

#[derive(Debug)]
pub(crate) struct AuthRateLimit {
    entries: Box<[Option<Entry>]>,
    hasher: RandomState,
}

impl AuthRateLimit {
    pub(crate) fn new() -> Self {
        Self { entries: vec![None; CAPACITY].into_boxed_slice(), hasher: RandomState::new() }
    }

    fn set(&self, source: IpAddr) -> std::ops::Range<usize> {
        let set = (self.hasher.hash_one(source) as usize) % SETS;
        set * WAYS..set * WAYS + WAYS
    }

    /// Whether requests from `source` go unanswered now.
    pub(crate) fn is_blocked(&self, source: IpAddr, now: Instant) -> bool {
        self.entries[self.set(source)].iter().flatten().any(|e| e.source == source && e.blocked(now))
    }

    /// Counts one failed authentication from `source`.
    pub(crate) fn record_failure(&mut self, source: IpAddr, now: Instant) {
        let set = self.set(source);
        let ways = &mut self.entries[set];
        let at = match ways.iter().position(|e| e.is_some_and(|e| e.source == source)) {
            Some(at) => at,
            None => {
                // An empty way, else the stalest unblocked one, else the block that ends first.
                let victim = ways.iter().position(Option::is_none).unwrap_or_else(|| {
                    let rank = |e: &Option<Entry>| {
                        let e = e.expect("every way is full here");
                        (e.blocked(now), e.blocked_until.unwrap_or(e.window_start), e.window_start)
                    };
                    (0..WAYS).min_by_key(|&i| rank(&ways[i])).expect("WAYS > 0")
                });
                ways[victim] = Some(Entry { source, window_start: now, failures: 0, blocked_until: None });
                victim
            }
        };
        let entry = ways[at].as_mut().expect("just found or filled");
        if now.saturating_duration_since(entry.window_start) > WINDOW {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures >= FAILURE_THRESHOLD {
            entry.blocked_until = Some(now + BLOCK);
        }
    }

    /// Sources tracked now (at most [`CAPACITY`]).
    pub(crate) fn tracked(&self) -> usize {
        self.entries.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_blocked_after_the_threshold_and_unblocked_later() {
        let mut limit = AuthRateLimit::new();
        let now = Instant::now();
        let source: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..FAILURE_THRESHOLD - 1 {
            limit.record_failure(source, now);
        }
        assert!(!limit.is_blocked(source, now));
        limit.record_failure(source, now);
        assert!(limit.is_blocked(source, now));
        assert!(!limit.is_blocked(source, now + BLOCK));
        // Failures spread wider than the window never block.
        let slow: IpAddr = "198.51.100.2".parse().unwrap();
        for i in 0..3 * FAILURE_THRESHOLD {
            limit.record_failure(slow, now + WINDOW * i / 5);
        }
        assert!(!limit.is_blocked(slow, now + WINDOW * 12));
    }
}
