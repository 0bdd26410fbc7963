//! Network bytes never panic the parser or decryptor, and any single flipped bit in the header,
//! the metadata or the ciphertext makes decryption fail.

use proptest::prelude::*;
use sframe::{CipherSuite, Context, Ctr, Error, Header, Kid, Usage};

const BASE_KEY: &[u8] = b"sixteen byte key";

fn suite() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(CipherSuite::ALL.to_vec())
}

/// A sender and a receiver sharing `BASE_KEY` under `kid`.
fn pair(suite: CipherSuite, kid: Kid) -> (Context<2>, Context<2>) {
    let mut tx = Context::new(suite);
    tx.insert(kid, Usage::Encrypt, BASE_KEY).unwrap();
    let mut rx = Context::new(suite);
    rx.insert(kid, Usage::Decrypt, BASE_KEY).unwrap();
    (tx, rx)
}

proptest! {
    #[test]
    fn header_round_trips(kid: u64, ctr: u64) {
        let header = Header::new(Kid(kid), Ctr(ctr));
        let mut buf = [0u8; Header::MAX_LEN];
        let len = header.encode(&mut buf).unwrap();
        prop_assert_eq!(Header::parse(&buf[..len]), Ok((header, len)));
    }

    #[test]
    fn arbitrary_bytes_parse_to_the_header_they_encode(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
        // Anything that parses is the unique minimal encoding of what it parsed to.
        if let Ok((header, len)) = Header::parse(&bytes) {
            let mut buf = [0u8; Header::MAX_LEN];
            prop_assert_eq!(header.encode(&mut buf), Ok(len));
            prop_assert_eq!(&buf[..len], &bytes[..len]);
        }
    }

    #[test]
    fn arbitrary_frames_do_not_decrypt(
        suite in suite(),
        frame in prop::collection::vec(any::<u8>(), 0..96),
        metadata in prop::collection::vec(any::<u8>(), 0..8),
        kid in 0u64..10,
    ) {
        let (_, rx) = pair(suite, Kid(kid));
        let mut out = [0u8; 96];
        prop_assert!(rx.decrypt(&metadata, &frame, &mut out).is_err());
        prop_assert!(rx.decrypt(&metadata, &frame, &mut []).is_err());
    }

    #[test]
    fn any_flipped_bit_fails(
        suite in suite(),
        kid in prop::sample::select(vec![0u64, 7, 8, 300, u64::MAX]),
        ctr: u64,
        metadata in prop::collection::vec(any::<u8>(), 0..16),
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        flip: prop::sample::Index,
        bit in 0u8..8,
        in_metadata: bool,
    ) {
        let (tx, rx) = pair(suite, Kid(kid));
        let mut frame = [0u8; 128];
        let n = tx.encrypt(Kid(kid), Ctr(ctr), &metadata, &plaintext, &mut frame).unwrap();
        let mut frame = frame[..n].to_vec();
        let mut out = [0u8; 128];
        let got = rx.decrypt(&metadata, &frame, &mut out).unwrap();
        prop_assert_eq!(&out[..got.len], &plaintext[..]);

        let mut metadata = metadata;
        if in_metadata && !metadata.is_empty() {
            let i = flip.index(metadata.len());
            metadata[i] ^= 1 << bit;
            prop_assert_eq!(rx.decrypt(&metadata, &frame, &mut out), Err(Error::Authentication));
            return Ok(());
        }
        let header_len = Header::new(Kid(kid), Ctr(ctr)).encoded_len();
        let i = flip.index(frame.len());
        frame[i] ^= 1 << bit;
        let result = rx.decrypt(&metadata, &frame, &mut out);
        if i >= header_len {
            prop_assert_eq!(result, Err(Error::Authentication));
        } else {
            // A header flip may also break the header or name another KID; any error will do.
            prop_assert!(result.is_err());
        }
    }
}

#[test]
fn keys_are_for_one_direction_and_unknown_kids_are_reported() {
    let (tx, rx) = pair(CipherSuite::Aes128GcmSha256_128, Kid(3));
    let mut frame = [0u8; 64];
    assert_eq!(rx.encrypt(Kid(3), Ctr(0), b"", b"x", &mut frame), Err(Error::WrongUsage(Kid(3))));
    let n = tx.encrypt(Kid(3), Ctr(0), b"", b"x", &mut frame).unwrap();
    assert_eq!(tx.decrypt(b"", &frame[..n], &mut [0u8; 64]), Err(Error::WrongUsage(Kid(3))));
    assert_eq!(tx.encrypt(Kid(4), Ctr(0), b"", b"x", &mut frame), Err(Error::UnknownKid(Kid(4))));
    let mut small = [0u8; 4];
    assert_eq!(tx.encrypt(Kid(3), Ctr(0), b"", b"x", &mut small), Err(Error::BufferTooSmall));
    assert_eq!(rx.decrypt(b"", &frame[..n], &mut []), Err(Error::BufferTooSmall));
    assert_eq!(rx.decrypt(b"", &frame[..10], &mut [0u8; 64]), Err(Error::TooShort));
    let long = [0u8; sframe::MAX_METADATA_LEN + 1];
    assert_eq!(tx.encrypt(Kid(3), Ctr(1), &long, b"x", &mut frame), Err(Error::MetadataTooLong));
}

#[test]
fn key_store_capacity_and_removal() {
    let mut ctx = Context::<2>::new(CipherSuite::Aes256GcmSha512_128);
    ctx.insert(Kid(1), Usage::Decrypt, BASE_KEY).unwrap();
    assert_eq!(ctx.insert(Kid(1), Usage::Decrypt, BASE_KEY), Err(Error::DuplicateKid(Kid(1))));
    ctx.insert(Kid(2), Usage::Decrypt, BASE_KEY).unwrap();
    assert_eq!(ctx.insert(Kid(3), Usage::Decrypt, BASE_KEY), Err(Error::Full));
    assert!(ctx.remove(Kid(1)));
    assert!(!ctx.remove(Kid(1)));
    ctx.insert(Kid(3), Usage::Decrypt, BASE_KEY).unwrap();
}
