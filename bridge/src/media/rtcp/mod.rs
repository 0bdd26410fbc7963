//! RTCP (RFC 3550 §6, RFC 4585, RFC 5104, REMB) read in place and written into a caller's
//! buffer, without allocating.
//!
//! Input is a decrypted compound packet: SRTCP's trailer (E flag, index, tag) is already gone.
//! [`Compound`] walks it one packet at a time and checks the framing of RFC 3550 Appendix A.2
//! as it goes: version 2, each length field inside the datagram, the padding bit only on the
//! last packet and a padding count that fits. The first malformed packet ends the walk: the
//! iterator yields its error and then nothing, because once a length field cannot be trusted
//! neither can the position of the next packet. Each parser checks that its body holds what its
//! count field announces, so the items iterators never read past a packet.
//!
//! Not checked, although A.2 lists it: that the first packet is an SR or RR. Chrome negotiates
//! reduced-size RTCP (RFC 5506, `a=rtcp-rsize`) and sends lone NACK, PLI and transport-cc
//! packets.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P| count/FMT |     PT      |  length (32-bit words - 1)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  body, as the packet type says               ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ...             padding (P set, last packet only) | pad count   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Writing: a [`Writer`] appends whole packets (reports, PLI, FIR, NACK, REMB) to a compound in
//! the caller's buffer and returns its length; a packet that does not fit leaves the compound
//! as it was.

mod bye;
mod fir;
mod nack;
mod pli;
mod remb;
mod report;
mod sdes;
mod writer;

use std::fmt;

pub use fir::FirEntries;
pub use nack::{LostSeqs, NackItems};
pub use report::{MAX_REPORT_BLOCKS, ReportBlock, ReportBlocks, SenderInfo};
pub use sdes::{SDES_CNAME, SdesChunk, SdesChunks, SdesItems};
pub use writer::Writer;

/// Sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// Receiver report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// Source description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// Goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// Application-defined (RFC 3550 §6.7).
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585 §6.2): NACK, transport-cc.
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3): PLI, FIR, REMB.
pub const PT_PSFB: u8 = 206;
/// Extended reports (RFC 3611).
pub const PT_XR: u8 = 207;

/// RTPFB FMT of transport-wide congestion control feedback
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01); passed through as [`Packet::Other`].
pub const FMT_TRANSPORT_CC: u8 = 15;

/// Why a compound RTCP packet (or one being built) is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtcpError {
    /// Fewer than 4 bytes where a packet should start, or a length field that runs past the
    /// end of the datagram.
    Truncated,
    /// The version is not 2.
    BadVersion,
    /// The packet type is outside 192..=223, the range RTCP keeps clear of RTP payload types
    /// (RFC 5761 §4): not RTCP.
    NotRtcp,
    /// The padding bit is set on a packet that is not the last of the compound (A.2).
    PaddingNotLast,
    /// The padding count is zero or eats into the packet's header.
    BadPadding,
    /// The body is shorter than its type and count require, or its items do not fit in it.
    BadLength,
    /// Writing: the buffer cannot hold the packet.
    BufferTooSmall,
    /// Writing: more items than the packet's count (or length) field can express.
    TooMany,
    /// Writing: a feedback message needs at least one entry.
    Empty,
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "RTCP packet runs past the end of the datagram",
            Self::BadVersion => "RTCP version is not 2",
            Self::NotRtcp => "packet type is not RTCP",
            Self::PaddingNotLast => "padding on an RTCP packet that is not the last",
            Self::BadPadding => "RTCP padding count is zero or too large",
            Self::BadLength => "RTCP body too short for its type and count",
            Self::BufferTooSmall => "buffer too small for the RTCP packet",
            Self::TooMany => "too many items for one RTCP packet",
            Self::Empty => "RTCP feedback without entries",
        })
    }
}

impl std::error::Error for RtcpError {}

