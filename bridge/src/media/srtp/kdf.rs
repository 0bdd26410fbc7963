//! SRTP key derivation (RFC 3711 §4.3) and the AES counter-mode keystream it and
//! AES_CM_128_HMAC_SHA1_* share (§4.1.1).
//!
//! The PRF is AES-CM keyed with the master key, with IV = (key_id XOR master_salt) * 2^16 and
//! a zero plaintext. With a key derivation rate of 0 (what DTLS-SRTP uses), key_id is just the
//! label in the top byte of 56 bits.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use zeroize::Zeroizing;

/// What a derived key is for (RFC 3711 §4.3.2 labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Label {
    RtpEncryption = 0,
    RtpAuthentication = 1,
    RtpSalt = 2,
    RtcpEncryption = 3,
    RtcpAuthentication = 4,
    RtcpSalt = 5,
}

/// Blocks encrypted per AES call: lets AES-NI pipeline several blocks.
const BATCH: usize = 8;

/// XORs the AES-CTR keystream for counter block `iv` (16 bytes, counter in the last two
/// bytes, starting at the value given) into `data`.
pub fn apply_keystream(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let mut counter = u128::from_be_bytes(*iv);
    for chunk in data.chunks_mut(16 * BATCH) {
        let blocks = chunk.len().div_ceil(16);
        let mut keystream = [GenericArray::from([0u8; 16]); BATCH];
        for block in &mut keystream[..blocks] {
            // Only the low 16 bits count (RFC 3711 §4.1.1): a packet never needs 2^16 blocks.
            *block = GenericArray::from(counter.to_be_bytes());
            counter = (counter & !0xffff) | ((counter + 1) & 0xffff);
        }
        cipher.encrypt_blocks(&mut keystream[..blocks]);
        for (data, key) in chunk.chunks_mut(16).zip(&keystream) {
            if let Ok(block) = <&mut [u8; 16]>::try_from(&mut *data) {
                // Whole blocks as one 128-bit XOR; only a packet's last block goes bytewise.
                let key = u128::from_ne_bytes(key.as_slice().try_into().expect("AES blocks are 16 bytes"));
                *block = (u128::from_ne_bytes(*block) ^ key).to_ne_bytes();
            } else {
                data.iter_mut().zip(key.iter()).for_each(|(b, k)| *b ^= k);
            }
        }
    }
}

/// Derives `out.len()` bytes for `label` from the master key and salt (key derivation rate 0).
/// A 12-byte (AEAD) master salt is used left-aligned, zero-padded to 14 bytes, as libsrtp does.
pub fn derive(master_key: &[u8; 16], master_salt: &[u8], label: Label, out: &mut [u8]) {
    let cipher = Aes128::new(GenericArray::from_slice(master_key));
    let mut iv = Zeroizing::new([0u8; 16]);
    iv[..master_salt.len().min(14)].copy_from_slice(&master_salt[..master_salt.len().min(14)]);
    // key_id = label || 48-bit zero index, right-aligned in 112 bits: the label is byte 7.
    iv[7] ^= label as u8;
    out.fill(0);
    apply_keystream(&cipher, &iv, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> =
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    /// RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_key_derivation() {
        let key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut cipher_key = [0u8; 16];
        derive(&key, &salt, Label::RtpEncryption, &mut cipher_key);
        assert_eq!(cipher_key, hex::<16>("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut cipher_salt = [0u8; 14];
        derive(&key, &salt, Label::RtpSalt, &mut cipher_salt);
        assert_eq!(cipher_salt, hex::<14>("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, Label::RtpAuthentication, &mut auth);
        assert_eq!(auth, hex::<20>("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for SSRC 0, index 0.
    #[test]
    fn rfc3711_keystream() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C");
        let cipher = Aes128::new(GenericArray::from_slice(&key));
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&hex::<14>("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut stream = vec![0u8; 16 * 0xff02];
        apply_keystream(&cipher, &iv, &mut stream);
        let block = |i: usize| &stream[i * 16..i * 16 + 16];
        assert_eq!(block(0), hex::<16>("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), hex::<16>("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), hex::<16>("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xfeff), hex::<16>("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xff00), hex::<16>("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xff01), hex::<16>("6A2CC3787889374FBEB4C81B17BA6C44"));
    }
}
