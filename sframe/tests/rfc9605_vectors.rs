//! Every RFC 9605 Appendix C test vector: header encode/parse (C.1), the AES-CTR + HMAC AEAD
//! (C.2), and whole-frame encryption with its intermediate values (C.3).

mod vectors;

use ring::hmac;
use sframe::aead::Aead;
use sframe::{CipherSuite, Context, Ctr, Header, KeyMaterial, Kid, Usage};
use vectors::{AES_CTR_HMAC, HEADERS, SFRAME, unhex};

#[test]
fn c1_header_vectors_encode_and_parse() {
    assert_eq!(HEADERS.len(), 289);
    for &(kid, ctr, encoded) in HEADERS {
        let expected = unhex(encoded);
        let header = Header::new(Kid(kid), Ctr(ctr));
        let mut buf = [0u8; Header::MAX_LEN];
        let len = header.encode(&mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..], "encode kid={kid:#x} ctr={ctr:#x}");
        assert_eq!(header.encoded_len(), expected.len());
        assert_eq!(Header::parse(&expected), Ok((header, expected.len())), "parse {encoded}");
        // Trailing ciphertext does not change the parse.
        let mut with_body = expected.clone();
        with_body.extend_from_slice(&[0xaa; 20]);
        assert_eq!(Header::parse(&with_body), Ok((header, expected.len())));
    }
}

#[test]
fn c2_aes_ctr_hmac_aead_vectors() {
    assert_eq!(AES_CTR_HMAC.len(), 3);
    for v in AES_CTR_HMAC {
        let suite = CipherSuite::from_id(v.cipher_suite).unwrap();
        let key = unhex(v.key);
        // derive_subkeys (§4.5.1): the AES key is the first Nka = 16 bytes, the rest is HMAC's.
        assert_eq!((&key[..16], &key[16..]), (&unhex(v.enc_key)[..], &unhex(v.auth_key)[..]));
        let aead = Aead::new(suite, &key).unwrap();
        let nonce: [u8; 12] = unhex(v.nonce).try_into().unwrap();
        let (aad, pt, ct) = (unhex(v.aad), unhex(v.pt), unhex(v.ct));

        let mut sealed = pt.clone();
        let mut tag = vec![0u8; suite.nt()];
        aead.seal(&nonce, &aad, &mut sealed, &mut tag).unwrap();
        assert_eq!([sealed, tag.clone()].concat(), ct, "suite {:#06x} encrypt", v.cipher_suite);

        let (body, tag) = ct.split_at(ct.len() - suite.nt());
        let mut opened = vec![0u8; body.len()];
        aead.open(&nonce, &aad, body, tag, &mut opened).unwrap();
        assert_eq!(opened, pt, "suite {:#06x} decrypt", v.cipher_suite);
    }
}

#[test]
fn c3_sframe_vectors_derive_encrypt_and_decrypt() {
    assert_eq!(SFRAME.len(), 5);
    for v in SFRAME {
        let id = v.cipher_suite;
        let suite = CipherSuite::from_id(id).unwrap();
        let (kid, ctr) = (Kid(v.kid), Ctr(v.ctr));
        let base_key = unhex(v.base_key);

        // Labels: "SFrame 1.0 Secret key " + KID (8 bytes BE) + suite (2 bytes BE), §4.4.2.
        let tail = [&v.kid.to_be_bytes()[..], &id.to_be_bytes()[..]].concat();
        assert_eq!(unhex(v.sframe_key_label), [&b"SFrame 1.0 Secret key "[..], &tail].concat());
        assert_eq!(unhex(v.sframe_salt_label), [&b"SFrame 1.0 Secret salt "[..], &tail].concat());

        // sframe_secret = HKDF-Extract("", base_key) = HMAC(zero-length key, base_key). ring keeps
        // the PRK opaque, so check the vector's value with HMAC directly.
        let hmac_alg = if suite.nh() == 64 { hmac::HMAC_SHA512 } else { hmac::HMAC_SHA256 };
        let secret = hmac::sign(&hmac::Key::new(hmac_alg, &[]), &base_key);
        assert_eq!(secret.as_ref(), &unhex(v.sframe_secret)[..], "suite {id:#06x} sframe_secret");

        let material = KeyMaterial::derive(suite, kid, &base_key);
        assert_eq!(material.key(), &unhex(v.sframe_key)[..], "suite {id:#06x} sframe_key");
        assert_eq!(&material.salt()[..], &unhex(v.sframe_salt)[..], "suite {id:#06x} sframe_salt");
        assert_eq!(&material.nonce(ctr)[..], &unhex(v.nonce)[..], "suite {id:#06x} nonce");

        let metadata = unhex(v.metadata);
        let mut header = [0u8; Header::MAX_LEN];
        let header_len = Header::new(kid, ctr).encode(&mut header).unwrap();
        assert_eq!([&header[..header_len], &metadata[..]].concat(), unhex(v.aad), "suite {id:#06x} aad");

        let (pt, ct) = (unhex(v.pt), unhex(v.ct));
        let mut sender = Context::<2>::new(suite);
        sender.insert(kid, Usage::Encrypt, &base_key).unwrap();
        let mut out = [0u8; 128];
        let n = sender.encrypt(kid, ctr, &metadata, &pt, &mut out).unwrap();
        assert_eq!(&out[..n], &ct[..], "suite {id:#06x} ciphertext");
        assert_eq!(n, sender.ciphertext_len(kid, ctr, pt.len()));

        let mut receiver = Context::<2>::new(suite);
        receiver.insert(kid, Usage::Decrypt, &base_key).unwrap();
        let mut plain = [0u8; 128];
        let got = receiver.decrypt(&metadata, &ct, &mut plain).unwrap();
        assert_eq!((got.kid, got.ctr), (kid, ctr));
        assert_eq!(&plain[..got.len], &pt[..], "suite {id:#06x} decrypt");
    }
}
