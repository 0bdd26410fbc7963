//! The per-allocation bandwidth cap (`max-bps`, in bytes per second as in coturn): a token
//! bucket over both directions, holding at most one second of traffic.

use std::time::Instant;

/// The largest datagram the bucket always lets through when full, so that a cap below one
/// packet per second still relays something.
const MIN_BURST: u64 = 1500;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(bytes_per_s: u64, now: Instant) -> Self {
        let burst = bytes_per_s.max(MIN_BURST);
        Self { rate: bytes_per_s, burst, tokens: burst, last: now }
    }

    /// Takes `bytes` if the bucket holds them.
    pub(crate) fn take(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        if !elapsed.is_zero() {
            let earned = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
            // Time moves on only by what was turned into whole bytes, so slow trickles add up.
            if earned > 0 {
                self.tokens =
                    self.burst.min(self.tokens.saturating_add(u64::try_from(earned).unwrap_or(u64::MAX)));
                self.last = now;
            }
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10_000, t0);
        for _ in 0..10 {
            assert!(bucket.take(1000, t0));
        }
        assert!(!bucket.take(1000, t0));
        assert!(bucket.take(1000, t0 + Duration::from_millis(100)));
        assert!(!bucket.take(1000, t0 + Duration::from_millis(150)));
        assert!(bucket.take(1000, t0 + Duration::from_millis(200)));
        // Never more than one second's worth.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(bucket.take(1000, later));
        }
        assert!(!bucket.take(1000, later));
    }
}
