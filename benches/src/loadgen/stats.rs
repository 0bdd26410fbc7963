//! What one receiver learns about one stream from the payload sequence numbers: packets
//! received, duplicates, late (reordered) arrivals, and, once the sender says how many it
//! sent, the loss.
//!
//! A window of the last [`WINDOW`] sequence numbers remembers which arrived, so a duplicate is
//! told from a late packet without a set that grows. A packet older than the window is counted
//! as a late first arrival (it cannot be checked for duplication; at 4,096 packets behind it
//! is far likelier late than twice sent), and counted apart as `beyond_window`.

/// Sequence numbers remembered behind the highest one.
pub const WINDOW: u32 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// How a packet arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First arrival, in order (higher than everything before it).
    InOrder,
    /// First arrival, after a higher sequence number.
    Late,
    /// Already received.
    Duplicate,
}

/// Loss, duplication and reordering of one stream.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    highest: Option<u32>,
    seen: [u64; WORDS],
    unique: u64,
    duplicates: u64,
    late: u64,
    beyond_window: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self { highest: None, seen: [0; WORDS], unique: 0, duplicates: 0, late: 0, beyond_window: 0 }
    }
}

impl SeqTracker {
    fn bit(seq: u32) -> (usize, u64) {
        let slot = seq % WINDOW;
        ((slot / 64) as usize, 1u64 << (slot % 64))
    }

    fn mark(&mut self, seq: u32) {
        let (word, mask) = Self::bit(seq);
        self.seen[word] |= mask;
    }

    fn is_marked(&self, seq: u32) -> bool {
        let (word, mask) = Self::bit(seq);
        self.seen[word] & mask != 0
    }

    pub fn record(&mut self, seq: u32) -> Arrival {
        match self.highest {
            Some(highest) if seq <= highest => {
                if highest - seq >= WINDOW {
                    self.unique += 1;
                    self.late += 1;
                    self.beyond_window += 1;
                    Arrival::Late
                } else if self.is_marked(seq) {
                    self.duplicates += 1;
                    Arrival::Duplicate
                } else {
                    self.mark(seq);
                    self.unique += 1;
                    self.late += 1;
                    Arrival::Late
                }
            }
            highest => {
                // Forget the slots the window slides over: they now stand for newer numbers.
                let start = highest.map_or(0, |h| h + 1);
                if seq - start >= WINDOW {
                    self.seen = [0; WORDS];
                } else {
                    for skipped in start..seq {
                        let (word, mask) = Self::bit(skipped);
                        self.seen[word] &= !mask;
                    }
                }
                self.highest = Some(seq);
                self.mark(seq);
                self.unique += 1;
                Arrival::InOrder
            }
        }
    }

    /// Distinct packets received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First arrivals after a higher sequence number.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn beyond_window(&self) -> u64 {
        self.beyond_window
    }

    /// Missing so far: gaps below the highest number received. Packets still in flight are
    /// not counted, so this is the live estimate; [`lost`](Self::lost) is the final figure.
    pub fn gaps(&self) -> u64 {
        self.highest.map_or(0, |h| (u64::from(h) + 1).saturating_sub(self.unique))
    }

    /// Lost of the `sent` packets the sender numbered 0..sent.
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }
}

/// One receiver's view of one sender's stream.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    pub seq: SeqTracker,
    /// Datagrams that SRTP refused as replays: the network (or the bridge) sent a packet
    /// twice and the receiver's SRTP caught it before its payload could be read.
    pub replays: u64,
    pub latency_min_ns: u64,
    pub latency_max_ns: u64,
    pub latency_sum_ns: u64,
}

impl StreamStats {
    /// Records a packet with sequence number `seq` and one-way latency `latency_ns`.
    #[inline]
    pub fn record(&mut self, seq: u32, latency_ns: u64) -> Arrival {
        let arrival = self.seq.record(seq);
        if arrival != Arrival::Duplicate {
            if self.seq.unique() == 1 {
                self.latency_min_ns = latency_ns;
            }
            self.latency_min_ns = self.latency_min_ns.min(latency_ns);
            self.latency_max_ns = self.latency_max_ns.max(latency_ns);
            self.latency_sum_ns += latency_ns;
        }
        arrival
    }

    /// All duplicates: seen in the payload, or caught by SRTP's replay check.
    pub fn duplicates(&self) -> u64 {
        self.seq.duplicates() + self.replays
    }

    pub fn latency_mean_ns(&self) -> Option<u64> {
        (self.seq.unique() > 0).then(|| self.latency_sum_ns / self.seq.unique())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u32]) -> (SeqTracker, Vec<Arrival>) {
        let mut tracker = SeqTracker::default();
        let arrivals = seqs.iter().map(|&s| tracker.record(s)).collect();
        (tracker, arrivals)
    }

    #[test]
    fn scripted_loss_duplicates_and_reordering() {
        use Arrival::*;
        // 0..10 sent; 3 and 7 lost, 5 arrives after 6, 2 and 6 arrive twice.
        let (t, arrivals) = feed(&[0, 1, 2, 2, 4, 6, 5, 6, 8, 9]);
        assert_eq!(
            arrivals,
            [InOrder, InOrder, InOrder, Duplicate, InOrder, InOrder, Late, Duplicate, InOrder, InOrder]
        );
        assert_eq!(t.unique(), 8);
        assert_eq!(t.duplicates(), 2);
        assert_eq!(t.late(), 1);
        assert_eq!(t.gaps(), 2);
        assert_eq!(t.lost(10), 2);
        assert_eq!(t.lost(12), 4, "two more sent and never seen");
    }

    #[test]
    fn every_tenth_lost_is_ten_percent() {
        let seqs: Vec<u32> = (0..100_000).filter(|s| s % 10 != 9).collect();
        let (t, _) = feed(&seqs);
        assert_eq!(t.lost(100_000), 10_000);
        assert_eq!((t.duplicates(), t.late()), (0, 0));
    }

    #[test]
    fn the_window_slides_and_forgets() {
        let mut t = SeqTracker::default();
        t.record(5);
        // Far ahead: the old slot of 5 stands for 5 + WINDOW now, which has not arrived.
        t.record(5 + 2 * WINDOW);
        assert_eq!(t.record(5 + WINDOW + 10), Arrival::Late, "inside the window, not seen");
        assert_eq!(t.record(5 + WINDOW + 10), Arrival::Duplicate);
        // Older than the window: counted late, never as a duplicate.
        assert_eq!(t.record(5), Arrival::Late);
        assert_eq!(t.record(5), Arrival::Late);
        assert_eq!(t.beyond_window(), 2);
        // A gap slid over clears exactly the slots skipped.
        let mut t = SeqTracker::default();
        for s in 0..WINDOW {
            t.record(s);
        }
        t.record(WINDOW + 3); // skips WINDOW..WINDOW+3, whose slots held 0..3
        assert_eq!(t.record(WINDOW + 1), Arrival::Late);
        assert_eq!(t.record(4), Arrival::Duplicate, "slot of 4 was not slid over");
    }

    #[test]
    fn stream_latency_ignores_duplicates() {
        let mut s = StreamStats::default();
        s.record(0, 300);
        s.record(1, 100);
        s.record(1, 1_000_000);
        assert_eq!((s.latency_min_ns, s.latency_max_ns, s.latency_mean_ns()), (100, 300, Some(200)));
        s.replays = 3;
        assert_eq!(s.duplicates(), 4);
    }
}
