//! Building a message into a caller's buffer, without allocating.

use std::net::SocketAddr;

use ring::hmac;

use crate::attr::{self, AddressFamily, AttrType, PasswordAlgorithm};
use crate::error::BufferTooSmall;
use crate::error_code::ErrorCode;
use crate::header::{Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, message_type};
use crate::integrity::{self, INTEGRITY_SHA256_LEN};
use crate::message::{ATTR_HEADER_LEN, FINGERPRINT_LEN, INTEGRITY_LEN, padded};

/// Writes a message attribute by attribute. The header's length field is kept current, so
/// MESSAGE-INTEGRITY and FINGERPRINT see what a receiver will see.
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    transaction_id: TransactionId,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message with the given header in `buf`.
    pub fn new(
        buf: &'b mut [u8],
        method: Method,
        class: Class,
        transaction_id: TransactionId,
    ) -> Result<Self, BufferTooSmall> {
        let header = buf.get_mut(..HEADER_LEN).ok_or(BufferTooSmall)?;
        header[0..2].copy_from_slice(&message_type(method, class).to_be_bytes());
        header[2..4].copy_from_slice(&0u16.to_be_bytes());
        header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        header[8..20].copy_from_slice(&transaction_id.0);
        Ok(Self { buf, len: HEADER_LEN, transaction_id })
    }

    /// Appends an attribute; the value is zero-padded to 4 bytes.
    pub fn attribute(&mut self, typ: AttrType, value: &[u8]) -> Result<&mut Self, BufferTooSmall> {
        let len = u16::try_from(value.len()).map_err(|_| BufferTooSmall)?;
        let end = self.len + ATTR_HEADER_LEN + padded(value.len());
        if end > self.buf.len() || end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(BufferTooSmall);
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&typ.0.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        self.buf[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + value.len()].copy_from_slice(value);
        self.buf[at + ATTR_HEADER_LEN + value.len()..end].fill(0);
        self.len = end;
        self.buf[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
        Ok(self)
    }

    /// Appends an XOR-encoded address attribute (XOR-MAPPED-ADDRESS and friends).
    pub fn xor_address(&mut self, typ: AttrType, addr: SocketAddr) -> Result<&mut Self, BufferTooSmall> {
        let mut value = [0u8; 20];
        let len = attr::encode_xor_address(addr, &self.transaction_id, &mut value);
        self.attribute(typ, &value[..len])
    }

    /// Appends a 32-bit attribute (PRIORITY, LIFETIME).
    pub fn u32(&mut self, typ: AttrType, value: u32) -> Result<&mut Self, BufferTooSmall> {
        self.attribute(typ, &value.to_be_bytes())
    }

    /// Appends a 64-bit attribute (ICE-CONTROLLING / ICE-CONTROLLED).
    pub fn u64(&mut self, typ: AttrType, value: u64) -> Result<&mut Self, BufferTooSmall> {
        self.attribute(typ, &value.to_be_bytes())
    }

    /// Appends ERROR-CODE with `code` (300..=699) and a reason phrase.
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<&mut Self, BufferTooSmall> {
        let mut value = [0u8; 4 + 128];
        let reason = &reason.as_bytes()[..reason.len().min(128)];
        value[2] = (code / 100) as u8;
        value[3] = (code % 100) as u8;
        value[4..4 + reason.len()].copy_from_slice(reason);
        self.attribute(AttrType::ERROR_CODE, &value[..4 + reason.len()])
    }

    /// Appends ERROR-CODE with a code from the table and its reason phrase.
    pub fn error(&mut self, code: ErrorCode) -> Result<&mut Self, BufferTooSmall> {
        self.error_code(code.0, code.reason())
    }

    /// Appends UNKNOWN-ATTRIBUTES (RFC 8489 §14.9): the types a 420 response names.
    pub fn unknown_attributes(&mut self, types: &[AttrType]) -> Result<&mut Self, BufferTooSmall> {
        let mut value = [0u8; 2 * 32];
        let types = &types[..types.len().min(32)];
        for (pair, typ) in value.chunks_exact_mut(2).zip(types) {
            pair.copy_from_slice(&typ.0.to_be_bytes());
        }
        self.attribute(AttrType::UNKNOWN_ATTRIBUTES, &value[..2 * types.len()])
    }

    /// Appends REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.3, §18.12).
    pub fn family(&mut self, typ: AttrType, family: AddressFamily) -> Result<&mut Self, BufferTooSmall> {
        self.attribute(typ, &[family.code(), 0, 0, 0])
    }

    /// Appends REQUESTED-TRANSPORT (RFC 8656 §18.7) with an IP protocol number.
    pub fn requested_transport(&mut self, protocol: u8) -> Result<&mut Self, BufferTooSmall> {
        self.attribute(AttrType::REQUESTED_TRANSPORT, &[protocol, 0, 0, 0])
    }

    /// Appends CHANNEL-NUMBER (RFC 8656 §18.1).
    pub fn channel_number(&mut self, channel: u16) -> Result<&mut Self, BufferTooSmall> {
        let [hi, lo] = channel.to_be_bytes();
        self.attribute(AttrType::CHANNEL_NUMBER, &[hi, lo, 0, 0])
    }

    /// Appends EVEN-PORT (RFC 8656 §18.6); `reserve_next` sets the R bit.
    pub fn even_port(&mut self, reserve_next: bool) -> Result<&mut Self, BufferTooSmall> {
        self.attribute(AttrType::EVEN_PORT, &[if reserve_next { 0x80 } else { 0 }])
    }

    /// Appends ADDRESS-ERROR-CODE (RFC 8656 §18.13): why `family` got no relayed address.
    pub fn address_error_code(
        &mut self,
        family: AddressFamily,
        code: ErrorCode,
    ) -> Result<&mut Self, BufferTooSmall> {
        let mut value = [0u8; 4 + 64];
        let reason = &code.reason().as_bytes()[..code.reason().len().min(64)];
        value[0] = family.code();
        value[2] = (code.0 / 100) as u8;
        value[3] = (code.0 % 100) as u8;
        value[4..4 + reason.len()].copy_from_slice(reason);
        self.attribute(AttrType::ADDRESS_ERROR_CODE, &value[..4 + reason.len()])
    }

    /// Appends PASSWORD-ALGORITHM (RFC 8489 §14.12), without parameters.
    pub fn password_algorithm(&mut self, algorithm: PasswordAlgorithm) -> Result<&mut Self, BufferTooSmall> {
        let [hi, lo] = algorithm.code().to_be_bytes();
        self.attribute(AttrType::PASSWORD_ALGORITHM, &[hi, lo, 0, 0])
    }

    /// Appends PASSWORD-ALGORITHMS (RFC 8489 §14.11) listing `algorithms` (at most 8).
    pub fn password_algorithms(
        &mut self,
        algorithms: &[PasswordAlgorithm],
    ) -> Result<&mut Self, BufferTooSmall> {
        let mut value = [0u8; 32];
        let len = attr::encode_password_algorithms(algorithms, &mut value);
        self.attribute(AttrType::PASSWORD_ALGORITHMS, &value[..len])
    }

    /// Appends MESSAGE-INTEGRITY computed with `key` (HMAC-SHA1) over everything so far.
    pub fn message_integrity(&mut self, key: &hmac::Key) -> Result<&mut Self, BufferTooSmall> {
        self.integrity(AttrType::MESSAGE_INTEGRITY, key, INTEGRITY_LEN)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 computed with `key` (HMAC-SHA256) over everything so
    /// far, all 32 bytes of it (RFC 8489 §14.6).
    pub fn message_integrity_sha256(&mut self, key: &hmac::Key) -> Result<&mut Self, BufferTooSmall> {
        self.integrity(AttrType::MESSAGE_INTEGRITY_SHA256, key, INTEGRITY_SHA256_LEN)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 truncated to `len` bytes, rounded down to a multiple of 4
    /// within 4..=32. RFC 8489 §14.6 lets a sender truncate to 16; shorter values exist only
    /// so that tests can check a receiver refuses them.
    pub fn message_integrity_sha256_truncated(
        &mut self,
        key: &hmac::Key,
        len: usize,
    ) -> Result<&mut Self, BufferTooSmall> {
        let len = len.clamp(4, INTEGRITY_SHA256_LEN) / 4 * 4;
        self.integrity(AttrType::MESSAGE_INTEGRITY_SHA256, key, len)
    }

    /// Appends an integrity attribute of `len` bytes: the leading bytes of the HMAC over the
    /// message so far, with the header's length counting the attribute.
    fn integrity(&mut self, typ: AttrType, key: &hmac::Key, len: usize) -> Result<&mut Self, BufferTooSmall> {
        let at = self.len;
        self.attribute(typ, &[0; INTEGRITY_SHA256_LEN][..len])?;
        let tag = integrity::integrity_tag(key, &self.buf[..self.len], at, len);
        self.buf[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + len].copy_from_slice(&tag.as_ref()[..len]);
        Ok(self)
    }

    /// Appends FINGERPRINT; it must be the last attribute.
    pub fn fingerprint(&mut self) -> Result<&mut Self, BufferTooSmall> {
        let at = self.len;
        self.attribute(AttrType::FINGERPRINT, &[0; FINGERPRINT_LEN])?;
        let crc = integrity::fingerprint(&self.buf[..self.len], at);
        self.buf[at + ATTR_HEADER_LEN..at + ATTR_HEADER_LEN + FINGERPRINT_LEN]
            .copy_from_slice(&crc.to_be_bytes());
        Ok(self)
    }

    /// Length of the message written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a message has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Finishes; returns the message length (the bytes are `buf[..len]`).
    pub fn finish(self) -> usize {
        self.len
    }
}
