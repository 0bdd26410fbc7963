//! Source description (RFC 3550 §6.5): per source, a list of text items, CNAME above all.
//!
//! ```text
//! |V=2|P|    SC   |  PT=SDES=202  |             length            |
//! |                          SSRC/CSRC_1                          |
//! |  type (8)     |  length (8)   |  text (length bytes)        ...
//! |  ... more items ...           |  END (0)  | null octets to a 32-bit boundary
//! |                          SSRC/CSRC_2 ...                      |
//! ```
//!
//! `parse` walks every chunk once so that a damaged SDES is an error; the iterators walk them
//! again lazily (and would stop at damage rather than read past it). Bytes after the announced
//! chunks are ignored. The null octets closing a chunk are counted, not checked.

use super::{Packet, RtcpError};

/// Item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// The chunks of an SDES packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesChunks<'a> {
    data: &'a [u8],
    remaining: u8,
}

/// One source's items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    /// The items, without the END octet.
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// (type, text) of each item.
    pub fn items(&self) -> SdesItems<'a> {
        SdesItems { data: self.items }
    }

    /// The CNAME item's text, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|(kind, _)| *kind == SDES_CNAME).map(|(_, text)| text)
    }
}

/// (type, text) of the items of one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesItems<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&[kind, len], rest) = self.data.split_first_chunk::<2>()?;
        let Some((text, rest)) = rest.split_at_checked(usize::from(len)) else {
            self.data = &[];
            return None;
        };
        self.data = rest;
        Some((kind, text))
    }
}

/// Splits the chunk at the front of `data` (which starts on a 32-bit boundary) off the rest.
fn split_chunk(data: &[u8]) -> Option<(SdesChunk<'_>, &[u8])> {
    let (ssrc, after_ssrc) = data.split_first_chunk::<4>()?;
    let mut end = 0;
    while *after_ssrc.get(end)? != 0 {
        end += 2 + usize::from(*after_ssrc.get(end + 1)?);
    }
    // The END octet, then null octets up to the next 32-bit boundary.
    let chunk_len = (4 + end + 1).next_multiple_of(4);
    let rest = data.get(chunk_len..)?;
    Some((SdesChunk { ssrc: u32::from_be_bytes(*ssrc), items: after_ssrc.get(..end)? }, rest))
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;

    fn next(&mut self) -> Option<SdesChunk<'a>> {
        self.remaining = self.remaining.checked_sub(1)?;
        let Some((chunk, rest)) = split_chunk(self.data) else {
            self.remaining = 0;
            return None;
        };
        self.data = rest;
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

pub(super) fn parse(count: u8, body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let mut rest = body;
    for _ in 0..count {
        (_, rest) = split_chunk(rest).ok_or(RtcpError::BadLength)?;
    }
    Ok(Packet::Sdes { chunks: SdesChunks { data: body, remaining: count } })
}
