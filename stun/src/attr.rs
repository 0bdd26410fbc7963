//! Attribute types and the decoding of the values ICE and TURN read.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Type                  |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Value (variable)                ....
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! The value is padded to a multiple of 4 bytes; padding bytes are ignored (RFC 8489 §14).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::AttributeError;
use crate::header::{MAGIC_COOKIE, TransactionId};

/// An attribute type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttrType(pub u16);

impl AttrType {
    pub const MAPPED_ADDRESS: AttrType = AttrType(0x0001);
    pub const USERNAME: AttrType = AttrType(0x0006);
    pub const MESSAGE_INTEGRITY: AttrType = AttrType(0x0008);
    pub const ERROR_CODE: AttrType = AttrType(0x0009);
    pub const UNKNOWN_ATTRIBUTES: AttrType = AttrType(0x000A);
    pub const REALM: AttrType = AttrType(0x0014);
    pub const NONCE: AttrType = AttrType(0x0015);
    pub const XOR_MAPPED_ADDRESS: AttrType = AttrType(0x0020);
    pub const SOFTWARE: AttrType = AttrType(0x8022);
    pub const FINGERPRINT: AttrType = AttrType(0x8028);
    /// ICE (RFC 8445 §16.1).
    pub const PRIORITY: AttrType = AttrType(0x0024);
    pub const USE_CANDIDATE: AttrType = AttrType(0x0025);
    pub const ICE_CONTROLLED: AttrType = AttrType(0x8029);
    pub const ICE_CONTROLLING: AttrType = AttrType(0x802A);
    /// TURN (RFC 8656 §18).
    pub const CHANNEL_NUMBER: AttrType = AttrType(0x000C);
    pub const LIFETIME: AttrType = AttrType(0x000D);
    pub const XOR_PEER_ADDRESS: AttrType = AttrType(0x0012);
    pub const DATA: AttrType = AttrType(0x0013);
    pub const XOR_RELAYED_ADDRESS: AttrType = AttrType(0x0016);
    pub const REQUESTED_TRANSPORT: AttrType = AttrType(0x0019);

    /// Types below 0x8000 must be understood by the receiver (RFC 8489 §14).
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }
}

/// One attribute as it stands in a message: its type and its unpadded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub typ: AttrType,
    pub value: &'a [u8],
}

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Decodes an XOR-MAPPED-ADDRESS-style value (RFC 8489 §14.2): port XOR the cookie's top
/// 16 bits, IPv4 XOR the cookie, IPv6 XOR cookie + transaction id.
///
/// ```text
/// |0 0 0 0 0 0 0 0|    Family     |         X-Port                |
/// |                X-Address (Variable)
/// ```
pub fn decode_xor_address(value: &[u8], txid: &TransactionId) -> Result<SocketAddr, AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::Malformed);
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (value[1], value.len()) {
        (FAMILY_IPV4, 8) => {
            let x: [u8; 4] = std::array::from_fn(|i| value[4 + i] ^ cookie[i]);
            IpAddr::V4(Ipv4Addr::from(x))
        }
        (FAMILY_IPV6, 20) => {
            let key = xor_key_v6(txid);
            let x: [u8; 16] = std::array::from_fn(|i| value[4 + i] ^ key[i]);
            IpAddr::V6(Ipv6Addr::from(x))
        }
        _ => return Err(AttributeError::Malformed),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Encodes `addr` as an XOR address value into `out`; returns its length (8 or 20).
pub fn encode_xor_address(addr: SocketAddr, txid: &TransactionId, out: &mut [u8; 20]) -> usize {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    out[0] = 0;
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_IPV4;
            let cookie = MAGIC_COOKIE.to_be_bytes();
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ cookie[i];
            }
            8
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_IPV6;
            let key = xor_key_v6(txid);
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ key[i];
            }
            20
        }
    }
}

fn xor_key_v6(txid: &TransactionId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(&txid.0);
    key
}

/// A 32-bit value (PRIORITY, LIFETIME).
pub fn decode_u32(value: &[u8]) -> Result<u32, AttributeError> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| AttributeError::Malformed)?;
    Ok(u32::from_be_bytes(bytes))
}

/// A 64-bit value (ICE-CONTROLLING / ICE-CONTROLLED tie-breakers).
pub fn decode_u64(value: &[u8]) -> Result<u64, AttributeError> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| AttributeError::Malformed)?;
    Ok(u64::from_be_bytes(bytes))
}

/// A UTF-8 text value (USERNAME, SOFTWARE, REALM, NONCE).
pub fn decode_text(value: &[u8]) -> Result<&str, AttributeError> {
    std::str::from_utf8(value).map_err(|_| AttributeError::NotUtf8)
}

/// ERROR-CODE (RFC 8489 §14.8): the code (300..=699) and its reason phrase.
///
/// ```text
/// |           Reserved, should be 0         |Class|     Number    |
/// |      Reason Phrase (variable)                                ..
/// ```
pub fn decode_error_code(value: &[u8]) -> Result<(u16, &str), AttributeError> {
    if value.len() < 4 {
        return Err(AttributeError::Malformed);
    }
    let class = u16::from(value[2] & 0x07);
    let number = u16::from(value[3]);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(AttributeError::Malformed);
    }
    Ok((class * 100 + number, decode_text(&value[4..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_addresses_round_trip() {
        let txid = TransactionId([7; 12]);
        for addr in ["192.0.2.1:32853", "[2001:db8::1]:9", "0.0.0.0:0"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = [0u8; 20];
            let len = encode_xor_address(addr, &txid, &mut out);
            assert_eq!(decode_xor_address(&out[..len], &txid), Ok(addr));
        }
        assert_eq!(decode_xor_address(&[0, 1, 0, 0, 1], &txid), Err(AttributeError::Malformed));
        assert_eq!(decode_xor_address(&[0, 3, 0, 0, 1, 2, 3, 4], &txid), Err(AttributeError::Malformed));
    }

    #[test]
    fn error_codes_decode_and_reject_nonsense() {
        assert_eq!(decode_error_code(b"\0\0\x04\x01Unauthorized"), Ok((401, "Unauthorized")));
        assert_eq!(decode_error_code(b"\0\0\x09\x01"), Err(AttributeError::Malformed));
        assert_eq!(decode_error_code(b"\0\0\x04"), Err(AttributeError::Malformed));
    }
}
