//! A fixed-size latency histogram with log-linear buckets (the HdrHistogram idea): exact below
//! 32 ns, then 32 buckets per power of two, so any value is placed within 1/32 (3.1%) of itself
//! and a percentile is reported within half that. 1,920 counters cover all of `u64`; recording
//! is a few integer operations and never allocates.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: values below `SUB` one each, then `SUB` for each exponent from `SUB_BITS` to 63.
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: Box::new([0; BUCKETS]), total: 0, min: u64::MAX, max: 0, sum: 0 }
    }
}

fn bucket(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= SUB_BITS
    let mantissa = (value >> (exponent - SUB_BITS)) - SUB; // 0..SUB
    ((u64::from(exponent - SUB_BITS + 1) * SUB) + mantissa) as usize
}

/// The smallest value of bucket `index` and the bucket's width.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, 1);
    }
    let exponent = (index / SUB) as u32 + SUB_BITS - 1;
    let mantissa = index % SUB;
    let width = 1u64 << (exponent - SUB_BITS);
    ((SUB + mantissa) * width, width)
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The value at quantile `q` (0.5 = median): the middle of the bucket holding the
    /// `ceil(q x count)`-th smallest value, clamped to the exact min and max; the exact min
    /// and max themselves for the first and last rank. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank == 1 {
            return Some(self.min);
        }
        if rank >= self.total {
            return Some(self.max);
        }
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bucket_range(index);
                return Some((low + width / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// One-way latencies by stream kind ([`crate::loadgen::wire::StreamKind::index`]) of the
/// packets sent from `from_ns` on: the warm-up's first packets, which meet streams the bridge
/// has not seen yet and a loadgen still settling, are left out.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub from_ns: u64,
    pub by_kind: [Histogram; 2],
}

impl Latencies {
    pub fn new(from_ns: u64) -> Self {
        Self { from_ns, by_kind: Default::default() }
    }

    pub fn record(&mut self, kind: usize, sent_ns: u64, one_way_ns: u64) {
        if sent_ns >= self.from_ns {
            self.by_kind[kind].record(one_way_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_value_range() {
        let mut expected_low = 0u64;
        for index in 0..BUCKETS {
            let (low, width) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert_eq!(bucket(low), index);
            assert_eq!(bucket(low + (width - 1)), index);
            expected_low = low.wrapping_add(width);
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms
        }
        let close = |q: f64, exact: f64| {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        };
        close(0.5, 50_000_000.0);
        close(0.99, 99_000_000.0);
        close(0.999, 99_900_000.0);
        assert_eq!(h.quantile(1.0), Some(100_000_000));
        assert_eq!(h.quantile(0.0), Some(1000));
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn a_rare_tail_shows_in_the_high_percentiles_only() {
        let mut h = Histogram::default();
        for _ in 0..9_990 {
            h.record(50_000);
        }
        for _ in 0..10 {
            h.record(20_000_000);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((48_500..=51_500).contains(&p50), "{p50}");
        assert!(h.quantile(0.99).unwrap() < 52_000);
        // 0.999 x 10,000 = 9,990: still the bulk; one more rank reaches the tail.
        assert!(h.quantile(0.999).unwrap() < 52_000);
        assert!(h.quantile(0.9991).unwrap() > 19_000_000);
        let mut other = Histogram::default();
        other.record(1);
        h.merge(&other);
        assert_eq!((h.min(), h.max(), h.count()), (Some(1), Some(20_000_000), 10_001));
    }
}
