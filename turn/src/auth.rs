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
//! The key's hash is the password algorithm the client chose (§9.2.2): MD5 unless it sent
//! PASSWORD-ALGORITHM SHA-256. Static users' keys of both kinds, and their USERHASHes
//! (SHA-256(username:realm), §14.4), are computed when the credentials are loaded. A REST API
//! username cannot be found from its USERHASH (the server has no list of the names it would
//! accept, only a secret that checks them), so USERHASH works for static users only; for other
//! hashes the answer is 401, as for any unknown user. A user given as a ready MD5 key has no
//! SHA-256 key, and is refused if it asks for SHA-256.
//!
//! Nonces are stateless: "obMatJos2" (the nonce cookie of §9.2), four base64 characters of
//! security-feature bits, then "<expiry, 8 hex digits><tag, 16 hex digits>" where the tag is an
//! HMAC under a key drawn at start over the expiry, the feature bits and the client's IP
//! address. The server stores nothing per client before it authenticates, so a flood of
//! unauthenticated requests costs no memory; a nonce is useless from another address, and
//! after its expiry the client gets 438 (Stale Nonce) with a fresh one, which it retries with
//! at once. The tag covers the feature bits, so a man in the middle cannot strip them to make
//! the server forget it offered SHA-256 (the bid-down attack of §9.2.1).

use std::net::IpAddr;

use ring::hmac;
use stun::{IntegrityKey, PasswordAlgorithm};

use crate::config::{TurnConfig, UserSecret};

/// How long a nonce stays fresh. Clients refresh allocations every few minutes and reuse
/// their nonce; an hour keeps them from a stale-nonce round trip on almost every refresh.
pub const NONCE_LIFETIME_S: u64 = 3600;
/// The nonce cookie (RFC 8489 §9.2): a nonce that starts with it carries security features.
pub const NONCE_COOKIE: &str = "obMatJos2";
/// Length of a nonce: the cookie, 4 base64 characters of features, 8 hex digits of expiry, 16
/// of tag.
pub const NONCE_LEN: usize = NONCE_COOKIE.len() + 4 + 24;
/// The password algorithms offered in PASSWORD-ALGORITHMS, in order of preference.
pub const PASSWORD_ALGORITHMS: [PasswordAlgorithm; 2] = [PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5];

/// The STUN security features a nonce advertises (RFC 8489 §18.1), 24 bits. Bits count from
/// the least significant, as verified erratum 6290 corrects §9.2 (the sample nonce of Appendix
/// B.1, "AAAC", is username anonymity alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features(u32);

impl Features {
    pub const NONE: Features = Features(0);
    /// PASSWORD-ALGORITHMS is offered and the bid-down checks apply.
    pub const PASSWORD_ALGORITHMS: Features = Features(1 << 0);
    /// USERHASH may be used instead of USERNAME.
    pub const USERNAME_ANONYMITY: Features = Features(1 << 1);

    pub fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    fn bytes(self) -> [u8; 3] {
        let [_, a, b, c] = self.0.to_be_bytes();
        [a, b, c]
    }
}

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
    users: Vec<User>,
}

/// A `user=` line, its keys made at load.
#[derive(Debug)]
struct User {
    name: String,
    userhash: [u8; 32],
    md5: IntegrityKey,
    /// None when the configuration gave the MD5 key rather than the password.
    sha256: Option<IntegrityKey>,
}

