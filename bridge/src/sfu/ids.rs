//! Identifiers the bridge hands out: random, meaningless, and fixed-size so that looking one up
//! never allocates.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};

/// Fills `bytes` from the operating system's CSPRNG.
pub fn random_bytes(bytes: &mut [u8]) {
    // The OS RNG failing means the host cannot do cryptography at all; nothing sensible follows.
    SystemRandom::new().fill(bytes).expect("the operating system's random number generator works");
}

/// A random string over `[A-Za-z0-9]` (ICE ufrag and password characters, RFC 8839 §5.4).
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = vec![0u8; len];
    random_bytes(&mut raw);
    // 256 is not a multiple of 62; rejecting the top values keeps every character equally likely.
    let mut out = String::with_capacity(len);
    let mut pool = raw.into_iter();
    while out.len() < len {
        let byte = match pool.next() {
            Some(b) => b,
            None => {
                let mut one = [0u8; 1];
                random_bytes(&mut one);
                one[0]
            }
        };
        if usize::from(byte) < 248 {
            out.push(char::from(ALPHABET[usize::from(byte) % 62]));
        }
    }
    out
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl $name {
            /// A fresh identifier from the CSPRNG.
            pub fn random() -> Self {
                let mut bytes = [0u8; 8];
                random_bytes(&mut bytes);
                Self(u64::from_be_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:016x})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ();
            /// Exactly 16 lowercase hex digits, as `Display` writes them.
            fn from_str(s: &str) -> Result<Self, ()> {
                let lowercase_hex = s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if s.len() != 16 || !lowercase_hex {
                    return Err(());
                }
                u64::from_str_radix(s, 16).map(Self).map_err(|_| ())
            }
        }
    };
}

id_type!(
    /// A conference: the bridge side of one meeting.
    ConferenceId
);
id_type!(
    /// One participant's connection to the bridge.
    EndpointId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_spellings() {
        let id = EndpointId::random();
        assert_eq!(id.to_string().parse::<EndpointId>(), Ok(id));
        for bad in
            ["", "0123", "0123456789ABCDEF", "0123456789abcdefa", "012345678-abcdef", "+123456789abcdef"]
        {
            assert!(bad.parse::<ConferenceId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_use_the_ice_alphabet() {
        let token = random_token(24);
        assert_eq!(token.len(), 24);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(random_token(24), token);
    }
}
