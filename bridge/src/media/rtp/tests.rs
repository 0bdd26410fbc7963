use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

#[test]
fn fixed_header_fields() {
    let packet = hex("80e1 1234 00000064 deadbeef 01 02 03");
    let header = RtpHeader::parse(&packet).unwrap();
    assert!(header.marker);
    assert_eq!(
        (header.payload_type, header.sequence, header.timestamp, header.ssrc),
        (97, 0x1234, 100, 0xdeadbeef)
    );
    assert_eq!((header.header_len, header.payload_len), (12, 3));
    assert_eq!(header.extensions().count(), 0);
}

#[test]
fn one_byte_extensions_with_padding_and_audio_level() {
    // CC=1, X=1: one CSRC, then a one-byte block of 2 words: id 1 len 1 (audio level, voice,
    // -42 dBov), a padding byte, id 3 len 2, then padding.
    let packet = hex("9100 0001 00000000 00000001 cafebabe bede0002 10aa 00 3101 02 0000 00 ff");
    let header = RtpHeader::parse(&packet).unwrap();
    assert_eq!(header.csrcs().collect::<Vec<_>>(), [0xcafebabe]);
    let elements: Vec<_> = header.extensions().collect();
    assert_eq!(elements, [(1, &[0xaa][..]), (3, &[0x01, 0x02][..])]);
    assert_eq!(audio_level(header.extension(1).unwrap()), Some((true, 42)));
    assert_eq!(header.header_len, 12 + 4 + 4 + 8);
}

#[test]
fn two_byte_extensions() {
    let packet = hex("9000 0001 00000000 00000001 10000002 0102aabb 00 2000 00 ");
    let header = RtpHeader::parse(&packet).unwrap();
    let elements: Vec<_> = header.extensions().collect();
    assert_eq!(elements, [(1, &[0xaa, 0xbb][..]), (32, &[][..])]);
}

#[test]
fn malformed_headers_are_errors() {
    assert_eq!(RtpHeader::parse(&[0x80; 11]).unwrap_err(), RtpError::NotRtp);
    assert_eq!(RtpHeader::parse(&[0x40; 12]).unwrap_err(), RtpError::NotRtp);
    assert_eq!(RtpHeader::parse(&hex("8f00 0000 00000000 00000000")).unwrap_err(), RtpError::HeaderOverrun);
    assert_eq!(
        RtpHeader::parse(&hex("9000 0000 00000000 00000000 bede00ff")).unwrap_err(),
        RtpError::HeaderOverrun
    );
    assert_eq!(RtpHeader::parse(&hex("a000 0000 00000000 00000000 0005")).unwrap_err(), RtpError::BadPadding);
    assert_eq!(RtpHeader::parse(&hex("a000 0000 00000000 00000000 0000")).unwrap_err(), RtpError::BadPadding);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Arbitrary bytes never panic the parser or the extension walk, and whatever parses keeps
    /// its slices inside the packet.
    #[test]
    fn arbitrary_packets_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..300), first in any::<u8>()) {
        if let Some(b) = bytes.first_mut() {
            *b = (first & 0x3f) | 0x80; // version 2, any flags and CSRC count
        }
        if let Ok(header) = RtpHeader::parse(&bytes) {
            prop_assert!(header.header_len + header.payload_len <= bytes.len());
            prop_assert_eq!(header_len(&bytes), Some(header.header_len));
            for (_, value) in header.extensions() {
                prop_assert!(value.len() <= bytes.len());
                let _ = audio_level(value);
            }
            let _ = header.csrcs().count();
        }
    }
}