impl Credentials {
    pub fn new(config: &TurnConfig) -> Self {
        let realm = config.realm.clone();
        let users = if config.lt_cred_mech {
            config
                .users
                .iter()
                .map(|user| {
                    let (md5, sha256) = match &user.secret {
                        UserSecret::Password(password) => (
                            stun::long_term_key_with(PasswordAlgorithm::Md5, &user.name, &realm, password),
                            Some(stun::long_term_key_with(
                                PasswordAlgorithm::Sha256,
                                &user.name,
                                &realm,
                                password,
                            )),
                        ),
                        UserSecret::Key(md5) => (IntegrityKey::new(PasswordAlgorithm::Md5, md5), None),
                    };
                    User {
                        name: user.name.clone(),
                        userhash: stun::userhash(&user.name, &realm),
                        md5,
                        sha256,
                    }
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

    /// The features nonces advertise. Username anonymity only when every credential can be
    /// found by its USERHASH, that is without REST API secrets: a client that honours the bit
    /// would otherwise hide a REST username the server cannot find.
    pub fn features(&self) -> Features {
        let anonymity = self.secrets.is_empty() && !self.users.is_empty();
        Features::PASSWORD_ALGORITHMS.union(if anonymity {
            Features::USERNAME_ANONYMITY
        } else {
            Features::NONE
        })
    }

    /// The static user whose USERHASH is `hash`, if any.
    pub fn username_for_hash(&self, hash: &[u8; 32]) -> Option<&str> {
        self.users.iter().find(|user| user.userhash == *hash).map(|user| user.name.as_str())
    }

    /// The keys `username` may have signed with at `now_unix` (seconds) under `algorithm`: one
    /// per configured user entry or secret. The caller checks the integrity against each.
    pub fn keys(
        &self,
        username: &str,
        algorithm: PasswordAlgorithm,
        now_unix: u64,
    ) -> Result<Vec<IntegrityKey>, AuthError> {
        let mut keys = Vec::new();
        if let Some(user) = self.users.iter().find(|user| user.name == username) {
            let key = match algorithm {
                PasswordAlgorithm::Md5 => Some(&user.md5),
                PasswordAlgorithm::Sha256 => user.sha256.as_ref(),
            };
            keys.extend(key.cloned());
        }
        if !self.secrets.is_empty() {
            match stun::rest_api_expiry(username) {
                Some(expiry) if expiry < now_unix && keys.is_empty() => return Err(AuthError::Expired),
                Some(expiry) if expiry < now_unix => {}
                Some(_) => keys.extend(self.secrets.iter().map(|secret| {
                    let password = stun::rest_api_password(secret, username);
                    stun::long_term_key_with(algorithm, username, &self.realm, &password)
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
    /// Ours and fresh, with the features it advertised.
    Fresh(Features),
    /// Ours, but expired: answer 438 with a new one.
    Stale,
    /// Not one of ours (forged, from another address, malformed): answer 401.
    Invalid,
}

/// Mints and checks nonces with a key drawn when the server starts.
#[derive(Debug)]
pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    pub fn new(key_bytes: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes) }
    }

    /// A nonce for `client` advertising `features`, fresh until `now_unix + NONCE_LIFETIME_S`.
    pub fn mint(&self, client: IpAddr, features: Features, now_unix: u64) -> String {
        // The expiry wraps in 2106; a nonce lives an hour, so a wrap is harmless.
        let expiry = (now_unix + NONCE_LIFETIME_S) as u32;
        let tag = self.tag(expiry, features, client);
        let mut nonce = String::with_capacity(NONCE_LEN);
        nonce.push_str(NONCE_COOKIE);
        nonce.push_str(&base64_3(features.bytes()));
        nonce.push_str(&format!("{expiry:08x}"));
        for b in &tag {
            nonce.push_str(&format!("{b:02x}"));
        }
        nonce
    }

    pub fn check(&self, nonce: &[u8], client: IpAddr, now_unix: u64) -> NonceCheck {
        let Some((features, expiry, tag)) = parse_nonce(nonce) else { return NonceCheck::Invalid };
        let expected = self.tag(expiry, features, client);
        // Constant time, so that a forger learns nothing from how long a check takes.
        if !constant_time_eq(&expected, &tag) {
            return NonceCheck::Invalid;
        }
        // Serial-number arithmetic (RFC 1982): the 2106 wrap of the 32-bit expiry is harmless.
        if (expiry.wrapping_sub(now_unix as u32) as i32) < 0 {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh(features)
        }
    }

    fn tag(&self, expiry: u32, features: Features, client: IpAddr) -> [u8; 8] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&expiry.to_be_bytes());
        context.update(&features.bytes());
        match client {
            IpAddr::V4(a) => context.update(&a.octets()),
            IpAddr::V6(a) => context.update(&a.octets()),
        }
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&context.sign().as_ref()[..8]);
        tag
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Three bytes as four base64 characters (no padding needed).
fn base64_3(bytes: [u8; 3]) -> String {
    let n = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
    (0..4).map(|i| char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63])).collect()
}

fn unbase64_3(chars: &[u8]) -> Option<[u8; 3]> {
    let mut n = 0u32;
    for c in chars {
        n = (n << 6) | BASE64.iter().position(|b| b == c)? as u32;
    }
    let [_, a, b, c] = n.to_be_bytes();
    Some([a, b, c])
}

fn parse_nonce(nonce: &[u8]) -> Option<(Features, u32, [u8; 8])> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let rest = nonce.strip_prefix(NONCE_COOKIE.as_bytes())?;
    let [a, b, c] = unbase64_3(&rest[..4])?;
    let features = Features(u32::from_be_bytes([0, a, b, c]));
    let hex = |pair: &[u8]| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok();
    let mut expiry = [0u8; 4];
    for (b, pair) in expiry.iter_mut().zip(rest[4..12].chunks(2)) {
        *b = hex(pair)?;
    }
    let mut tag = [0u8; 8];
    for (b, pair) in tag.iter_mut().zip(rest[12..].chunks(2)) {
        *b = hex(pair)?;
    }
    Some((features, u32::from_be_bytes(expiry), tag))
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

    const MD5: PasswordAlgorithm = PasswordAlgorithm::Md5;
    const SHA256: PasswordAlgorithm = PasswordAlgorithm::Sha256;

    /// Whether `key` is the key of `username` with `password` in `realm`.
    fn is_key(key: &IntegrityKey, username: &str, realm: &str, password: &str) -> bool {
        let message = b"any message";
        let expected = stun::long_term_key_with(key.algorithm(), username, realm, password);
        let tag = hmac::sign(key.sha256(), message);
        hmac::verify(expected.sha256(), message, tag.as_ref()).is_ok()
    }

    #[test]
    fn shared_secret_credentials_last_until_their_expiry() {
        let secret = "0123456789abcdef0123";
        let c = Credentials::new(&config(&format!(
            "use-auth-secret\nstatic-auth-secret={secret}\nstatic-auth-secret=fedcba9876543210fedc\nrealm=meet\n"
        )));
        let username = format!("{}:3f2a9c", NOW + 60);
        let keys = c.keys(&username, MD5, NOW).unwrap();
        assert_eq!(keys.len(), 2, "one per secret while one is rotated out");
        let password = stun::rest_api_password(secret, &username);
        assert!(is_key(&keys[0], &username, "meet", &password));
        assert!(!is_key(&keys[1], &username, "meet", &password));
        let sha256 = c.keys(&username, SHA256, NOW).unwrap();
        assert!(sha256[0].algorithm() == SHA256 && is_key(&sha256[0], &username, "meet", &password));
        // The name cannot be found from its hash, and USERHASH is not advertised.
        assert_eq!(c.username_for_hash(&stun::userhash(&username, "meet")), None);
        assert_eq!(c.features(), Features::PASSWORD_ALGORITHMS);
        assert_eq!(c.keys(&format!("{}:3f2a9c", NOW - 1), MD5, NOW).unwrap_err(), AuthError::Expired);
        assert_eq!(c.keys("ada", MD5, NOW).unwrap_err(), AuthError::UnknownUser);
    }

    #[test]
    fn configured_users_sign_with_their_long_term_key() {
        let c = Credentials::new(&config(
            "lt-cred-mech\nuser=ada:lovelace\nuser=bob:0x00112233445566778899aabbccddeeff\nrealm=meet\n",
        ));
        let keys = c.keys("ada", MD5, NOW).unwrap();
        assert!(keys.len() == 1 && is_key(&keys[0], "ada", "meet", "lovelace"));
        assert!(!is_key(&keys[0], "ada", "meet", "babbage"));
        assert_eq!(c.keys("bob", MD5, NOW).unwrap().len(), 1);
        let sha256 = c.keys("ada", SHA256, NOW).unwrap();
        assert!(sha256.len() == 1 && is_key(&sha256[0], "ada", "meet", "lovelace"));
        // bob's MD5 key was configured, not his password: there is no SHA-256 key to make.
        assert_eq!(c.keys("bob", SHA256, NOW).unwrap_err(), AuthError::UnknownUser);
        assert_eq!(c.username_for_hash(&stun::userhash("ada", "meet")), Some("ada"));
        assert_eq!(c.username_for_hash(&stun::userhash("ada", "elsewhere")), None);
        assert!(c.features().contains(Features::PASSWORD_ALGORITHMS.union(Features::USERNAME_ANONYMITY)));
        assert_eq!(c.keys("eve", MD5, NOW).unwrap_err(), AuthError::UnknownUser);
        // A REST-looking name is just an unknown user without use-auth-secret.
        assert_eq!(c.keys(&format!("{}:x", NOW + 60), MD5, NOW).unwrap_err(), AuthError::UnknownUser);
    }

    #[test]
    fn nonces_are_bound_to_the_client_and_go_stale() {
        let nonces = Nonces::new(&[7; 32]);
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let features = Features::PASSWORD_ALGORITHMS;
        let nonce = nonces.mint(client, features, NOW);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonce.starts_with("obMatJos2AAAB"), "{nonce}");
        assert_eq!(nonces.check(nonce.as_bytes(), client, NOW), NonceCheck::Fresh(features));
        assert_eq!(
            nonces.check(nonce.as_bytes(), client, NOW + NONCE_LIFETIME_S),
            NonceCheck::Fresh(features)
        );
        assert_eq!(nonces.check(nonce.as_bytes(), client, NOW + NONCE_LIFETIME_S + 1), NonceCheck::Stale);
        let elsewhere: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(nonces.check(nonce.as_bytes(), elsewhere, NOW), NonceCheck::Invalid);
        assert_eq!(Nonces::new(&[8; 32]).check(nonce.as_bytes(), client, NOW), NonceCheck::Invalid);
        // A forged expiry breaks the tag.
        let mut forged = nonce.clone().into_bytes();
        forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
        assert_eq!(nonces.check(&forged, client, NOW), NonceCheck::Invalid);
        // So do forged features: the bid-down protection cannot be stripped.
        let stripped = nonce.replacen("AAAB", "AAAA", 1);
        assert_eq!(nonces.check(stripped.as_bytes(), client, NOW), NonceCheck::Invalid);
        let both = nonces.mint(client, features.union(Features::USERNAME_ANONYMITY), NOW);
        assert!(both.starts_with("obMatJos2AAAD"), "{both}");
        let junk_cookie = nonce.replacen("obMatJos2", "obMatJos3", 1);
        assert_eq!(nonces.check(junk_cookie.as_bytes(), client, NOW), NonceCheck::Invalid);
        for junk in [
            &b""[..],
            b"short",
            &[b'z'; NONCE_LEN],
            &[0xff; NONCE_LEN],
            b"obMatJos2!!!!zzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(nonces.check(junk, client, NOW), NonceCheck::Invalid);
        }
    }
}
