//! Known-answer tests: RFC 7714 §16 and §17 (GCM with given session keys, 128- and 256-bit)
//! and libsrtp's output for an all-zero master key and salt (the whole path: key derivation,
//! cipher, tag). The AES-256 key derivation is pinned by RFC 6188 §7.2 in `kdf.rs`.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// The RTP packet of RFC 7714 §16: "Gallia est omnis divisa in partes tres".
fn plain_rtp() -> Vec<u8> {
    hex("8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
         69736120 696e2070 61727465 73207472 6573")
}

/// libsrtp 2 protecting `plain_rtp` with master key and salt all zero.
const LIBSRTP_CM_80: &str = "8040f17b 8041f8d3 5501a0b2 f82900a9 9893e1a9 18a9ba8c c1241874 cb648b7b
     edb594fb 7635a15d 100320ea 03d40e1b 17747f45 49bc5722 72c55413";
const LIBSRTP_GCM: &str = "8040f17b 8041f8d3 5501a0b2 11743945 e80b2e35 a6e26008 c248951f 36eafc8d
     89a929fc 54c9bab4 f895957c 4123e94a 658ce832 d76d5097 5fd2c993 5d13ebb3 ec4f";

fn protect(profile: Profile, salt_len: usize) -> Vec<u8> {
    let mut context = Context::new(profile, &[0; 16], &vec![0; salt_len]).unwrap();
    let plain = plain_rtp();
    let mut buf = plain.clone();
    buf.resize(plain.len() + profile.overhead(), 0);
    let len = context.protect_rtp(&mut buf, plain.len()).unwrap();
    buf.truncate(len);
    buf
}

/// RFC 7714 §16 and §17: session keys (the first 16 or all 32 bytes) and salt.
const RFC7714_KEY: &str = "000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f";
const RFC7714_SALT: &str = "517569642070726f2071756f";

fn rfc7714_gcm(key_len: usize) -> gcm::Gcm {
    let salt: [u8; 12] = hex(RFC7714_SALT).try_into().unwrap();
    gcm::Gcm::new(&hex(RFC7714_KEY)[..key_len], &salt)
}

fn check_rfc7714_srtp(key_len: usize, expected: &str) {
    let gcm = rfc7714_gcm(key_len);
    let plain = plain_rtp();
    let mut buf = plain.clone();
    buf.resize(plain.len() + gcm::TAG_LEN, 0);
    let (seq, ssrc) = rtp_ids(&buf);
    let len = gcm.seal(&mut buf, 12, plain.len(), ssrc, u64::from(seq)).unwrap();
    assert_eq!(&buf[12..len], &hex(expected)[..], "{key_len}-byte key");
    assert_eq!(gcm.open(&mut buf, 12, len, ssrc, u64::from(seq)), Ok(plain.len()));
    assert_eq!(&buf[..plain.len()], &plain[..]);
}

/// RFC 7714 §16.1.1.
#[test]
fn rfc7714_gcm_vector() {
    check_rfc7714_srtp(
        16,
        "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
         899d7f27beb16a9152cf765ee4390cce",
    );
}

/// RFC 7714 §16.2.1: the same packet under AEAD_AES_256_GCM.
#[test]
fn rfc7714_gcm_256_vector() {
    check_rfc7714_srtp(
        32,
        "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
         7aa3db36dfffd6b0f9bb7878d7a76c13",
    );
}

/// The sender report RFC 7714 §17.1 to §17.4 protect (SSRC "Mars"; §17's preamble prints a
/// slightly different packet, the subsections agree with each other), with SRTCP index 0x5d4.
fn rfc7714_rtcp() -> Vec<u8> {
    hex("81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef deadbeef")
}

/// Seals `rfc7714_rtcp` as `protect_rtcp` lays it out (header, ciphertext, tag, E + index),
/// compares, and opens it again.
fn check_rfc7714_srtcp(key_len: usize, expected: &str) {
    let gcm = rfc7714_gcm(key_len);
    let plain = rfc7714_rtcp();
    let trailer = 0x8000_05d4u32.to_be_bytes();
    let aad = srtcp_aad(&plain[..RTCP_HEADER_LEN], trailer);
    let ssrc = u32::from_be_bytes(plain[4..8].try_into().unwrap());
    let mut data = plain[RTCP_HEADER_LEN..].to_vec();
    let tag = gcm.seal_detached(ssrc, 0x5d4, &aad, &mut data).unwrap();
    let protected = [&plain[..RTCP_HEADER_LEN], &data, &tag, &trailer].concat();
    assert_eq!(protected, hex(expected), "{key_len}-byte key");
    let mut sealed = [data, tag.to_vec()].concat();
    assert_eq!(gcm.open_detached(ssrc, 0x5d4, &aad, &mut sealed), Ok(plain.len() - RTCP_HEADER_LEN));
    assert_eq!(&sealed[..plain.len() - RTCP_HEADER_LEN], &plain[RTCP_HEADER_LEN..]);
}

/// RFC 7714 §17.1: SRTCP under AEAD_AES_128_GCM, AAD in network byte order.
#[test]
fn rfc7714_srtcp_gcm_vector() {
    check_rfc7714_srtcp(
        16,
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1 730d6fda
         4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4",
    );
}

/// RFC 7714 §17.2: SRTCP under AEAD_AES_256_GCM.
#[test]
fn rfc7714_srtcp_gcm_256_vector() {
    check_rfc7714_srtcp(
        32,
        "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d bffe0a50 a2eaa5c1 110555be
         8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c b26ac3be 800005d4",
    );
}

#[test]
fn key_material_must_fit_the_profile() {
    assert_eq!(Profile::AeadAes256Gcm.master_key_len(), 32);
    assert_eq!(Profile::AeadAes256Gcm.master_salt_len(), 12);
    assert_eq!(Profile::AeadAes256Gcm.overhead(), 16);
    for profile in ALL_PROFILES {
        let (key, salt) = (profile.master_key_len(), profile.master_salt_len());
        assert!(Context::new(profile, &vec![1; key], &vec![2; salt]).is_ok(), "{profile:?}");
        for bad_key in [0, key - 1, key + 1, 48 - key] {
            let err = Context::new(profile, &vec![1; bad_key], &vec![2; salt]).unwrap_err();
            assert_eq!(err, KeyError::MasterKeyLength, "{profile:?}, {bad_key}-byte key");
        }
        for bad_salt in [0, 12 + 14 - salt, 30] {
            let err = Context::new(profile, &vec![1; key], &vec![2; bad_salt]).unwrap_err();
            assert_eq!(err, KeyError::MasterSaltLength, "{profile:?}, {bad_salt}-byte salt");
        }
    }
}

const ALL_PROFILES: [Profile; 4] = [
    Profile::AeadAes128Gcm,
    Profile::AeadAes256Gcm,
    Profile::Aes128CmHmacSha1_80,
    Profile::Aes128CmHmacSha1_32,
];

#[test]
fn matches_libsrtp_for_every_profile() {
    assert_eq!(protect(Profile::AeadAes128Gcm, 12), hex(LIBSRTP_GCM));
    assert_eq!(protect(Profile::Aes128CmHmacSha1_80, 14), hex(LIBSRTP_CM_80));
    let cm32 = hex(LIBSRTP_CM_80);
    assert_eq!(protect(Profile::Aes128CmHmacSha1_32, 14), cm32[..cm32.len() - 6]);
}

#[test]
fn unprotect_restores_and_rejects_tampering_and_replay() {
    for (profile, salt_len, protected) in [
        (Profile::AeadAes128Gcm, 12, hex(LIBSRTP_GCM)),
        (Profile::Aes128CmHmacSha1_80, 14, hex(LIBSRTP_CM_80)),
    ] {
        let mut receiver = Context::new(profile, &[0; 16], &vec![0; salt_len]).unwrap();
        for i in 0..protected.len() {
            let mut tampered = protected.clone();
            tampered[i] ^= 0x01;
            assert!(receiver.unprotect_rtp(&mut tampered).is_err(), "{profile:?}: byte {i} flipped");
        }
        let mut buf = protected.clone();
        let len = receiver.unprotect_rtp(&mut buf).unwrap();
        assert_eq!(&buf[..len], &plain_rtp()[..], "{profile:?}");
        let mut again = protected.clone();
        assert_eq!(receiver.unprotect_rtp(&mut again), Err(SrtpError::Replayed), "{profile:?}");
    }
}

#[test]
fn round_trip_across_a_sequence_wrap() {
    for profile in ALL_PROFILES {
        let (key, salt) = (vec![9; profile.master_key_len()], vec![7; profile.master_salt_len()]);
        let (mut sender, mut receiver) =
            (Context::new(profile, &key, &salt).unwrap(), Context::new(profile, &key, &salt).unwrap());
        let mut packet = plain_rtp();
        for seq in (65000u32..66000).map(|s| (s % 65536) as u16) {
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            let mut buf = packet.clone();
            buf.resize(packet.len() + profile.overhead(), 0);
            let len = sender.protect_rtp(&mut buf, packet.len()).unwrap();
            assert_eq!(receiver.unprotect_rtp(&mut buf[..len]), Ok(packet.len()), "{profile:?} seq {seq}");
            assert_eq!(&buf[..packet.len()], &packet[..]);
        }
        let (_, ssrc) = rtp_ids(&packet);
        let roc = receiver.streams.get(ssrc).unwrap().roc();
        assert_eq!(roc, 1, "{profile:?}: the rollover counter moved on");
    }
}

#[test]
fn malformed_packets_are_refused_without_panicking() {
    let mut context = Context::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 12]).unwrap();
    for bad in [&[][..], &[0x80; 11], &[0x40; 40], &[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]]
    {
        let mut buf = bad.to_vec();
        assert!(context.unprotect_rtp(&mut buf).is_err());
        let len = buf.len();
        buf.resize(len + 16, 0);
        assert!(context.protect_rtp(&mut buf, len).is_err());
    }
    let mut short = plain_rtp()[..20].to_vec();
    assert_eq!(context.unprotect_rtp(&mut short), Err(SrtpError::TooShort));
}

