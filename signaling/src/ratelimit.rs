//! Per-source rate limits on join attempts and password guesses (privacy invariant 7): a token
//! bucket per IP address, in memory only, forgotten once full again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A bucket of `burst` tokens refilled at one per `every`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    /// Tokens left and when they were counted.
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Self { rate, buckets: HashMap::new() }
    }

    /// Takes a token for `source`; `Err(wait)` says how long until one is there.
    pub fn take(&mut self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        self.forget_full(now);
        let rate = self.rate;
        let burst = f64::from(rate.burst);
        let (tokens, at) = self.buckets.entry(source).or_insert((burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() / rate.every.as_secs_f64();
        *tokens = (*tokens + refill).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(rate.every.mul_f64(1.0 - *tokens))
        }
    }

    /// Whether `source` has a token, without taking it.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        self.take(source, now)?;
        if let Some((tokens, _)) = self.buckets.get_mut(&source) {
            *tokens += 1.0;
        }
        Ok(())
    }

    /// Sources whose bucket has refilled carry no information worth keeping.
    fn forget_full(&mut self, now: Instant) {
        if self.buckets.len() < 1024 {
            return;
        }
        let full_after = self.rate.every * self.rate.burst;
        self.buckets.retain(|_, (_, at)| now.saturating_duration_since(*at) < full_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut limiter = Limiter::new(Rate { burst: 3, every: Duration::from_secs(10) });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip, t0).is_ok());
        }
        let wait = limiter.take(ip, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(limiter.take(other, t0).is_ok(), "per source");
        assert!(limiter.take(ip, t0 + Duration::from_secs(5)).is_err());
        assert!(limiter.take(ip, t0 + Duration::from_secs(11)).is_ok());
    }
}
