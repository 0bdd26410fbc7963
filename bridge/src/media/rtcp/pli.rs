//! Picture loss indication (RFC 4585 §6.3.1): payload-specific feedback, FMT 1, no FCI. The
//! receiver lost part of a picture and asks the media sender for a keyframe.
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=206      |          length=2             |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! ```

use super::{PT_PSFB, Packet, RtcpError, Writer, take_u32};

pub(super) const FMT: u8 = 1;

pub(super) fn parse(mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let sender_ssrc = take_u32(&mut body)?;
    let media_ssrc = take_u32(&mut body)?;
    Ok(Packet::Pli { sender_ssrc, media_ssrc })
}

impl Writer<'_> {
    /// Appends a PLI asking the sender of `media_ssrc` for a keyframe.
    pub fn pli(&mut self, sender_ssrc: u32, media_ssrc: u32) -> Result<&mut Self, RtcpError> {
        self.packet(usize::from(FMT), PT_PSFB, |w| {
            w.u32(sender_ssrc)?;
            w.u32(media_ssrc)
        })
    }
}
