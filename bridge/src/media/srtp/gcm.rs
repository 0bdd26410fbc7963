//! AEAD_AES_128_GCM for SRTP (RFC 7714 §8): the RTP header is the associated data, the
//! payload is encrypted in place and a 16-byte tag follows it.
//!
//! ```text
//! IV = (00 00 || SSRC || ROC || SEQ) XOR salt        (12 bytes, RFC 7714 §8.1)
//! ```

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::SrtpError;

pub const TAG_LEN: usize = 16;
pub const SALT_LEN: usize = 12;

/// Session key and salt of one direction.
pub struct Gcm {
    // ring keeps its own copy of the expanded key and offers no way to wipe it; our copies of
    // the session key material are zeroized on drop.
    key: LessSafeKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl std::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gcm { .. }")
    }
}

impl Gcm {
    pub fn new(session_key: &[u8; 16], session_salt: &[u8; SALT_LEN]) -> Self {
        let key = UnboundKey::new(&AES_128_GCM, session_key).expect("AES-128 takes a 16-byte key");
        Self { key: LessSafeKey::new(key), salt: Zeroizing::new(*session_salt) }
    }

    fn nonce(&self, ssrc: u32, index: u64) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..12].copy_from_slice(&index.to_be_bytes()[2..8]);
        for (b, s) in iv.iter_mut().zip(self.salt.iter()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }

    /// Encrypts `buf[header..len]` in place and writes the tag after it. Returns the new length.
    pub fn seal(
        &self,
        buf: &mut [u8],
        header: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        if buf.len() < len + TAG_LEN {
            return Err(SrtpError::BufferTooSmall);
        }
        let (aad, rest) = buf.split_at_mut(header);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(ssrc, index), Aad::from(&*aad), &mut rest[..len - header])
            .map_err(|_| SrtpError::BufferTooSmall)?;
        rest[len - header..len - header + TAG_LEN].copy_from_slice(tag.as_ref());
        Ok(len + TAG_LEN)
    }

    /// Checks the tag and decrypts `buf[header..len - TAG_LEN]` in place. Returns the
    /// plaintext length.
    pub fn open(
        &self,
        buf: &mut [u8],
        header: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        if len < header + TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        let (aad, rest) = buf.split_at_mut(header);
        self.key
            .open_in_place(self.nonce(ssrc, index), Aad::from(&*aad), &mut rest[..len - header])
            .map_err(|_| SrtpError::AuthenticationFailed)?;
        Ok(len - TAG_LEN)
    }
}
