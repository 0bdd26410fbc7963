//! MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) and FINGERPRINT (CRC-32, §14.7).
//!
//! Both cover the message up to their own attribute, with the header's length field set as if
//! the message ended right after them. Neither needs a copy of the message: the adjusted header
//! is hashed first, then the bytes after it.

use md5::{Digest, Md5};
use ring::hmac;

use crate::error::IntegrityError;
use crate::header::HEADER_LEN;
use crate::message::{ATTR_HEADER_LEN, FINGERPRINT_LEN, INTEGRITY_LEN, Message};

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

/// The header with its length field set to end `end` bytes into the message.
fn adjusted_header(message: &[u8], end: usize) -> [u8; HEADER_LEN] {
    let mut header: [u8; HEADER_LEN] = message[..HEADER_LEN].try_into().expect("a message has a header");
    header[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
    header
}

/// HMAC-SHA1 of `message[..at]` (`at` = offset of the MESSAGE-INTEGRITY attribute header).
pub(crate) fn integrity_tag(key: &hmac::Key, message: &[u8], at: usize) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(&adjusted_header(message, at + ATTR_HEADER_LEN + INTEGRITY_LEN));
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
    /// Checks MESSAGE-INTEGRITY with `key`.
    pub fn verify_integrity(&self, key: &hmac::Key) -> Result<(), IntegrityError> {
        let at = self.integrity_at().ok_or(IntegrityError::Missing)?;
        let bytes = self.as_bytes();
        let tag = integrity_tag(key, bytes, at);
        let sent = &bytes[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + INTEGRITY_LEN];
        if constant_time_eq(tag.as_ref(), sent) { Ok(()) } else { Err(IntegrityError::Mismatch) }
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
