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
    /// Long-term credential extensions of RFC 8489 (§14.4, §14.6, §14.11, §14.12).
    pub const MESSAGE_INTEGRITY_SHA256: AttrType = AttrType(0x001C);
    pub const PASSWORD_ALGORITHM: AttrType = AttrType(0x001D);
    pub const USERHASH: AttrType = AttrType(0x001E);
    pub const PASSWORD_ALGORITHMS: AttrType = AttrType(0x8002);
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
    pub const REQUESTED_ADDRESS_FAMILY: AttrType = AttrType(0x0017);
    pub const EVEN_PORT: AttrType = AttrType(0x0018);
    pub const DONT_FRAGMENT: AttrType = AttrType(0x001A);
    pub const RESERVATION_TOKEN: AttrType = AttrType(0x0022);
    pub const ADDITIONAL_ADDRESS_FAMILY: AttrType = AttrType(0x8000);
    pub const ADDRESS_ERROR_CODE: AttrType = AttrType(0x8001);
    pub const ICMP: AttrType = AttrType(0x8004);
    /// TCP allocations (RFC 6062 §6.2): 4 bytes naming one peer data connection.
    pub const CONNECTION_ID: AttrType = AttrType(0x002A);

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

/// An address family as TURN names it (REQUESTED-ADDRESS-FAMILY, RFC 8656 §18.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The family's code on the wire (0x01, 0x02).
    pub fn code(self) -> u8 {
        match self {
            Self::V4 => FAMILY_IPV4,
            Self::V6 => FAMILY_IPV6,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            FAMILY_IPV4 => Some(Self::V4),
            FAMILY_IPV6 => Some(Self::V6),
            _ => None,
        }
    }
}

/// REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.3, §18.12):
/// `Ok(None)` for a family code that is neither IPv4 nor IPv6 (answered 440, not 400).
///
/// ```text
/// |     Family    |            Reserved                           |
/// ```
pub fn decode_family(value: &[u8]) -> Result<Option<AddressFamily>, AttributeError> {
    if value.len() != 4 {
        return Err(AttributeError::Malformed);
    }
    Ok(AddressFamily::from_code(value[0]))
}

/// REQUESTED-TRANSPORT (RFC 8656 §18.7): the IP protocol number (17 for UDP).
///
/// ```text
/// |    Protocol   |                    RFFU                       |
/// ```
pub fn decode_requested_transport(value: &[u8]) -> Result<u8, AttributeError> {
    if value.len() != 4 {
        return Err(AttributeError::Malformed);
    }
    Ok(value[0])
}

/// CHANNEL-NUMBER (RFC 8656 §18.1).
///
/// ```text
/// |        Channel Number         |         RFFU = 0              |
/// ```
pub fn decode_channel_number(value: &[u8]) -> Result<u16, AttributeError> {
    if value.len() != 4 {
        return Err(AttributeError::Malformed);
    }
    Ok(u16::from_be_bytes([value[0], value[1]]))
}

/// EVEN-PORT (RFC 8656 §18.6): whether the R bit asks to reserve the next port too. The
/// attribute is one byte; some clients pad the value itself to four, which is accepted.
///
/// ```text
/// |R|    RFFU     |
/// ```
pub fn decode_even_port(value: &[u8]) -> Result<bool, AttributeError> {
    match value {
        [flags] | [flags, 0, 0, 0] => Ok(flags & 0x80 != 0),
        _ => Err(AttributeError::Malformed),
    }
}

/// RESERVATION-TOKEN (RFC 8656 §18.9): eight opaque bytes.
pub fn decode_reservation_token(value: &[u8]) -> Result<[u8; 8], AttributeError> {
    value.try_into().map_err(|_| AttributeError::Malformed)
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.13): the family that could not be allocated, the code and
/// its reason phrase.
///
/// ```text
/// |  Family       |    Reserved             |Class|     Number    |
/// |      Reason Phrase (variable)                                ..
/// ```
pub fn decode_address_error_code(value: &[u8]) -> Result<(u8, u16, &str), AttributeError> {
    let family = *value.first().ok_or(AttributeError::Malformed)?;
    let mut error = [0u8; 4];
    error[2..].copy_from_slice(value.get(2..4).ok_or(AttributeError::Malformed)?);
    let (code, _) = decode_error_code(&error)?;
    Ok((family, code, decode_text(&value[4..])?))
}

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

