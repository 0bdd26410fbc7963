//! Our own sans-IO TURN client: it builds requests with the long-term credential flow and
//! reads the answers. It drives the server in the protocol tests and the load generator in
//! the benchmarks; it holds no sockets and no clock.
//!
//! ```
//! use turn::client::{AllocateOptions, Client, Outcome};
//! use stun::TransactionId;
//!
//! let mut client = Client::new("1764172800:ada", "password");
//! let mut buf = [0u8; 1504];
//! let (_, len) = client.allocate(&mut buf, TransactionId([1; 12]), &AllocateOptions::default())?;
//! // ... send buf[..len]; the first answer is a 401 with REALM and NONCE, which the client
//! // learns (Outcome::Retry); the same request built again carries the credentials.
//! # Ok::<(), stun::BufferTooSmall>(())
//! ```

use std::net::SocketAddr;

use stun::{
    AddressFamily, AttrType, BufferTooSmall, Class, ErrorCode, IntegrityKey, Message, MessageBuilder, Method,
    PasswordAlgorithm, TransactionId,
};

pub use crate::server::{ChannelNumber, parse_channel_data, write_channel_data};

/// What an Allocate asks for beyond the defaults (UDP, IPv4, the server's lifetime).
#[derive(Clone, Debug)]
pub struct AllocateOptions {
    /// REQUESTED-TRANSPORT's protocol number (17, UDP, unless a test asks for another).
    pub transport: u8,
    pub lifetime: Option<u32>,
    pub family: Option<AddressFamily>,
    pub additional_family: Option<AddressFamily>,
    /// EVEN-PORT, with the R bit when `Some(true)`.
    pub even_port: Option<bool>,
    pub reservation_token: Option<[u8; 8]>,
    pub dont_fragment: bool,
}

impl Default for AllocateOptions {
    fn default() -> Self {
        Self {
            transport: 17,
            lifetime: None,
            family: None,
            additional_family: None,
            even_port: None,
            reservation_token: None,
            dont_fragment: false,
        }
    }
}

/// How the client authenticates beyond what every RFC 5389 client does (USERNAME, MD5 key,
/// MESSAGE-INTEGRITY): the RFC 8489 extensions, and ways to break them that tests need.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    /// Sign with MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY.
    pub sha256: bool,
    /// Truncate MESSAGE-INTEGRITY-SHA256 to this many bytes (RFC 8489 §14.6); 32 when `None`.
    pub sha256_len: Option<usize>,
    /// Send USERHASH instead of USERNAME.
    pub userhash: bool,
    /// Make the key with this algorithm and say so in PASSWORD-ALGORITHM, echoing the
    /// challenge's PASSWORD-ALGORITHMS.
    pub password_algorithm: Option<PasswordAlgorithm>,
    /// Send this PASSWORD-ALGORITHMS instead of the challenge's, as after a bid-down.
    pub password_algorithms: Option<Vec<PasswordAlgorithm>>,
}

/// A response, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub method: Method,
    pub transaction_id: TransactionId,
    pub outcome: Outcome,
    /// XOR-RELAYED-ADDRESS, one per family.
    pub relayed: Vec<SocketAddr>,
    pub mapped: Option<SocketAddr>,
    pub lifetime: Option<u32>,
    pub reservation_token: Option<[u8; 8]>,
    /// ADDRESS-ERROR-CODE: the family code and the error of the family a dual allocation lacks.
    pub address_error: Option<(u8, u16)>,
    /// UNKNOWN-ATTRIBUTES of a 420.
    pub unknown_attributes: Vec<u16>,
    /// CONNECTION-ID of a Connect or ConnectionBind response (RFC 6062).
    pub connection_id: Option<u32>,
    /// Whether MESSAGE-INTEGRITY (or -SHA256) checked out with the client's key (false when absent).
    pub signed: bool,
    /// Whether the integrity that checked out was MESSAGE-INTEGRITY-SHA256.
    pub signed_sha256: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 401 or 438 that taught the client a realm and nonce: send the request again.
    Retry,
    Error(u16),
}

