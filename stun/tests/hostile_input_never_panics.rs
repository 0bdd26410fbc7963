//! Property tests: built messages parse back to what was written; arbitrary bytes, and valid
//! messages with bytes mutated, truncated or extended, never panic the parser or any accessor.
//! (The short fuzzing run of the test suite; `cargo fuzz` targets come with the media layer.)

use std::net::SocketAddr;

use proptest::prelude::*;
use stun::{AttrType, Class, Message, MessageBuilder, Method, TransactionId, short_term_key};

/// Calls every accessor; none may panic, whatever the message holds.
fn read_everything(message: &Message<'_>) {
    let key = short_term_key("key");
    let _ = message.verify_integrity(&key);
    let _ = message.verify_fingerprint();
    let _ = message.username();
    let _ = message.xor_mapped_address();
    let _ = message.xor_address(AttrType::XOR_PEER_ADDRESS);
    let _ = message.priority();
    let _ = message.use_candidate();
    let _ = message.ice_controlling();
    let _ = message.ice_controlled();
    let _ = message.error_code();
    let _ = message.unknown_required(&[AttrType::USERNAME]);
    for attribute in message.attributes() {
        let _ = stun::decode_text(attribute.value);
        let _ = stun::decode_xor_address(attribute.value, &message.transaction_id());
    }
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![Just(Class::Request), Just(Class::Indication), Just(Class::Success), Just(Class::Error)]
}

fn address() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

/// A valid message with random attributes, integrity and fingerprint.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    (
        0u16..0x1000,
        class(),
        any::<[u8; 12]>(),
        prop::collection::vec((0x0100u16..0x7fff, prop::collection::vec(any::<u8>(), 0..40)), 0..6),
        address(),
    )
        .prop_map(|(method, class, txid, attributes, addr)| {
            let mut buf = vec![0u8; 1500];
            let mut builder =
                MessageBuilder::new(&mut buf, Method(method), class, TransactionId(txid)).unwrap();
            for (typ, value) in &attributes {
                builder.attribute(AttrType(*typ), value).unwrap();
            }
            builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, addr).unwrap();
            builder.message_integrity(&short_term_key("key")).unwrap().fingerprint().unwrap();
            let len = builder.finish();
            buf.truncate(len);
            buf
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn built_messages_parse_back(
        method in 0u16..0x1000,
        class in class(),
        txid in any::<[u8; 12]>(),
        attributes in prop::collection::vec((0x0100u16..0x7fff, prop::collection::vec(any::<u8>(), 0..64)), 0..8),
        addr in address(),
        priority in any::<u32>(),
    ) {
        let mut buf = [0u8; 1500];
        let key = short_term_key("secret");
        let mut builder = MessageBuilder::new(&mut buf, Method(method), class, TransactionId(txid)).unwrap();
        for (typ, value) in &attributes {
            builder.attribute(AttrType(*typ), value).unwrap();
        }
        builder.xor_address(AttrType::XOR_MAPPED_ADDRESS, addr).unwrap();
        builder.u32(AttrType::PRIORITY, priority).unwrap();
        builder.message_integrity(&key).unwrap().fingerprint().unwrap();
        let len = builder.finish();

        let message = Message::parse(&buf[..len]).unwrap();
        prop_assert_eq!(message.method(), Method(method));
        prop_assert_eq!(message.class(), class);
        prop_assert_eq!(message.transaction_id(), TransactionId(txid));
        let read: Vec<_> = message.attributes().take(attributes.len()).map(|a| (a.typ.0, a.value.to_vec())).collect();
        prop_assert_eq!(read, attributes.clone());
        prop_assert_eq!(message.xor_mapped_address(), Ok(addr));
        prop_assert_eq!(message.priority(), Ok(priority));
        prop_assert_eq!(message.verify_integrity(&key), Ok(()));
        prop_assert_eq!(message.verify_fingerprint(), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = Message::parse(&bytes) {
            read_everything(&message);
        }
        let _ = stun::is_stun(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        message in valid_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = message;
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        for candidate in [&bytes[..], truncated, &[&bytes[..], &extra[..]].concat()[..]] {
            if let Ok(message) = Message::parse(candidate) {
                read_everything(&message);
            }
        }
    }

    #[test]
    fn header_lengths_that_lie_are_rejected(message in valid_message(), length in any::<u16>()) {
        let mut bytes = message;
        let real = (bytes.len() - stun::HEADER_LEN) as u16;
        prop_assume!(length != real);
        bytes[2..4].copy_from_slice(&length.to_be_bytes());
        prop_assert!(Message::parse(&bytes).is_err());
    }
}

#[test]
fn small_buffers_are_refused_not_overrun() {
    let mut buf = [0u8; 32];
    assert!(
        MessageBuilder::new(&mut buf[..19], Method::BINDING, Class::Request, TransactionId([0; 12])).is_err()
    );
    let mut builder =
        MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId([0; 12])).unwrap();
    assert!(builder.attribute(AttrType::USERNAME, b"12345678").is_ok());
    assert!(
        builder.attribute(AttrType::USERNAME, b"x").is_err(),
        "32 bytes hold the header and one 8-byte attribute"
    );
    assert_eq!(builder.finish(), 32);
}
