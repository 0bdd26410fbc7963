//! TURN credentials for browsers: the time-limited shared-secret scheme (coturn's
//! `use-auth-secret`, draft-uberti-behave-turn-rest): the username is "<expiry unix time>:<random
//! tag>" and the password base64(HMAC-SHA1(secret, username)). The TURN server checks them
//! with the same secret; nothing about the participant is in them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    let credential = stun::rest_api_password(&config.secret, &username);
    vec![json!({ "urls": config.urls, "username": username, "credential": credential })]
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            servers[0]["credential"].as_str().unwrap(),
            stun::rest_api_password("north-shared-secret", username)
        );
        assert_eq!(servers[0]["urls"][1], "turns:turn.example:443?transport=tcp");
    }
}
