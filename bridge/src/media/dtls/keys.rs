//! SRTP master keys from the DTLS handshake (RFC 5764 §4.2): the TLS exporter with label
//! "EXTRACTOR-dtls_srtp" and no context yields 2 * (key + salt) bytes:
//!
//! ```text
//! | client_write_SRTP_master_key | server_write_SRTP_master_key |
//! | client_write_SRTP_master_salt | server_write_SRTP_master_salt |
//! ```
//!
//! The client protects what it sends with the client half; we are the server.

use std::fmt;

use openssl::srtp::SrtpProfileId;
use openssl::ssl::SslRef;
use zeroize::{Zeroize, Zeroizing};

use super::DtlsError;
use crate::media::srtp::Profile;

/// RFC 5764 §4.2.
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// Longest master key (AEAD_AES_256_GCM) and salt (AES-CM) of the profiles we offer.
const MAX_KEY_LEN: usize = 32;
const MAX_SALT_LEN: usize = 14;

/// One direction's SRTP master key and salt. Wiped on drop; `Debug` shows only lengths.
pub struct KeyMaterial {
    key: [u8; MAX_KEY_LEN],
    key_len: usize,
    salt: [u8; MAX_SALT_LEN],
    salt_len: usize,
}

impl KeyMaterial {
    /// `key` and `salt` are at most 32 and 14 bytes: the caller slices them by profile.
    fn new(key: &[u8], salt: &[u8]) -> Self {
        let mut material =
            Self { key: [0; MAX_KEY_LEN], key_len: key.len(), salt: [0; MAX_SALT_LEN], salt_len: salt.len() };
        material.key[..key.len()].copy_from_slice(key);
        material.salt[..salt.len()].copy_from_slice(salt);
        material
    }

    /// The master key, [`Profile::master_key_len`] bytes.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The master salt, [`Profile::master_salt_len`] bytes.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.salt_len]
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial {{ key: {} bytes, salt: {} bytes }}", self.key_len, self.salt_len)
    }
}

/// The negotiated profile and both directions' master keys.
#[derive(Debug)]
pub struct SrtpKeys {
    pub profile: Profile,
    /// The server's half: what the bridge protects with.
    pub local: KeyMaterial,
    /// The client's half: what the bridge unprotects with.
    pub remote: KeyMaterial,
}

/// Our profile for an OpenSSL profile id; `None` for those we do not offer.
fn profile(id: SrtpProfileId) -> Option<Profile> {
    match id {
        SrtpProfileId::SRTP_AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
        SrtpProfileId::SRTP_AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
        SrtpProfileId::SRTP_AES128_CM_SHA1_80 => Some(Profile::Aes128CmHmacSha1_80),
        SrtpProfileId::SRTP_AES128_CM_SHA1_32 => Some(Profile::Aes128CmHmacSha1_32),
        _ => None,
    }
}

/// Which half of the exported keys is local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Server,
    /// The client's view, for tests that play the browser.
    #[cfg_attr(not(test), allow(dead_code))]
    Client,
}

/// The profile OpenSSL selected and the exported keys, split by `role`.
pub(super) fn export(ssl: &SslRef, role: Role) -> Result<SrtpKeys, DtlsError> {
    let selected = ssl.selected_srtp_profile().ok_or(DtlsError::NoSrtpProfile)?;
    let profile = profile(selected.id()).ok_or(DtlsError::NoSrtpProfile)?;
    let (key_len, salt_len) = (profile.master_key_len(), profile.master_salt_len());
    let mut material = Zeroizing::new([0u8; 2 * (MAX_KEY_LEN + MAX_SALT_LEN)]);
    let material = &mut material[..2 * (key_len + salt_len)];
    ssl.export_keying_material(material, EXPORTER_LABEL, None).map_err(|_| DtlsError::HandshakeFailed)?;
    let (keys, salts) = material.split_at(2 * key_len);
    let (client_key, server_key) = keys.split_at(key_len);
    let (client_salt, server_salt) = salts.split_at(salt_len);
    let client = KeyMaterial::new(client_key, client_salt);
    let server_half = KeyMaterial::new(server_key, server_salt);
    Ok(match role {
        Role::Server => SrtpKeys { profile, local: server_half, remote: client },
        Role::Client => SrtpKeys { profile, local: client, remote: server_half },
    })
}
