//! Long-term credentials (RFC 8489 §9.2) for TURN: which keys a username may sign with, and
//! the nonces that bind a client to a recent challenge.
//!
//! Two sources of keys, as in coturn:
//! - `use-auth-secret`: the username is "<expiry>[:<tag>]" and the password
//!   base64(HMAC-SHA1(secret, username)) ([`stun::rest_api_password`]); a username whose expiry
//!   has passed is refused before any key is made. Several secrets may be configured while one
//!   is rotated out; each gives a candidate key.
//! - `lt-cred-mech` with `user=` lines: the key is MD5(username:realm:password), or given as such.
//!
//! Nonces are stateless: "<expiry, 8 hex digits><tag, 16 hex digits>" where the tag is an HMAC
//! under a key drawn at start over the expiry and the client's IP address. The server stores
//! nothing per client before it authenticates, so a flood of unauthenticated requests costs
//! no memory; a nonce is useless from another address, and after its expiry the client gets
//! 438 (Stale Nonce) with a fresh one, which it retries with at once.

use std::net::IpAddr;

use ring::hmac;

use crate::config::{TurnConfig, UserSecret};

/// How long a nonce stays fresh. Clients refresh allocations every few minutes and reuse
/// their nonce; an hour keeps them from a stale-nonce round trip on almost every refresh.
pub const NONCE_LIFETIME_S: u64 = 3600;
/// Length of a nonce: 8 hex digits of expiry, 16 of tag.
pub const NONCE_LEN: usize = 24;

/// Why a request's credentials are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No such user, or a REST API username that does not parse (401).
    UnknownUser,
    /// A REST API username whose expiry has passed (401).
    Expired,
}

/// The configured credentials.
#[derive(Debug)]
pub struct Credentials {
    realm: String,
    secrets: Vec<String>,
    users: Vec<(String, Key)>,
}

/// A long-term key. (`ring`'s key does not compare or print, which suits a secret.)
pub struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn hmac(&self) -> &hmac::Key {
        &self.0
    }
}

impl Credentials {
    pub fn new(config: &TurnConfig) -> Self {
        let realm = config.realm.clone();
        let users = if config.lt_cred_mech {
            config
                .users
                .iter()
                .map(|user| {
                    let key = match &user.secret {
                        UserSecret::Password(password) => stun::long_term_key(&user.name, &realm, password),
                        UserSecret::Key(md5) => hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, md5),
                    };
                    (user.name.clone(), Key(key))
                })
                .collect()
        } else {
            Vec::new()
        };
        let secrets = if config.use_auth_secret { config.static_auth_secrets.clone() } else { Vec::new() };
        Self { realm, secrets, users }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The keys `username` may have signed with at `now_unix` (seconds): one per configured
    /// user entry or secret. The caller checks MESSAGE-INTEGRITY against each.
    pub fn keys(&self, username: &str, now_unix: u64) -> Result<Vec<Key>, AuthError> {
        let mut keys = Vec::new();
        if let Some((_, key)) = self.users.iter().find(|(name, _)| name == username) {
            keys.push(Key(key.0.clone()));
        }
        if !self.secrets.is_empty() {
            match stun::rest_api_expiry(username) {
                Some(expiry) if expiry < now_unix && keys.is_empty() => return Err(AuthError::Expired),
                Some(expiry) if expiry < now_unix => {}
                Some(_) => keys.extend(self.secrets.iter().map(|secret| {
                    let password = stun::rest_api_password(secret, username);
                    Key(stun::long_term_key(username, &self.realm, &password))
                })),
                None => {}
            }
        }
        if keys.is_empty() { Err(AuthError::UnknownUser) } else { Ok(keys) }
    }
}

/// What a nonce check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Ours, but expired: answer 438 with a new one.
    Stale,
    /// Not one of ours (forged, from another address, malformed): answer 401.
    Invalid,
}

/// Mints and checks nonces with a key drawn when the server starts.
#[derive(Debug)]
pub struct Nonces {
    key: Key,
}

impl Nonces {
    pub fn new(key_bytes: &[u8; 32]) -> Self {
        Self { key: Key(hmac::Key::new(hmac::HMAC_SHA256, key_bytes)) }
    }

    /// A nonce for `client`, fresh until `now_unix + NONCE_LIFETIME_S`.
    pub fn mint(&self, client: IpAddr, now_unix: u64) -> String {
        // The expiry wraps in 2106; a nonce lives an hour, so a wrap is harmless.
        let expiry = (now_unix + NONCE_LIFETIME_S) as u32;
        let tag = self.tag(expiry, client);
        let mut nonce = format!("{expiry:08x}");
        for b in &tag {
            nonce.push_str(&format!("{b:02x}"));
        }
        nonce
    }