/// Why a datagram is not a response the client can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    NotStun,
    NotAResponse,
    /// MESSAGE-INTEGRITY present and wrong: not from the server that holds our key.
    BadIntegrity,
}

/// A TURN client's credentials and what it learnt from the server's challenges.
#[derive(Debug)]
pub struct Client {
    username: String,
    password: String,
    options: AuthOptions,
    realm: Option<String>,
    nonce: Option<String>,
    /// PASSWORD-ALGORITHMS of the last challenge, as it came.
    offered_algorithms: Option<Vec<u8>>,
    key: Option<IntegrityKey>,
}

impl Client {
    pub fn new(username: &str, password: &str) -> Self {
        Self::with_options(username, password, AuthOptions::default())
    }

    pub fn with_options(username: &str, password: &str, options: AuthOptions) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            options,
            realm: None,
            nonce: None,
            offered_algorithms: None,
            key: None,
        }
    }

    /// Changes the options for the next requests; the key follows a new password algorithm at
    /// the next challenge.
    pub fn set_options(&mut self, options: AuthOptions) {
        self.options = options;
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether a challenge has taught realm and nonce, so requests carry credentials.
    pub fn has_credentials(&self) -> bool {
        self.key.is_some()
    }

    /// Forgets realm, nonce and key, as a new client would start.
    pub fn forget(&mut self) {
        (self.realm, self.nonce, self.key, self.offered_algorithms) = (None, None, None, None);
    }

    /// Builds a request of `method`: `attributes` writes its own attributes, then come
    /// USERNAME (or USERHASH), REALM, NONCE, PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS when
    /// chosen, and MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 (once a challenge taught realm
    /// and nonce), and FINGERPRINT.
    pub fn request(
        &self,
        buf: &mut [u8],
        method: Method,
        transaction_id: TransactionId,
        attributes: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BufferTooSmall>,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        let mut message = MessageBuilder::new(buf, method, Class::Request, transaction_id)?;
        attributes(&mut message)?;
        if let (Some(realm), Some(nonce), Some(key)) = (&self.realm, &self.nonce, &self.key) {
            if self.options.userhash {
                message.attribute(AttrType::USERHASH, &stun::userhash(&self.username, realm))?;
            } else {
                message.attribute(AttrType::USERNAME, self.username.as_bytes())?;
            }
            message
                .attribute(AttrType::REALM, realm.as_bytes())?
                .attribute(AttrType::NONCE, nonce.as_bytes())?;
            if let Some(algorithm) = self.options.password_algorithm {
                message.password_algorithm(algorithm)?;
                match (&self.options.password_algorithms, &self.offered_algorithms) {
                    (Some(list), _) => message.password_algorithms(list)?,
                    (None, Some(offered)) => message.attribute(AttrType::PASSWORD_ALGORITHMS, offered)?,
                    (None, None) => &mut message,
                };
            }
            if self.options.sha256 {
                let len = self.options.sha256_len.unwrap_or(32);
                message.message_integrity_sha256_truncated(key.sha256(), len)?;
            } else {
                message.message_integrity(key.sha1())?;
            }
        }
        message.fingerprint()?;
        Ok((transaction_id, message.finish()))
    }

    pub fn binding(&self, buf: &mut [u8], transaction_id: TransactionId) -> Result<usize, BufferTooSmall> {
        let mut message = MessageBuilder::new(buf, Method::BINDING, Class::Request, transaction_id)?;
        message.fingerprint()?;
        Ok(message.finish())
    }

    pub fn allocate(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        options: &AllocateOptions,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::ALLOCATE, transaction_id, |m| {
            m.requested_transport(options.transport)?;
            if let Some(lifetime) = options.lifetime {
                m.u32(AttrType::LIFETIME, lifetime)?;
            }
            if let Some(family) = options.family {
                m.family(AttrType::REQUESTED_ADDRESS_FAMILY, family)?;
            }
            if let Some(family) = options.additional_family {
                m.family(AttrType::ADDITIONAL_ADDRESS_FAMILY, family)?;
            }
            if let Some(reserve) = options.even_port {
                m.even_port(reserve)?;
            }
            if let Some(token) = &options.reservation_token {
                m.attribute(AttrType::RESERVATION_TOKEN, token)?;
            }
            if options.dont_fragment {
                m.attribute(AttrType::DONT_FRAGMENT, &[])?;
            }
            Ok(())
        })
    }

    /// Refresh; `Some(0)` deletes the allocation, `family` names one family of a dual one.
    pub fn refresh(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        lifetime: Option<u32>,
        family: Option<AddressFamily>,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::REFRESH, transaction_id, |m| {
            if let Some(lifetime) = lifetime {
                m.u32(AttrType::LIFETIME, lifetime)?;
            }
            if let Some(family) = family {
                m.family(AttrType::REQUESTED_ADDRESS_FAMILY, family)?;
            }
            Ok(())
        })
    }

    pub fn create_permission(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        peers: &[SocketAddr],
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::CREATE_PERMISSION, transaction_id, |m| {
            for &peer in peers {
                m.xor_address(AttrType::XOR_PEER_ADDRESS, peer)?;
            }
            Ok(())
        })
    }

    /// ChannelBind; the number is raw so that tests can ask for numbers out of range.
    pub fn channel_bind(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        channel: u16,
        peer: SocketAddr,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::CHANNEL_BIND, transaction_id, |m| {
            m.channel_number(channel)?.xor_address(AttrType::XOR_PEER_ADDRESS, peer).map(drop)
        })
    }

    /// Connect (RFC 6062 §4.3): a TCP connection from the relayed address to `peer`.
    pub fn connect(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        peer: SocketAddr,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::CONNECT, transaction_id, |m| {
            m.xor_address(AttrType::XOR_PEER_ADDRESS, peer).map(drop)
        })
    }

    /// ConnectionBind (RFC 6062 §4.4), sent on a new connection to the server.
    pub fn connection_bind(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        connection_id: u32,
    ) -> Result<(TransactionId, usize), BufferTooSmall> {
        self.request(buf, Method::CONNECTION_BIND, transaction_id, |m| {
            m.u32(AttrType::CONNECTION_ID, connection_id).map(drop)
        })
    }

    /// A Send indication (never authenticated, RFC 8656 §11.1).
    pub fn send_indication(
        &self,
        buf: &mut [u8],
        transaction_id: TransactionId,
        peer: SocketAddr,
        data: &[u8],
        dont_fragment: bool,
    ) -> Result<usize, BufferTooSmall> {
        let mut message = MessageBuilder::new(buf, Method::SEND, Class::Indication, transaction_id)?;
        message.xor_address(AttrType::XOR_PEER_ADDRESS, peer)?.attribute(AttrType::DATA, data)?;
        if dont_fragment {
            message.attribute(AttrType::DONT_FRAGMENT, &[])?;
        }
        Ok(message.finish())
    }

    /// Reads a response; a 401 or 438 with REALM and NONCE teaches them to the client. A 401
    /// to a request that already carried credentials is a refusal, not a retry.
    pub fn handle_response(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        let message = Message::parse(bytes).map_err(|_| ClientError::NotStun)?;
        let error = match message.class() {
            Class::Success => None,
            Class::Error => Some(message.error_code().map(|(code, _)| code).unwrap_or(0)),
            _ => return Err(ClientError::NotAResponse),
        };
        let signed_sha256 = message.has_integrity_sha256();
        let signed = match &self.key {
            Some(key) if signed_sha256 || message.get(AttrType::MESSAGE_INTEGRITY).is_some() => {
                message.verify_any_integrity(key).map_err(|_| ClientError::BadIntegrity)?;
                true
            }
            _ => false,
        };
        let signed_sha256 = signed && signed_sha256;
        let outcome = match error {
            None => Outcome::Success,
            Some(code) if code == ErrorCode::UNAUTHENTICATED.0 || code == ErrorCode::STALE_NONCE.0 => {
                let had_credentials = self.key.is_some();
                self.learn(&message);
                if code == ErrorCode::STALE_NONCE.0 || !had_credentials {
                    Outcome::Retry
                } else {
                    Outcome::Error(code)
                }
            }
            Some(code) => Outcome::Error(code),
        };
        let transaction_id = message.transaction_id();
        let mut response = Response {
            method: message.method(),
            transaction_id,
            outcome,
            relayed: Vec::new(),
            mapped: None,
            lifetime: None,
            reservation_token: None,
            address_error: None,
            unknown_attributes: Vec::new(),
            connection_id: None,
            signed,
            signed_sha256,
        };
        for attribute in message.attributes() {
            match attribute.typ {
                AttrType::XOR_RELAYED_ADDRESS => {
                    response.relayed.extend(stun::decode_xor_address(attribute.value, &transaction_id));
                }
                AttrType::XOR_MAPPED_ADDRESS => {
                    response.mapped = stun::decode_xor_address(attribute.value, &transaction_id).ok();
                }
                AttrType::LIFETIME => response.lifetime = stun::decode_u32(attribute.value).ok(),
                AttrType::RESERVATION_TOKEN => {
                    response.reservation_token = stun::decode_reservation_token(attribute.value).ok();
                }
                AttrType::ADDRESS_ERROR_CODE => {
                    response.address_error = stun::decode_address_error_code(attribute.value)
                        .ok()
                        .map(|(family, code, _)| (family, code));
                }
                AttrType::CONNECTION_ID => response.connection_id = stun::decode_u32(attribute.value).ok(),
                AttrType::UNKNOWN_ATTRIBUTES => {
                    response.unknown_attributes =
                        attribute.value.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
                }
                _ => {}
            }
        }
        Ok(response)
    }

    fn learn(&mut self, message: &Message<'_>) {
        let text = |typ| message.get(typ).map(stun::decode_text);
        if let (Some(Ok(realm)), Some(Ok(nonce))) = (text(AttrType::REALM), text(AttrType::NONCE)) {
            let algorithm = self.options.password_algorithm.unwrap_or(PasswordAlgorithm::Md5);
            self.key = Some(stun::long_term_key_with(algorithm, &self.username, realm, &self.password));
            self.realm = Some(realm.into());
            self.nonce = Some(nonce.into());
            self.offered_algorithms = message.get(AttrType::PASSWORD_ALGORITHMS).map(<[u8]>::to_vec);
        }
    }
}

/// Reads a Data indication: the peer and the data.
pub fn parse_data_indication(bytes: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let message = Message::parse(bytes).ok()?;
    if (message.method(), message.class()) != (Method::DATA, Class::Indication) {
        return None;
    }
    let peer = message.xor_address(AttrType::XOR_PEER_ADDRESS).ok()?;
    let data = message.data().ok()?;
    Some((peer, data))
}

/// Reads a ConnectionAttempt indication (RFC 6062 §4.3): the peer and its CONNECTION-ID.
pub fn parse_connection_attempt(bytes: &[u8]) -> Option<(SocketAddr, u32)> {
    let message = Message::parse(bytes).ok()?;
    if (message.method(), message.class()) != (Method::CONNECTION_ATTEMPT, Class::Indication) {
        return None;
    }
    let peer = message.xor_address(AttrType::XOR_PEER_ADDRESS).ok()?;
    let id = stun::decode_u32(message.get(AttrType::CONNECTION_ID)?).ok()?;
    Some((peer, id))
}

/// Whether a datagram from the server is ChannelData rather than STUN (RFC 8656 §12).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| (0x40..=0x7f).contains(b))
}
