//! The harness of the protocol tests: a [`Server`] on virtual time, an in-memory [`TurnIo`]
//! that records every send and hands out ports from a small range, and our own client.

#![allow(dead_code)] // each test file uses part of it

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stun::{BufferTooSmall, TransactionId};
use turn::client::{AllocateOptions, Client, Outcome, Response};
use turn::config::TurnConfig;
use turn::server::{
    ChannelRoute, ClientTuple, ConnectionId, Metrics, Now, PortRequest, RelayError, RelayId, Server, Shared,
    Transport, TurnIo,
};

pub const NOW_UNIX: u64 = 1_764_172_800;
pub const SECRET: &str = "0123456789abcdef0123";
pub const REALM: &str = "example.org";
pub const RELAY_V4: &str = "192.0.2.10";
pub const RELAY_V6: &str = "2001:db8::10";
pub const MIN_PORT: u16 = 50000;
pub const MAX_PORT: u16 = 50009;

/// Users ada/lovelace and bob/builder, REST credentials under SECRET, relays on both families,
/// ten relay ports; `extra` lines are appended.
pub fn config(extra: &str) -> TurnConfig {
    let text = format!(
        "lt-cred-mech\nuser=ada:lovelace\nuser=bob:builder\nuse-auth-secret\nstatic-auth-secret={SECRET}\n\
         realm={REALM}\nrelay-ip={RELAY_V4}\nrelay-ip={RELAY_V6}\nmin-port={MIN_PORT}\nmax-port={MAX_PORT}\n{extra}\n"
    );
    TurnConfig::parse(&text).unwrap().config
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Client number `n` over `transport`, from 198.51.100.n.
pub fn tuple(transport: Transport, n: u8) -> ClientTuple {
    ClientTuple {
        transport,
        client: SocketAddr::new(IpAddr::from([198, 51, 100, n]), 40000 + u16::from(n)),
        server: SocketAddr::new(ip(RELAY_V4), 3478),
    }
}

pub fn udp(n: u8) -> ClientTuple {
    tuple(Transport::Udp, n)
}

pub fn ada() -> Client {
    Client::new("ada", "lovelace")
}

pub fn bob() -> Client {
    Client::new("bob", "builder")
}

/// A REST API client whose credential expires at `expiry`.
pub fn rest(expiry: u64) -> Client {
    let username = format!("{expiry}:meeting");
    Client::new(&username, &stun::rest_api_password(SECRET, &username))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSend {
    pub relay: RelayId,
    pub peer: SocketAddr,
    pub payload: Vec<u8>,
    pub dont_fragment: bool,
}

/// The I/O layer, in memory.
#[derive(Debug, Default)]
pub struct FakeIo {
    pub to_client: Vec<(ClientTuple, Vec<u8>)>,
    pub to_peer: Vec<PeerSend>,
    /// Open relay sockets and their local addresses.
    pub relays: HashMap<RelayId, SocketAddr>,
    pub closed: Vec<RelayId>,
    /// Every send answers "queue full".
    pub full: bool,
    /// Channel routes the kernel relays now, by client address and channel.
    pub kernel: HashMap<(SocketAddr, u16), ChannelRoute>,
    /// Every install and withdrawal, in order: (installed?, route).
    pub kernel_log: Vec<(bool, ChannelRoute)>,
    /// The kernel refuses routes (its map is full).
    pub kernel_refuses: bool,
    /// Which relays are TCP relays (RFC 6062).
    pub tcp_relays: HashSet<RelayId>,
    /// Connections to peers started, in order: from which relay, named how, to whom.
    pub connects: Vec<(RelayId, ConnectionId, SocketAddr)>,
    /// `connect_peer` answers that no connection could be started.
    pub connect_refuses: bool,
    /// Peer connections joined to a client data connection.
    pub bound: HashMap<ConnectionId, ClientTuple>,
    /// Peer connections the server had closed, in order.
    pub closed_peers: Vec<ConnectionId>,
    next_id: u32,
}

impl FakeIo {
    fn free(&self, ip: IpAddr, port: u16) -> bool {
        (MIN_PORT..=MAX_PORT).contains(&port)
            && !self.relays.values().any(|a| *a == SocketAddr::new(ip, port))
    }
}

impl TurnIo for FakeIo {
    fn to_client(&mut self, client: &ClientTuple, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.full {
            return false;
        }
        let mut buf = vec![0u8; 1504];
        let len = write(&mut buf);
        if len > 0 {
            self.to_client.push((*client, buf[..len].to_vec()));
        }
        true
    }

    fn to_peer(&mut self, relay: RelayId, peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> bool {
        assert!(self.relays.contains_key(&relay), "sent from a closed relay");
        if self.full {
            return false;
        }
        self.to_peer.push(PeerSend { relay, peer, payload: payload.to_vec(), dont_fragment });
        true
    }

    fn open_relay(&mut self, ip: IpAddr, port: PortRequest) -> Result<(RelayId, SocketAddr), RelayError> {
        let port = match port {
            PortRequest::Any => (MIN_PORT..=MAX_PORT).find(|&p| self.free(ip, p)),
            PortRequest::Even => (MIN_PORT..=MAX_PORT).filter(|p| p % 2 == 0).find(|&p| self.free(ip, p)),
            PortRequest::Specific(p) => Some(p).filter(|&p| self.free(ip, p)),
        }
        .ok_or(RelayError::PortsExhausted)?;
        self.next_id += 1;
        let id = RelayId(self.next_id);
        let local = SocketAddr::new(ip, port);
        self.relays.insert(id, local);
        Ok((id, local))
    }

    fn close_relay(&mut self, relay: RelayId) {
        assert!(self.relays.remove(&relay).is_some(), "closed twice or never opened");
        self.tcp_relays.remove(&relay);
        self.closed.push(relay);
    }

    fn open_tcp_relay(&mut self, ip: IpAddr) -> Result<(RelayId, SocketAddr), RelayError> {
        let (id, local) = self.open_relay(ip, PortRequest::Any)?;
        self.tcp_relays.insert(id);
        Ok((id, local))
    }

    fn connect_peer(&mut self, relay: RelayId, connection: ConnectionId, peer: SocketAddr) -> bool {
        assert!(self.tcp_relays.contains(&relay), "connects only from a TCP relay");
        if self.connect_refuses {
            return false;
        }
        self.connects.push((relay, connection, peer));
        true
    }

    fn bind_data(&mut self, connection: ConnectionId, data: &ClientTuple) -> bool {
        assert!(!self.closed_peers.contains(&connection), "bound a closed connection");
        self.bound.insert(connection, *data).is_none()
    }

    fn close_peer(&mut self, connection: ConnectionId) {
        assert!(!self.closed_peers.contains(&connection), "closed twice");
        self.bound.remove(&connection);
        self.closed_peers.push(connection);
    }

    fn install_channel(&mut self, route: &ChannelRoute) -> bool {
        if self.kernel_refuses {
            return false;
        }
        self.kernel_log.push((true, *route));
        self.kernel.insert((route.client, route.channel), *route);
        true
    }

    fn withdraw_channel(&mut self, route: &ChannelRoute) {
        self.kernel_log.push((false, *route));
        assert!(
            self.kernel.remove(&(route.client, route.channel)).is_some(),
            "withdrew a route never installed"
        );
    }
}

/// Builds one request into a buffer with a given transaction id.
pub type Build = dyn Fn(&Client, &mut [u8], TransactionId) -> Result<(TransactionId, usize), BufferTooSmall>;

/// A server on virtual time with its fake I/O layer.
pub struct Harness {
    pub server: Server,
    pub io: FakeIo,
    t0: Instant,
    elapsed: Duration,
    transactions: u64,
}

impl Harness {
    pub fn new(extra: &str) -> Self {
        Self::with_config(&config(extra))
    }

    pub fn with_config(config: &TurnConfig) -> Self {
        let shared = Arc::new(Shared::new(config));
        Self {
            server: Server::new(config, shared, [9; 32]),
            io: FakeIo::default(),
            t0: Instant::now(),
            elapsed: Duration::ZERO,
            transactions: 0,
        }
    }

    pub fn now(&self) -> Now {
        Now { instant: self.t0 + self.elapsed, unix_s: NOW_UNIX + self.elapsed.as_secs() }
    }

    /// Moves virtual time on and runs the timeout if it is due.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        let now = self.now();
        if self.server.poll_timeout().is_some_and(|at| at <= now.instant) {
            self.server.handle_timeout(now, &mut self.io);
        }
    }

    pub fn instant(&self) -> Instant {
        self.now().instant
    }

    pub fn metrics(&self) -> &Metrics {
        &self.server.shared().metrics
    }

    pub fn transaction(&mut self) -> TransactionId {
        self.transactions += 1;
        let mut id = [0u8; 12];
        id[4..].copy_from_slice(&self.transactions.to_be_bytes());
        TransactionId(id)
    }

    /// Feeds a client message; returns what was sent back to that 5-tuple.
    pub fn client_sends(&mut self, tuple: &ClientTuple, bytes: &[u8]) -> Vec<Vec<u8>> {
        let start = self.io.to_client.len();
        let now = self.now();
        self.server.handle_client(now, tuple, bytes, &mut self.io);
        self.io.to_client[start..].iter().filter(|(t, _)| t == tuple).map(|(_, b)| b.clone()).collect()
    }

    /// Feeds a peer datagram; returns what went to clients.
    pub fn peer_sends(
        &mut self,
        relay: RelayId,
        peer: SocketAddr,
        bytes: &[u8],
    ) -> Vec<(ClientTuple, Vec<u8>)> {
        let start = self.io.to_client.len();
        let now = self.now();
        self.server.handle_peer(now, relay, peer, bytes, &mut self.io);
        self.io.to_client[start..].to_vec()
    }

    /// Sends one request built by `build` and reads the answer, if any.
    pub fn try_once(&mut self, tuple: &ClientTuple, client: &mut Client, build: &Build) -> Option<Response> {
        let mut buf = [0u8; 1504];
        let transaction = self.transaction();
        let (_, len) = build(client, &mut buf, transaction).unwrap();
        let answers = self.client_sends(tuple, &buf[..len]);
        assert!(answers.len() <= 1, "one answer per request");
        let response = client.handle_response(answers.first()?).unwrap();
        assert_eq!(response.transaction_id, transaction);
        Some(response)
    }

    pub fn once(&mut self, tuple: &ClientTuple, client: &mut Client, build: &Build) -> Response {
        self.try_once(tuple, client, build).expect("the server answers")
    }

    /// One request through the credential flow: sent again after a challenge.
    pub fn exchange(&mut self, tuple: &ClientTuple, client: &mut Client, build: &Build) -> Response {
        let response = self.once(tuple, client, build);
        if response.outcome == Outcome::Retry { self.once(tuple, client, build) } else { response }
    }

    pub fn allocate(
        &mut self,
        tuple: &ClientTuple,
        client: &mut Client,
        options: AllocateOptions,
    ) -> Response {
        self.exchange(tuple, client, &move |c, buf, t| c.allocate(buf, t, &options))
    }

    /// An allocation that must succeed; returns its relayed addresses.
    pub fn allocated(&mut self, tuple: &ClientTuple, client: &mut Client) -> SocketAddr {
        let response = self.allocate(tuple, client, AllocateOptions::default());
        assert_eq!(response.outcome, Outcome::Success, "{response:?}");
        response.relayed[0]
    }

    pub fn refresh(&mut self, tuple: &ClientTuple, client: &mut Client, lifetime: Option<u32>) -> Response {
        self.exchange(tuple, client, &move |c, buf, t| c.refresh(buf, t, lifetime, None))
    }

    pub fn permit(&mut self, tuple: &ClientTuple, client: &mut Client, peers: &[SocketAddr]) -> Response {
        let peers = peers.to_vec();
        self.exchange(tuple, client, &move |c, buf, t| c.create_permission(buf, t, &peers))
    }

    pub fn bind(
        &mut self,
        tuple: &ClientTuple,
        client: &mut Client,
        channel: u16,
        peer: SocketAddr,
    ) -> Response {
        self.exchange(tuple, client, &move |c, buf, t| c.channel_bind(buf, t, channel, peer))
    }

    /// An allocation that must succeed; returns the relay socket of its (first) address.
    pub fn allocated_relay(&mut self, tuple: &ClientTuple, client: &mut Client) -> RelayId {
        let relayed = self.allocated(tuple, client);
        self.relay(relayed)
    }

    /// The relay socket bound to `local`.
    pub fn relay(&self, local: SocketAddr) -> RelayId {
        *self.io.relays.iter().find(|(_, a)| **a == local).expect("an open relay at that address").0
    }
}

/// The error code of a response, or 0 for success.
pub fn code(response: &Response) -> u16 {
    match response.outcome {
        Outcome::Success => 0,
        Outcome::Retry => panic!("a challenge where an answer was expected"),
        Outcome::Error(code) => code,
    }
}
