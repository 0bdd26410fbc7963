//! What loadgen puts on the wire: RTP packets whose payload starts with a small header that
//! lets the receiver tell who sent it, which stream, which packet, and when.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      magic "LGN1"                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  stream kind  |                 reserved (0)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   sender participant index                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          per-stream sequence number (from 0, no wrap)         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            send time, CLOCK_MONOTONIC nanoseconds             |
//! |                           (64 bits)                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The payload sequence number is loadgen's own and never wraps, unlike the RTP one (16 bits,
//! which the bridge may see wrap in a long run): loss and reordering are counted on it.
//!
//! With `--e2ee` this header is the start of the plaintext of an SFrame frame that fills the
//! payload, and packets keep their lengths ([`super::e2ee`] has the layout).

use bridge::media::rtp::RtpHeader;

/// "LGN1".
pub const MAGIC: u32 = 0x4C47_4E31;
/// Bytes of the loadgen header at the start of the payload.
pub const HEADER_LEN: usize = 24;
/// Bytes of an audio RTP packet, header and extension included: a typical Opus packet.
pub const AUDIO_PACKET_LEN: usize = 100;
/// Bytes of a video RTP packet: what encoders packetize to under a 1500-byte MTU.
pub const VIDEO_PACKET_LEN: usize = 1200;
/// Payload types as a browser offers them (Opus, VP8).
pub const AUDIO_PT: u8 = 111;
pub const VIDEO_PT: u8 = 96;
/// RTP clock rates of the two payload types.
pub const AUDIO_CLOCK: u64 = 48_000;
pub const VIDEO_CLOCK: u64 = 90_000;
/// Bytes in front of the payload: an audio packet's fixed header and its extension block
/// with the audio level; a video packet's fixed header alone.
pub const AUDIO_RTP_HEADER_LEN: usize = 20;
pub const VIDEO_RTP_HEADER_LEN: usize = 12;
/// The RFC 6464 extension's URI, as signaled.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Which of a participant's two streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    Audio = 0,
    Video = 1,
}

impl StreamKind {
    pub const BOTH: [StreamKind; 2] = [StreamKind::Audio, StreamKind::Video];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Audio),
            1 => Some(Self::Video),
            _ => None,
        }
    }
}

/// The SSRC of a participant's stream. Unique within any conference of one run (the bridge
/// requires that), and recognisable in a packet capture.
pub fn ssrc(participant: u32, kind: StreamKind) -> u32 {
    0x4C00_0000 + 2 * participant + kind as u32
}

/// The loadgen header of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub kind: StreamKind,
    pub sender: u32,
    pub seq: u32,
    pub sent_ns: u64,
}

impl Stamp {
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&[self.kind as u8, 0, 0, 0]);
        out[8..12].copy_from_slice(&self.sender.to_be_bytes());
        out[12..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    fn read(payload: &[u8]) -> Option<Self> {
        let header = payload.get(..HEADER_LEN)?;
        let word =
            |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        if word(0) != MAGIC {
            return None;
        }
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&header[16..24]);
        Some(Self {
            kind: StreamKind::from_byte(header[4])?,
            sender: word(8),
            seq: word(12),
            sent_ns: u64::from_be_bytes(sent),
        })
    }
}

/// The RTP fields that change from packet to packet.
#[derive(Clone, Copy, Debug)]
pub struct RtpFields {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
}

/// Where the payload of a packet of stream `kind` starts.
pub fn rtp_header_len(kind: StreamKind) -> usize {
    match kind {
        StreamKind::Audio => AUDIO_RTP_HEADER_LEN,
        StreamKind::Video => VIDEO_RTP_HEADER_LEN,
    }
}

fn write_fixed_header(out: &mut [u8], pt: u8, rtp: RtpFields, extension: bool) {
    out[0] = 0x80 | if extension { 0x10 } else { 0 };
    out[1] = pt | if rtp.marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&rtp.sequence.to_be_bytes());
    out[4..8].copy_from_slice(&rtp.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&rtp.ssrc.to_be_bytes());
}

/// Writes an audio packet ([`AUDIO_PACKET_LEN`] bytes) into `out`: the fixed header, the
/// RFC 8285 one-byte extension block with the RFC 6464 audio level (`level` in -dBov, 0 the
/// loudest, voice activity set) under `level_id`, then the stamp. Returns its length.
pub fn write_audio(out: &mut [u8], rtp: RtpFields, level_id: u8, level: u8, stamp: &Stamp) -> usize {
    write_fixed_header(out, AUDIO_PT, rtp, true);
    // "defined by profile" 0xBEDE, one 32-bit word of elements: [id | len-1 = 0] [V | level] pad.
    out[12..16].copy_from_slice(&[0xBE, 0xDE, 0, 1]);
    out[16..AUDIO_RTP_HEADER_LEN].copy_from_slice(&[level_id << 4, 0x80 | (level & 0x7f), 0, 0]);
    stamp.write(&mut out[AUDIO_RTP_HEADER_LEN..AUDIO_RTP_HEADER_LEN + HEADER_LEN]);
    AUDIO_PACKET_LEN
}

