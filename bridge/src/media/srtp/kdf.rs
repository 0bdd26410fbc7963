//! SRTP key derivation (RFC 3711 §4.3) and the AES counter-mode keystream it and
//! AES_CM_128_HMAC_SHA1_* share (§4.1.1).
//!
//! The PRF is AES-CM keyed with the master key, with IV = (key_id XOR master_salt) * 2^16 and
//! a zero plaintext. With a key derivation rate of 0 (what DTLS-SRTP uses), key_id is just the
//! label in the top byte of 56 bits. AEAD_AES_256_GCM keys the same PRF with AES-256
//! (RFC 7714 §11, the AES_256_CM_PRF of RFC 6188 §5.2).

use aes::cipher::consts::U16;
use aes::cipher::{BlockEncrypt, BlockSizeUser, KeyInit, generic_array::GenericArray};
use aes::{Aes128, Aes256};
use zeroize::Zeroizing;

use super::KeyError;

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
/// bytes, starting at the value given) into `data`. Generic over the key size: the packet
/// transform uses AES-128, the key derivation AES-128 or AES-256.
pub fn apply_keystream<C>(cipher: &C, iv: &[u8; 16], data: &mut [u8])
where
    C: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
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
/// The master key is 16 bytes (AES-128 PRF) or 32 (AES-256 PRF); any other length is refused.
/// A 12-byte (AEAD) master salt is used left-aligned, zero-padded to 14 bytes, as libsrtp does.
pub fn derive(master_key: &[u8], master_salt: &[u8], label: Label, out: &mut [u8]) -> Result<(), KeyError> {
    let mut iv = Zeroizing::new([0u8; 16]);
    iv[..master_salt.len().min(14)].copy_from_slice(&master_salt[..master_salt.len().min(14)]);
    // key_id = label || 48-bit zero index, right-aligned in 112 bits: the label is byte 7.
    iv[7] ^= label as u8;
    out.fill(0);
    // Both ciphers zeroize their key schedules on drop (the `aes` crate's `zeroize` feature).
    match master_key.len() {
        16 => apply_keystream(&Aes128::new(GenericArray::from_slice(master_key)), &iv, out),
        32 => apply_keystream(&Aes256::new(GenericArray::from_slice(master_key)), &iv, out),
        _ => return Err(KeyError::MasterKeyLength),
    }
    Ok(())
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
        derive(&key, &salt, Label::RtpEncryption, &mut cipher_key).unwrap();
        assert_eq!(cipher_key, hex::<16>("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut cipher_salt = [0u8; 14];
        derive(&key, &salt, Label::RtpSalt, &mut cipher_salt).unwrap();
        assert_eq!(cipher_salt, hex::<14>("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, Label::RtpAuthentication, &mut auth).unwrap();
        assert_eq!(auth, hex::<20>("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    /// RFC 6188 §7.2: the AES_256_CM_PRF, which AEAD_AES_256_GCM derives its keys with.
    #[test]
    fn rfc6188_aes_256_key_derivation() {
        let key: [u8; 32] = hex("F0F04914B513F2763A1B1FA130F10E2998F6F6E43E4309D1E622A0E332B9F1B6");
        let salt: [u8; 14] = hex("3B04803DE51EE7C96423AB5B78D2");
        let mut cipher_key = [0u8; 32];
        derive(&key, &salt, Label::RtpEncryption, &mut cipher_key).unwrap();
        assert_eq!(cipher_key, hex::<32>("5BA1064E30EC51613CAD926C5A28EF731EC7FB397F70A960653CAF06554CD8C4"));
        let mut cipher_salt = [0u8; 14];
        derive(&key, &salt, Label::RtpSalt, &mut cipher_salt).unwrap();
        assert_eq!(cipher_salt, hex::<14>("FA31791685CA444A9E07C6C64E93"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, Label::RtpAuthentication, &mut auth).unwrap();
        assert_eq!(auth, hex::<20>("FD9C32D39ED5FBB5A9DC96B30818454D1313DC05"));
    }

    #[test]
    fn other_master_key_lengths_are_refused() {
        for len in [0, 15, 17, 24, 31, 33] {
            let mut out = [0u8; 16];
            assert_eq!(
                derive(&vec![0; len], &[0; 14], Label::RtpEncryption, &mut out),
                Err(KeyError::MasterKeyLength)
            );
        }
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
