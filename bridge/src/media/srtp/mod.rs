//! SRTP (RFC 3711, RFC 7714): our own transform, in place, without allocating.
//!
//! A [`Context`] holds one direction's session keys (derived from the DTLS-SRTP master key
//! and salt) and, per SSRC, the rollover counter and replay window, in a table allocated when
//! the context is made. `protect_rtp` encrypts a packet in its buffer and appends the tag;
//! `unprotect_rtp` checks index and tag, decrypts in place and returns the plaintext length; it
//! adds a new SSRC to the table only once a packet of it authenticated. Errors are a small `Copy` enum, to be counted as
//! drops by reason.
//!
//! Profiles: AEAD_AES_128_GCM (preferred: cheaper, DESIGN.md), AEAD_AES_256_GCM (RFC 7714:
//! a 32-byte master key and the AES-256 key derivation), AES_CM_128_HMAC_SHA1_80 and _32. SRTCP (RFC 3711 §3.4, RFC 7714 §9) always encrypts (E flag set) and, for both AES-CM
//! profiles, carries an 80-bit tag (RFC 5764 §4.1.2).
//!
//! ```text
//! SRTCP: | RTCP header (8) | encrypted rest | [GCM tag 16] | E | SRTCP index (31) | [CM tag 10] |
//! ```

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
    AeadAes256Gcm,
    Aes128CmHmacSha1_80,
    Aes128CmHmacSha1_32,
}

impl Profile {
    /// Master key length the key exporter must provide; the session keys are as long.
    pub fn master_key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            Self::AeadAes128Gcm | Self::Aes128CmHmacSha1_80 | Self::Aes128CmHmacSha1_32 => 16,
        }
    }

    /// Master salt length the key exporter must provide.
    pub fn master_salt_len(self) -> usize {
        if self.is_aead() { gcm::SALT_LEN } else { cm::SALT_LEN }
    }

    /// Bytes `protect_rtp` adds to a packet.
    pub fn overhead(self) -> usize {
        match self {
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => gcm::TAG_LEN,
            Self::Aes128CmHmacSha1_80 => 10,
            Self::Aes128CmHmacSha1_32 => 4,
        }
    }

    /// Whether the profile is one of RFC 7714's AES-GCM ones (tag instead of HMAC).
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm | Self::AeadAes256Gcm)
    }
}

/// Why a [`Context`] could not be made: key material that does not fit the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyError {
    /// The master key is not [`Profile::master_key_len`] bytes.
    MasterKeyLength,
    /// The master salt is not [`Profile::master_salt_len`] bytes.
    MasterSaltLength,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MasterKeyLength => "SRTP master key length does not fit the profile",
            Self::MasterSaltLength => "SRTP master salt length does not fit the profile",
        })
    }
}

impl std::error::Error for KeyError {}

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
    /// A new SSRC, but the context already follows as many as it was made for (it never
    /// forgets one, see [`Context::with_streams`]).
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

/// SSRCs a [`Context::new`] follows: audio, video, RTX and simulcast layers of one
/// participant, with room to spare. The SFU's outbound contexts, one per receiver for every
/// stream forwarded to it, are made with [`Context::with_streams`].
pub const DEFAULT_STREAMS: usize = 64;

/// The most SSRCs [`Context::with_streams`] accepts (a table of 2 MiB per direction).
pub const STREAMS_LIMIT: usize = 1 << 15;

// One per peer and direction, used for every packet: inline beats a box's pointer chase.
#[allow(clippy::large_enum_variant)]
enum Transform {
    Gcm(gcm::Gcm),
    Cm(cm::Cm),
}

/// SRTCP's authentication tag for the AES-CM profiles: 80 bits even for _32 (RFC 5764).
const SRTCP_CM_TAG_LEN: usize = 10;
/// Bytes of the E flag and SRTCP index.
const SRTCP_TRAILER_LEN: usize = 4;
/// Bytes of the RTCP header left in the clear: V/P/RC, PT, length, sender SSRC.
const RTCP_HEADER_LEN: usize = 8;