/// Writes a video packet ([`VIDEO_PACKET_LEN`] bytes) into `out`; the rest of the payload is
/// whatever the buffer held (the bridge does not look at it). Returns its length.
pub fn write_video(out: &mut [u8], rtp: RtpFields, stamp: &Stamp) -> usize {
    write_fixed_header(out, VIDEO_PT, rtp, false);
    stamp.write(&mut out[VIDEO_RTP_HEADER_LEN..VIDEO_RTP_HEADER_LEN + HEADER_LEN]);
    VIDEO_PACKET_LEN
}

/// Why a received RTP packet is not one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotOurs {
    /// Not a parseable RTP packet.
    NotRtp,
    /// No loadgen header at the start of the payload.
    NoStamp,
    /// The SSRC is not the one the stamp's sender and kind use.
    SsrcMismatch,
    /// The SSRC is none of loadgen's.
    ForeignSsrc,
    /// With `--e2ee`: the SFrame key that opened the payload is not that of the stamp's sender
    /// and stream.
    KidMismatch,
}

/// Reads the stamp of a (SRTP-decrypted) RTP packet and checks it against the SSRC.
pub fn read(packet: &[u8]) -> Result<Stamp, NotOurs> {
    let (ssrc, payload) = rtp_payload(packet)?;
    read_stamp(ssrc, payload)
}

/// The SSRC and the payload (padding removed) of an RTP packet.
pub fn rtp_payload(packet: &[u8]) -> Result<(u32, &[u8]), NotOurs> {
    let header = RtpHeader::parse(packet).map_err(|_| NotOurs::NotRtp)?;
    Ok((header.ssrc, &packet[header.header_len..header.header_len + header.payload_len]))
}

/// Reads the stamp at the start of `plaintext`, the payload of a packet from `ssrc`, and
/// checks it against the SSRC.
pub fn read_stamp(ssrc: u32, plaintext: &[u8]) -> Result<Stamp, NotOurs> {
    let stamp = Stamp::read(plaintext).ok_or(NotOurs::NoStamp)?;
    if ssrc != self::ssrc(stamp.sender, stamp.kind) {
        return Err(NotOurs::SsrcMismatch);
    }
    Ok(stamp)
}

/// Who sent a packet, from its SSRC alone (for packets SRTP refused, whose payload is
/// unreadable): `(participant, kind)`.
pub fn sender_of_ssrc(ssrc: u32) -> Option<(u32, StreamKind)> {
    let offset = ssrc.checked_sub(0x4C00_0000)?;
    let kind = if offset % 2 == 0 { StreamKind::Audio } else { StreamKind::Video };
    Some((offset / 2, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_and_video_round_trip() {
        let rtp =
            RtpFields { ssrc: ssrc(7, StreamKind::Audio), sequence: 65535, timestamp: 960, marker: false };
        let stamp = Stamp { kind: StreamKind::Audio, sender: 7, seq: 123_456, sent_ns: 42 };
        let mut buf = [0u8; 1500];
        let len = write_audio(&mut buf, rtp, 1, 30, &stamp);
        assert_eq!(len, AUDIO_PACKET_LEN);
        let header = RtpHeader::parse(&buf[..len]).unwrap();
        assert_eq!(header.extension(1), Some(&[0x80 | 30][..]), "the audio level survives");
        assert_eq!(read(&buf[..len]), Ok(stamp));

        let rtp = RtpFields { ssrc: ssrc(3, StreamKind::Video), sequence: 1, timestamp: 3000, marker: true };
        let stamp = Stamp { kind: StreamKind::Video, sender: 3, seq: 9, sent_ns: u64::MAX };
        let len = write_video(&mut buf, rtp, &stamp);
        assert!(RtpHeader::parse(&buf[..len]).unwrap().marker);
        assert_eq!(read(&buf[..len]), Ok(stamp));
        assert_eq!(sender_of_ssrc(rtp.ssrc), Some((3, StreamKind::Video)));
    }

    #[test]
    fn foreign_packets_are_told_apart() {
        let mut buf = [0u8; 1500];
        let rtp = RtpFields { ssrc: ssrc(1, StreamKind::Video), sequence: 1, timestamp: 0, marker: false };
        let stamp = Stamp { kind: StreamKind::Video, sender: 2, seq: 0, sent_ns: 0 };
        let len = write_video(&mut buf, rtp, &stamp);
        assert_eq!(read(&buf[..len]), Err(NotOurs::SsrcMismatch));
        buf[12] ^= 1;
        assert_eq!(read(&buf[..len]), Err(NotOurs::NoStamp));
        assert_eq!(read(&buf[..8]), Err(NotOurs::NotRtp));
    }
}
