//! The sans-IO TURN server (RFC 8656 over RFC 8489): allocations, permissions, channels and
//! the relaying between clients and peers, driven by an I/O layer it never sees.
//!
//! One [`Server`] per worker thread, owning that worker's allocations without locks; what the
//! workers share (quota counts, metrics) is atomics in an `Arc<`[`Shared`]`>`. The I/O layer
//! drives it with the time of each input and the sockets behind [`TurnIo`]:
//!
//! ```text
//! loop {
//!     wait for a datagram, a stream message (split with frame_len), or server.poll_timeout()
//!     client message   -> server.handle_client(now, &tuple, bytes, &mut io)
//!     relay datagram   -> server.handle_peer(now, relay, peer, bytes, &mut io)
//!     TCP relay (RFC 6062): peer accepted -> server.handle_peer_accepted(now, relay, peer, &mut io),
//!                      connect outcome    -> server.handle_peer_connected(now, id, ok, &mut io),
//!                      pipe closed        -> server.handle_peer_closed(id, &mut io)
//!     timer            -> server.handle_timeout(now, &mut io)
//! }
//! ```
//! Every output goes through `io` at once: responses and relayed data are written straight
//! into the I/O layer's send buffers, so the relaying paths (ChannelData, Send and Data
//! indications) allocate nothing; only control requests do. Malformed input is dropped and
//! counted by reason, never answered with a panic; requests get typed STUN error responses.
//!
//! Before a client authenticates the server keeps nothing for it: nonces are stateless
//! ([`crate::auth::Nonces`]), and the only per-source state is a fixed-size table of recent
//! authentication failures. Allocations are capped in total (a finite cap even when
//! `total-quota` is 0, see [`Quota::new`]), and each holds a bounded number of permissions
//! ([`MAX_PERMISSIONS`]) and channels ([`MAX_CHANNELS`]).

mod addresses;
mod allocate;
mod allocation;
mod auth_flow;
mod bandwidth;
mod channel;
mod frame;
mod io;
mod kernel_routes;
mod metrics;
mod quota;
mod ratelimit;
mod relay;
mod reply;
mod requests;
mod shared;
mod table;
mod tcp_relay;
mod timers;

use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use stun::{AttrType, Class, ErrorCode, IntegrityKey, Message, Method};

pub use allocation::{
    CHANNEL_LIFETIME, CHANNEL_QUARANTINE, MAX_CHANNELS, MAX_PERMISSIONS, PERMISSION_LIFETIME,
};
pub use channel::{CHANNEL_HEADER_LEN, ChannelNumber, parse_channel_data, write_channel_data};
pub use frame::{FrameError, frame_len};
pub use io::{ClientTuple, ConnectionId, Now, PortRequest, RelayError, RelayId, Transport, TurnIo};
pub use kernel_routes::ChannelRoute;
pub use metrics::{DropReason, Metrics};
pub use quota::{Quota, QuotaExceeded};
pub use ratelimit::{
    BLOCK as AUTH_BLOCK, CAPACITY as AUTH_TABLE_CAPACITY, FAILURE_THRESHOLD as AUTH_FAILURE_THRESHOLD,
    WINDOW as AUTH_WINDOW,
};
pub use shared::Shared;
pub use table::{MAX_RESERVATIONS, RESERVATION_LIFETIME};
pub use tcp_relay::{CONNECT_TIMEOUT, CONNECTION_BIND_TIMEOUT, MAX_PEER_CONNECTIONS};
pub use timers::SWEEP_INTERVAL;

use crate::auth::{Credentials, Nonces};
use crate::config::TurnConfig;
use crate::policy::PeerPolicy;
use addresses::Addresses;
use ratelimit::AuthRateLimit;
use reply::Reply;
use table::Table;
use tcp_relay::PeerConnections;
use timers::Sweep;

/// RFC 8656 §7.2: an allocation lives 10 minutes unless refreshed.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// The longest lifetime granted; longer requests are cut to it (RFC 8656 suggests one hour).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// IP protocol numbers of the REQUESTED-TRANSPORTs relayed: UDP (RFC 8656 §7.2) and TCP
/// (RFC 6062 §5.1).
const UDP: u8 = 17;
const TCP: u8 = 6;