/// One packet of a compound, borrowing the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// SR: the sender's clocks and counts, and reports on what it receives.
    SenderReport {
        ssrc: u32,
        /// 64-bit NTP timestamp: seconds since 1900 in the high word, fraction in the low.
        ntp: u64,
        rtp_ts: u32,
        packet_count: u32,
        octet_count: u32,
        reports: ReportBlocks<'a>,
    },
    /// RR: reports from a participant that does not send.
    ReceiverReport { ssrc: u32, reports: ReportBlocks<'a> },
    /// SDES: chunks of (SSRC, items), CNAME above all.
    Sdes { chunks: SdesChunks<'a> },
    /// BYE: the sources leaving, with an optional reason.
    Bye { ssrcs: Ssrcs<'a>, reason: Option<&'a [u8]> },
    /// Generic NACK (RTPFB FMT 1): lost packets of `media_ssrc`.
    Nack { sender_ssrc: u32, media_ssrc: u32, items: NackItems<'a> },
    /// Picture loss indication (PSFB FMT 1): `media_ssrc` needs a keyframe.
    Pli { sender_ssrc: u32, media_ssrc: u32 },
    /// Full intra request (PSFB FMT 4): each entry's SSRC needs a keyframe.
    Fir { sender_ssrc: u32, entries: FirEntries<'a> },
    /// Receiver estimated maximum bitrate (PSFB FMT 15, "REMB") for the listed SSRCs.
    Remb { sender_ssrc: u32, bitrate_bps: u64, ssrcs: Ssrcs<'a> },
    /// Anything else (APP, XR, transport-cc, other feedback): not an error, passed through.
    /// `fmt` is the 5-bit count/FMT field; `body` is what follows the 4-byte header, padding
    /// removed.
    Other { packet_type: u8, fmt: u8, body: &'a [u8] },
}

/// Iterator over the packets of a compound RTCP datagram. Yields `Err` for the first malformed
/// packet, then ends.
#[derive(Clone, Debug)]
pub struct Compound<'a> {
    rest: &'a [u8],
    started: bool,
    done: bool,
}

impl<'a> Compound<'a> {
    /// Starts walking `datagram`. An empty datagram yields one [`RtcpError::Truncated`].
    pub fn new(datagram: &'a [u8]) -> Self {
        Self { rest: datagram, started: false, done: false }
    }

    /// Splits the next packet off and parses it.
    fn split(&mut self) -> Result<Packet<'a>, RtcpError> {
        let data = self.rest;
        let &[first, packet_type, len_hi, len_lo] = data.first_chunk::<4>().ok_or(RtcpError::Truncated)?;
        if first >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        if !(192..=223).contains(&packet_type) {
            return Err(RtcpError::NotRtcp);
        }
        let len = 4 * (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1);
        let (packet, after) = data.split_at_checked(len).ok_or(RtcpError::Truncated)?;
        let mut body = packet.get(4..).ok_or(RtcpError::Truncated)?;
        if first & 0x20 != 0 {
            // A.2: only the last packet of a compound may be padded. The count includes
            // itself. We follow the browsers rather than §6.4.1 and accept counts that are not
            // a multiple of 4: transport-cc packets in the wild pad to the next word with 1 to
            // 3 bytes (see the captured packet in the tests).
            if !after.is_empty() {
                return Err(RtcpError::PaddingNotLast);
            }
            let pad = usize::from(body.last().copied().unwrap_or(0));
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        self.rest = after;
        parse(packet_type, first & 0x1f, body)
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<Packet<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || (self.started && self.rest.is_empty()) {
            return None;
        }
        self.started = true;
        let packet = self.split();
        if packet.is_err() {
            self.done = true;
            self.rest = &[];
        }
        Some(packet)
    }
}

/// Parses one packet's body by type.
fn parse(packet_type: u8, count: u8, body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    match (packet_type, count) {
        (PT_SR, _) => report::parse_sender_report(count, body),
        (PT_RR, _) => report::parse_receiver_report(count, body),
        (PT_SDES, _) => sdes::parse(count, body),
        (PT_BYE, _) => bye::parse(count, body),
        (PT_RTPFB, nack::FMT) => nack::parse(body),
        (PT_PSFB, pli::FMT) => pli::parse(body),
        (PT_PSFB, fir::FMT) => fir::parse(body),
        (PT_PSFB, remb::FMT) if remb::is_remb(body) => remb::parse(body),
        _ => Ok(Packet::Other { packet_type, fmt: count, body }),
    }
}

/// A list of SSRCs (BYE, REMB), 4 bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ssrcs<'a> {
    data: &'a [u8],
}

impl<'a> Ssrcs<'a> {
    /// The first `count` SSRCs of `data`, or `BadLength` when they do not fit.
    fn split(count: usize, data: &'a [u8]) -> Result<(Self, &'a [u8]), RtcpError> {
        let (list, rest) = data.split_at_checked(4 * count).ok_or(RtcpError::BadLength)?;
        Ok((Self { data: list }, rest))
    }
}

impl Iterator for Ssrcs<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (ssrc, rest) = self.data.split_first_chunk::<4>()?;
        self.data = rest;
        Some(u32::from_be_bytes(*ssrc))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ssrcs<'_> {}

/// Splits `N` bytes off the front of `data`; `BadLength` when there are fewer.
fn take<const N: usize>(data: &mut &[u8]) -> Result<[u8; N], RtcpError> {
    let (head, rest) = data.split_first_chunk::<N>().ok_or(RtcpError::BadLength)?;
    *data = rest;
    Ok(*head)
}

fn take_u32(data: &mut &[u8]) -> Result<u32, RtcpError> {
    take::<4>(data).map(u32::from_be_bytes)
}

/// Whether a datagram that demultiplexed as RTP/RTCP (first byte 128..=191) is RTCP: its
/// second byte is 192..=223 (RFC 5761 §4). The cheap check before any parsing.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram, [first, pt, ..] if first >> 6 == 2 && (192..=223).contains(pt))
}

#[cfg(test)]
mod tests;
