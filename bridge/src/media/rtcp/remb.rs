//! Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb-03): an application-layer
//! feedback message, PSFB FMT 15, told apart from other ones by its "REMB" identifier. The
//! bitrate is an 18-bit mantissa shifted left by a 6-bit exponent.
//!
//! ```text
//! |V=2|P| FMT=15  |   PT=206      |             length            |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source (unused, 0)             |
//! |  Unique identifier 'R' 'E' 'M' 'B'                            |
//! |  Num SSRC     | BR Exp    |  BR Mantissa                      |
//! |   SSRC feedback (Num SSRC of them)                            |
//! ```

use super::{PT_PSFB, Packet, RtcpError, Ssrcs, Writer, take, take_u32};

pub(super) const FMT: u8 = 15;

const IDENTIFIER: &[u8; 4] = b"REMB";

/// Widest mantissa: 18 bits.
const MANTISSA_MAX: u64 = (1 << 18) - 1;

/// Whether an application-layer feedback body is a REMB.
pub(super) fn is_remb(body: &[u8]) -> bool {
    body.get(8..12) == Some(IDENTIFIER)
}

pub(super) fn parse(mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let sender_ssrc = take_u32(&mut body)?;
    let _media_ssrc = take_u32(&mut body)?;
    let _identifier = take::<4>(&mut body)?;
    let [count, b0, b1, b2] = take::<4>(&mut body)?;
    let exponent = u32::from(b0 >> 2);
    let mantissa = u64::from(b0 & 0x03) << 16 | u64::from(b1) << 8 | u64::from(b2);
    // An 18-bit mantissa shifted by up to 63 overflows 64 bits: saturate.
    let bitrate_bps = if exponent > mantissa.leading_zeros() { u64::MAX } else { mantissa << exponent };
    let (ssrcs, _) = Ssrcs::split(usize::from(count), body)?;
    Ok(Packet::Remb { sender_ssrc, bitrate_bps, ssrcs })
}

/// (exponent, mantissa) for `bitrate`, rounding down: the smallest exponent whose mantissa
/// fits 18 bits.
fn encode(bitrate: u64) -> (u8, u32) {
    let exponent = (64 - bitrate.leading_zeros()).saturating_sub(18);
    let mantissa = bitrate >> exponent;
    debug_assert!(mantissa <= MANTISSA_MAX);
    (exponent as u8, mantissa as u32)
}

impl Writer<'_> {
    /// Appends a REMB of `bitrate_bps` (rounded down to what 18 bits of mantissa can say) for
    /// up to 255 SSRCs.
    pub fn remb(
        &mut self,
        sender_ssrc: u32,
        bitrate_bps: u64,
        ssrcs: &[u32],
    ) -> Result<&mut Self, RtcpError> {
        let count = u8::try_from(ssrcs.len()).map_err(|_| RtcpError::TooMany)?;
        let (exponent, mantissa) = encode(bitrate_bps);
        self.packet(usize::from(FMT), PT_PSFB, |w| {
            w.u32(sender_ssrc)?;
            w.u32(0)?;
            w.bytes(IDENTIFIER)?;
            w.u32(u32::from(count) << 24 | u32::from(exponent) << 18 | mantissa)?;
            ssrcs.iter().try_for_each(|&ssrc| w.u32(ssrc))
        })
    }
}