/// The attributes this server understands; a request with any other comprehension-required
/// attribute gets 420 (RFC 8489 §6.3.1).
const KNOWN_ATTRIBUTES: [AttrType; 25] = [
    AttrType::USERNAME,
    AttrType::MESSAGE_INTEGRITY,
    AttrType::REALM,
    AttrType::NONCE,
    // RFC 8489's long-term credential extensions (PASSWORD-ALGORITHMS, 0x8002, is optional).
    AttrType::MESSAGE_INTEGRITY_SHA256,
    AttrType::PASSWORD_ALGORITHM,
    AttrType::USERHASH,
    AttrType::ERROR_CODE,
    AttrType::XOR_MAPPED_ADDRESS,
    AttrType::CHANNEL_NUMBER,
    AttrType::LIFETIME,
    AttrType::XOR_PEER_ADDRESS,
    AttrType::DATA,
    AttrType::XOR_RELAYED_ADDRESS,
    AttrType::REQUESTED_ADDRESS_FAMILY,
    AttrType::EVEN_PORT,
    AttrType::REQUESTED_TRANSPORT,
    AttrType::DONT_FRAGMENT,
    AttrType::RESERVATION_TOKEN,
    AttrType::CONNECTION_ID,
    // ICE attributes: a Binding request may come from an ICE agent's checks.
    AttrType::PRIORITY,
    AttrType::USE_CANDIDATE,
    AttrType::ICE_CONTROLLED,
    AttrType::ICE_CONTROLLING,
    AttrType::FINGERPRINT,
];

/// The TURN server of one worker.
#[derive(Debug)]
pub struct Server {
    credentials: Arc<Credentials>,
    /// The [`SharedCredentials`](shared::SharedCredentials) generation `credentials` is of.
    credentials_generation: u64,
    nonces: Nonces,
    policy: PeerPolicy,
    addresses: Addresses,
    max_bps: u64,
    table: Table,
    auth_limit: AuthRateLimit,
    shared: Arc<Shared>,
    sweep: Sweep,
    /// Keys the RESERVATION-TOKENs, so that one cannot be guessed from another.
    token_key: hmac::Key,
    tokens_minted: u64,
    /// Transaction ids of Data indications: a random prefix and a counter.
    indication_prefix: [u8; 4],
    indications_sent: u64,
    /// Whether channel bindings are handed to the kernel relay (`kernel-relay-interface`).
    kernel_relay: bool,
    /// The peer data connections of this worker's TCP allocations (RFC 6062).
    peer_connections: PeerConnections,
}

