//! TURN credentials for browsers: the time-limited shared-secret scheme (coturn's
//! `use-auth-secret`, draft-uberti-behave-turn-rest): the username is "<expiry unix time>:<random
//! tag>" and the password base64(HMAC-SHA1(secret, username)). The TURN server checks them
//! with the same secret; nothing about the participant is in them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde_json::{Value, json};

use crate::config::TurnConfig;

/// `iceServers` entries for a participant, or none without a configured TURN server.
pub fn ice_servers(config: &TurnConfig, now: SystemTime) -> Vec<Value> {
    if config.urls.is_empty() || config.secret.is_empty() {
        return Vec::new();
    }
    let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(config.ttl_s);
    let mut tag = [0u8; 6];
    crate::secret::random_bytes(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let username = format!("{}:{tag}", expiry.as_secs());
    let credential = credential(&config.secret, &username);
    vec![json!({ "urls": config.urls, "username": username, "credential": credential })]
}

/// base64(HMAC-SHA1(secret, username)).
pub fn credential(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64(hmac::sign(&key, username.as_bytes()).as_ref())
}

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
    fn credentials_match_the_shared_secret_scheme() {
        // Computed independently: base64(hmac.new(secret, username, sha1).digest()).
        assert_eq!(credential("north-shared-secret", "1764172800:3f2a9c"), "eEKcD2Yzpb2sle9FwowQNXb/6Ik=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn servers_carry_an_expiring_username_and_only_when_configured() {
        let mut config = TurnConfig::default();
        assert!(ice_servers(&config, SystemTime::now()).is_empty());
        config.urls = vec!["turn:turn.example:3478".into(), "turns:turn.example:443?transport=tcp".into()];
        config.secret = "north-shared-secret".into();
        let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let servers = ice_servers(&config, now);
        let username = servers[0]["username"].as_str().unwrap();
        let (expiry, _) = username.split_once(':').unwrap();
        assert_eq!(expiry.parse::<u64>().unwrap(), 1_764_000_000 + config.ttl_s);
        assert_eq!(servers[0]["credential"].as_str().unwrap(), credential("north-shared-secret", username));
        assert_eq!(servers[0]["urls"][1], "turns:turn.example:443?transport=tcp");
    }
}
