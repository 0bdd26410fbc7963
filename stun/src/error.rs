//! Codec errors: small `Copy` enums, so a malformed datagram costs no allocation.

use std::fmt;

/// Why a datagram is not a well-formed STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Shorter than the 20-byte header.
    TooShort,
    /// The two most significant bits are not zero (not STUN; RFC 8489 §5).
    NotStun,
    /// The magic cookie is not 0x2112A442.
    BadCookie,
    /// The header's length does not match the datagram, or is not a multiple of 4.
    BadLength,
    /// An attribute's value (with its padding) runs past the end of the message.
    AttributeOverrun,
    /// MESSAGE-INTEGRITY is not 20 bytes, MESSAGE-INTEGRITY-SHA256 not 16..=32 in steps of 4,
    /// or FINGERPRINT not 4.
    BadIntegrityLength,
    /// Something follows FINGERPRINT, which must be last.
    FingerprintNotLast,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "shorter than a STUN header",
            Self::NotStun => "not a STUN message",
            Self::BadCookie => "wrong magic cookie",
            Self::BadLength => "message length does not match the datagram",
            Self::AttributeOverrun => "attribute runs past the end of the message",
            Self::BadIntegrityLength => "an integrity attribute or FINGERPRINT has the wrong length",
            Self::FingerprintNotLast => "attributes after FINGERPRINT",
        })
    }
}

impl std::error::Error for ParseError {}

/// Why an attribute's value could not be read as its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeError {
    /// The attribute is not in the message.
    Missing,
    /// Its value has the wrong length or an unknown address family.
    Malformed,
    /// A text attribute is not UTF-8.
    NotUtf8,
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "attribute missing",
            Self::Malformed => "attribute malformed",
            Self::NotUtf8 => "attribute is not UTF-8",
        })
    }
}

impl std::error::Error for AttributeError {}

/// Why MESSAGE-INTEGRITY or FINGERPRINT did not check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrityError {
    /// The message carries no such attribute.
    Missing,
    /// The value does not match.
    Mismatch,
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "integrity attribute missing",
            Self::Mismatch => "integrity check failed",
        })
    }
}

impl std::error::Error for IntegrityError {}

/// The caller's buffer is too small for the message being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small for the STUN message")
    }
}

impl std::error::Error for BufferTooSmall {}
