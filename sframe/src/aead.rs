//! The AEAD of each suite: AES-GCM from ring, or the RFC 9605 §4.5.1 compound AEAD
//! (AES-CTR, then a truncated HMAC over lengths, nonce, AAD and ciphertext).
//!
//! Both seal in place with the tag written separately, and open from the caller's ciphertext
//! into the caller's output, so a frame costs no allocation.

use aes::Aes128Enc;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use ring::{aead, hmac};

use crate::suite::{CipherSuite, MAX_TAG_LEN, NONCE_LEN};

/// Why an AEAD operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadError {
    /// The key is not Nk bytes for the suite.
    KeyLength,
    /// Tag or output slice of the wrong length.
    Length,
    /// More than 2^32 AES blocks: the 32-bit block counter of §4.5.1 would wrap.
    TooLong,
    /// The tag did not verify.
    Authentication,
}

/// A frame cipher keyed with one `sframe_key`.
pub struct Aead {
    suite: CipherSuite,
    inner: Inner,
}

// One key per slot of a fixed key store, so the enum's size is paid once per KID, never per
// frame; boxing the larger variant would only add a pointer chase to every frame.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Gcm(aead::LessSafeKey),
    CtrHmac { enc: Aes128Enc, auth: hmac::Key },
}

impl core::fmt::Debug for Aead {
    // Key schedules stay out of logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aead").field("suite", &self.suite).finish_non_exhaustive()
    }
}

/// AES-CTR keystream blocks are this long.
const BLOCK: usize = 16;

impl Aead {
    /// Keys the suite's AEAD with `key` (Nk bytes: for the CTR suites the AES key followed by
    /// the HMAC key, `derive_subkeys` of §4.5.1).
    pub fn new(suite: CipherSuite, key: &[u8]) -> Result<Aead, AeadError> {
        if key.len() != suite.nk() {
            return Err(AeadError::KeyLength);
        }
        let inner = match suite {
            CipherSuite::Aes128GcmSha256_128 | CipherSuite::Aes256GcmSha512_128 => {
                let algorithm = if suite == CipherSuite::Aes128GcmSha256_128 {
                    &aead::AES_128_GCM
                } else {
                    &aead::AES_256_GCM
                };
                let key = aead::UnboundKey::new(algorithm, key).map_err(|_| AeadError::KeyLength)?;
                Inner::Gcm(aead::LessSafeKey::new(key))
            }
            _ => {
                let (enc_key, auth_key) = key.split_at(16);
                let enc = Aes128Enc::new(GenericArray::from_slice(enc_key));
                Inner::CtrHmac { enc, auth: hmac::Key::new(hmac::HMAC_SHA256, auth_key) }
            }
        };
        Ok(Aead { suite, inner })
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// `AEAD.Encrypt`: encrypts `in_out` in place and writes the Nt-byte tag to `tag`.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), AeadError> {
        if tag.len() != self.suite.nt() {
            return Err(AeadError::Length);
        }
        match &self.inner {
            Inner::Gcm(key) => {
                let nonce = aead::Nonce::assume_unique_for_key(*nonce);
                let t = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), in_out)
                    .map_err(|_| AeadError::TooLong)?;
                tag.copy_from_slice(t.as_ref());
            }
            Inner::CtrHmac { enc, auth } => {
                ctr_xor(enc, nonce, in_out)?;
                let full = self.mac(auth, nonce, aad, in_out);
                tag.copy_from_slice(&full[..tag.len()]);
            }
        }
        Ok(())
    }

    /// `AEAD.Decrypt`: checks `tag` over `aad` and `ciphertext` and writes the plaintext to
    /// `out` (exactly `ciphertext.len()` bytes). On error `out` holds unspecified bytes.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), AeadError> {
        if tag.len() != self.suite.nt() || out.len() != ciphertext.len() {
            return Err(AeadError::Length);
        }
        match &self.inner {
            Inner::Gcm(key) => {
                let nonce = aead::Nonce::assume_unique_for_key(*nonce);
                let tag = aead::Tag::try_from(tag).map_err(|_| AeadError::Length)?;
                out.copy_from_slice(ciphertext);
                key.open_in_place_separate_tag(nonce, aead::Aad::from(aad), tag, out, 0..)
                    .map_err(|_| AeadError::Authentication)?;
            }
            Inner::CtrHmac { enc, auth } => {
                // Encrypt-then-MAC: authenticate before touching the ciphertext.
                let full = self.mac(auth, nonce, aad, ciphertext);
                if !constant_time_eq(&full[..tag.len()], tag) {
                    return Err(AeadError::Authentication);
                }
                out.copy_from_slice(ciphertext);
                ctr_xor(enc, nonce, out)?;
            }
        }
        Ok(())
    }

    /// `compute_tag` of §4.5.1 before truncation:
    /// HMAC(auth_key, len(aad) || len(ct) || Nt || nonce || aad || ct), lengths as u64 BE.
    fn mac(&self, auth: &hmac::Key, nonce: &[u8; NONCE_LEN], aad: &[u8], ct: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(auth);
        ctx.update(&(aad.len() as u64).to_be_bytes());
        ctx.update(&(ct.len() as u64).to_be_bytes());
        ctx.update(&(self.suite.nt() as u64).to_be_bytes());
        ctx.update(nonce);
        ctx.update(aad);
        ctx.update(ct);
        let mut full = [0u8; 32];
        full.copy_from_slice(ctx.sign().as_ref());
        full
    }
}

/// AES-CTR with the initial counter block `nonce || 0x00000000` (§4.5.1), incrementing the
/// low 32 bits. Refuses input that would wrap them rather than reuse keystream.
fn ctr_xor(enc: &Aes128Enc, nonce: &[u8; NONCE_LEN], data: &mut [u8]) -> Result<(), AeadError> {
    if data.len().div_ceil(BLOCK) as u64 > 1 << 32 {
        return Err(AeadError::TooLong);
    }
    let mut counter_block = [0u8; BLOCK];
    counter_block[..NONCE_LEN].copy_from_slice(nonce);
    for (i, chunk) in data.chunks_mut(BLOCK).enumerate() {
        // Cannot truncate: the check above bounds the block count by 2^32.
        counter_block[NONCE_LEN..].copy_from_slice(&(i as u32).to_be_bytes());
        let mut keystream = GenericArray::clone_from_slice(&counter_block);
        enc.encrypt_block(&mut keystream);
        for (d, k) in chunk.iter_mut().zip(keystream.iter()) {
            *d ^= k;
        }
    }
    Ok(())
}

/// Tag comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// `mac` truncates a 32-byte HMAC-SHA-256 output to Nt; no suite's tag may be longer.
const _: () = assert!(MAX_TAG_LEN <= 32);
