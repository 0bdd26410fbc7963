//! The 20-byte header (RFC 8489 §5) and its identifiers.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0 0|     STUN Message Type     |         Message Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Magic Cookie                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Transaction ID (96 bits)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Message Type:  M11 M10 M9 M8 M7 C1 M6 M5 M4 C0 M3 M2 M1 M0
//! ```

/// Fixed value in every RFC 5389/8489 message; also the XOR key of address attributes.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Bytes of the header.
pub const HEADER_LEN: usize = 20;

/// The 96-bit transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

/// Message class (RFC 8489 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// A STUN method (12 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    pub const BINDING: Method = Method(0x001);
    /// TURN (RFC 8656).
    pub const ALLOCATE: Method = Method(0x003);
    pub const REFRESH: Method = Method(0x004);
    pub const SEND: Method = Method(0x006);
    pub const DATA: Method = Method(0x007);
    pub const CREATE_PERMISSION: Method = Method(0x008);
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// TCP allocations (RFC 6062 §6.1).
    pub const CONNECT: Method = Method(0x00a);
    pub const CONNECTION_BIND: Method = Method(0x00b);
    pub const CONNECTION_ATTEMPT: Method = Method(0x00c);
}

/// Packs method and class into the 14-bit message type.
pub fn message_type(method: Method, class: Class) -> u16 {
    let m = method.0 & 0x0fff;
    let c: u16 = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::Success => 0b10,
        Class::Error => 0b11,
    };
    (m & 0x000f) | ((c & 1) << 4) | ((m & 0x0070) << 1) | ((c & 2) << 7) | ((m & 0x0f80) << 2)
}

/// Splits a message type into method and class.
pub fn split_type(message_type: u16) -> (Method, Class) {
    let t = message_type;
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    let class = match ((t >> 7) & 2) | ((t >> 4) & 1) {
        0b00 => Class::Request,
        0b01 => Class::Indication,
        0b10 => Class::Success,
        _ => Class::Error,
    };
    (Method(method), class)
}

/// Cheap classifier run before any parsing (RFC 7983 demultiplexing already put the first
/// byte in 0..=3): long enough, top bits clear, magic cookie in place.
#[inline]
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] & 0xc0 == 0 && datagram[4..8] == MAGIC_COOKIE.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_packing_matches_the_rfc_examples() {
        // Binding request 0x0001, success response 0x0101, error response 0x0111.
        assert_eq!(message_type(Method::BINDING, Class::Request), 0x0001);
        assert_eq!(message_type(Method::BINDING, Class::Success), 0x0101);
        assert_eq!(message_type(Method::BINDING, Class::Error), 0x0111);
        assert_eq!(message_type(Method::BINDING, Class::Indication), 0x0011);
        assert_eq!(message_type(Method::ALLOCATE, Class::Request), 0x0003);
        // RFC 6062 §6.1: Connect request, ConnectionBind success, ConnectionAttempt indication.
        assert_eq!(message_type(Method::CONNECT, Class::Request), 0x000a);
        assert_eq!(message_type(Method::CONNECTION_BIND, Class::Success), 0x010b);
        assert_eq!(message_type(Method::CONNECTION_ATTEMPT, Class::Indication), 0x001c);
        for raw in 0..0x3fffu16 {
            let (method, class) = split_type(raw);
            assert_eq!(message_type(method, class), raw);
        }
    }
}
