//! Allocate (RFC 8656 §7.2): the checks in the RFC's order, then the relay sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use stun::{AddressFamily, AttrType, AttributeError, Class, ErrorCode, Message};

use super::allocation::{Allocation, Relay, family_index};
use super::auth_flow::Authenticated;
use super::bandwidth::TokenBucket;
use super::io::Transport;
use super::io::{ClientTuple, Now, PortRequest, TurnIo};
use super::reply::Reply;
use super::table::{MAX_RESERVATIONS, RESERVATION_LIFETIME, Reservation};
use super::{DEFAULT_LIFETIME, MAX_LIFETIME, Server, TCP, UDP};

/// Tries at an even port whose successor is free before answering 508.
const EVEN_PAIR_ATTEMPTS: usize = 8;
/// Room for the largest Allocate response: two relayed addresses, ADDRESS-ERROR-CODE,
/// LIFETIME, RESERVATION-TOKEN, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT.
const RESPONSE_CAPACITY: usize = 512;

/// What an Allocate request asks for, once its attributes are checked.
#[derive(Debug)]
struct AllocateRequest {
    family: AddressFamily,
    /// ADDITIONAL-ADDRESS-FAMILY (always IPv6): a dual allocation.
    additional: bool,
    /// EVEN-PORT, and whether its R bit asks to reserve the next port.
    even_port: Option<bool>,
    reservation: Option<[u8; 8]>,
    lifetime: Duration,
    /// REQUESTED-TRANSPORT TCP (RFC 6062 §5.1).
    tcp: bool,
}

/// RFC 8656 §7.2, §8.2: the client's lifetime cut to the maximum, and never below the default.
pub(super) fn desired_lifetime(requested: u32) -> Duration {
    Duration::from_secs(u64::from(requested)).clamp(DEFAULT_LIFETIME, MAX_LIFETIME)
}

fn bad<T>(_: T) -> ErrorCode {
    ErrorCode::BAD_REQUEST
}

impl AllocateRequest {
    fn read(message: &Message<'_>, over: Transport) -> Result<Self, ErrorCode> {
        let transport = message.get(AttrType::REQUESTED_TRANSPORT).ok_or(ErrorCode::BAD_REQUEST)?;
        let tcp = match stun::decode_requested_transport(transport).map_err(bad)? {
            UDP => false,
            TCP => true,
            _ => return Err(ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL),
        };
        // RFC 6062 §5.1: a TCP allocation needs a TCP or TLS control connection (its data
        // connections are made to the same server address), and takes none of the UDP
        // port options.
        if tcp
            && (!over.is_stream()
                || [AttrType::DONT_FRAGMENT, AttrType::EVEN_PORT, AttrType::RESERVATION_TOKEN]
                    .iter()
                    .any(|&typ| message.get(typ).is_some()))
        {
            return Err(ErrorCode::BAD_REQUEST);
        }
        let reservation = message.get(AttrType::RESERVATION_TOKEN).map(stun::decode_reservation_token);
        let reservation = reservation.transpose().map_err(bad)?;
        let even_port =
            message.get(AttrType::EVEN_PORT).map(stun::decode_even_port).transpose().map_err(bad)?;
        let requested = message.get(AttrType::REQUESTED_ADDRESS_FAMILY).map(stun::decode_family);
        let requested = requested.transpose().map_err(bad)?;
        let additional = message.get(AttrType::ADDITIONAL_ADDRESS_FAMILY).map(stun::decode_family);
        let additional = additional.transpose().map_err(bad)?;
        // A reservation is one address on a port chosen earlier: nothing else may shape it.
        if reservation.is_some() && (even_port.is_some() || requested.is_some() || additional.is_some()) {
            return Err(ErrorCode::BAD_REQUEST);
        }
        if requested.is_some() && additional.is_some() {
            return Err(ErrorCode::BAD_REQUEST);
        }
        // ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6 beside the default IPv4 (§7.2).
        if additional.is_some_and(|f| f != Some(AddressFamily::V6)) {
            return Err(ErrorCode::BAD_REQUEST);
        }
        let family = match requested {
            None => AddressFamily::V4,
            Some(Some(family)) => family,
            Some(None) => return Err(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED),
        };
        let lifetime = match message.lifetime() {
            Ok(seconds) => desired_lifetime(seconds),
            Err(AttributeError::Missing) => DEFAULT_LIFETIME,
            Err(_) => return Err(ErrorCode::BAD_REQUEST),
        };
        Ok(Self { family, additional: additional.is_some(), even_port, reservation, lifetime, tcp })
    }
}

