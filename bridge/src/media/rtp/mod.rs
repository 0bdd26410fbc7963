//! RTP headers (RFC 3550 §5.1) and header extensions (RFC 8285), read in place.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   profile (0xBEDE or 0x100x)  |  length in 32-bit words       |
//! |                        extension data                         |
//! ```

mod extension;
pub mod renumber;

pub use extension::{Extensions, audio_level};

/// Why a datagram is not an RTP packet we can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtpError {
    /// Shorter than the fixed header, or the version is not 2.
    NotRtp,
    /// The CSRC list or the extension runs past the end.
    HeaderOverrun,
    /// The padding count is larger than the payload.
    BadPadding,
}

/// A parsed RTP header borrowing the packet.
#[derive(Clone, Copy, Debug)]
pub struct RtpHeader<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    csrcs: &'a [u8],
    /// Extension profile and data, if the X bit is set.
    extension: Option<(u16, &'a [u8])>,
    /// Bytes of header: where the payload starts.
    pub header_len: usize,
    /// Bytes of payload after removing padding.
    pub payload_len: usize,
}

/// Length of the RTP header (fixed part, CSRCs, extension), or `None` when the packet is not
/// RTP v2 or its header does not fit. The cheap check SRTP runs before anything else.
pub fn header_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= packet.len()).then_some(len)
}

impl<'a> RtpHeader<'a> {
    /// Parses the header of a (decrypted) RTP packet.
    pub fn parse(packet: &'a [u8]) -> Result<Self, RtpError> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return Err(RtpError::NotRtp);
        }
        let header_len = header_len(packet).ok_or(RtpError::HeaderOverrun)?;
        let csrc_end = 12 + 4 * usize::from(packet[0] & 0x0f);
        let extension = (packet[0] & 0x10 != 0).then(|| {
            let profile = u16::from_be_bytes([packet[csrc_end], packet[csrc_end + 1]]);
            (profile, &packet[csrc_end + 4..header_len])
        });
        let padding = if packet[0] & 0x20 != 0 { usize::from(*packet.last().expect("12+ bytes")) } else { 0 };
        let payload_len =
            (packet.len() - header_len).checked_sub(padding).filter(|_| padding > 0 || packet[0] & 0x20 == 0);
        let payload_len = payload_len.ok_or(RtpError::BadPadding)?;
        Ok(Self {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            csrcs: &packet[12..csrc_end],
            extension,
            header_len,
            payload_len,
        })
    }

    /// Contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrcs.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Header extension elements (one- or two-byte form), empty when there are none or the
    /// profile is neither.
    pub fn extensions(&self) -> Extensions<'a> {
        match self.extension {
            Some((profile, data)) => Extensions::new(profile, data),
            None => Extensions::new(0, &[]),
        }
    }

    /// The value of extension element `id`, if present.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        self.extensions().find(|(i, _)| *i == id).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests;
