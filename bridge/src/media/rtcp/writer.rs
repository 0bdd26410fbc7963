//! Writing a compound packet into a caller's buffer, packet by packet, without allocating.
//!
//! The packet methods live next to their parsers (`report.rs`, `nack.rs`, ...); this file
//! holds what they share: bounds-checked appends and the common header.

use super::RtcpError;

/// Appends RTCP packets to a compound in `buf`. Every write is bounds-checked: nothing is
/// written past the buffer, and a packet that does not fit (or is invalid) fails with the
/// compound left as it was (the bytes after it may have been scribbled on).
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// Starts an empty compound at the front of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Length of the compound written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no packet has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes; returns the compound's length (the bytes are `buf[..len]`).
    pub fn finish(self) -> usize {
        self.len
    }

    /// Appends one packet: the header (V=2, no padding, `count` in the 5-bit count/FMT field),
    /// then whatever `body` writes, then the length field. On error the compound is as before.
    pub(super) fn packet(
        &mut self,
        count: usize,
        packet_type: u8,
        body: impl FnOnce(&mut Self) -> Result<(), RtcpError>,
    ) -> Result<&mut Self, RtcpError> {
        let count = u8::try_from(count).ok().filter(|c| *c <= 31).ok_or(RtcpError::TooMany)?;
        let start = self.len;
        let written = self
            .bytes(&[0x80 | count, packet_type, 0, 0])
            .and_then(|()| body(self))
            .and_then(|()| self.patch_length(start));
        match written {
            Ok(()) => Ok(self),
            Err(e) => {
                self.len = start;
                Err(e)
            }
        }
    }

    /// Sets the length field of the packet starting at `start` to what was written since.
    fn patch_length(&mut self, start: usize) -> Result<(), RtcpError> {
        let bytes = self.len - start;
        // Every body we write is whole 32-bit words; this guards the length arithmetic anyway.
        if !bytes.is_multiple_of(4) {
            return Err(RtcpError::BadLength);
        }
        let words = (bytes / 4).checked_sub(1).ok_or(RtcpError::BadLength)?;
        let words = u16::try_from(words).map_err(|_| RtcpError::TooMany)?;
        let field = self.buf.get_mut(start + 2..start + 4).ok_or(RtcpError::BufferTooSmall)?;
        field.copy_from_slice(&words.to_be_bytes());
        Ok(())
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) -> Result<(), RtcpError> {
        let end = self.len.checked_add(bytes.len()).ok_or(RtcpError::BufferTooSmall)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(RtcpError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub(super) fn u16(&mut self, value: u16) -> Result<(), RtcpError> {
        self.bytes(&value.to_be_bytes())
    }

    pub(super) fn u32(&mut self, value: u32) -> Result<(), RtcpError> {
        self.bytes(&value.to_be_bytes())
    }

    pub(super) fn u64(&mut self, value: u64) -> Result<(), RtcpError> {
        self.bytes(&value.to_be_bytes())
    }
}
