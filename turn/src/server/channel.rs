//! ChannelData (RFC 8656 §12.4): the 4-byte header that replaces a 36-byte Send or Data
//! indication once a channel is bound.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Channel Number        |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! /                       Application Data                        /
//! /                                                               /
//! |                               +-------------------------------+
//! |                               |
//! +-------------------------------+
//! ```
//! Over TCP and TLS the message is padded to a multiple of 4 bytes (§12.5); over UDP padding
//! is allowed but not needed. Both are accepted on input.

use std::fmt;

/// Bytes of the ChannelData header.
pub const CHANNEL_HEADER_LEN: usize = 4;

/// A channel number in 0x4000..=0x7FFF.
///
/// RFC 8656 §12 narrowed the range to 0x4000..=0x4FFF, leaving the rest reserved; RFC 5766
/// allowed 0x4000..=0x7FFF, and coturn and its clients (turnutils_uclient draws numbers from
/// the whole of it) still use that. A server for people moving off coturn takes both: the
/// reserved part has no other meaning a TURN server could confuse it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelNumber(u16);

impl ChannelNumber {
    pub const MIN: u16 = 0x4000;
    pub const MAX: u16 = 0x7FFF;

    /// `None` outside the range a client may bind.
    pub fn new(number: u16) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&number).then_some(Self(number))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ChannelNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// Reads a ChannelData message: its channel and application data. `None` when the number is
/// outside 0x4000..=0x7FFF or the data is shorter than the length says; bytes after the data
/// (padding) are ignored.
pub fn parse_channel_data(bytes: &[u8]) -> Option<(ChannelNumber, &[u8])> {
    let header = bytes.get(..CHANNEL_HEADER_LEN)?;
    let channel = ChannelNumber::new(u16::from_be_bytes([header[0], header[1]]))?;
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let data = bytes.get(CHANNEL_HEADER_LEN..CHANNEL_HEADER_LEN + len)?;
    Some((channel, data))
}

/// Writes a ChannelData message into `buf`, zero-padded to a multiple of 4 when `pad` (stream
/// transports). `None` when it does not fit.
pub fn write_channel_data(buf: &mut [u8], channel: ChannelNumber, data: &[u8], pad: bool) -> Option<usize> {
    let len = u16::try_from(data.len()).ok()?;
    let end = CHANNEL_HEADER_LEN + data.len();
    let total = if pad { end.next_multiple_of(4) } else { end };
    let out = buf.get_mut(..total)?;
    out[..2].copy_from_slice(&channel.0.to_be_bytes());
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out[CHANNEL_HEADER_LEN..end].copy_from_slice(data);
    out[end..].fill(0);
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_round_trips_with_and_without_padding() {
        let channel = ChannelNumber::new(0x4001).unwrap();
        let mut buf = [0xffu8; 16];
        assert_eq!(write_channel_data(&mut buf, channel, b"hello", false), Some(9));
        assert_eq!(parse_channel_data(&buf[..9]), Some((channel, &b"hello"[..])));
        assert_eq!(write_channel_data(&mut buf, channel, b"hello", true), Some(12));
        assert_eq!(&buf[9..12], &[0, 0, 0]);
        assert_eq!(parse_channel_data(&buf[..12]), Some((channel, &b"hello"[..])));
        assert_eq!(parse_channel_data(&buf[..8]), None, "shorter than its length");
        assert_eq!(write_channel_data(&mut buf[..8], channel, b"hello", false), None);
        assert_eq!(parse_channel_data(&[0x80, 0, 0, 0]), None);
        assert_eq!(ChannelNumber::new(0x3fff), None);
        assert_eq!(ChannelNumber::new(0x8000), None);
        assert_eq!(ChannelNumber::new(0x7fff).map(ChannelNumber::get), Some(0x7fff), "RFC 5766's range");
        assert_eq!(channel.to_string(), "0x4001");
    }
}