impl Server {
    /// `nonce_key` is drawn at start and shared by the workers, so that a nonce minted by one
    /// is good on another.
    pub fn new(config: &TurnConfig, shared: Arc<Shared>, nonce_key: [u8; 32]) -> Self {
        let mut seed = [0u8; 12];
        // Without the system's randomness nothing else in the process is safe either.
        SystemRandom::new().fill(&mut seed).expect("the system random source works");
        let token_key = hmac::Key::new(
            hmac::HMAC_SHA256,
            &hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &nonce_key), &seed).as_ref()[..32],
        );
        Self {
            credentials: Arc::new(Credentials::new(config)),
            credentials_generation: 0,
            nonces: Nonces::new(&nonce_key),
            policy: config.peers.clone(),
            addresses: Addresses::new(config),
            max_bps: config.max_bps,
            table: Table::default(),
            auth_limit: AuthRateLimit::new(),
            shared,
            sweep: Sweep::default(),
            token_key,
            tokens_minted: 0,
            indication_prefix: seed[..4].try_into().expect("4 of 12 bytes"),
            indications_sent: u64::from_be_bytes(seed[4..].try_into().expect("8 of 12 bytes")),
            kernel_relay: !config.kernel_relay_interfaces.is_empty(),
            peer_connections: PeerConnections::new(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Allocations this worker holds (expired ones included until the next sweep).
    pub fn allocations(&self) -> usize {
        self.table.len()
    }

    /// Sources in the authentication-failure table (at most [`AUTH_TABLE_CAPACITY`]).
    pub fn tracked_auth_sources(&self) -> usize {
        self.auth_limit.tracked()
    }

    /// One STUN message or ChannelData message from a client. Over TCP and TLS, `bytes` is one
    /// message as [`frame_len`] measured it.
    pub fn handle_client(&mut self, now: Now, tuple: &ClientTuple, bytes: &[u8], io: &mut impl TurnIo) {
        match bytes.first() {
            // RFC 7983 / RFC 8656 §12: 0b00 is STUN, 0b01 ChannelData (see `ChannelNumber`).
            Some(0x00..=0x3f) => self.stun_from_client(now, tuple, bytes, io),
            Some(0x40..=0x7f) => self.channel_data_from_client(now, tuple, bytes, io),
            _ => self.dropped(DropReason::Malformed),
        }
    }

    /// The TCP or TLS connection of `tuple` closed: its allocation goes with it (RFC 8656
    /// §3.1: an allocation over a stream lives no longer than its connection).
    pub fn handle_client_closed(&mut self, tuple: &ClientTuple, io: &mut impl TurnIo) {
        self.free(tuple, io);
    }

    /// Frees every allocation (their relay sockets closed, their quota given back), as when the
    /// worker stops.
    pub fn shutdown(&mut self, io: &mut impl TurnIo) {
        for tuple in self.table.tuples() {
            self.free(&tuple, io);
        }
        for (_, reservation) in self.table.reservations.drain() {
            io.close_relay(reservation.relay.id);
        }
    }

    fn dropped(&self, reason: DropReason) {
        self.shared.metrics.dropped(reason);
    }

    /// Counts a response the I/O layer could not queue.
    fn sent(&self, queued: bool) {
        if !queued {
            self.dropped(DropReason::QueueFull);
        }
    }

    fn stun_from_client(&mut self, now: Now, tuple: &ClientTuple, bytes: &[u8], io: &mut impl TurnIo) {
        let Ok(message) = Message::parse(bytes) else { return self.dropped(DropReason::Malformed) };
        // RFC 8489 §7.3: a message whose FINGERPRINT does not check out is not ours; drop it.
        if message.get(AttrType::FINGERPRINT).is_some() && message.verify_fingerprint().is_err() {
            return self.dropped(DropReason::Malformed);
        }
        match (message.class(), message.method()) {
            (Class::Request, _) => self.request(now, tuple, &message, io),
            (Class::Indication, Method::SEND) => self.send_indication(now, tuple, &message, io),
            // Responses, and indications other than Send, mean nothing from a client; an
            // indication is never answered (RFC 8489 §6.3.2).
            _ => self.dropped(DropReason::Malformed),
        }
    }

    fn request(&mut self, now: Now, tuple: &ClientTuple, message: &Message<'_>, io: &mut impl TurnIo) {
        if self.auth_limit.is_blocked(tuple.client.ip(), now.instant) {
            return self.dropped(DropReason::RateLimited);
        }
        // An expired allocation is gone for every request, even before the sweep frees it.
        if self.table.get(tuple).is_some_and(|a| !a.is_live(now.instant)) {
            self.free(tuple, io);
        }
        let method = message.method();
        if method == Method::BINDING {
            return self.binding(tuple, message, io);
        }
        const AUTHENTICATED: [Method; 6] = [
            Method::ALLOCATE,
            Method::REFRESH,
            Method::CREATE_PERMISSION,
            Method::CHANNEL_BIND,
            Method::CONNECT,
            Method::CONNECTION_BIND,
        ];
        if !AUTHENTICATED.contains(&method) {
            return self.sent(Reply::to(message, None).error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        let Some(auth) = self.authenticate(now, tuple, message, io) else { return };
        // RFC 8489 §6.3.1.1: unknown attributes are judged once authentication has passed.
        if self.unknown_attributes(tuple, message, Some(&auth.key), io) {
            return;
        }
        match method {
            Method::ALLOCATE => self.allocate(now, tuple, message, &auth, io),
            Method::REFRESH => self.refresh(now, tuple, message, &auth, io),
            Method::CREATE_PERMISSION => self.create_permission(now, tuple, message, &auth, io),
            Method::CONNECT => self.connect(now, tuple, message, &auth, io),
            Method::CONNECTION_BIND => self.connection_bind(now, tuple, message, &auth, io),
            _ => self.channel_bind(now, tuple, message, &auth, io),
        }
    }

    /// Answers 420 naming every unknown comprehension-required attribute; `true` if it did.
    fn unknown_attributes(
        &self,
        tuple: &ClientTuple,
        message: &Message<'_>,
        key: Option<&IntegrityKey>,
        io: &mut impl TurnIo,
    ) -> bool {
        let mut unknown = [AttrType(0); 16];
        let mut count = 0;
        for typ in message.attributes().map(|a| a.typ) {
            if typ.is_comprehension_required() && !KNOWN_ATTRIBUTES.contains(&typ) && count < unknown.len() {
                unknown[count] = typ;
                count += 1;
            }
        }
        if count == 0 {
            return false;
        }
        let unknown = &unknown[..count];
        self.sent(Reply::to(message, key).send(io, tuple, Class::Error, |m| {
            m.error(ErrorCode::UNKNOWN_ATTRIBUTE)?.unknown_attributes(unknown).map(drop)
        }));
        true
    }

    /// RFC 8489 §6.3.1: the client's reflexive address; no authentication.
    fn binding(&mut self, tuple: &ClientTuple, message: &Message<'_>, io: &mut impl TurnIo) {
        if self.unknown_attributes(tuple, message, None, io) {
            return;
        }
        let reply = Reply::to(message, None);
        self.sent(
            reply.success(io, tuple, |m| m.xor_address(AttrType::XOR_MAPPED_ADDRESS, tuple.client).map(drop)),
        );
    }
}
