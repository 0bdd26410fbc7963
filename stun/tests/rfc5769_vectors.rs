//! The test vectors of RFC 5769: parse, read every attribute, verify MESSAGE-INTEGRITY and
//! FINGERPRINT; and a corrupted byte anywhere must fail one of those checks.

use std::net::SocketAddr;

use stun::{AttrType, Class, IntegrityError, Message, Method, TransactionId, long_term_key, short_term_key};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TXID: [u8; 12] = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];

/// RFC 5769 §2.1, Sample Request.
fn sample_request() -> Vec<u8> {
    hex("00010058 2112a442 b7e7a701 bc34d686 fa87dfae
         80220010 5354554e 20746573 7420636c 69656e74
         00240004 6e0001ff
         80290008 932ff9b1 51263b36
         00060009 6576746a 3a683676 59202020
         00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
         80280004 e57a3bcf")
}

/// RFC 5769 §2.2, Sample IPv4 Response.
fn sample_ipv4_response() -> Vec<u8> {
    hex("0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
         8022000b 74657374 20766563 746f7220
         00200008 0001a147 e112a643
         00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
         80280004 c07d4c96")
}

/// RFC 5769 §2.3, Sample IPv6 Response.
fn sample_ipv6_response() -> Vec<u8> {
    hex("01010048 2112a442 b7e7a701 bc34d686 fa87dfae
         8022000b 74657374 20766563 746f7220
         00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
         00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
         80280004 c8fb0b4c")
}

/// RFC 5769 §2.4, Sample Request with Long-Term Authentication (no FINGERPRINT).
fn sample_long_term_request() -> Vec<u8> {
    hex("00010060 2112a442 78ad3433 c6ad72c0 29da412e
         00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
         0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
         0014000b 6578616d 706c652e 6f726700
         00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666")
}

#[test]
fn sample_request_parses_and_verifies() {
    let bytes = sample_request();
    let message = Message::parse(&bytes).unwrap();
    assert_eq!((message.method(), message.class()), (Method::BINDING, Class::Request));
    assert_eq!(message.transaction_id(), TransactionId(TXID));
    assert_eq!(message.get(AttrType::SOFTWARE), Some(&b"STUN test client"[..]));
    assert_eq!(message.priority(), Ok(0x6e0001ff));
    assert_eq!(message.ice_controlled(), Ok(0x932ff9b151263b36));
    assert_eq!(message.username(), Ok("evtj:h6vY"));
    assert!(!message.use_candidate());
    assert_eq!(message.verify_integrity(&short_term_key(PASSWORD)), Ok(()));
    assert_eq!(message.verify_integrity(&short_term_key("wrong")), Err(IntegrityError::Mismatch));
    assert_eq!(message.verify_fingerprint(), Ok(()));
}

#[test]
fn sample_responses_carry_the_mapped_addresses() {
    let cases = [
        (sample_ipv4_response(), "192.0.2.1:32853"),
        (sample_ipv6_response(), "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
    ];
    for (bytes, mapped) in cases {
        let message = Message::parse(&bytes).unwrap();
        assert_eq!((message.method(), message.class()), (Method::BINDING, Class::Success));
        assert_eq!(message.get(AttrType::SOFTWARE), Some(&b"test vector"[..]));
        assert_eq!(message.xor_mapped_address(), Ok(mapped.parse::<SocketAddr>().unwrap()));
        assert_eq!(message.verify_integrity(&short_term_key(PASSWORD)), Ok(()));
        assert_eq!(message.verify_fingerprint(), Ok(()));
    }
}

#[test]
fn sample_long_term_request_verifies_with_the_md5_key() {
    let bytes = sample_long_term_request();
    let message = Message::parse(&bytes).unwrap();
    let username = message.username().unwrap();
    assert_eq!(username, "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}");
    assert_eq!(message.get(AttrType::REALM), Some(&b"example.org"[..]));
    assert_eq!(message.get(AttrType::NONCE), Some(&b"f//499k954d6OL34oL9FSTvy64sA"[..]));
    // The password after SASLprep/OpaqueString processing, as the RFC gives it.
    let key = long_term_key(username, "example.org", "TheMatrIX");
    assert_eq!(message.verify_integrity(&key), Ok(()));
    assert_eq!(message.verify_fingerprint(), Err(IntegrityError::Missing));
}

#[test]
fn any_flipped_bit_fails_a_check() {
    let key = short_term_key(PASSWORD);
    let original = sample_request();
    for i in 0..original.len() {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[i] ^= 1 << bit;
            let verified = Message::parse(&bytes)
                .is_ok_and(|m| m.verify_integrity(&key).is_ok() && m.verify_fingerprint().is_ok());
            assert!(!verified, "flipping bit {bit} of byte {i} went unnoticed");
        }
    }
}
