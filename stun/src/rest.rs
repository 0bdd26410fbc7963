//! Time-limited TURN credentials from a shared secret: the "TURN REST API" scheme
//! (draft-uberti-behave-turn-rest), coturn's `use-auth-secret`. The username is
//! "<expiry unix time>[:<anything>]", the password base64(HMAC-SHA1(secret, username)). Whoever
//! hands out credentials (the signaling daemon) and the TURN server that checks them share only
//! the secret.

use ring::hmac;

/// The password of `username` under `secret`.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64(hmac::sign(&key, username.as_bytes()).as_ref())
}

/// The expiry a REST API username carries (seconds since the Unix epoch), if it has one.
pub fn rest_api_expiry(username: &str) -> Option<u64> {
    let digits = username.split_once(':').map_or(username, |(expiry, _)| expiry);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_match_the_shared_secret_scheme() {
        // Computed independently: base64(hmac.new(secret, username, sha1).digest()).
        assert_eq!(
            rest_api_password("north-shared-secret", "1764172800:3f2a9c"),
            "eEKcD2Yzpb2sle9FwowQNXb/6Ik="
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn the_expiry_is_the_leading_number() {
        assert_eq!(rest_api_expiry("1764172800:3f2a9c"), Some(1_764_172_800));
        assert_eq!(rest_api_expiry("1764172800"), Some(1_764_172_800));
        for bad in ["", ":x", "abc:1", "-5:x", "+5", "99999999999999999999999:x"] {
            assert_eq!(rest_api_expiry(bad), None, "{bad:?}");
        }
    }
}