/// The compound RTCP packet libsrtp's vectors protect: an empty sender report of SSRC deadbeef.
fn plain_rtcp() -> Vec<u8> {
    hex("81c80005 deadbeef 00000000 00000000 00000000 00000000 00000000")
}

/// libsrtp 2 protecting `plain_rtcp` (SRTCP index 1) with master key and salt all zero.
const LIBSRTP_CM_80_RTCP: &str =
    "81c80005 deadbeef bcddb2a1 807f8ee7 a890d503 ef23d91b 0bdeae8a 80000001 329c05e0 a130307f 0b1e";
const LIBSRTP_GCM_RTCP: &str = "81c80005 deadbeef 1fd6ff53 aa5817ea 0bcee128 14ad0ac7 cc2c9e75 107c6ca2
     2b64f04e ec0c98f1 123444d1 80000001";

fn protect_rtcp(profile: Profile) -> Vec<u8> {
    let (key, salt) = (vec![0; profile.master_key_len()], vec![0; profile.master_salt_len()]);
    let mut context = Context::new(profile, &key, &salt).unwrap();
    let plain = plain_rtcp();
    let mut buf = plain.clone();
    buf.resize(plain.len() + context.rtcp_overhead(), 0);
    let len = context.protect_rtcp(&mut buf, plain.len()).unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn srtcp_matches_libsrtp() {
    assert_eq!(protect_rtcp(Profile::Aes128CmHmacSha1_80), hex(LIBSRTP_CM_80_RTCP));
    assert_eq!(
        protect_rtcp(Profile::Aes128CmHmacSha1_32),
        hex(LIBSRTP_CM_80_RTCP),
        "SRTCP keeps 80-bit tags"
    );
}

/// The GCM SRTCP vector comes from a libsrtp that put the E flag and index into the
/// associated data little-endian (cisco/libsrtp#137, fixed in 2016; RFC 7714 §9.1 says network
/// order, as we do). Same keys and IV, so the ciphertext must match; with the old byte order
/// our cipher must reproduce its tag too, which pins the difference to that one detail.
#[test]
fn srtcp_gcm_differs_from_old_libsrtp_only_by_its_aad_byte_order() {
    let ours = protect_rtcp(Profile::AeadAes128Gcm);
    let theirs = hex(LIBSRTP_GCM_RTCP);
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours[..28], theirs[..28], "header and ciphertext");
    assert_eq!(ours[44..], theirs[44..], "E flag and index");
    assert_ne!(ours[28..44], theirs[28..44], "the tag covers the AAD");

    let context = Context::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 12]).unwrap();
    let Transform::Gcm(gcm) = &context.rtcp else { unreachable!("GCM profile") };
    let mut aad = [0u8; 12];
    aad[..8].copy_from_slice(&plain_rtcp()[..8]);
    aad[8..].copy_from_slice(&(0x8000_0001u32).to_le_bytes());
    let mut data = plain_rtcp()[8..].to_vec();
    let tag = gcm.seal_detached(0xdeadbeef, 1, &aad, &mut data).unwrap();
    assert_eq!(tag[..], theirs[28..44], "old libsrtp's tag is ours with a little-endian AAD word");
}