    pub fn check(&self, nonce: &[u8], client: IpAddr, now_unix: u64) -> NonceCheck {
        let Some((expiry, tag)) = parse_nonce(nonce) else { return NonceCheck::Invalid };
        let expected = self.tag(expiry, client);
        // Constant time, so that a forger learns nothing from how long a check takes.
        if !constant_time_eq(&expected, &tag) {
            return NonceCheck::Invalid;
        }
        // Serial-number arithmetic (RFC 1982): the 2106 wrap of the 32-bit expiry is harmless.
        if (expiry.wrapping_sub(now_unix as u32) as i32) < 0 { NonceCheck::Stale } else { NonceCheck::Fresh }
    }

    fn tag(&self, expiry: u32, client: IpAddr) -> [u8; 8] {
        let mut context = hmac::Context::with_key(self.key.hmac());
        context.update(&expiry.to_be_bytes());
        match client {
            IpAddr::V4(a) => context.update(&a.octets()),
            IpAddr::V6(a) => context.update(&a.octets()),
        }
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&context.sign().as_ref()[..8]);
        tag
    }
}

fn parse_nonce(nonce: &[u8]) -> Option<(u32, [u8; 8])> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let hex = |pair: &[u8]| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok();
    let mut expiry = [0u8; 4];
    for (b, pair) in expiry.iter_mut().zip(nonce[..8].chunks(2)) {
        *b = hex(pair)?;
    }
    let mut tag = [0u8; 8];
    for (b, pair) in tag.iter_mut().zip(nonce[8..].chunks(2)) {
        *b = hex(pair)?;
    }
    Some((u32::from_be_bytes(expiry), tag))
}

fn constant_time_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_172_800;

    fn config(text: &str) -> TurnConfig {
        TurnConfig::parse(text).unwrap().config
    }

    /// Whether `key` is the key of `username` with `password` in `realm`.
    fn is_key(key: &Key, username: &str, realm: &str, password: &str) -> bool {
        let message = b"any message";
        let tag = hmac::sign(key.hmac(), message);
        hmac::verify(&stun::long_term_key(username, realm, password), message, tag.as_ref()).is_ok()
    }

    #[test]
    fn shared_secret_credentials_last_until_their_expiry() {
        let secret = "0123456789abcdef0123";
        let c = Credentials::new(&config(&format!(
            "use-auth-secret\nstatic-auth-secret={secret}\nstatic-auth-secret=fedcba9876543210fedc\nrealm=meet\n"
        )));
        let username = format!("{}:3f2a9c", NOW + 60);
        let keys = c.keys(&username, NOW).unwrap();
        assert_eq!(keys.len(), 2, "one per secret while one is rotated out");
        let password = stun::rest_api_password(secret, &username);
        assert!(is_key(&keys[0], &username, "meet", &password));
        assert!(!is_key(&keys[1], &username, "meet", &password));
        assert_eq!(c.keys(&format!("{}:3f2a9c", NOW - 1), NOW).unwrap_err(), AuthError::Expired);
        assert_eq!(c.keys("ada", NOW).unwrap_err(), AuthError::UnknownUser);
    }

    #[test]
    fn configured_users_sign_with_their_long_term_key() {
        let c = Credentials::new(&config(
            "lt-cred-mech\nuser=ada:lovelace\nuser=bob:0x00112233445566778899aabbccddeeff\nrealm=meet\n",
        ));
        let keys = c.keys("ada", NOW).unwrap();
        assert!(keys.len() == 1 && is_key(&keys[0], "ada", "meet", "lovelace"));
        assert!(!is_key(&keys[0], "ada", "meet", "babbage"));
        assert_eq!(c.keys("bob", NOW).unwrap().len(), 1);
        assert_eq!(c.keys("eve", NOW).unwrap_err(), AuthError::UnknownUser);
        // A REST-looking name is just an unknown user without use-auth-secret.
        assert_eq!(c.keys(&format!("{}:x", NOW + 60), NOW).unwrap_err(), AuthError::UnknownUser);
    }

    #[test]
    fn nonces_are_bound_to_the_client_and_go_stale() {
        let nonces = Nonces::new(&[7; 32]);
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let nonce = nonces.mint(client, NOW);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(nonces.check(nonce.as_bytes(), client, NOW), NonceCheck::Fresh);
        assert_eq!(nonces.check(nonce.as_bytes(), client, NOW + NONCE_LIFETIME_S), NonceCheck::Fresh);
        assert_eq!(nonces.check(nonce.as_bytes(), client, NOW + NONCE_LIFETIME_S + 1), NonceCheck::Stale);
        let elsewhere: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(nonces.check(nonce.as_bytes(), elsewhere, NOW), NonceCheck::Invalid);
        assert_eq!(Nonces::new(&[8; 32]).check(nonce.as_bytes(), client, NOW), NonceCheck::Invalid);
        // A forged expiry breaks the tag.
        let mut forged = nonce.clone().into_bytes();
        forged[7] = if forged[7] == b'0' { b'1' } else { b'0' };
        assert_eq!(nonces.check(&forged, client, NOW), NonceCheck::Invalid);
        for junk in [&b""[..], b"short", b"zzzzzzzzzzzzzzzzzzzzzzzz", &[0xff; 24]] {
            assert_eq!(nonces.check(junk, client, NOW), NonceCheck::Invalid);
        }
    }
}
