//! SFrame cipher suites (RFC 9605 §4.5, IANA registry §8.1) and their constants.

/// A cipher suite: the AEAD that seals frames and the hash that HKDF uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// 0x0001: AES-128-CTR with HMAC-SHA-256 truncated to 80 bits (§4.5.1).
    AesCtr128HmacSha256_80,
    /// 0x0002: as 0x0001 with a 64-bit tag.
    AesCtr128HmacSha256_64,
    /// 0x0003: as 0x0001 with a 32-bit tag.
    AesCtr128HmacSha256_32,
    /// 0x0004: AES-128-GCM, HKDF-SHA-256.
    Aes128GcmSha256_128,
    /// 0x0005: AES-256-GCM, HKDF-SHA-512.
    Aes256GcmSha512_128,
}

/// The hash function a suite uses for HKDF (and for HMAC in the CTR suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl CipherSuite {
    pub const ALL: [CipherSuite; 5] = [
        CipherSuite::AesCtr128HmacSha256_80,
        CipherSuite::AesCtr128HmacSha256_64,
        CipherSuite::AesCtr128HmacSha256_32,
        CipherSuite::Aes128GcmSha256_128,
        CipherSuite::Aes256GcmSha512_128,
    ];

    /// The suite for an IANA identifier, if we implement it.
    pub fn from_id(id: u16) -> Option<CipherSuite> {
        CipherSuite::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The IANA identifier; it enters key derivation as 2 big-endian bytes (§4.4.2).
    pub fn id(self) -> u16 {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 0x0001,
            CipherSuite::AesCtr128HmacSha256_64 => 0x0002,
            CipherSuite::AesCtr128HmacSha256_32 => 0x0003,
            CipherSuite::Aes128GcmSha256_128 => 0x0004,
            CipherSuite::Aes256GcmSha512_128 => 0x0005,
        }
    }

    pub fn hash(self) -> Hash {
        match self {
            CipherSuite::Aes256GcmSha512_128 => Hash::Sha512,
            _ => Hash::Sha256,
        }
    }

    /// Nh: hash output size.
    pub fn nh(self) -> usize {
        match self.hash() {
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }

    /// Nk: AEAD key size. For the CTR suites it is the AES key (Nka = 16) followed by the
    /// HMAC key (Nh), §4.5.1.
    pub fn nk(self) -> usize {
        match self {
            CipherSuite::Aes128GcmSha256_128 => 16,
            CipherSuite::Aes256GcmSha512_128 => 32,
            _ => 16 + 32,
        }
    }

    /// Nn: nonce size, 12 bytes in every suite.
    pub fn nn(self) -> usize {
        NONCE_LEN
    }

    /// Nt: authentication tag size, the bytes a frame grows by besides the header.
    pub fn nt(self) -> usize {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 10,
            CipherSuite::AesCtr128HmacSha256_64 => 8,
            CipherSuite::AesCtr128HmacSha256_32 => 4,
            CipherSuite::Aes128GcmSha256_128 | CipherSuite::Aes256GcmSha512_128 => 16,
        }
    }
}

/// Nn for every suite RFC 9605 defines.
pub const NONCE_LEN: usize = 12;

/// The largest Nk; sizes the key buffers so derivation never allocates.
pub const MAX_KEY_LEN: usize = 48;

/// The largest Nt.
pub const MAX_TAG_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_constants_match_rfc_table() {
        for s in CipherSuite::ALL {
            assert_eq!(CipherSuite::from_id(s.id()), Some(s));
            assert!(s.nk() <= MAX_KEY_LEN && s.nt() <= MAX_TAG_LEN);
        }
        assert_eq!(CipherSuite::from_id(0), None);
        assert_eq!(CipherSuite::from_id(6), None);
    }
}
