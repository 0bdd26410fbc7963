//! Packet index estimation and the replay window (RFC 3711 §3.3.1, §3.3.2, Appendix A).
//!
//! SRTP authenticates the 48-bit packet index (ROC << 16 | SEQ), but only the 16-bit sequence
//! number travels: the receiver guesses the rollover counter from the highest index it has
//! accepted, and remembers the last 64 indexes so a replayed packet is refused.

/// Packets behind the highest accepted index that are still accepted (once each).
pub const WINDOW: u64 = 64;

/// Why an index was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Already accepted once.
    Duplicate,
    /// Older than the window.
    TooOld,
}

/// Per-SSRC receive state.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayWindow {
    /// Highest accepted index, if any packet was accepted yet.
    highest: Option<u64>,
    /// Bit i set: index `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// The 48-bit index a packet with `seq` most likely has (Appendix A): the candidate with
    /// ROC - 1, ROC or ROC + 1 closest to the highest accepted index.
    pub fn estimate(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(seq);
        };
        let roc = highest >> 16;
        let s_l = highest & 0xffff;
        let seq = u64::from(seq);
        let v = if s_l < 0x8000 {
            if seq > s_l + 0x8000 && roc > 0 { roc - 1 } else { roc }
        } else if seq + 0x8000 < s_l {
            roc + 1
        } else {
            roc
        };
        (v << 16) | seq
    }

    /// Whether `index` may be accepted. Call before authenticating; [`accept`](Self::accept)
    /// only after the packet authenticated.
    pub fn check(&self, index: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else { return Ok(()) };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= WINDOW {
            Err(ReplayError::TooOld)
        } else if self.seen & (1 << behind) != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated index.
    pub fn accept(&mut self, index: u64) {
        match self.highest {
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
            Some(highest) if index > highest => {
                let ahead = index - highest;
                self.seen = if ahead >= WINDOW { 1 } else { (self.seen << ahead) | 1 };
                self.highest = Some(index);
            }
            Some(highest) => self.seen |= 1 << (highest - index),
        }
    }

    /// The highest accepted index, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The rollover counter of the highest accepted index (what SRTP authenticates).
    pub fn roc(&self) -> u32 {
        self.highest.map_or(0, |h| (h >> 16) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wrap_raises_the_rollover_counter() {
        let mut window = ReplayWindow::default();
        for seq in [65533u16, 65534, 65535, 0, 1, 2] {
            let index = window.estimate(seq);
            window.check(index).unwrap();
            window.accept(index);
        }
        assert_eq!(window.roc(), 1);
        assert_eq!(window.estimate(3), (1 << 16) | 3);
        // A late packet from before the wrap still maps to the old ROC.
        assert_eq!(window.estimate(65530), 65530);
    }

    #[test]
    fn duplicates_and_old_packets_are_refused() {
        let mut window = ReplayWindow::default();
        for index in 100..200 {
            window.accept(index);
        }
        assert_eq!(window.check(199), Err(ReplayError::Duplicate));
        assert_eq!(window.check(150), Err(ReplayError::Duplicate));
        assert_eq!(window.check(136), Err(ReplayError::Duplicate), "the window reaches back 64");
        assert_eq!(window.check(135), Err(ReplayError::TooOld));
        assert_eq!(window.check(200), Ok(()));
        window.accept(300);
        assert_eq!(window.check(299), Ok(()), "a gap leaves room for late packets");
        assert_eq!(window.check(236), Err(ReplayError::TooOld));
    }

    #[test]
    fn out_of_order_within_the_window_is_accepted_once() {
        let mut window = ReplayWindow::default();
        window.accept(10);
        window.accept(14);
        for late in [11, 13, 12] {
            assert_eq!(window.check(late), Ok(()));
            window.accept(late);
            assert_eq!(window.check(late), Err(ReplayError::Duplicate));
        }
    }
}