/// The relay sockets of a new allocation.
#[derive(Debug, Default)]
struct Opened {
    relays: [Option<Relay>; 2],
    token: Option<[u8; 8]>,
    /// The family of a dual allocation that could not be had, and why.
    additional_error: Option<(AddressFamily, ErrorCode)>,
}

impl Server {
    pub(super) fn allocate(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        if let Some(existing) = self.table.get(tuple) {
            let (transaction, response) = &existing.allocate_response;
            let queued = if *transaction == message.transaction_id() {
                io.to_client(tuple, |buf| copy_into(buf, response))
            } else {
                reply.error(io, tuple, ErrorCode::ALLOCATION_MISMATCH)
            };
            return self.sent(queued);
        }
        let request = match AllocateRequest::read(message, tuple.transport) {
            Ok(request) => request,
            Err(code) => return self.sent(reply.error(io, tuple, code)),
        };
        let ticket = match self.shared.quota.acquire(&auth.username) {
            Ok(ticket) => ticket,
            Err(_) => {
                self.shared.metrics.quota_rejection();
                return self.sent(reply.error(io, tuple, ErrorCode::ALLOCATION_QUOTA_REACHED));
            }
        };
        let opened = match self.open_relays(now, tuple, &request, io) {
            Ok(opened) => opened,
            Err(code) => {
                self.shared.quota.release(ticket);
                return self.sent(reply.error(io, tuple, code));
            }
        };
        let mut buf = [0u8; RESPONSE_CAPACITY];
        let len = reply
            .write(&mut buf, Class::Success, |m| {
                for relay in opened.relays.iter().flatten() {
                    m.xor_address(AttrType::XOR_RELAYED_ADDRESS, relay.announced)?;
                }
                if let Some((family, code)) = opened.additional_error {
                    m.address_error_code(family, code)?;
                }
                m.u32(AttrType::LIFETIME, request.lifetime.as_secs() as u32)?;
                if let Some(token) = &opened.token {
                    m.attribute(AttrType::RESERVATION_TOKEN, token)?;
                }
                m.xor_address(AttrType::XOR_MAPPED_ADDRESS, tuple.client)?;
                Ok(())
            })
            .expect("RESPONSE_CAPACITY holds every attribute of an Allocate response");
        let response: Box<[u8]> = buf[..len].into();
        self.sent(io.to_client(tuple, |out| copy_into(out, &response)));
        let expires = now.instant + request.lifetime;
        self.table.insert(
            *tuple,
            Allocation {
                username: auth.username.as_ref().into(),
                key: auth.key.clone(),
                relays: opened.relays,
                expires,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                channel_of_peer: HashMap::new(),
                allocate_response: (message.transaction_id(), response),
                bucket: (self.max_bps > 0).then(|| TokenBucket::new(self.max_bps, now.instant)),
                quota: Some(ticket),
                kernel_routes: HashMap::new(),
                tcp: request.tcp,
                connections: Vec::new(),
            },
        );
        self.shared.metrics.allocated();
        self.schedule(expires);
    }