#[test]
fn srtcp_unprotect_restores_and_rejects_tampering_and_replay() {
    for (profile, protected) in [
        (Profile::Aes128CmHmacSha1_80, hex(LIBSRTP_CM_80_RTCP)),
        (Profile::AeadAes128Gcm, protect_rtcp(Profile::AeadAes128Gcm)),
        (Profile::AeadAes256Gcm, protect_rtcp(Profile::AeadAes256Gcm)),
    ] {
        let (key, salt) = (vec![0; profile.master_key_len()], vec![0; profile.master_salt_len()]);
        let mut receiver = Context::new(profile, &key, &salt).unwrap();
        for i in 0..protected.len() {
            let mut tampered = protected.clone();
            tampered[i] ^= 0x01;
            assert!(receiver.unprotect_rtcp(&mut tampered).is_err(), "{profile:?}: byte {i} flipped");
        }
        let mut buf = protected.clone();
        assert_eq!(receiver.unprotect_rtcp(&mut buf), Ok(plain_rtcp().len()), "{profile:?}");
        assert_eq!(&buf[..plain_rtcp().len()], &plain_rtcp()[..]);
        let mut again = protected.clone();
        assert_eq!(receiver.unprotect_rtcp(&mut again), Err(SrtpError::Replayed));
    }
}

