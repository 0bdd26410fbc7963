//! TCP allocations (RFC 6062): the decisions about peer data connections, made on the
//! server's virtual time; the bytes themselves never pass through here.
//!
//! A peer data connection comes from a Connect request (§5.2: the server connects out from
//! the relayed address) or from a peer connecting to the relayed address (§5.3: announced to
//! the client with a ConnectionAttempt indication). Either way it then waits, for at most
//! [`CONNECTION_BIND_TIMEOUT`], for the client to open a new connection to the server and send
//! ConnectionBind with its CONNECTION-ID (§5.4); from then on the I/O layer joins the two
//! connections into a byte pipe and tells the server only when it closes.
//!
//! ```text
//!   Connect ──connect_peer──▶ Connecting ──handle_peer_connected(ok)──▶ Unbound ──ConnectionBind──▶ Bound
//!   peer connects ──handle_peer_accepted (permission)──────────────────▶ Unbound
//!   Connecting past CONNECT_TIMEOUT: 447; Unbound past CONNECTION_BIND_TIMEOUT: closed
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun::{AddressFamily, AttrType, Class, ErrorCode, Message, MessageBuilder, Method, TransactionId};

use super::Server;
use super::auth_flow::Authenticated;
use super::io::{ClientTuple, ConnectionId, Now, RelayId, Transport, TurnIo};
use super::metrics::{DropReason, Metrics};
use super::reply::Reply;

/// RFC 6062 §5.2: a connection attempt to a peer times out after at least 30 seconds (447).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 6062 §5.2, §5.3: a peer data connection not bound within 30 seconds is closed.
pub const CONNECTION_BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Peer data connections per TCP allocation, in every state. Each costs a descriptor, a
/// connection slot and its pipe buffers, and a client that needs more than a few dozen TCP
/// peers at once is not a meeting participant; without the bound one authenticated client
/// could spend the worker's whole connection limit with Connect requests (508 beyond it).
pub const MAX_PEER_CONNECTIONS: usize = 32;

/// Where one peer data connection stands.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Connecting out for a Connect request, answered when the I/O layer reports.
    Connecting { request: PendingConnect, deadline: Instant },
    /// Established, waiting for the client's ConnectionBind.
    Unbound { deadline: Instant },
    /// A byte pipe to a client data connection, run by the I/O layer.
    Bound,
}

/// What answering a Connect later needs: the allocation's key signs the response.
#[derive(Clone, Copy, Debug)]
struct PendingConnect {
    transaction_id: TransactionId,
    sha256: bool,
    fingerprint: bool,
}

#[derive(Debug)]
struct PeerConnection {
    /// The control connection of the allocation it belongs to.
    allocation: ClientTuple,
    peer: SocketAddr,
    state: State,
}

/// The peer data connections of one worker, by CONNECTION-ID.
#[derive(Debug)]
pub(super) struct PeerConnections {
    by_id: HashMap<ConnectionId, PeerConnection>,
    /// Ids given out so far.
    minted: u64,
    /// Ids are a keyed hash of `minted`: a client that sees its own ids learns nothing of the
    /// next ones, so nobody binds another client's connection by guessing (the credentials
    /// check stops other users; this stops another client of the same user).
    keys: RandomState,
}

impl PeerConnections {
    pub fn new() -> Self {
        Self { by_id: HashMap::new(), minted: 0, keys: RandomState::new() }
    }