impl Transform {
    /// The session keys of one label set. `master_key` has the profile's length (checked by
    /// `Context::new`; the key derivation refuses any other).
    fn derive(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        labels: [Label; 3],
    ) -> Result<Self, KeyError> {
        let [encryption, authentication, salt_label] = labels;
        match profile {
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                // The session key is as long as the master key (RFC 7714 §12).
                let mut key = Zeroizing::new([0u8; 32]);
                let key = &mut key[..profile.master_key_len()];
                let mut salt = Zeroizing::new([0u8; gcm::SALT_LEN]);
                kdf::derive(master_key, master_salt, encryption, key)?;
                kdf::derive(master_key, master_salt, salt_label, &mut salt[..])?;
                Ok(Transform::Gcm(gcm::Gcm::new(key, &salt)))
            }
            Profile::Aes128CmHmacSha1_80 | Profile::Aes128CmHmacSha1_32 => {
                let mut key = Zeroizing::new([0u8; 16]);
                let mut salt = Zeroizing::new([0u8; cm::SALT_LEN]);
                let mut auth = Zeroizing::new([0u8; cm::AUTH_KEY_LEN]);
                kdf::derive(master_key, master_salt, encryption, &mut key[..])?;
                kdf::derive(master_key, master_salt, salt_label, &mut salt[..])?;
                kdf::derive(master_key, master_salt, authentication, &mut auth[..])?;
                let tag_len =
                    if encryption == Label::RtcpEncryption { SRTCP_CM_TAG_LEN } else { profile.overhead() };
                Ok(Transform::Cm(cm::Cm::new(&key, &salt, &auth, tag_len)))
            }
        }
    }
}

/// One direction of SRTP for one peer.
pub struct Context {
    profile: Profile,
    rtp: Transform,
    rtcp: Transform,
    streams: Streams,
    /// Per SSRC: the SRTCP index window (receiving) or last index sent (sending).
    rtcp_streams: Streams,
}

/// Per-SSRC windows in a table allocated once, when the context is made: open addressing on
/// the SSRC with a multiplicative hash and linear probing, at most half full, so a lookup is a
/// probe or two and nothing allocates per packet.
///
/// There is no removal: a context never forgets a stream. Forgetting a sending stream would
/// restart its rollover counter and reuse SRTP indexes, that is keystream (RFC 3711 §9.1); a
/// forgotten receiving stream would accept replays again. A context whose table is full
/// refuses new SSRCs with [`SrtpError::TooManyStreams`].
struct Streams {
    /// A power of two of slots, more than `max`, so a probe always ends at an empty slot. An
    /// empty slot's window is the default one: what an unknown SSRC is checked against.
    slots: Box<[Slot]>,
    /// `32 - log2(slots.len())`: the hash keeps the product's top bits, the well-mixed ones.
    shift: u32,
    len: usize,
    max: usize,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    ssrc: Option<u32>,
    window: ReplayWindow,
}

impl Streams {
    fn new(max: usize) -> Self {
        // At most half full: an unknown SSRC's probe ends after 2.5 slots on average.
        let slots = (2 * max).next_power_of_two().max(2);
        Self {
            slots: vec![Slot::default(); slots].into_boxed_slice(),
            shift: 32 - slots.trailing_zeros(),
            len: 0,
            max,
        }
    }

    /// The slot that holds `ssrc`, or else the empty one where it would go. Unprotect finds it
    /// once per packet and uses it both to check the window before authenticating and to record
    /// the index (and a new SSRC) after.
    fn find(&self, ssrc: u32) -> usize {
        // Fibonacci hashing: 2^32 / golden ratio, odd, so distinct SSRCs spread over the table.
        let mask = self.slots.len() - 1;
        let mut at = (ssrc.wrapping_mul(0x9e37_79b9) >> self.shift) as usize;
        loop {
            match self.slots[at].ssrc {
                Some(s) if s != ssrc => at = (at + 1) & mask,
                _ => return at,
            }
        }
    }

    /// The window of the slot `find` returned: a fresh one for an SSRC not yet recorded.
    fn window(&self, at: usize) -> &ReplayWindow {
        &self.slots[at].window
    }