/// `plain_rtp` with another SSRC and sequence number, protected by `sender`.
fn protect_as(sender: &mut Context, ssrc: u32, seq: u16) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain_rtp();
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let len = buf.len();
    buf.resize(len + sender.profile().overhead(), 0);
    let len = sender.protect_rtp(&mut buf, len)?;
    buf.truncate(len);
    Ok(buf)
}

/// `plain_rtcp` with another sender SSRC, protected by `sender`.
fn protect_rtcp_as(sender: &mut Context, ssrc: u32) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain_rtcp();
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let len = buf.len();
    buf.resize(len + sender.rtcp_overhead(), 0);
    let len = sender.protect_rtcp(&mut buf, len)?;
    buf.truncate(len);
    Ok(buf)
}

/// Distinct SSRCs, half of them consecutive (neighbours in the hash's input) and half spread.
fn ssrc(i: u32) -> u32 {
    if i.is_multiple_of(2) { 0x1000 + i } else { i.wrapping_mul(0x2545_f491) }
}

/// An SFU's outbound context, one per receiver, protects every stream forwarded to it: 60
/// SSRCs in a conference of 20 with audio, video and RTX, 1,000 here.
#[test]
fn a_context_follows_a_thousand_streams() {
    for profile in ALL_PROFILES {
        let (key, salt) = (vec![9; profile.master_key_len()], vec![7; profile.master_salt_len()]);
        let mut sender = Context::with_streams(profile, &key, &salt, 1024).unwrap();
        let mut receiver = Context::with_streams(profile, &key, &salt, 1024).unwrap();
        for seq in [1u16, 2] {
            for i in 0..1000 {
                let mut srtp = protect_as(&mut sender, ssrc(i), seq).unwrap();
                let len = receiver.unprotect_rtp(&mut srtp).unwrap();
                assert_eq!(rtp_ids(&srtp[..len]), (seq, ssrc(i)), "{profile:?}");
                let mut srtcp = protect_rtcp_as(&mut sender, ssrc(i)).unwrap();
                assert_eq!(receiver.unprotect_rtcp(&mut srtcp), Ok(plain_rtcp().len()), "{profile:?}");
            }
        }
        // Every stream kept its own window: the first packets are replays now.
        for i in (0..1000).step_by(37) {
            let mut again = protect_as(&mut Context::new(profile, &key, &salt).unwrap(), ssrc(i), 1).unwrap();
            assert_eq!(receiver.unprotect_rtp(&mut again), Err(SrtpError::Replayed), "{profile:?}");
        }
        for i in 1000..1024 {
            let mut srtp = protect_as(&mut sender, ssrc(i), 1).unwrap();
            assert!(receiver.unprotect_rtp(&mut srtp).is_ok(), "{profile:?}");
            let mut srtcp = protect_rtcp_as(&mut sender, ssrc(i)).unwrap();
            assert!(receiver.unprotect_rtcp(&mut srtcp).is_ok(), "{profile:?}");
        }
        assert_eq!(protect_as(&mut sender, ssrc(1024), 1), Err(SrtpError::TooManyStreams), "{profile:?}");
        assert_eq!(protect_rtcp_as(&mut sender, ssrc(1024)), Err(SrtpError::TooManyStreams));
        // An authentic packet of a 1,025th stream, protected elsewhere, is refused too.
        let mut elsewhere = Context::new(profile, &key, &salt).unwrap();
        let mut srtp = protect_as(&mut elsewhere, ssrc(1024), 1).unwrap();
        assert_eq!(receiver.unprotect_rtp(&mut srtp), Err(SrtpError::TooManyStreams), "{profile:?}");
        let mut srtcp = protect_rtcp_as(&mut elsewhere, ssrc(1024)).unwrap();
        assert_eq!(receiver.unprotect_rtcp(&mut srtcp), Err(SrtpError::TooManyStreams), "{profile:?}");
        // The streams it follows go on.
        let mut srtp = protect_as(&mut sender, ssrc(500), 3).unwrap();
        assert!(receiver.unprotect_rtp(&mut srtp).is_ok(), "{profile:?}");
        assert_eq!((receiver.streams.len, receiver.rtcp_streams.len), (1024, 1024));
    }
}

