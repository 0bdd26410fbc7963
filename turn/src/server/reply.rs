//! Writing responses straight into the I/O layer's buffer.

use stun::{
    AttrType, BufferTooSmall, Class, ErrorCode, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

use super::io::{ClientTuple, TurnIo};

/// How to answer one request: its method and transaction, the key to sign with (none before
/// authentication), the integrity attribute the request was signed with, and FINGERPRINT when
/// the request carried one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reply<'k> {
    pub method: Method,
    pub transaction_id: TransactionId,
    pub key: Option<&'k IntegrityKey>,
    /// Sign with MESSAGE-INTEGRITY-SHA256 rather than MESSAGE-INTEGRITY: RFC 8489 §9.2.4 has the
    /// response use the one the request used, so a client that knows only one can check it.
    pub sha256: bool,
    pub fingerprint: bool,
}

impl<'k> Reply<'k> {
    pub fn to(request: &Message<'_>, key: Option<&'k IntegrityKey>) -> Self {
        Self {
            method: request.method(),
            transaction_id: request.transaction_id(),
            key,
            sha256: request.has_integrity_sha256(),
            fingerprint: request.get(AttrType::FINGERPRINT).is_some(),
        }
    }

    pub fn write(
        &self,
        buf: &mut [u8],
        class: Class,
        attributes: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BufferTooSmall>,
    ) -> Result<usize, BufferTooSmall> {
        let mut message = MessageBuilder::new(buf, self.method, class, self.transaction_id)?;
        attributes(&mut message)?;
        match self.key {
            Some(key) if self.sha256 => message.message_integrity_sha256(key.sha256())?,
            Some(key) => message.message_integrity(key.sha1())?,
            None => &mut message,
        };
        if self.fingerprint {
            message.fingerprint()?;
        }
        Ok(message.finish())
    }

    /// Sends a response; `false` when the I/O layer dropped it.
    pub fn send(
        &self,
        io: &mut impl TurnIo,
        tuple: &ClientTuple,
        class: Class,
        attributes: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BufferTooSmall>,
    ) -> bool {
        io.to_client(tuple, |buf| self.write(buf, class, attributes).unwrap_or(0))
    }

    pub fn success(
        &self,
        io: &mut impl TurnIo,
        tuple: &ClientTuple,
        attributes: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BufferTooSmall>,
    ) -> bool {
        self.send(io, tuple, Class::Success, attributes)
    }

    pub fn error(&self, io: &mut impl TurnIo, tuple: &ClientTuple, code: ErrorCode) -> bool {
        self.send(io, tuple, Class::Error, |m| m.error(code).map(drop))
    }
}