    /// A fresh id, not in use (the table is far smaller than 2^32, so collisions are rare).
    fn mint(&mut self) -> ConnectionId {
        loop {
            self.minted += 1;
            let id = ConnectionId(self.keys.hash_one(self.minted) as u32);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn insert(&mut self, id: ConnectionId, connection: PeerConnection, metrics: &Metrics) {
        metrics.peer_connection_opened();
        self.by_id.insert(id, connection);
    }

    fn remove(&mut self, id: ConnectionId, metrics: &Metrics) -> Option<PeerConnection> {
        let connection = self.by_id.remove(&id)?;
        metrics.peer_connection_closed();
        Some(connection)
    }

    /// Peer data connections at once, in every state.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

impl Server {
    /// Peer data connections of this worker's TCP allocations, in every state.
    pub fn peer_connections(&self) -> usize {
        self.peer_connections.len()
    }

    /// Connect (RFC 6062 §5.2), in the RFC's order of checks.
    pub(super) fn connect(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        let Some(allocation) = self.table.get(tuple) else {
            return self.sent(reply.error(io, tuple, ErrorCode::ALLOCATION_MISMATCH));
        };
        // Connect means nothing to a UDP allocation.
        if !allocation.tcp {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        let Ok(peer) = message.xor_address(AttrType::XOR_PEER_ADDRESS) else {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        };
        let Some(relay) = allocation.relay(AddressFamily::of(peer.ip())).map(|r| r.id) else {
            return self.sent(reply.error(io, tuple, ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        };
        // "Pending or active": a connection to this peer in any state, made either way.
        let connections = &self.peer_connections.by_id;
        if allocation.connections.iter().any(|id| connections.get(id).is_some_and(|c| c.peer == peer)) {
            return self.sent(reply.error(io, tuple, ErrorCode::CONNECTION_ALREADY_EXISTS));
        }
        if let Err(why) = self.policy.check(peer.ip()) {
            self.shared.metrics.denied_peer(why);
            return self.sent(reply.error(io, tuple, ErrorCode::FORBIDDEN));
        }
        if allocation.connections.len() >= MAX_PEER_CONNECTIONS {
            return self.sent(reply.error(io, tuple, ErrorCode::INSUFFICIENT_CAPACITY));
        }
        let id = self.peer_connections.mint();
        if !io.connect_peer(relay, id, peer) {
            self.shared.metrics.peer_connect_failed();
            return self.sent(reply.error(io, tuple, ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE));
        }
        let request = PendingConnect {
            transaction_id: reply.transaction_id,
            sha256: reply.sha256,
            fingerprint: reply.fingerprint,
        };
        let deadline = now.instant + CONNECT_TIMEOUT;
        let connection =
            PeerConnection { allocation: *tuple, peer, state: State::Connecting { request, deadline } };
        self.peer_connections.insert(id, connection, &self.shared.metrics);
        self.table.get_mut(tuple).expect("looked up above").connections.push(id);
        self.schedule(deadline);
    }

    /// The outcome of [`TurnIo::connect_peer`]: the Connect is answered now, with the
    /// CONNECTION-ID or 447. A connection the server gave up on already is closed.
    pub fn handle_peer_connected(
        &mut self,
        now: Now,
        connection: ConnectionId,
        connected: bool,
        io: &mut impl TurnIo,
    ) {
        let pending = match self.peer_connections.by_id.get(&connection) {
            Some(PeerConnection { state: State::Connecting { request, .. }, .. }) => *request,
            // Reported twice: nothing changes.
            Some(_) => return,
            None => return io.close_peer(connection),
        };
        if !connected {
            self.shared.metrics.peer_connect_failed();
            return self.fail_connect(connection, pending, io);
        }
        let Some(peer_connection) = self.peer_connections.by_id.get_mut(&connection) else { return };
        let deadline = now.instant + CONNECTION_BIND_TIMEOUT;
        peer_connection.state = State::Unbound { deadline };
        let tuple = peer_connection.allocation;
        self.schedule(deadline);
        let Some(allocation) = self.table.get(&tuple) else { return };
        let reply = pending.reply(&allocation.key);
        self.sent(reply.success(io, &tuple, |m| m.u32(AttrType::CONNECTION_ID, connection.0).map(drop)));
    }

    /// A peer connected to relay `relay` from `peer` (RFC 6062 §5.3). `Some(id)`: keep it
    /// under this CONNECTION-ID, announced to the client; `None`: close it (no allocation, no
    /// permission for the peer, or the allocation's connections at their bound).
    pub fn handle_peer_accepted(
        &mut self,
        now: Now,
        relay: RelayId,
        peer: SocketAddr,
        io: &mut impl TurnIo,
    ) -> Option<ConnectionId> {
        let metrics = &self.shared.metrics;
        let Some((tuple, allocation)) = self.table.by_relay_mut(relay) else {
            metrics.dropped(DropReason::NoAllocation);
            return None;
        };
        if !allocation.tcp || !allocation.is_live(now.instant) {
            metrics.dropped(DropReason::NoAllocation);
            return None;
        }
        // §5.3: a peer without a permission is closed as soon as it is accepted.
        if !allocation.has_permission(peer.ip(), now.instant) {
            metrics.dropped(DropReason::NoPermission);
            return None;
        }
        if allocation.connections.len() >= MAX_PEER_CONNECTIONS {
            metrics.dropped(DropReason::QueueFull);
            return None;
        }
        let id = self.peer_connections.mint();
        allocation.connections.push(id);
        let deadline = now.instant + CONNECTION_BIND_TIMEOUT;
        let connection = PeerConnection { allocation: tuple, peer, state: State::Unbound { deadline } };
        self.peer_connections.insert(id, connection, &self.shared.metrics);
        self.schedule(deadline);
        let transaction = self.next_indication_id();
        let queued = io.to_client(&tuple, |buf| connection_attempt(buf, transaction, peer, id).unwrap_or(0));
        self.sent(queued);
        Some(id)
    }

    /// A peer data connection closed in the I/O layer (the peer or the client data connection
    /// went away, or a socket failed); the I/O layer has closed both sides.
    pub fn handle_peer_closed(&mut self, connection: ConnectionId, io: &mut impl TurnIo) {
        let Some(removed) = self.peer_connections.by_id.get(&connection) else { return };
        if let State::Connecting { request, .. } = removed.state {
            self.shared.metrics.peer_connect_failed();
            return self.fail_connect(connection, request, io);
        }
        self.forget(connection);
    }

    /// ConnectionBind (RFC 6062 §5.4), on a new connection from the client.
    pub(super) fn connection_bind(
        &mut self,
        _now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        // A data connection is a stream of its own; a control connection stays one.
        if tuple.transport == Transport::Udp || self.table.get(tuple).is_some() {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        let id = message.get(AttrType::CONNECTION_ID).map(stun::decode_u32);
        let Some(Ok(id)) = id.map(|id| id.map(ConnectionId)) else {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        };
        let Some(connection) = self.peer_connections.by_id.get(&id) else {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        };
        if !matches!(connection.state, State::Unbound { .. }) {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        // The data connection must come from whoever holds the allocation (RFC 8656 §5).
        let owner = self.table.get(&connection.allocation).map(|a| &*a.username);
        if owner != Some(&*auth.username) {
            return self.sent(reply.error(io, tuple, ErrorCode::WRONG_CREDENTIALS));
        }
        // The response goes out on the connection before it turns into a pipe.
        self.sent(reply.success(io, tuple, |m| m.u32(AttrType::CONNECTION_ID, id.0).map(drop)));
        if io.bind_data(id, tuple) {
            if let Some(connection) = self.peer_connections.by_id.get_mut(&id) {
                connection.state = State::Bound;
            }
        } else {
            io.close_peer(id);
            self.forget(id);
        }
    }

    /// Closes every peer data connection of an allocation that is going away.
    pub(super) fn close_peer_connections(&mut self, connections: &[ConnectionId], io: &mut impl TurnIo) {
        for &id in connections {
            if self.peer_connections.remove(id, &self.shared.metrics).is_some() {
                io.close_peer(id);
            }
        }
    }

    /// Answers Connects that ran out of time with 447 and closes connections never bound;
    /// returns the next deadline among those left.
    pub(super) fn expire_peer_connections(&mut self, now: Instant, io: &mut impl TurnIo) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for (&id, connection) in &self.peer_connections.by_id {
            let deadline = match connection.state {
                State::Connecting { deadline, .. } | State::Unbound { deadline } => deadline,
                State::Bound => continue,
            };
            if now >= deadline {
                expired.push((id, connection.state));
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        for (id, state) in expired {
            io.close_peer(id);
            match state {
                State::Connecting { request, .. } => {
                    self.shared.metrics.peer_connect_failed();
                    self.fail_connect(id, request, io);
                }
                _ => self.forget(id),
            }
        }
        next
    }

    /// 447 to a Connect whose connection failed, and the connection forgotten.
    fn fail_connect(&mut self, id: ConnectionId, request: PendingConnect, io: &mut impl TurnIo) {
        let tuple = self.peer_connections.by_id.get(&id).map(|c| c.allocation);
        self.forget(id);
        let Some(allocation) = tuple.and_then(|tuple| self.table.get(&tuple).map(|a| (tuple, a))) else {
            return;
        };
        let (tuple, allocation) = allocation;
        let reply = request.reply(&allocation.key);
        self.sent(reply.error(io, &tuple, ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE));
    }

    /// Removes a connection from the table and from its allocation's list.
    fn forget(&mut self, id: ConnectionId) {
        let Some(connection) = self.peer_connections.remove(id, &self.shared.metrics) else { return };
        if let Some(allocation) = self.table.get_mut(&connection.allocation) {
            allocation.connections.retain(|&c| c != id);
        }
    }

    /// A fresh transaction id for an indication to a client.
    pub(super) fn next_indication_id(&mut self) -> TransactionId {
        self.indications_sent = self.indications_sent.wrapping_add(1);
        let mut transaction = [0u8; 12];
        transaction[..4].copy_from_slice(&self.indication_prefix);
        transaction[4..].copy_from_slice(&self.indications_sent.to_be_bytes());
        TransactionId(transaction)
    }
}

impl PendingConnect {
    fn reply(self, key: &stun::IntegrityKey) -> Reply<'_> {
        Reply {
            method: Method::CONNECT,
            transaction_id: self.transaction_id,
            key: Some(key),
            sha256: self.sha256,
            fingerprint: self.fingerprint,
        }
    }
}

/// A ConnectionAttempt indication (RFC 6062 §5.3): XOR-PEER-ADDRESS and CONNECTION-ID,
/// unsigned like every indication.
fn connection_attempt(
    buf: &mut [u8],
    transaction: TransactionId,
    peer: SocketAddr,
    id: ConnectionId,
) -> Result<usize, stun::BufferTooSmall> {
    let mut message = MessageBuilder::new(buf, Method::CONNECTION_ATTEMPT, Class::Indication, transaction)?;
    message.xor_address(AttrType::XOR_PEER_ADDRESS, peer)?.u32(AttrType::CONNECTION_ID, id.0)?;
    Ok(message.finish())
}