    /// Records `index` for `ssrc` in the slot `find` returned (no insertion in between),
    /// taking the slot if the SSRC is new and the table has room.
    fn record(&mut self, at: usize, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        let slot = &mut self.slots[at];
        if slot.ssrc.is_none() {
            if self.len == self.max {
                return Err(SrtpError::TooManyStreams);
            }
            slot.ssrc = Some(ssrc);
            self.len += 1;
        }
        slot.window.accept(index);
        Ok(())
    }

    /// The window of `ssrc`, if it was recorded.
    #[cfg(test)]
    fn get(&self, ssrc: u32) -> Option<&ReplayWindow> {
        let at = self.find(ssrc);
        self.slots[at].ssrc.map(|_| &self.slots[at].window)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("profile", &self.profile).field("streams", &self.streams.len).finish()
    }
}

use super::rtp::header_len as rtp_header_len;

impl Context {
    /// Derives the SRTP and SRTCP session keys of `profile` from a DTLS-SRTP master key and
    /// salt, which must be [`Profile::master_key_len`] and [`Profile::master_salt_len`] long.
    /// The context follows up to [`DEFAULT_STREAMS`] SSRCs.
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Result<Self, KeyError> {
        Self::with_streams(profile, master_key, master_salt, DEFAULT_STREAMS)
    }

    /// As [`new`](Self::new), for a context that follows up to `max_streams` SSRCs in each of
    /// SRTP and SRTCP: an SFU's outbound context protects every stream forwarded to one
    /// receiver. The table (32 bytes per slot, two slots per stream, rounded up to a power of
    /// two) is allocated here, once; a context never forgets an SSRC, and refuses more than
    /// `max_streams` with [`SrtpError::TooManyStreams`].
    ///
    /// # Panics
    ///
    /// If `max_streams` is above [`STREAMS_LIMIT`]: a configuration error, not network input.
    pub fn with_streams(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        max_streams: usize,
    ) -> Result<Self, KeyError> {
        assert!(max_streams <= STREAMS_LIMIT, "{max_streams} SRTP streams, at most {STREAMS_LIMIT}");
        if master_key.len() != profile.master_key_len() {
            return Err(KeyError::MasterKeyLength);
        }
        if master_salt.len() != profile.master_salt_len() {
            return Err(KeyError::MasterSaltLength);
        }
        let rtp_labels = [Label::RtpEncryption, Label::RtpAuthentication, Label::RtpSalt];
        let rtcp_labels = [Label::RtcpEncryption, Label::RtcpAuthentication, Label::RtcpSalt];
        Ok(Self {
            profile,
            rtp: Transform::derive(profile, master_key, master_salt, rtp_labels)?,
            rtcp: Transform::derive(profile, master_key, master_salt, rtcp_labels)?,
            streams: Streams::new(max_streams),
            rtcp_streams: Streams::new(max_streams),
        })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Bytes `protect_rtcp` adds to a compound RTCP packet.
    pub fn rtcp_overhead(&self) -> usize {
        SRTCP_TRAILER_LEN + if self.profile.is_aead() { gcm::TAG_LEN } else { SRTCP_CM_TAG_LEN }
    }

    /// Protects the compound RTCP packet `buf[..len]` in place (`rtcp_overhead()` spare bytes
    /// needed). Returns the SRTCP packet's length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < RTCP_HEADER_LEN || buf[0] >> 6 != 2 {
            return Err(SrtpError::NotRtp);
        }
        if buf.len() < len + self.rtcp_overhead() {
            return Err(SrtpError::BufferTooSmall);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let at = self.rtcp_streams.find(ssrc);
        // The SRTCP index counts from 1 per SSRC (as libsrtp does) and is 31 bits.
        let index = self.rtcp_streams.window(at).highest().map_or(1, |h| h + 1) & 0x7fff_ffff;
        self.rtcp_streams.record(at, ssrc, index)?;
        let trailer = (0x8000_0000 | index as u32).to_be_bytes();
        match &self.rtcp {
            Transform::Gcm(t) => {
                let aad = srtcp_aad(&buf[..RTCP_HEADER_LEN], trailer);
                let tag = t.seal_detached(ssrc, index, &aad, &mut buf[RTCP_HEADER_LEN..len])?;
                buf[len..len + gcm::TAG_LEN].copy_from_slice(&tag);
                buf[len + gcm::TAG_LEN..len + gcm::TAG_LEN + SRTCP_TRAILER_LEN].copy_from_slice(&trailer);
            }
            Transform::Cm(t) => {
                t.apply(ssrc, index, &mut buf[RTCP_HEADER_LEN..len]);
                buf[len..len + SRTCP_TRAILER_LEN].copy_from_slice(&trailer);
                let tag = t.mac(&[&buf[..len + SRTCP_TRAILER_LEN]]);
                let at = len + SRTCP_TRAILER_LEN;
                buf[at..at + SRTCP_CM_TAG_LEN].copy_from_slice(&tag[..SRTCP_CM_TAG_LEN]);
            }
        }
        Ok(len + self.rtcp_overhead())
    }

