//! MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256,
//! §14.6) and FINGERPRINT (CRC-32, §14.7), and the keys of the credential mechanisms (§9).
//!
//! All three cover the message up to their own attribute, with the header's length field set as
//! if the message ended right after them. None needs a copy of the message: the adjusted header
//! is hashed first, then the bytes after it.

use md5::{Digest, Md5};
use ring::{digest, hmac};

use crate::attr::PasswordAlgorithm;
use crate::error::IntegrityError;
use crate::header::HEADER_LEN;
use crate::message::{ATTR_HEADER_LEN, FINGERPRINT_LEN, INTEGRITY_LEN, Message};

/// The longest MESSAGE-INTEGRITY-SHA256 value, as this codec sends it.
pub(crate) const INTEGRITY_SHA256_LEN: usize = 32;

/// Whether `len` is a MESSAGE-INTEGRITY-SHA256 length a receiver accepts: 16 to 32 bytes in
/// steps of 4 (RFC 8489 §14.6 lets the sender truncate the HMAC that far, no further).
pub(crate) fn is_sha256_integrity_len(len: usize) -> bool {
    (16..=INTEGRITY_SHA256_LEN).contains(&len) && len.is_multiple_of(4)
}

/// XORed into the CRC so that FINGERPRINT differs from CRCs of other protocols (§14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Key of the short-term credential mechanism (ICE): the password's bytes (RFC 8489 §9.1.1).
pub fn short_term_key(password: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes())
}

/// Key of the long-term credential mechanism (TURN): MD5(username ":" realm ":" password)
/// (RFC 8489 §9.2.2), with the strings already processed by OpaqueString where required.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> hmac::Key {
    let mut md5 = Md5::new();
    md5.update(username.as_bytes());
    md5.update(b":");
    md5.update(realm.as_bytes());
    md5.update(b":");
    md5.update(password.as_bytes());
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &md5.finalize())
}

/// The key of the long-term mechanism with a chosen password algorithm (RFC 8489 §9.2.2):
/// MD5 or SHA-256 of username ":" realm ":" password, the strings already processed by
/// OpaqueString where required. The one key signs both MESSAGE-INTEGRITY and
/// MESSAGE-INTEGRITY-SHA256.
pub fn long_term_key_with(
    algorithm: PasswordAlgorithm,
    username: &str,
    realm: &str,
    password: &str,
) -> IntegrityKey {
    let parts = [username.as_bytes(), b":", realm.as_bytes(), b":", password.as_bytes()];
    match algorithm {
        PasswordAlgorithm::Md5 => {
            let mut md5 = Md5::new();
            parts.iter().for_each(|part| md5.update(part));
            IntegrityKey::new(algorithm, &md5.finalize())
        }
        PasswordAlgorithm::Sha256 => {
            let mut sha256 = digest::Context::new(&digest::SHA256);
            parts.iter().for_each(|part| sha256.update(part));
            IntegrityKey::new(algorithm, sha256.finish().as_ref())
        }
    }
}

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm), which a client sends instead of its
/// username so that the name never crosses the network.
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut sha256 = digest::Context::new(&digest::SHA256);
    for part in [username.as_bytes(), b":", realm.as_bytes()] {
        sha256.update(part);
    }
    sha256.finish().as_ref().try_into().expect("SHA-256 digests are 32 bytes")
}

/// One credential key ready for both integrity attributes: HMAC-SHA1 for MESSAGE-INTEGRITY and
/// HMAC-SHA256 for MESSAGE-INTEGRITY-SHA256 take the same key bytes (RFC 8489 §9.2.2), but a
/// `ring` key is bound to its hash, so both are prepared once. It remembers the password
/// algorithm it was made with. It neither compares nor prints, which suits a secret.
#[derive(Clone)]
pub struct IntegrityKey {
    algorithm: PasswordAlgorithm,
    sha1: hmac::Key,
    sha256: hmac::Key,
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntegrityKey({:?}, ..)", self.algorithm)
    }
}

