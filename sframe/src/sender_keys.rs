//! Our product's keying: one passphrase per room, one SFrame `base_key` per sender.
//!
//! RFC 9605 leaves key management to the application (§5, §7.2) but requires that no
//! `base_key` is used for encryption by two senders (§4.4.1). Everyone in a room knows the
//! passphrase, so each sender's key is derived from it and the sender's id:
//!
//! ```text
//! room_salt       = "meeting-appliance e2ee room " || room name (UTF-8)
//! passphrase_key  = PBKDF2-HMAC-SHA-256(passphrase (UTF-8), room_salt, 600_000 iterations, 32 bytes)
//! room_secret     = HKDF-Extract(salt = room_salt, IKM = passphrase_key)             (SHA-256)
//! sender_base_key = HKDF-Expand(room_secret,
//!                               "meeting-appliance e2ee sender " || sender_id (u64 big-endian),
//!                               32 bytes)
//! ```
//!
//! The sender then encrypts with KID = sender_id and `sender_base_key`; receivers derive the same
//! key for each sender they hear and insert it for decryption. In WebCrypto this is
//! `deriveBits(PBKDF2)` followed by one `deriveBits({name: "HKDF", hash: "SHA-256", salt:
//! room_salt, info: label || id}, 256)`, which does Extract then Expand.
//!
//! Why each step:
//! - PBKDF2 with 600,000 iterations (OWASP's 2023 figure for SHA-256) slows guessing of weak
//!   passphrases by anyone who captured frames (the SFU operator included). Salting with the room
//!   name stops one precomputation serving every room.
//! - The sender id in the HKDF label gives each sender its own key, so two senders both counting
//!   CTR from 0 never share a (key, nonce).
//!
//! Contract for the rest of the product: a sender id MUST NOT be reused for the same room name
//! and passphrase, because a reused id restarts CTR at 0 under the same key, which repeats
//! AES-GCM nonces. Signaling must hand out ids that are unique for the life of the passphrase,
//! not just among the people currently in the room (rooms vanish when empty and their names come
//! back); random 64-bit ids or a change of passphrase per meeting satisfy this.

use core::num::NonZeroU32;

use ring::{hkdf, pbkdf2};

use crate::keys::expand;

/// PBKDF2 iterations for the passphrase. The browser uses the same number.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// Bytes of `passphrase_key` and `sender_base_key`.
pub const KEY_LEN: usize = 32;

const ROOM_LABEL: &[u8] = b"meeting-appliance e2ee room ";
const SENDER_LABEL: &[u8] = b"meeting-appliance e2ee sender ";

/// The room-wide key every participant derives from the passphrase. Slow on purpose (about a
/// quarter second optimised); derive once per room join, not per sender.
pub fn passphrase_key(passphrase: &str, room: &str) -> [u8; KEY_LEN] {
    let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).expect("PBKDF2_ITERATIONS is a nonzero constant");
    let mut key = [0u8; KEY_LEN];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &room_salt(room), passphrase.as_bytes(), &mut key);
    key
}

/// The `base_key` sender `sender_id` encrypts with (under KID = `sender_id`) in `room`.
pub fn sender_base_key(passphrase_key: &[u8; KEY_LEN], room: &str, sender_id: u64) -> [u8; KEY_LEN] {
    let room_secret = hkdf::Salt::new(hkdf::HKDF_SHA256, &room_salt(room)).extract(passphrase_key);
    let mut key = [0u8; KEY_LEN];
    expand(&room_secret, &[SENDER_LABEL, &sender_id.to_be_bytes()], &mut key);
    key
}

/// `ROOM_LABEL || room`. Key set-up, not per frame, so a small allocation is fine here.
fn room_salt(room: &str) -> Vec<u8> {
    [ROOM_LABEL, room.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Expected values computed independently with Python's `hashlib.pbkdf2_hmac` and `hmac`
    /// from the construction in the module docs, so the browser's WebCrypto code can be checked
    /// against the same numbers.
    #[test]
    fn derivation_matches_independent_computation_and_separates_senders() {
        let pk = passphrase_key("correct horse battery staple", "standup");
        assert_eq!(pk.to_vec(), unhex("d38dcd8ba50664540cce3fd3e2d7d269ceb36c818d11c86afbd8e9c2a7ede57d"));
        let one = sender_base_key(&pk, "standup", 1);
        let two = sender_base_key(&pk, "standup", 2);
        assert_eq!(one.to_vec(), unhex("382a7d4bf8a43dba05b78e606b98c74462341b3c5ffb2eb8ff8eb8318409a767"));
        assert_eq!(two.to_vec(), unhex("75c89aae4efaa3afe5d552edb731397391bc94e488259789a0b1ccff8668b87f"));
        assert_ne!(one, two);
        assert_eq!(one, sender_base_key(&pk, "standup", 1), "same inputs, same key");
    }

    #[test]
    fn room_name_changes_every_sender_key() {
        // The same passphrase_key bytes in another room (no PBKDF2 here: it is slow in debug).
        let pk = [7u8; KEY_LEN];
        assert_ne!(sender_base_key(&pk, "standup", 1), sender_base_key(&pk, "retro", 1));
    }
}