    /// Checks and decrypts the SRTCP packet `buf` in place. Returns the RTCP packet's length.
    /// Unencrypted SRTCP (E flag clear) is refused: we never negotiate it.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf.len();
        if len < RTCP_HEADER_LEN + self.rtcp_overhead() {
            return Err(SrtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::NotRtp);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let trailer_at = if self.profile.is_aead() {
            len - SRTCP_TRAILER_LEN
        } else {
            len - SRTCP_CM_TAG_LEN - SRTCP_TRAILER_LEN
        };
        let trailer: [u8; 4] = buf[trailer_at..trailer_at + 4].try_into().expect("4 bytes");
        let word = u32::from_be_bytes(trailer);
        if word & 0x8000_0000 == 0 {
            return Err(SrtpError::AuthenticationFailed);
        }
        let index = u64::from(word & 0x7fff_ffff);
        // One lookup. An SSRC not yet recorded is checked against a fresh window and takes a
        // slot only once its packet authenticated: forged packets must not fill the table.
        let at = self.rtcp_streams.find(ssrc);
        self.rtcp_streams.window(at).check(index)?;
        let plain = match &self.rtcp {
            Transform::Gcm(t) => {
                let aad = srtcp_aad(&buf[..RTCP_HEADER_LEN], trailer);
                RTCP_HEADER_LEN + t.open_detached(ssrc, index, &aad, &mut buf[RTCP_HEADER_LEN..trailer_at])?
            }
            Transform::Cm(t) => {
                let tag = t.mac(&[&buf[..trailer_at + SRTCP_TRAILER_LEN]]);
                let sent = &buf[trailer_at + SRTCP_TRAILER_LEN..];
                if !cm::constant_time_eq(&tag[..SRTCP_CM_TAG_LEN], sent) {
                    return Err(SrtpError::AuthenticationFailed);
                }
                t.apply(ssrc, index, &mut buf[RTCP_HEADER_LEN..trailer_at]);
                trailer_at
            }
        };
        self.rtcp_streams.record(at, ssrc, index)?;
        Ok(plain)
    }

    /// Protects the RTP packet `buf[..len]` in place; the tag goes after it, so `buf` needs
    /// `profile().overhead()` spare bytes. Returns the SRTP packet's length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = rtp_header_len(&buf[..len]).ok_or(SrtpError::NotRtp)?;
        let (seq, ssrc) = rtp_ids(buf);
        let at = self.streams.find(ssrc);
        let index = self.streams.window(at).estimate(seq);
        self.streams.record(at, ssrc, index)?;
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
        // One lookup, as for SRTCP: a new SSRC takes a slot only after authentication.
        let at = self.streams.find(ssrc);
        let window = self.streams.window(at);
        let index = window.estimate(seq);
        window.check(index)?;
        let plain = match &self.rtp {
            Transform::Gcm(t) => t.open(buf, header, len, ssrc, index)?,
            Transform::Cm(t) => t.open(buf, header, len, ssrc, index)?,
        };
        self.streams.record(at, ssrc, index)?;
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

/// SRTCP's GCM associated data: the clear RTCP header, then the E flag and index.
fn srtcp_aad(header: &[u8], trailer: [u8; 4]) -> [u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN] {
    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_TRAILER_LEN];
    aad[..RTCP_HEADER_LEN].copy_from_slice(header);
    aad[RTCP_HEADER_LEN..].copy_from_slice(&trailer);
    aad
}
