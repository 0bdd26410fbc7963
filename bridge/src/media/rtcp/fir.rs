//! Full intra request (RFC 5104 §4.3.1): payload-specific feedback, FMT 4. Like PLI it asks
//! for a keyframe, but names each target in its own entry, with a command sequence number so a
//! repeated request is recognised as the same one (§4.3.1.2).
//!
//! ```text
//! |V=2|P|  FMT=4  |   PT=206      |             length            |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source (unused, 0)             |
//! FCI, one or more:
//! |                              SSRC                             |
//! | Seq nr.       |    Reserved (0)                               |
//! ```

use super::{PT_PSFB, Packet, RtcpError, Writer, take_u32};

pub(super) const FMT: u8 = 4;

/// Bytes of one FCI entry.
const ENTRY_LEN: usize = 8;

/// (SSRC, command sequence number) of each FIR entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirEntries<'a> {
    data: &'a [u8],
}

impl Iterator for FirEntries<'_> {
    type Item = (u32, u8);

    fn next(&mut self) -> Option<(u32, u8)> {
        let (&[s0, s1, s2, s3, seq_nr, ..], rest) = self.data.split_first_chunk::<ENTRY_LEN>()?;
        self.data = rest;
        Some((u32::from_be_bytes([s0, s1, s2, s3]), seq_nr))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len() / ENTRY_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for FirEntries<'_> {}

pub(super) fn parse(mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let sender_ssrc = take_u32(&mut body)?;
    let _media_ssrc = take_u32(&mut body)?;
    if body.is_empty() || !body.len().is_multiple_of(ENTRY_LEN) {
        return Err(RtcpError::BadLength);
    }
    Ok(Packet::Fir { sender_ssrc, entries: FirEntries { data: body } })
}

impl Writer<'_> {
    /// Appends a FIR with one entry per (SSRC, command sequence number). The caller keeps the
    /// sequence number per target and increments it for each new request.
    pub fn fir(&mut self, sender_ssrc: u32, entries: &[(u32, u8)]) -> Result<&mut Self, RtcpError> {
        if entries.is_empty() {
            return Err(RtcpError::Empty);
        }
        self.packet(usize::from(FMT), PT_PSFB, |w| {
            w.u32(sender_ssrc)?;
            w.u32(0)?;
            entries.iter().try_for_each(|&(ssrc, seq_nr)| {
                w.u32(ssrc)?;
                w.bytes(&[seq_nr, 0, 0, 0])
            })
        })
    }
}
