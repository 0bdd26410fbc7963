//! Parsing: a zero-copy view over one STUN message in a datagram.

use std::net::SocketAddr;

use crate::attr::{self, AttrType, RawAttribute};
use crate::error::{AttributeError, ParseError};
use crate::header::{Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, split_type};
use crate::integrity::is_sha256_integrity_len;

/// Bytes of an attribute header (type and length).
pub(crate) const ATTR_HEADER_LEN: usize = 4;
pub(crate) const INTEGRITY_LEN: usize = 20;
pub(crate) const FINGERPRINT_LEN: usize = 4;

/// A parsed message borrowing the datagram. Parsing checks every length once, so reading
/// attributes afterwards cannot go out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    method: Method,
    class: Class,
    transaction_id: TransactionId,
    /// Offset of the MESSAGE-INTEGRITY attribute header, if present.
    integrity_at: Option<usize>,
    /// Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, if present and not ignored.
    integrity_sha256_at: Option<usize>,
    /// Offset of the FINGERPRINT attribute header, if present.
    fingerprint_at: Option<usize>,
}

/// Rounds an attribute value length up to its padded size.
pub(crate) fn padded(len: usize) -> usize {
    (len + 3) & !3
}

impl<'a> Message<'a> {
    /// Parses one message that fills the whole datagram (as over UDP).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::TooShort);
        }
        if bytes[0] & 0xc0 != 0 {
            return Err(ParseError::NotStun);
        }
        if bytes[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(ParseError::BadCookie);
        }
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if length % 4 != 0 || HEADER_LEN + length != bytes.len() {
            return Err(ParseError::BadLength);
        }
        let (method, class) = split_type(u16::from_be_bytes([bytes[0], bytes[1]]));
        let transaction_id = TransactionId(bytes[8..20].try_into().expect("header is 20 bytes"));

        let mut integrity_at = None;
        let mut integrity_sha256_at = None;
        let mut fingerprint_at = None;
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            if fingerprint_at.is_some() {
                return Err(ParseError::FingerprintNotLast);
            }
            let (typ, len) = attribute_header(bytes, at).ok_or(ParseError::AttributeOverrun)?;
            if at + ATTR_HEADER_LEN + padded(len) > bytes.len() {
                return Err(ParseError::AttributeOverrun);
            }
            // RFC 8489 §9: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
            // count, after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT; ignored ones are not read.
            match typ {
                AttrType::MESSAGE_INTEGRITY if integrity_at.is_none() && integrity_sha256_at.is_none() => {
                    if len != INTEGRITY_LEN {
                        return Err(ParseError::BadIntegrityLength);
                    }
                    integrity_at = Some(at);
                }
                AttrType::MESSAGE_INTEGRITY_SHA256 if integrity_sha256_at.is_none() => {
                    if !is_sha256_integrity_len(len) {
                        return Err(ParseError::BadIntegrityLength);
                    }
                    integrity_sha256_at = Some(at);
                }
                AttrType::FINGERPRINT => {
                    if len != FINGERPRINT_LEN {
                        return Err(ParseError::BadIntegrityLength);
                    }
                    fingerprint_at = Some(at);
                }
                _ => {}
            }
            at += ATTR_HEADER_LEN + padded(len);
        }
        Ok(Self { bytes, method, class, transaction_id, integrity_at, integrity_sha256_at, fingerprint_at })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn transaction_id(&self) -> TransactionId {
        self.transaction_id
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn integrity_at(&self) -> Option<usize> {
        self.integrity_at
    }

    pub(crate) fn integrity_sha256_at(&self) -> Option<usize> {
        self.integrity_sha256_at
    }

    pub(crate) fn fingerprint_at(&self) -> Option<usize> {
        self.fingerprint_at
    }

    /// The attributes the receiver must consider (RFC 8489 §9): everything up to
    /// MESSAGE-INTEGRITY, then only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT; after
    /// MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            bytes: self.bytes,
            at: HEADER_LEN,
            integrity_at: self.integrity_at,
            integrity_sha256_at: self.integrity_sha256_at,
            after: After::Nothing,
        }
    }

    /// The value of the first attribute of type `typ`.
    pub fn get(&self, typ: AttrType) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// USERNAME as text.
    pub fn username(&self) -> Result<&'a str, AttributeError> {
        attr::decode_text(self.get(AttrType::USERNAME).ok_or(AttributeError::Missing)?)
    }

    /// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm), 32 bytes.
    pub fn userhash(&self) -> Result<&'a [u8; 32], AttributeError> {
        let value = self.get(AttrType::USERHASH).ok_or(AttributeError::Missing)?;
        value.try_into().map_err(|_| AttributeError::Malformed)
    }

    /// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm's number and parameters.
    pub fn password_algorithm(&self) -> Result<(u16, &'a [u8]), AttributeError> {
        attr::decode_password_algorithm(
            self.get(AttrType::PASSWORD_ALGORITHM).ok_or(AttributeError::Missing)?,
        )
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&self) -> Result<SocketAddr, AttributeError> {
        self.xor_address(AttrType::XOR_MAPPED_ADDRESS)
    }

    /// Any XOR-encoded address attribute (XOR-MAPPED-, XOR-PEER-, XOR-RELAYED-ADDRESS).
    pub fn xor_address(&self, typ: AttrType) -> Result<SocketAddr, AttributeError> {
        let value = self.get(typ).ok_or(AttributeError::Missing)?;
        attr::decode_xor_address(value, &self.transaction_id)
    }

    /// PRIORITY (ICE).
    pub fn priority(&self) -> Result<u32, AttributeError> {
        attr::decode_u32(self.get(AttrType::PRIORITY).ok_or(AttributeError::Missing)?)
    }

    /// Whether USE-CANDIDATE is present (ICE nomination).
    pub fn use_candidate(&self) -> bool {
        self.get(AttrType::USE_CANDIDATE).is_some()
    }

    /// ICE-CONTROLLING's tie-breaker, if present.
    pub fn ice_controlling(&self) -> Result<u64, AttributeError> {
        attr::decode_u64(self.get(AttrType::ICE_CONTROLLING).ok_or(AttributeError::Missing)?)
    }

    /// ICE-CONTROLLED's tie-breaker, if present.
    pub fn ice_controlled(&self) -> Result<u64, AttributeError> {
        attr::decode_u64(self.get(AttrType::ICE_CONTROLLED).ok_or(AttributeError::Missing)?)
    }

    /// ERROR-CODE: code and reason.
    pub fn error_code(&self) -> Result<(u16, &'a str), AttributeError> {
        attr::decode_error_code(self.get(AttrType::ERROR_CODE).ok_or(AttributeError::Missing)?)
    }

    /// LIFETIME (TURN), in seconds.
    pub fn lifetime(&self) -> Result<u32, AttributeError> {
        attr::decode_u32(self.get(AttrType::LIFETIME).ok_or(AttributeError::Missing)?)
    }

    /// DATA (TURN): the payload of a Send or Data indication.
    pub fn data(&self) -> Result<&'a [u8], AttributeError> {
        self.get(AttrType::DATA).ok_or(AttributeError::Missing)
    }

    /// The first comprehension-required attribute type this codec does not know, if any: the
    /// receiver of a request must answer 420 (Unknown Attribute) for it.
    pub fn unknown_required(&self, known: &[AttrType]) -> Option<AttrType> {
        self.attributes().map(|a| a.typ).find(|t| t.is_comprehension_required() && !known.contains(t))
    }
}

