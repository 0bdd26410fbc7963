//! Sender and receiver reports (RFC 3550 §6.4) and their report blocks.
//!
//! ```text
//! SR:  |V=2|P|   RC    |   PT=200      |             length            |
//!      |                         SSRC of sender                        |
//!      |              NTP timestamp, most significant word             |
//!      |             NTP timestamp, least significant word             |
//!      |                         RTP timestamp                         |
//!      |                     sender's packet count                     |
//!      |                      sender's octet count                     |
//!      |                 report block 1 .. RC (24 bytes each)          |
//!      |                  profile-specific extensions (ignored)        |
//!
//! RR:  |V=2|P|   RC    |   PT=201      |             length            |
//!      |                     SSRC of packet sender                     |
//!      |                 report block 1 .. RC (24 bytes each)          |
//!
//! report block:
//!      |                 SSRC_n (source this block is about)           |
//!      | fraction lost |       cumulative number of packets lost       |
//!      |           extended highest sequence number received           |
//!      |                      interarrival jitter                      |
//!      |                         last SR (LSR)                         |
//!      |                   delay since last SR (DLSR)                  |
//! ```

use super::{PT_RR, PT_SR, Packet, RtcpError, Writer, take, take_u32};

/// Bytes of one report block.
const BLOCK_LEN: usize = 24;

/// The most report blocks one SR or RR carries: the 5-bit count field.
pub const MAX_REPORT_BLOCKS: usize = 31;

/// What a receiver reports about one source (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start: expected minus received, which duplicates can make
    /// negative. A 24-bit signed field on the wire; writing clamps to its range (A.3).
    pub cumulative_lost: i32,
    /// Extended highest sequence number: cycles in the high 16 bits.
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR from this source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender part of an SR, for writing one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// The report blocks of an SR or RR, read in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    data: &'a [u8],
}

impl<'a> ReportBlocks<'a> {
    /// The `count` blocks at the front of `body`; whatever follows them is a profile-specific
    /// extension, which we ignore.
    fn split(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let data = body.get(..usize::from(count) * BLOCK_LEN).ok_or(RtcpError::BadLength)?;
        Ok(Self { data })
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.data.split_first_chunk::<BLOCK_LEN>()?;
        self.data = rest;
        let word = |i: usize| u32::from_be_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
        // Sign-extend the 24-bit count: shift it to the top, then arithmetically back.
        let cumulative_lost = (word(4) << 8) as i32 >> 8;
        Some(ReportBlock {
            ssrc: word(0),
            fraction_lost: block[4],
            cumulative_lost,
            highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len() / BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

pub(super) fn parse_sender_report(count: u8, mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let ssrc = take_u32(&mut body)?;
    let ntp = u64::from_be_bytes(take(&mut body)?);
    let rtp_ts = take_u32(&mut body)?;
    let packet_count = take_u32(&mut body)?;
    let octet_count = take_u32(&mut body)?;
    let reports = ReportBlocks::split(count, body)?;
    Ok(Packet::SenderReport { ssrc, ntp, rtp_ts, packet_count, octet_count, reports })
}

pub(super) fn parse_receiver_report(count: u8, mut body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let ssrc = take_u32(&mut body)?;
    let reports = ReportBlocks::split(count, body)?;
    Ok(Packet::ReceiverReport { ssrc, reports })
}

impl Writer<'_> {
    /// Appends a receiver report with up to [`MAX_REPORT_BLOCKS`] blocks.
    pub fn receiver_report(&mut self, ssrc: u32, blocks: &[ReportBlock]) -> Result<&mut Self, RtcpError> {
        self.packet(blocks.len(), PT_RR, |w| {
            w.u32(ssrc)?;
            blocks.iter().try_for_each(|b| w.report_block(b))
        })
    }

    /// Appends a sender report with up to [`MAX_REPORT_BLOCKS`] blocks.
    pub fn sender_report(
        &mut self,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<&mut Self, RtcpError> {
        self.packet(blocks.len(), PT_SR, |w| {
            w.u32(info.ssrc)?;
            w.u64(info.ntp)?;
            w.u32(info.rtp_ts)?;
            w.u32(info.packet_count)?;
            w.u32(info.octet_count)?;
            blocks.iter().try_for_each(|b| w.report_block(b))
        })
    }

    fn report_block(&mut self, block: &ReportBlock) -> Result<(), RtcpError> {
        const MIN: i32 = -(1 << 23);
        const MAX: i32 = (1 << 23) - 1;
        let lost = (block.cumulative_lost.clamp(MIN, MAX) as u32) & 0x00ff_ffff;
        self.u32(block.ssrc)?;
        self.u32(u32::from(block.fraction_lost) << 24 | lost)?;
        self.u32(block.highest_seq)?;
        self.u32(block.jitter)?;
        self.u32(block.last_sr)?;
        self.u32(block.delay_since_last_sr)
    }
}
