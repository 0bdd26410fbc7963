//! Secrets and random identifiers: passwords compared in constant time and wiped when dropped
//! (privacy invariant 7), participant ids from the OS CSPRNG, and the keyed hash that lets log
//! lines correlate a room without naming it (invariant 6).

use std::fmt;
use std::sync::OnceLock;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Fills `bytes` from the OS CSPRNG.
pub fn random_bytes(bytes: &mut [u8]) {
    SystemRandom::new().fill(bytes).expect("the operating system's random number generator works");
}

/// A participant id: 16 lowercase hex digits.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    random_bytes(&mut bytes);
    format!("{:016x}", u64::from_be_bytes(bytes))
}

/// A room password. Compared in constant time; its bytes are wiped on drop; never printed.
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// Whether `attempt` is this password. The time taken depends only on the lengths, not on
    /// where the first difference is: both are hashed first, and the digests compared.
    pub fn matches(&self, attempt: &str) -> bool {
        let key = log_key(); // any fixed key works; hashing equalizes the lengths compared
        let ours = hmac::sign(key, self.0.as_bytes());
        hmac::verify(key, attempt.as_bytes(), ours.as_ref()).is_ok()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

fn log_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).expect("CSPRNG works"))
}

/// What log lines say instead of a room name: a keyed hash with a per-process random key, so
/// lines about one room correlate within a run but the name cannot be recovered or guessed
/// from the logs.
pub fn room_tag(name: &str) -> String {
    let tag = hmac::sign(log_key(), name.as_bytes());
    tag.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_match_only_themselves() {
        let password = Password::new("correct horse".into());
        assert!(password.matches("correct horse"));
        for wrong in ["", "correct", "correct horse ", "Correct horse", "correct horse battery"] {
            assert!(!password.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{password:?}"), "Password(..)");
    }

    #[test]
    fn room_tags_are_stable_and_hide_the_name() {
        assert_eq!(room_tag("quiet-otters"), room_tag("quiet-otters"));
        assert_ne!(room_tag("quiet-otters"), room_tag("quiet-otter"));
        assert!(!room_tag("quiet-otters").contains("otter"));
        assert_eq!(room_tag("x").len(), 12);
    }

    #[test]
    fn ids_are_hex_and_random() {
        let id = random_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(random_id(), id);
    }
}
