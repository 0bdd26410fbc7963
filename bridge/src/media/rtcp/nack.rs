//! Generic NACK (RFC 4585 §6.2.1): transport-layer feedback, FMT 1. Each FCI item names a lost
//! packet (PID) and a bitmask of the 16 packets after it (BLP: bit i set means PID + i + 1 is
//! lost too).
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=205      |             length            |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! FCI, one or more:
//! |            PID                |             BLP               |
//! ```

use super::{PT_RTPFB, Packet, RtcpError, Writer, take_u32};

pub(super) const FMT: u8 = 1;

/// Bytes of one FCI item.
const ITEM_LEN: usize = 4;

/// The (PID, BLP) items of a NACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NackItems<'a> {
    data: &'a [u8],
}

impl<'a> NackItems<'a> {
    /// Every sequence number the items name, in item order, wrapping past 65535. A number
    /// named twice is yielded twice.
    pub fn lost(&self) -> LostSeqs<'a> {
        LostSeqs { items: self.clone(), pid: 0, pending: 0 }
    }
}

impl Iterator for NackItems<'_> {
    type Item = (u16, u16);

    fn next(&mut self) -> Option<(u16, u16)> {
        let (&[p0, p1, b0, b1], rest) = self.data.split_first_chunk::<ITEM_LEN>()?;
        self.data = rest;
        Some((u16::from_be_bytes([p0, p1]), u16::from_be_bytes([b0, b1])))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len() / ITEM_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for NackItems<'_> {}

/// The lost sequence numbers of a NACK, expanded from its items without allocating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostSeqs<'a> {
    items: NackItems<'a>,
    pid: u16,
    /// Offsets from `pid` still to yield: bit 0 is the PID itself, bit i + 1 is BLP bit i.
    pending: u32,
}

impl Iterator for LostSeqs<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        while self.pending == 0 {
            let (pid, blp) = self.items.next()?;
            self.pid = pid;
            self.pending = 1 | u32::from(blp) << 1;
        }
        let offset = self.pending.trailing_zeros() as u16; // < 17
        self.pending &= self.pending - 1;
        Some(self.pid.wrapping_add(offset))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let here = self.pending.count_ones() as usize;
        (here + self.items.len(), Some(here + 17 * self.items.len()))
    }
}

pub(super) fn parse(mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let sender_ssrc = take_u32(&mut body)?;
    let media_ssrc = take_u32(&mut body)?;
    if body.is_empty() || !body.len().is_multiple_of(ITEM_LEN) {
        return Err(RtcpError::BadLength);
    }
    Ok(Packet::Nack { sender_ssrc, media_ssrc, items: NackItems { data: body } })
}

impl Writer<'_> {
    /// Appends a NACK for `lost` packets of `media_ssrc`, packed into (PID, BLP) items: a
    /// number within 16 after the current PID sets a bit, any other starts a new item. Packing
    /// is tightest when `lost` ascends (wrapping past 65535); any order is correct, as every
    /// number ends up named at least once.
    pub fn nack(&mut self, sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Result<&mut Self, RtcpError> {
        let Some((&first, rest)) = lost.split_first() else {
            return Err(RtcpError::Empty);
        };
        self.packet(usize::from(FMT), PT_RTPFB, |w| {
            w.u32(sender_ssrc)?;
            w.u32(media_ssrc)?;
            let (mut pid, mut blp) = (first, 0u16);
            for &seq in rest {
                match seq.wrapping_sub(pid) {
                    0 => {}
                    offset @ 1..=16 => blp |= 1 << (offset - 1),
                    _ => {
                        w.u16(pid)?;
                        w.u16(blp)?;
                        (pid, blp) = (seq, 0);
                    }
                }
            }
            w.u16(pid)?;
            w.u16(blp)
        })
    }
}
