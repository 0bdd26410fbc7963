//! Key and salt derivation from a `base_key` (RFC 9605 §4.4.2) and nonce formation (§4.4.3).
//!
//! ```text
//! sframe_secret = HKDF-Extract("", base_key)
//! sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  + KID + cipher_suite, Nk)
//! sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " + KID + cipher_suite, Nn)
//! ```
//!
//! KID is 8 bytes big-endian (not the header's compact form), cipher_suite 2 bytes big-endian.

use ring::hkdf;
use zeroize::Zeroize;

use crate::header::{Ctr, Kid};
use crate::suite::{CipherSuite, Hash, MAX_KEY_LEN, NONCE_LEN};

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";

/// The per-KID secrets: `sframe_key` and `sframe_salt`. Wiped on drop.
#[derive(Clone)]
pub struct KeyMaterial {
    key: [u8; MAX_KEY_LEN],
    key_len: usize,
    salt: [u8; NONCE_LEN],
}

impl core::fmt::Debug for KeyMaterial {
    // Never print secrets, not even in a debug log.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyMaterial").field("key_len", &self.key_len).finish_non_exhaustive()
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl KeyMaterial {
    /// `derive_key_salt(KID, base_key)` for `suite`.
    pub fn derive(suite: CipherSuite, kid: Kid, base_key: &[u8]) -> KeyMaterial {
        let algorithm = match suite.hash() {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha512 => hkdf::HKDF_SHA512,
        };
        // An empty salt is HashLen zero bytes for HMAC (RFC 5869 §2.2), which is what the RFC's
        // `HKDF-Extract("", base_key)` means.
        let secret = hkdf::Salt::new(algorithm, &[]).extract(base_key);
        let kid = kid.0.to_be_bytes();
        let suite_id = suite.id().to_be_bytes();
        let mut material = KeyMaterial { key: [0; MAX_KEY_LEN], key_len: suite.nk(), salt: [0; NONCE_LEN] };
        expand(&secret, &[KEY_LABEL, &kid, &suite_id], &mut material.key[..suite.nk()]);
        expand(&secret, &[SALT_LABEL, &kid, &suite_id], &mut material.salt);
        material
    }

    /// `sframe_key` (Nk bytes).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// `sframe_salt` (Nn bytes).
    pub fn salt(&self) -> &[u8; NONCE_LEN] {
        &self.salt
    }

    /// The nonce for one frame: the salt XOR the CTR, the CTR right-aligned as a big-endian
    /// Nn-byte integer (§4.4.3).
    pub fn nonce(&self, ctr: Ctr) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.0.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }
}

/// An HKDF output length, as ring wants it.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand into `out`. Shared with the product's sender-key derivation.
pub(crate) fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        // ring refuses only lengths over 255 * HashLen; ours are at most 48 bytes.
        .expect("HKDF-Expand output length is at most 255 * HashLen");
}
