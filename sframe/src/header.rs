//! The SFrame header (RFC 9605 §4.3): a config byte, then the KID and CTR when they do not fit
//! in it.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+------------+------------+
//! |X|  K  |Y|  C  |   KID...   |   CTR...   |
//! +-+-+-+-+-+-+-+-+------------+------------+
//! ```
//!
//! X = 0: K is the KID (0-7). X = 1: K is the KID's length in bytes minus one (1-8 bytes,
//! big-endian, after the config byte). Y and C likewise for the CTR, which follows the KID.

use core::fmt;

/// Key ID: selects the `base_key` (RFC 9605 §4.4.1). Visible to the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kid(pub u64);

/// Counter: makes the nonce unique per frame under one key (RFC 9605 §4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ctr(pub u64);

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kid {}", self.0)
    }
}

/// Why a header could not be parsed or encoded. `Copy` and allocation-free: malformed frames
/// come from the network and are dropped and counted by reason, not described in a `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// No bytes at all: not even a config byte.
    Empty,
    /// The config byte announces more KID/CTR bytes than the buffer holds.
    Truncated,
    /// A value written in more bytes than it needs (a long form for 0-7, or a leading zero
    /// byte). RFC 9605 §4.3 says the minimum number of bytes MUST be used; we reject other
    /// encodings so every (KID, CTR) has exactly one header and so one AAD.
    NonMinimal,
    /// The output buffer is shorter than [`Header::encoded_len`].
    BufferTooSmall,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Empty => "empty SFrame header",
            HeaderError::Truncated => "truncated SFrame header",
            HeaderError::NonMinimal => "SFrame header value not minimally encoded",
            HeaderError::BufferTooSmall => "buffer too small for SFrame header",
        })
    }
}

impl core::error::Error for HeaderError {}

/// A parsed or to-be-encoded SFrame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kid: Kid,
    pub ctr: Ctr,
}

/// Flag bit of a config-byte nibble: the low three bits are a length, not the value.
const EXTENDED: u8 = 0b1000;

impl Header {
    /// The longest header: config byte, 8-byte KID, 8-byte CTR.
    pub const MAX_LEN: usize = 17;

    pub fn new(kid: Kid, ctr: Ctr) -> Self {
        Header { kid, ctr }
    }

    /// Bytes [`Header::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        1 + extra_len(self.kid.0) + extra_len(self.ctr.0)
    }

    /// Writes the header at the start of `out` and returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(HeaderError::BufferTooSmall)?;
        let (kid_nibble, kid_len) = nibble(self.kid.0);
        let (ctr_nibble, ctr_len) = nibble(self.ctr.0);
        out[0] = (kid_nibble << 4) | ctr_nibble;
        let (kid_bytes, ctr_bytes) = out[1..].split_at_mut(kid_len);
        kid_bytes.copy_from_slice(&self.kid.0.to_be_bytes()[8 - kid_len..]);
        ctr_bytes.copy_from_slice(&self.ctr.0.to_be_bytes()[8 - ctr_len..]);
        Ok(len)
    }

    /// Parses the header at the start of `buf`; returns it and its length (the ciphertext
    /// starts there).
    pub fn parse(buf: &[u8]) -> Result<(Header, usize), HeaderError> {
        let (&config, rest) = buf.split_first().ok_or(HeaderError::Empty)?;
        let (kid, kid_len) = field(config >> 4, rest)?;
        let (ctr, ctr_len) = field(config & 0x0f, &rest[kid_len..])?;
        Ok((Header { kid: Kid(kid), ctr: Ctr(ctr) }, 1 + kid_len + ctr_len))
    }
}

/// Bytes a value takes after the config byte: none for 0-7, else its minimal big-endian length.
fn extra_len(value: u64) -> usize {
    if value < 8 { 0 } else { 8 - (value.leading_zeros() / 8) as usize }
}

/// The config-byte nibble for a value and the bytes that follow for it.
fn nibble(value: u64) -> (u8, usize) {
    match extra_len(value) {
        0 => (value as u8, 0),
        len => (EXTENDED | (len - 1) as u8, len),
    }
}

/// Reads one value given its config-byte nibble; returns it and how many bytes of `buf` it took.
fn field(nibble: u8, buf: &[u8]) -> Result<(u64, usize), HeaderError> {
    if nibble & EXTENDED == 0 {
        return Ok((u64::from(nibble & 0b111), 0));
    }
    let len = usize::from(nibble & 0b111) + 1;
    let bytes = buf.get(..len).ok_or(HeaderError::Truncated)?;
    // Minimal means: a one-byte value is at least 8 (else it fits the nibble), and a longer
    // one has no leading zero byte.
    if (len == 1 && bytes[0] < 8) || (len > 1 && bytes[0] == 0) {
        return Err(HeaderError::NonMinimal);
    }
    let value = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_fits_in_the_config_byte() {
        let mut buf = [0u8; Header::MAX_LEN];
        assert_eq!(Header::new(Kid(7), Ctr(5)).encode(&mut buf), Ok(1));
        assert_eq!(buf[0], 0x75);
    }

    #[test]
    fn longest_header_is_seventeen_bytes() {
        let h = Header::new(Kid(u64::MAX), Ctr(u64::MAX));
        let mut buf = [0u8; Header::MAX_LEN];
        assert_eq!(h.encode(&mut buf), Ok(17));
        assert_eq!(Header::parse(&buf), Ok((h, 17)));
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        assert_eq!(Header::parse(&[]), Err(HeaderError::Empty));
        assert_eq!(Header::parse(&[0x80]), Err(HeaderError::Truncated));
        assert_eq!(Header::parse(&[0x08]), Err(HeaderError::Truncated));
        assert_eq!(Header::parse(&[0x80, 0x07]), Err(HeaderError::NonMinimal));
        assert_eq!(Header::parse(&[0x09, 0x00, 0xff]), Err(HeaderError::NonMinimal));
        let mut small = [0u8; 2];
        assert_eq!(Header::new(Kid(8), Ctr(8)).encode(&mut small), Err(HeaderError::BufferTooSmall));
    }
}
