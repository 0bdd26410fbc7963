//! SRTP (RFC 3711, RFC 7714): our own transform, in place, without allocating.
//!
//! A [`Context`] holds one direction's session keys (derived from the DTLS-SRTP master key
//! and salt) and, per SSRC, the rollover counter and replay window. `protect_rtp` encrypts a
//! packet in its buffer and appends the tag; `unprotect_rtp` checks index and tag, decrypts in
//! place and returns the plaintext length. Errors are a small `Copy` enum, to be counted as
//! drops by reason.
//!
//! Profiles: AEAD_AES_128_GCM (preferred: about 5x cheaper here, DESIGN.md),
//! AES_CM_128_HMAC_SHA1_80 and _32. SRTCP is not here yet.

mod cm;
mod gcm;
pub mod kdf;
pub mod replay;

use std::fmt;

use zeroize::Zeroizing;

use kdf::Label;
use replay::{ReplayError, ReplayWindow};

/// SRTP protection profiles we negotiate (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    AeadAes128Gcm,
    Aes128CmHmacSha1_80,
    Aes128CmHmacSha1_32,
}

impl Profile {
    /// Master salt length the key exporter must provide.
    pub fn master_salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => gcm::SALT_LEN,
            _ => cm::SALT_LEN,
        }
    }

    /// Bytes `protect_rtp` adds to a packet.
    pub fn overhead(self) -> usize {
        match self {
            Self::AeadAes128Gcm => gcm::TAG_LEN,
            Self::Aes128CmHmacSha1_80 => 10,
            Self::Aes128CmHmacSha1_32 => 4,
        }
    }
}

/// Why a packet was not protected or unprotected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpError {
    /// Not an RTP version 2 packet, or its header runs past its end.
    NotRtp,
    /// Too short to hold the tag.
    TooShort,
    /// No room after the packet for the tag.
    BufferTooSmall,
    /// The tag did not verify.
    AuthenticationFailed,
    /// Already received, or older than the replay window.
    Replayed,
    TooOld,
    /// More SSRCs than one context tracks.
    TooManyStreams,
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotRtp => "not an RTP packet",
            Self::TooShort => "packet too short for SRTP",
            Self::BufferTooSmall => "no room for the SRTP tag",
            Self::AuthenticationFailed => "SRTP authentication failed",
            Self::Replayed => "SRTP replay",
            Self::TooOld => "SRTP packet older than the replay window",
            Self::TooManyStreams => "too many SRTP streams",
        })
    }
}

impl std::error::Error for SrtpError {}

impl From<ReplayError> for SrtpError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Duplicate => Self::Replayed,
            ReplayError::TooOld => Self::TooOld,
        }
    }
}

/// SSRCs one context follows (audio, video, RTX and simulcast layers of one participant).
pub const MAX_STREAMS: usize = 32;

// One per peer and direction, used for every packet: inline beats a box's pointer chase.
#[allow(clippy::large_enum_variant)]
enum Transform {
    Gcm(gcm::Gcm),
    Cm(cm::Cm),
}

/// One direction of SRTP for one peer.
pub struct Context {
    profile: Profile,
    rtp: Transform,
    streams: [(u32, ReplayWindow); MAX_STREAMS],
    stream_count: usize,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("profile", &self.profile)
            .field("streams", &self.stream_count)
            .finish()
    }
}

/// Length of the RTP header (fixed part, CSRCs, extension), or `None` when it is not RTP v2
/// or does not fit.
pub fn rtp_header_len(packet: &[u8]) -> Option<usize> {
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

impl Context {
    /// Derives the RTP session keys of `profile` from a DTLS-SRTP master key and salt.
    pub fn new(profile: Profile, master_key: &[u8; 16], master_salt: &[u8]) -> Self {
        assert_eq!(master_salt.len(), profile.master_salt_len(), "master salt length fits the profile");
        let mut key = Zeroizing::new([0u8; 16]);
        kdf::derive(master_key, master_salt, Label::RtpEncryption, &mut key[..]);
        let rtp = match profile {
            Profile::AeadAes128Gcm => {
                let mut salt = Zeroizing::new([0u8; gcm::SALT_LEN]);
                kdf::derive(master_key, master_salt, Label::RtpSalt, &mut salt[..]);
                Transform::Gcm(gcm::Gcm::new(&key, &salt))
            }
            Profile::Aes128CmHmacSha1_80 | Profile::Aes128CmHmacSha1_32 => {
                let mut salt = Zeroizing::new([0u8; cm::SALT_LEN]);
                let mut auth = Zeroizing::new([0u8; cm::AUTH_KEY_LEN]);
                kdf::derive(master_key, master_salt, Label::RtpSalt, &mut salt[..]);
                kdf::derive(master_key, master_salt, Label::RtpAuthentication, &mut auth[..]);
                Transform::Cm(cm::Cm::new(&key, &salt, &auth, profile.overhead()))
            }
        };
        Self { profile, rtp, streams: [(0, ReplayWindow::default()); MAX_STREAMS], stream_count: 0 }
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn stream(&mut self, ssrc: u32) -> Result<&mut ReplayWindow, SrtpError> {
        let known = &self.streams[..self.stream_count];
        let at = match known.iter().position(|(s, _)| *s == ssrc) {
            Some(at) => at,
            None if self.stream_count < MAX_STREAMS => {
                self.streams[self.stream_count] = (ssrc, ReplayWindow::default());
                self.stream_count += 1;
                self.stream_count - 1
            }
            None => return Err(SrtpError::TooManyStreams),
        };
        Ok(&mut self.streams[at].1)
    }

    /// Protects the RTP packet `buf[..len]` in place; the tag goes after it, so `buf` needs
    /// `profile().overhead()` spare bytes. Returns the SRTP packet's length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = rtp_header_len(&buf[..len]).ok_or(SrtpError::NotRtp)?;
        let (seq, ssrc) = rtp_ids(buf);
        let stream = self.stream(ssrc)?;
        let index = stream.estimate(seq);
        stream.accept(index);
        match &self.rtp {
            Transform::Gcm(t) => t.seal(buf, header, len, ssrc, index),
            Transform::Cm(t) => t.seal(buf, header, len, ssrc, index),
        }
    }

    /// Checks and decrypts the SRTP packet `buf` in place. Returns the RTP packet's length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf.len();
        let header = rtp_header_len(buf).ok_or(SrtpError::NotRtp)?;
        let (seq, ssrc) = rtp_ids(buf);
        let index = {
            let stream = self.stream(ssrc)?;
            let index = stream.estimate(seq);
            stream.check(index)?;
            index
        };
        let plain = match &self.rtp {
            Transform::Gcm(t) => t.open(buf, header, len, ssrc, index)?,
            Transform::Cm(t) => t.open(buf, header, len, ssrc, index)?,
        };
        self.stream(ssrc)?.accept(index);
        Ok(plain)
    }
}

/// Sequence number and SSRC of an RTP packet whose header length was checked.
fn rtp_ids(packet: &[u8]) -> (u16, u32) {
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
    (seq, ssrc)
}

#[cfg(test)]
mod tests;
