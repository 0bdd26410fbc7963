//! Receive statistics of one RTP stream (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8): what the
//! bridge's receiver reports tell a sender about the packets that reached the bridge.

/// Sequence numbers further ahead than this are a jump (a restarted sender), not loss.
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers this far behind are late duplicates or reordering, not a restart.
const MAX_MISORDER: u16 = 100;

/// One report block's worth of figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceptionReport {
    pub ssrc: u32,
    /// Loss since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the start, clamped to 24 bits signed.
    pub cumulative_lost: i32,
    /// Cycles (high 16 bits) and highest sequence number received.
    pub extended_highest: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

#[derive(Clone, Debug)]
pub struct ReceiveStats {
    ssrc: u32,
    clock_rate: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Jitter estimate, scaled by 16 as in RFC 3550 A.8.
    jitter_q4: u32,
    last_transit: Option<i64>,
}

impl ReceiveStats {
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            started: false,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// One packet that passed authentication, arriving at `arrival_us` (any monotonic clock).
    pub fn record(&mut self, seq: u16, rtp_timestamp: u32, arrival_us: u64) {
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta != 0 && delta <= u16::MAX - MAX_MISORDER {
                // A big jump: the sender restarted its sequence; start counting afresh.
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.cycles = 0;
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
            }
        }
        self.received = self.received.wrapping_add(1);
        // Jitter (A.8): arrival in timestamp units minus the RTP timestamp.
        let arrival = (u128::from(arrival_us) * u128::from(self.clock_rate) / 1_000_000) as i64;
        let transit = arrival - i64::from(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs().min(u64::from(u32::MAX)) as u32;
            // J += (|D| - J) / 16, in Q4.
            self.jitter_q4 = self.jitter_q4.wrapping_add(d).wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Figures for a report block, and the start of the next reporting interval.
    pub fn report(&mut self) -> Option<ReceptionReport> {
        if !self.started {
            return None;
        }
        let extended_highest = self.cycles | u32::from(self.max_seq);
        let expected = extended_highest.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        Some(ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest,
            jitter: self.jitter_q4 >> 4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_per_interval_and_in_total() {
        let mut stats = ReceiveStats::new(7, 90_000);
        for seq in 0..100u16 {
            if seq % 10 != 3 {
                stats.record(seq, u32::from(seq) * 3000, u64::from(seq) * 33_333);
            }
        }
        let report = stats.report().unwrap();
        assert_eq!(report.cumulative_lost, 10);
        assert_eq!(report.extended_highest, 99);
        assert_eq!(report.fraction_lost, (10 * 256 / 100) as u8);
        for seq in 100..200u16 {
            stats.record(seq, u32::from(seq) * 3000, u64::from(seq) * 33_333);
        }
        let report = stats.report().unwrap();
        assert_eq!(report.fraction_lost, 0, "nothing lost in the second interval");
        assert_eq!(report.cumulative_lost, 10);
    }

    #[test]
    fn sequence_wrap_counts_a_cycle() {
        let mut stats = ReceiveStats::new(7, 48_000);
        for i in 0..20u32 {
            stats.record(65_530u16.wrapping_add(i as u16), i * 960, u64::from(i) * 20_000);
        }
        let report = stats.report().unwrap();
        assert_eq!(report.extended_highest, (1 << 16) | 13);
        assert_eq!(report.cumulative_lost, 0);
    }

    #[test]
    fn steady_packets_have_no_jitter_and_late_ones_do() {
        let mut stats = ReceiveStats::new(7, 48_000);
        for i in 0..50u32 {
            stats.record(i as u16, i * 960, u64::from(i) * 20_000);
        }
        assert_eq!(stats.report().unwrap().jitter, 0);
        for i in 50..100u32 {
            let wobble = if i % 2 == 0 { 5_000 } else { 0 };
            stats.record(i as u16, i * 960, u64::from(i) * 20_000 + wobble);
        }
        let jitter = stats.report().unwrap().jitter;
        assert!((150..=260).contains(&jitter), "5 ms of alternating delay at 48 kHz: {jitter}");
    }

    #[test]
    fn duplicates_and_reordering_are_not_loss() {
        let mut stats = ReceiveStats::new(7, 90_000);
        for seq in [0u16, 1, 3, 2, 4, 4, 5] {
            stats.record(seq, 0, 0);
        }
        let report = stats.report().unwrap();
        assert_eq!(report.extended_highest, 5);
        assert!(report.cumulative_lost <= 0);
    }

    #[test]
    fn nothing_received_reports_nothing() {
        assert_eq!(ReceiveStats::new(1, 90_000).report(), None);
    }
}
