//! STUN message codec (RFC 8489), shared by the bridge's ICE-lite and the TURN server.
//!
//! Parsing is a zero-copy view: [`Message::parse`] checks the header and every attribute
//! length once, then typed accessors read values without further bounds surprises. Building
//! writes into a caller's buffer ([`MessageBuilder`]). Neither allocates, and errors are
//! small `Copy` enums, so a flood of malformed datagrams costs no heap.
//!
//! ```
//! use stun::{AttrType, Class, Message, MessageBuilder, Method, TransactionId, short_term_key};
//!
//! let key = short_term_key("pass");
//! let mut buf = [0u8; 256];
//! let mut request = MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId([1; 12]))?;
//! request.attribute(AttrType::USERNAME, b"remote:local")?.message_integrity(&key)?.fingerprint()?;
//! let len = request.finish();
//!
//! let message = Message::parse(&buf[..len])?;
//! assert_eq!(message.username()?, "remote:local");
//! message.verify_integrity(&key)?;
//! message.verify_fingerprint()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod attr;
mod builder;
mod error;
mod error_code;
mod header;
mod integrity;
mod message;
mod rest;

pub use attr::{
    AddressFamily, AttrType, PasswordAlgorithm, RawAttribute, decode_address_error_code,
    decode_channel_number, decode_error_code, decode_even_port, decode_family, decode_password_algorithm,
    decode_requested_transport, decode_reservation_token, decode_text, decode_u32, decode_u64,
    decode_xor_address, encode_password_algorithms,
};
pub use builder::MessageBuilder;
pub use error::{AttributeError, BufferTooSmall, IntegrityError, ParseError};
pub use error_code::ErrorCode;
pub use header::{Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, is_stun, message_type, split_type};
pub use integrity::{IntegrityKey, long_term_key, long_term_key_with, short_term_key, userhash};
pub use message::{Attributes, Message};
pub use rest::{rest_api_expiry, rest_api_password};
pub use ring::hmac::Key;