impl IntegrityKey {
    /// A key from its bytes (16 for MD5, 32 for SHA-256), as a configuration may give them.
    pub fn new(algorithm: PasswordAlgorithm, bytes: &[u8]) -> Self {
        Self {
            algorithm,
            sha1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, bytes),
            sha256: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    pub fn algorithm(&self) -> PasswordAlgorithm {
        self.algorithm
    }

    /// The key of MESSAGE-INTEGRITY.
    pub fn sha1(&self) -> &hmac::Key {
        &self.sha1
    }

    /// The key of MESSAGE-INTEGRITY-SHA256.
    pub fn sha256(&self) -> &hmac::Key {
        &self.sha256
    }
}

/// The header with its length field set to end `end` bytes into the message.
fn adjusted_header(message: &[u8], end: usize) -> [u8; HEADER_LEN] {
    let mut header: [u8; HEADER_LEN] = message[..HEADER_LEN].try_into().expect("a message has a header");
    header[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
    header
}

/// The HMAC of `message[..at]` (`at` = offset of the integrity attribute header, whose value is
/// `value_len` bytes): SHA-1 or SHA-256 as `key` says.
pub(crate) fn integrity_tag(key: &hmac::Key, message: &[u8], at: usize, value_len: usize) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(&adjusted_header(message, at + ATTR_HEADER_LEN + value_len));
    context.update(&message[HEADER_LEN..at]);
    context.sign()
}

/// CRC-32 fingerprint of `message[..at]` (`at` = offset of the FINGERPRINT attribute header).
pub(crate) fn fingerprint(message: &[u8], at: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&adjusted_header(message, at + ATTR_HEADER_LEN + FINGERPRINT_LEN));
    crc.update(&message[HEADER_LEN..at]);
    crc.finalize() ^ FINGERPRINT_XOR
}

/// Compares without an early exit, so the time taken says nothing about where a forged tag
/// first differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Message<'_> {
    /// Checks MESSAGE-INTEGRITY with `key` (an HMAC-SHA1 key).
    pub fn verify_integrity(&self, key: &hmac::Key) -> Result<(), IntegrityError> {
        let at = self.integrity_at().ok_or(IntegrityError::Missing)?;
        let bytes = self.as_bytes();
        let tag = integrity_tag(key, bytes, at, INTEGRITY_LEN);
        let sent = &bytes[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + INTEGRITY_LEN];
        if constant_time_eq(tag.as_ref(), sent) { Ok(()) } else { Err(IntegrityError::Mismatch) }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 with `key` (an HMAC-SHA256 key). A value truncated to
    /// 16..32 bytes is compared with as many leading bytes of the HMAC (RFC 8489 §14.6); parsing
    /// refused any other length.
    pub fn verify_integrity_sha256(&self, key: &hmac::Key) -> Result<(), IntegrityError> {
        let at = self.integrity_sha256_at().ok_or(IntegrityError::Missing)?;
        let bytes = self.as_bytes();
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let tag = integrity_tag(key, bytes, at, len);
        let sent = &bytes[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + len];
        if constant_time_eq(&tag.as_ref()[..len], sent) { Ok(()) } else { Err(IntegrityError::Mismatch) }
    }

    /// Whether the message carries MESSAGE-INTEGRITY-SHA256 (that counts: not after another one).
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256_at().is_some()
    }

    /// Checks the strongest integrity attribute present: MESSAGE-INTEGRITY-SHA256 when there is
    /// one, MESSAGE-INTEGRITY otherwise (RFC 8489 §9.2.4 and §9.2.5).
    pub fn verify_any_integrity(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        if self.has_integrity_sha256() {
            self.verify_integrity_sha256(key.sha256())
        } else {
            self.verify_integrity(key.sha1())
        }
    }

    /// Checks FINGERPRINT.
    pub fn verify_fingerprint(&self) -> Result<(), IntegrityError> {
        let at = self.fingerprint_at().ok_or(IntegrityError::Missing)?;
        let bytes = self.as_bytes();
        let sent =
            u32::from_be_bytes(bytes[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + 4].try_into().expect("4"));
        if fingerprint(bytes, at) == sent { Ok(()) } else { Err(IntegrityError::Mismatch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_keys_hash_with_the_chosen_algorithm() {
        // MD5 as before: the keys sign alike.
        let message = b"any message";
        let md5 = long_term_key_with(PasswordAlgorithm::Md5, "user", "realm", "pass");
        let tag = hmac::sign(md5.sha1(), message);
        assert!(hmac::verify(&long_term_key("user", "realm", "pass"), message, tag.as_ref()).is_ok());
        // SHA-256(username:realm:password) as the key bytes (computed independently).
        let sha256 = long_term_key_with(PasswordAlgorithm::Sha256, "user", "example.org", "secret");
        let expected = IntegrityKey::new(
            PasswordAlgorithm::Sha256,
            &hex("bf9f8cc2da128fcb78077f794a818f9d3ccf550dab291cb21c82f29a153b3355"),
        );
        let tag = hmac::sign(sha256.sha256(), message);
        assert!(hmac::verify(expected.sha256(), message, tag.as_ref()).is_ok());
        assert_eq!(sha256.algorithm(), PasswordAlgorithm::Sha256);
        assert_eq!(format!("{sha256:?}"), "IntegrityKey(Sha256, ..)");
    }

    #[test]
    fn sha256_integrity_lengths() {
        let accepted: Vec<usize> = (0..40).filter(|&len| is_sha256_integrity_len(len)).collect();
        assert_eq!(accepted, [16, 20, 24, 28, 32]);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
