//! RFC 8489 Appendix B.1, the sample request with long-term authentication, USERHASH and
//! MESSAGE-INTEGRITY-SHA256, byte for byte; and the rules of §14.6 (truncation) and §9 (what
//! follows an integrity attribute is ignored).
//!
//! The sample as printed cannot be parsed: its header's length (0x9c = 156) counts the 20-byte
//! header as well as the 136 bytes of attributes, and its HMAC was computed with that length.
//! The tests check each printed part (USERHASH, the SHA-256 key, the HMAC over the bytes as
//! printed), then build the corrected message and verify it.

use ring::hmac;
use stun::{
    AttrType, Class, IntegrityError, IntegrityKey, Message, MessageBuilder, Method, ParseError,
    PasswordAlgorithm, TransactionId, long_term_key_with, userhash,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// "マトリックス", unchanged by OpaqueString.
const USERNAME: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
/// "The\u{00AD}M\u{00AA}tr\u{2168}" after OpaqueString.
const PASSWORD: &str = "TheMatrIX";
const REALM: &str = "example.org";
const NONCE: &str = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA";
const TXID: [u8; 12] = [0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e];

/// RFC 8489 Appendix B.1, as printed.
fn sample() -> Vec<u8> {
    hex("0001009c 2112a442 78ad3433 c6ad72c0 29da412e
         001e0020 4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704
         00150029 6f624d61 744a6f73 32414141 43662f2f 3439396b 39353464 364f4c33 346f4c39
                  46535476 79363473 41000000
         0014000b 6578616d 706c652e 6f726700
         001c0020 e4686c8f 0edeb590 13e07090 010a93ef ccbccc54 4c0a45d9 f830aa6d 6f735a01")
}

fn key() -> IntegrityKey {
    long_term_key_with(PasswordAlgorithm::Sha256, USERNAME, REALM, PASSWORD)
}

#[test]
fn the_printed_parts_match() {
    let sample = sample();
    assert_eq!(&sample[24..56], &userhash(USERNAME, REALM));
    // The HMAC over everything before MESSAGE-INTEGRITY-SHA256, header length as printed.
    let (signed, value) = sample.split_at(sample.len() - 32);
    let tag = hmac::sign(key().sha256(), &signed[..signed.len() - 4]);
    assert_eq!(tag.as_ref(), value);
    // And a strict parser refuses the printed length.
    assert_eq!(Message::parse(&sample).unwrap_err(), ParseError::BadLength);
}

#[test]
fn the_corrected_sample_builds_parses_and_verifies() {
    let key = key();
    let mut buf = [0u8; 256];
    let mut message =
        MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId(TXID)).unwrap();
    message
        .attribute(AttrType::USERHASH, &userhash(USERNAME, REALM))
        .unwrap()
        .attribute(AttrType::NONCE, NONCE.as_bytes())
        .unwrap()
        .attribute(AttrType::REALM, REALM.as_bytes())
        .unwrap()
        .message_integrity_sha256(key.sha256())
        .unwrap();
    let len = message.finish();
    let built = &buf[..len];
    let sample = sample();
    assert_eq!(len, sample.len());
    assert_eq!(&built[2..4], &[0x00, 0x88], "136 bytes of attributes");
    assert_eq!(built[4..len - 32], sample[4..len - 32], "everything but length and HMAC as printed");

    let message = Message::parse(built).unwrap();
    assert_eq!(message.userhash(), Ok(&userhash(USERNAME, REALM)));
    assert_eq!(message.verify_integrity_sha256(key.sha256()), Ok(()));
    assert_eq!(message.verify_any_integrity(&key), Ok(()));
    assert_eq!(message.verify_integrity(key.sha1()), Err(IntegrityError::Missing));
    let md5 = long_term_key_with(PasswordAlgorithm::Md5, USERNAME, REALM, PASSWORD);
    assert_eq!(message.verify_any_integrity(&md5), Err(IntegrityError::Mismatch));
}

/// A request signed with `len` bytes of MESSAGE-INTEGRITY-SHA256, then FINGERPRINT.
fn signed(buf: &mut [u8], key: &IntegrityKey, len: usize) -> usize {
    let mut message = MessageBuilder::new(buf, Method::BINDING, Class::Request, TransactionId(TXID)).unwrap();
    message
        .attribute(AttrType::USERNAME, b"user")
        .unwrap()
        .password_algorithm(PasswordAlgorithm::Sha256)
        .unwrap()
        .message_integrity_sha256_truncated(key.sha256(), len)
        .unwrap()
        .fingerprint()
        .unwrap();
    message.finish()
}

#[test]
fn truncated_hmacs_down_to_16_bytes_verify() {
    let key = long_term_key_with(PasswordAlgorithm::Sha256, "user", REALM, "pass");
    let other = long_term_key_with(PasswordAlgorithm::Sha256, "user", REALM, "guess");
    for len in [16, 20, 24, 28, 32] {
        let mut buf = [0u8; 128];
        let n = signed(&mut buf, &key, len);
        let message = Message::parse(&buf[..n]).unwrap();
        assert_eq!(message.get(AttrType::MESSAGE_INTEGRITY_SHA256).map(<[u8]>::len), Some(len));
        assert_eq!(message.password_algorithm(), Ok((2, &[][..])));
        assert_eq!(message.verify_integrity_sha256(key.sha256()), Ok(()), "{len}");
        assert_eq!(message.verify_integrity_sha256(other.sha256()), Err(IntegrityError::Mismatch));
        assert_eq!(message.verify_fingerprint(), Ok(()));
    }
    for len in [4, 8, 12] {
        let mut buf = [0u8; 128];
        let n = signed(&mut buf, &key, len);
        assert_eq!(Message::parse(&buf[..n]).unwrap_err(), ParseError::BadIntegrityLength, "{len}");
    }
}

#[test]
fn only_fingerprint_counts_after_the_sha256_integrity() {
    let key = long_term_key_with(PasswordAlgorithm::Md5, "user", REALM, "pass");
    let mut buf = [0u8; 256];
    let mut message =
        MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId(TXID)).unwrap();
    message
        .attribute(AttrType::USERNAME, b"user")
        .unwrap()
        .message_integrity(key.sha1())
        .unwrap()
        .attribute(AttrType::SOFTWARE, b"ignored after MESSAGE-INTEGRITY")
        .unwrap()
        .message_integrity_sha256(key.sha256())
        .unwrap()
        .attribute(AttrType::LIFETIME, &[0, 0, 0, 1])
        // A second MESSAGE-INTEGRITY of the wrong length: ignored, so not a parse error.
        .unwrap()
        .attribute(AttrType::MESSAGE_INTEGRITY, &[0; 4])
        .unwrap()
        .fingerprint()
        .unwrap();
    let len = message.finish();
    let message = Message::parse(&buf[..len]).unwrap();
    let types: Vec<AttrType> = message.attributes().map(|a| a.typ).collect();
    assert_eq!(
        types,
        [
            AttrType::USERNAME,
            AttrType::MESSAGE_INTEGRITY,
            AttrType::MESSAGE_INTEGRITY_SHA256,
            AttrType::FINGERPRINT
        ]
    );
    // Both integrity attributes verify: MESSAGE-INTEGRITY-SHA256 covers MESSAGE-INTEGRITY.
    assert_eq!(message.verify_integrity(key.sha1()), Ok(()));
    assert_eq!(message.verify_integrity_sha256(key.sha256()), Ok(()));
    assert_eq!(message.verify_any_integrity(&key), Ok(()));
    assert_eq!(message.verify_fingerprint(), Ok(()));
}