/// Reads the type and value length of the attribute at `at`, if its header fits.
fn attribute_header(bytes: &[u8], at: usize) -> Option<(AttrType, usize)> {
    let header = bytes.get(at..at + ATTR_HEADER_LEN)?;
    let typ = AttrType(u16::from_be_bytes([header[0], header[1]]));
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    Some((typ, len))
}

/// Iterator over a parsed message's attributes.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    bytes: &'a [u8],
    at: usize,
    integrity_at: Option<usize>,
    integrity_sha256_at: Option<usize>,
    after: After,
}

/// Which integrity attribute the iterator has passed, and so which attributes still count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Nothing,
    Integrity,
    IntegritySha256,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        loop {
            // Parsing checked every header and length, so these reads stay in bounds.
            let (typ, len) = attribute_header(self.bytes, self.at)?;
            let value = &self.bytes[self.at + ATTR_HEADER_LEN..self.at + ATTR_HEADER_LEN + len];
            let at = self.at;
            self.at += ATTR_HEADER_LEN + padded(len);
            let counts = match self.after {
                After::Nothing => true,
                After::Integrity => Some(at) == self.integrity_sha256_at || typ == AttrType::FINGERPRINT,
                After::IntegritySha256 => typ == AttrType::FINGERPRINT,
            };
            if !counts {
                continue;
            }
            if Some(at) == self.integrity_at {
                self.after = After::Integrity;
            } else if Some(at) == self.integrity_sha256_at {
                self.after = After::IntegritySha256;
            }
            return Some(RawAttribute { typ, value });
        }
    }
}