/// A password algorithm of the long-term credential mechanism (RFC 8489 §18.5): which hash
/// turns username, realm and password into the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PasswordAlgorithm {
    Md5,
    Sha256,
}

impl PasswordAlgorithm {
    /// The algorithm's number on the wire (0x0001, 0x0002).
    pub fn code(self) -> u16 {
        match self {
            Self::Md5 => 0x0001,
            Self::Sha256 => 0x0002,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            0x0001 => Some(Self::Md5),
            0x0002 => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm's number and its parameters (none for
/// MD5 and SHA-256). The number is returned raw: whether it is one the server offered is the
/// caller's question, not a decoding error.
///
/// ```text
/// |          Algorithm           |  Algorithm Parameters Length   |
/// |                    Algorithm Parameters (variable)
/// ```
pub fn decode_password_algorithm(value: &[u8]) -> Result<(u16, &[u8]), AttributeError> {
    let header = value.get(..4).ok_or(AttributeError::Malformed)?;
    let params_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let params = value.get(4..4 + params_len).ok_or(AttributeError::Malformed)?;
    if value.len() != 4 + params_len {
        return Err(AttributeError::Malformed);
    }
    Ok((u16::from_be_bytes([header[0], header[1]]), params))
}

/// Encodes PASSWORD-ALGORITHMS (RFC 8489 §14.11): one PASSWORD-ALGORITHM entry per algorithm,
/// each without parameters. Returns the value's length.
pub fn encode_password_algorithms(algorithms: &[PasswordAlgorithm], out: &mut [u8; 4 * 8]) -> usize {
    let algorithms = &algorithms[..algorithms.len().min(8)];
    for (entry, algorithm) in out.chunks_exact_mut(4).zip(algorithms) {
        entry[..2].copy_from_slice(&algorithm.code().to_be_bytes());
        entry[2..].fill(0);
    }
    4 * algorithms.len()
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
    fn turn_values_decode_and_reject_wrong_lengths() {
        assert_eq!(decode_family(&[2, 0, 0, 0]), Ok(Some(AddressFamily::V6)));
        assert_eq!(decode_family(&[3, 0, 0, 0]), Ok(None));
        assert_eq!(decode_family(&[1]), Err(AttributeError::Malformed));
        assert_eq!(decode_requested_transport(&[17, 0, 0, 0]), Ok(17));
        assert_eq!(decode_channel_number(&[0x40, 0x01, 0, 0]), Ok(0x4001));
        assert_eq!(decode_channel_number(&[0x40]), Err(AttributeError::Malformed));
        assert_eq!(decode_even_port(&[0x80]), Ok(true));
        assert_eq!(decode_even_port(&[0x00, 0, 0, 0]), Ok(false));
        assert_eq!(decode_even_port(&[]), Err(AttributeError::Malformed));
        assert_eq!(decode_reservation_token(&[1; 8]), Ok([1; 8]));
        assert_eq!(decode_reservation_token(&[1; 4]), Err(AttributeError::Malformed));
        assert_eq!(
            decode_address_error_code(b"\x02\0\x04\x28Address Family not Supported"),
            Ok((2, 440, "Address Family not Supported"))
        );
        assert_eq!(decode_address_error_code(b"\x02\0"), Err(AttributeError::Malformed));
    }

    #[test]
    fn password_algorithms_encode_and_decode() {
        let mut out = [0u8; 32];
        let len = encode_password_algorithms(&[PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5], &mut out);
        assert_eq!(&out[..len], &[0, 2, 0, 0, 0, 1, 0, 0]);
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0]), Ok((2, &[][..])));
        assert_eq!(decode_password_algorithm(&[0, 9, 0, 2, 7, 7]), Ok((9, &[7, 7][..])));
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 4, 1]), Err(AttributeError::Malformed));
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0, 1]), Err(AttributeError::Malformed));
        assert_eq!(decode_password_algorithm(&[0, 2]), Err(AttributeError::Malformed));
        assert_eq!(PasswordAlgorithm::from_code(2), Some(PasswordAlgorithm::Sha256));
        assert_eq!(PasswordAlgorithm::from_code(3), None);
    }

    #[test]
    fn error_codes_decode_and_reject_nonsense() {
        assert_eq!(decode_error_code(b"\0\0\x04\x01Unauthorized"), Ok((401, "Unauthorized")));
        assert_eq!(decode_error_code(b"\0\0\x09\x01"), Err(AttributeError::Malformed));
        assert_eq!(decode_error_code(b"\0\0\x04"), Err(AttributeError::Malformed));
    }
}