    fn open_relays(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        request: &AllocateRequest,
        io: &mut impl TurnIo,
    ) -> Result<Opened, ErrorCode> {
        let mut opened = Opened::default();
        if let Some(token) = request.reservation {
            // RFC 8656 §7.2: a token that names no reservation is 508, not 400.
            let reservation =
                self.table.reservations.remove(&token).ok_or(ErrorCode::INSUFFICIENT_CAPACITY)?;
            if now.instant >= reservation.expires {
                io.close_relay(reservation.relay.id);
                return Err(ErrorCode::INSUFFICIENT_CAPACITY);
            }
            let family = AddressFamily::of(reservation.relay.local.ip());
            opened.relays[family_index(family)] = Some(reservation.relay);
            return Ok(opened);
        }
        let reached = tuple.server.ip();
        let ip = self
            .addresses
            .relay_ip(request.family, reached)
            .ok_or(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED)?;
        let primary = match request.even_port {
            Some(true) => {
                let (relay, token) = self.open_even_pair(now, ip, io)?;
                opened.token = Some(token);
                relay
            }
            Some(false) => self.open(ip, PortRequest::Even, io)?,
            None if request.tcp => self.open_tcp(ip, io)?,
            None => self.open(ip, PortRequest::Any, io)?,
        };
        opened.relays[family_index(request.family)] = Some(primary);
        if request.additional {
            // A dual allocation that gets only IPv4 still succeeds, and says why not IPv6.
            let v6 = self.addresses.relay_ip(AddressFamily::V6, reached);
            let opened_v6 = v6.map(|ip| match request.tcp {
                true => self.open_tcp(ip, io),
                false => self.open(ip, PortRequest::Any, io),
            });
            match opened_v6 {
                Some(Ok(relay)) => opened.relays[family_index(AddressFamily::V6)] = Some(relay),
                Some(Err(code)) => opened.additional_error = Some((AddressFamily::V6, code)),
                None => {
                    opened.additional_error =
                        Some((AddressFamily::V6, ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED))
                }
            }
        }
        Ok(opened)
    }

    fn open(&self, ip: IpAddr, port: PortRequest, io: &mut impl TurnIo) -> Result<Relay, ErrorCode> {
        let (id, local) = io.open_relay(ip, port).map_err(|_| ErrorCode::INSUFFICIENT_CAPACITY)?;
        Ok(Relay { id, local, announced: self.addresses.announced(local) })
    }

    fn open_tcp(&self, ip: IpAddr, io: &mut impl TurnIo) -> Result<Relay, ErrorCode> {
        let (id, local) = io.open_tcp_relay(ip).map_err(|_| ErrorCode::INSUFFICIENT_CAPACITY)?;
        Ok(Relay { id, local, announced: self.addresses.announced(local) })
    }

    /// EVEN-PORT with the R bit: an even port, and the next one held under a new token
    /// (RFC 8656 §7.2). Even ports whose successor is taken stay open while the next is tried,
    /// so the I/O layer offers a different one each time.
    fn open_even_pair(
        &mut self,
        now: Now,
        ip: IpAddr,
        io: &mut impl TurnIo,
    ) -> Result<(Relay, [u8; 8]), ErrorCode> {
        if self.table.reservations.len() >= MAX_RESERVATIONS {
            return Err(ErrorCode::INSUFFICIENT_CAPACITY);
        }
        let mut tried = [None; EVEN_PAIR_ATTEMPTS];
        let mut found = Err(ErrorCode::INSUFFICIENT_CAPACITY);
        for slot in &mut tried {
            let even = match self.open(ip, PortRequest::Even, io) {
                Ok(even) => even,
                Err(code) => {
                    found = Err(code);
                    break;
                }
            };
            match even.local.port().checked_add(1).map(|next| self.open(ip, PortRequest::Specific(next), io))
            {
                Some(Ok(odd)) => {
                    found = Ok((even, odd));
                    break;
                }
                _ => *slot = Some(even.id),
            }
        }
        for relay in tried.into_iter().flatten() {
            io.close_relay(relay);
        }
        let (even, odd) = found?;
        let token = self.mint_token();
        let expires = now.instant + RESERVATION_LIFETIME;
        self.table.reservations.insert(token, Reservation { relay: odd, expires });
        self.schedule(expires);
        Ok((even, token))
    }

    fn mint_token(&mut self) -> [u8; 8] {
        self.tokens_minted += 1;
        let tag = ring::hmac::sign(&self.token_key, &self.tokens_minted.to_be_bytes());
        tag.as_ref()[..8].try_into().expect("HMAC-SHA256 is 32 bytes")
    }
}

/// Copies a stored message into the I/O layer's buffer; 0 when it does not fit.
fn copy_into(buf: &mut [u8], message: &[u8]) -> usize {
    match buf.get_mut(..message.len()) {
        Some(out) => {
            out.copy_from_slice(message);
            message.len()
        }
        None => 0,
    }
}