/// Whoever can send datagrams from a participant's address but lacks the keys must not be
/// able to fill the table and lock out the participant's real new streams.
#[test]
fn forged_packets_take_no_room() {
    for profile in ALL_PROFILES {
        let (key, salt) = (vec![9; profile.master_key_len()], vec![7; profile.master_salt_len()]);
        let mut sender = Context::new(profile, &key, &salt).unwrap();
        let mut receiver = Context::new(profile, &key, &salt).unwrap();
        let mut forger =
            Context::with_streams(profile, &vec![8; profile.master_key_len()], &salt, 128).unwrap();
        for i in 0..100 {
            // The same SSRC and sequence numbers the real streams use below, and others.
            let forged_ssrc = if i < 64 { ssrc(i) } else { 0xbad0_0000 + i };
            let mut srtp = protect_as(&mut forger, forged_ssrc, 1).unwrap();
            assert_eq!(
                receiver.unprotect_rtp(&mut srtp),
                Err(SrtpError::AuthenticationFailed),
                "{profile:?}"
            );
            let mut srtcp = protect_rtcp_as(&mut forger, forged_ssrc).unwrap();
            assert_eq!(receiver.unprotect_rtcp(&mut srtcp), Err(SrtpError::AuthenticationFailed));
        }
        assert_eq!((receiver.streams.len, receiver.rtcp_streams.len), (0, 0), "{profile:?}");
        for i in 0..DEFAULT_STREAMS as u32 {
            let mut srtp = protect_as(&mut sender, ssrc(i), 1).unwrap();
            assert!(receiver.unprotect_rtp(&mut srtp).is_ok(), "{profile:?}: stream {i}");
            let mut srtcp = protect_rtcp_as(&mut sender, ssrc(i)).unwrap();
            assert!(receiver.unprotect_rtcp(&mut srtcp).is_ok(), "{profile:?}: stream {i}");
        }
        let mut elsewhere = Context::new(profile, &key, &salt).unwrap();
        let mut srtp = protect_as(&mut elsewhere, 0x6565_6565, 1).unwrap();
        assert_eq!(receiver.unprotect_rtp(&mut srtp), Err(SrtpError::TooManyStreams), "{profile:?}");
        let mut srtcp = protect_rtcp_as(&mut elsewhere, 0x6565_6565).unwrap();
        assert_eq!(receiver.unprotect_rtcp(&mut srtcp), Err(SrtpError::TooManyStreams), "{profile:?}");
    }
}

