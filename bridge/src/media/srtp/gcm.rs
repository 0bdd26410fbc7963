//! AEAD_AES_128_GCM and AEAD_AES_256_GCM for SRTP (RFC 7714 §8): the RTP header is the
//! associated data, the payload is encrypted in place and a 16-byte tag follows it. The two
//! differ only in the session key's length.
//!
//! ```text
//! IV = (00 00 || SSRC || ROC || SEQ) XOR salt        (12 bytes, RFC 7714 §8.1)
//! ```

use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
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
    /// A 16-byte session key selects AES-128-GCM, a 32-byte one AES-256-GCM.
    pub fn new(session_key: &[u8], session_salt: &[u8; SALT_LEN]) -> Self {
        let algorithm = if session_key.len() == 32 { &AES_256_GCM } else { &AES_128_GCM };
        let key = UnboundKey::new(algorithm, session_key)
            .expect("the profile's master_key_len is 16 or 32 bytes, what AES-128 or AES-256 takes");
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
        let tag = self.seal_detached(ssrc, index, aad, &mut rest[..len - header])?;
        rest[len - header..len - header + TAG_LEN].copy_from_slice(&tag);
        Ok(len + TAG_LEN)
    }

    /// Encrypts `data` in place with `aad` as associated data; returns the tag. SRTCP's
    /// associated data is not contiguous in the packet, hence the separate slice.
    pub fn seal_detached(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], SrtpError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(ssrc, index), Aad::from(aad), data)
            .map_err(|_| SrtpError::BufferTooSmall)?;
        Ok(tag.as_ref().try_into().expect("GCM tags are 16 bytes"))
    }

    /// Checks the tag at the end of `data` and decrypts the rest in place; returns its length.
    pub fn open_detached(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<usize, SrtpError> {
        if data.len() < TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        self.key
            .open_in_place(self.nonce(ssrc, index), Aad::from(aad), data)
            .map_err(|_| SrtpError::AuthenticationFailed)?;
        Ok(data.len() - TAG_LEN)
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
        self.open_detached(ssrc, index, aad, &mut rest[..len - header])?;
        Ok(len - TAG_LEN)
    }
}
