//! Splitting a TCP or TLS byte stream into messages (RFC 8656 §12.5): the first two bits tell a
//! STUN message (00) from ChannelData (01), and each carries its own length.

use std::fmt;

use stun::{HEADER_LEN, MAGIC_COOKIE};

/// The stream holds something that is neither STUN nor ChannelData: the I/O layer closes it,
/// since a stream cannot be resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The first two bits are 10 or 11.
    NotTurn,
    /// A STUN header with the wrong magic cookie or a length that is not a multiple of 4.
    BadStunHeader,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotTurn => "neither STUN nor ChannelData",
            Self::BadStunHeader => "malformed STUN header",
        })
    }
}

impl std::error::Error for FrameError {}

/// The length of the first whole message in `buf`: STUN is 20 + its length, ChannelData 4 +
/// its length padded to 4. `Ok(None)`: more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    match first >> 6 {
        0b00 => {
            if buf.len() >= 8 && buf[4..8] != MAGIC_COOKIE.to_be_bytes() {
                return Err(FrameError::BadStunHeader);
            }
            let Some(length) = buf.get(2..4) else { return Ok(None) };
            let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
            if length % 4 != 0 {
                return Err(FrameError::BadStunHeader);
            }
            Ok(Some(HEADER_LEN + length))
        }
        0b01 => {
            let Some(length) = buf.get(2..4) else { return Ok(None) };
            let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
            Ok(Some(4 + length.next_multiple_of(4)))
        }
        _ => Err(FrameError::NotTurn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_channel_data_frames_are_measured() {
        let mut stun = [0u8; 28];
        stun[3] = 8;
        stun[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert_eq!(frame_len(&stun), Ok(Some(28)));
        assert_eq!(frame_len(&stun[..3]), Ok(None));
        assert_eq!(frame_len(&[]), Ok(None));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x05, 1]), Ok(Some(12)), "padded to 4 over streams");
        assert_eq!(frame_len(&[0x4f, 0xff, 0x00]), Ok(None));
        assert_eq!(frame_len(&[0x50, 0, 0, 4]), Ok(Some(8)), "RFC 5766's channel range");
        assert_eq!(frame_len(&[0x80, 0, 0, 4]), Err(FrameError::NotTurn));
        assert_eq!(frame_len(&[0x80]), Err(FrameError::NotTurn));
        stun[4] = 0;
        assert_eq!(frame_len(&stun), Err(FrameError::BadStunHeader));
        assert_eq!(frame_len(&[0, 1, 0, 3]), Err(FrameError::BadStunHeader));
    }
}