/// SSRCs that all hash to the table's last slot: the probe wraps around to the first, and
/// each SSRC still finds its own slot.
#[test]
fn colliding_ssrcs_each_keep_their_window() {
    let mut streams = Streams::new(DEFAULT_STREAMS);
    let last = streams.slots.len() - 1;
    let colliding: Vec<u32> = (0u32..).filter(|&s| streams.find(s) == last).take(DEFAULT_STREAMS).collect();
    for (n, &ssrc) in colliding.iter().enumerate() {
        let at = streams.find(ssrc);
        assert_eq!(at, (last + n) % streams.slots.len(), "linear probing");
        streams.record(at, ssrc, u64::from(ssrc)).unwrap();
    }
    for &ssrc in &colliding {
        assert_eq!(streams.get(ssrc).unwrap().highest(), Some(u64::from(ssrc)));
    }
    let unknown = (0u32..).find(|s| !colliding.contains(s)).unwrap();
    assert!(streams.get(unknown).is_none());
    let at = streams.find(unknown);
    assert_eq!(streams.record(at, unknown, 0), Err(SrtpError::TooManyStreams));
}

proptest::proptest! {
    /// Whatever arrives from the network, unprotect returns an error or a length within the
    /// packet, and never panics, for every profile.
    #[test]
    fn unprotect_never_panics(datagram in proptest::collection::vec(proptest::num::u8::ANY, 0..1500), first in 0u8..=255) {
        for profile in [Profile::AeadAes128Gcm, Profile::AeadAes256Gcm, Profile::Aes128CmHmacSha1_80, Profile::Aes128CmHmacSha1_32] {
            let key = vec![3u8; profile.master_key_len()];
            let salt = vec![4u8; profile.master_salt_len()];
            let mut context = Context::new(profile, &key, &salt).unwrap();
            let mut packet = datagram.clone();
            if let Some(b) = packet.first_mut() {
                *b = first;
            }
            if let Ok(len) = context.unprotect_rtp(&mut packet) {
                proptest::prop_assert!(len <= datagram.len());
            }
            let mut packet = datagram.clone();
            if let Ok(len) = context.unprotect_rtcp(&mut packet) {
                proptest::prop_assert!(len <= datagram.len());
            }
        }
    }

    /// The table against a model: whatever SSRCs arrive, in whatever order, each is found
    /// where it was recorded, and new ones are refused exactly when the table is full.
    #[test]
    fn streams_behave_like_a_map(ssrcs in proptest::collection::vec(0u32..200, 0..300), max in 0usize..80) {
        let mut streams = Streams::new(max);
        let mut model = std::collections::HashMap::new();
        for (index, &ssrc) in ssrcs.iter().enumerate() {
            let ssrc = ssrc.wrapping_mul(0x0100_0193);
            let at = streams.find(ssrc);
            let full = model.len() == max && !model.contains_key(&ssrc);
            let recorded = streams.record(at, ssrc, index as u64);
            proptest::prop_assert_eq!(recorded.is_err(), full);
            if !full {
                model.insert(ssrc, index as u64);
            }
        }
        proptest::prop_assert_eq!(streams.len, model.len());
        for (ssrc, index) in model {
            proptest::prop_assert_eq!(streams.get(ssrc).and_then(ReplayWindow::highest), Some(index));
        }
    }
}
