//! One stream worker: an epoll loop (through mio) over its share of the client connections,
//! their relay sockets, and its duplicates of the listening sockets, driving its own
//! [`Server`]. Nothing is shared with the other workers but the listening sockets' accept
//! queues and the atomics in `Shared` and [`NetStats`].

mod tcp_relay;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use rustls::{ServerConfig, ServerConnection};

use super::conn::{Conn, MAX_MESSAGE, Received};
use super::peer_stream::{PeerStream, TcpRelay, connect_from};
use super::relay::{RelaySocket, Rng};
use super::slab::Slab;
use super::stats::{CloseReason, NetStats};
use super::{Limits, StreamListener};
use crate::server::{
    ClientTuple, ConnectionId, Now, PortRequest, RelayError, RelayId, Server, Shared, Transport, TurnIo,
    frame_len,
};

/// Token space: listeners first, then connections, then relay sockets, then the peer data
/// connections of TCP allocations, and the waker last.
const CONN_BASE: usize = 1 << 16;
const RELAY_BASE: usize = 1 << 40;
const PEER_BASE: usize = 1 << 48;
const WAKER: Token = Token(usize::MAX);

/// Bytes read from one connection, or datagrams from one relay, before the others get their
/// turn; the rest is read on the next turn of the loop (epoll is edge-triggered, so the
/// source is remembered rather than waiting for another event).
const READ_BUDGET: usize = 256 * 1024;
const DATAGRAM_BUDGET: usize = 64;
/// Datagrams taken from a relay socket per system call (`recvmmsg`).
const RELAY_BATCH: usize = 8;
/// Connections accepted per wake-up, so that another worker woken by the same connection
/// burst takes a share.
const ACCEPT_BUDGET: usize = 16;
/// How often connections are checked against the [`Limits`] timeouts (only while there are
/// connections: an idle worker sleeps until something arrives).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Largest UDP payload (65535 - 8 - 20).
const MAX_DATAGRAM: usize = 65507;

/// What an epoll event (or a source left over from the last turn) says about a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    WritableOnly,
    Readable,
    /// Read until `EAGAIN` or the budget: the peer closed, an error is pending, or the budget
    /// ran out last turn.
    ReadAll,
}

/// What a worker needs to start.
#[derive(Debug)]
pub struct WorkerSetup {
    pub server: Server,
    /// Required when any listener is TLS.
    pub tls: Option<Arc<ServerConfig>>,
    pub limits: Limits,
    pub stats: Arc<NetStats>,
    /// `[min-port, max-port]` for relay sockets.
    pub relay_ports: (u16, u16),
}

/// The thread of a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Loop turns finished, for [`StreamLiveness`](super::StreamLiveness).
    turns: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl WorkerHandle {
    /// Asks the worker to stop: it frees every allocation (closing the relay sockets), closes
    /// its connections and returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }

    /// The worker's loop turns so far, and how to make it turn once more.
    pub(super) fn heartbeat(&self) -> (Arc<AtomicU64>, Arc<Waker>) {
        (Arc::clone(&self.turns), Arc::clone(&self.waker))
    }
}

/// A connection accepted by one worker for another.
type Handoff = (TcpStream, SocketAddr, Transport);

/// How a worker reaches another.
#[derive(Clone, Debug)]
struct Peer {
    inbox: Sender<Handoff>,
    waker: Arc<Waker>,
}

/// Starts one worker thread per setup, named `{name}-{i}`, all accepting from `listeners`.
///
/// Every connection from one client address is served by the same worker (a keyed hash of
/// the address picks it; the worker that accepted hands the connection over if it is not
/// that one). The server keeps a RESERVATION-TOKEN with the worker that minted it, and a
/// client asks for the reserved port on a second connection (RFC 8656 §7.2, RTP and RTCP):
/// only the same worker can honour it.
pub fn spawn_all(
    name: &str,
    listeners: &[StreamListener],
    setups: Vec<WorkerSetup>,
) -> io::Result<Vec<WorkerHandle>> {
    let owner_of = RandomState::new();
    let mut polls = Vec::with_capacity(setups.len());
    let mut peers = Vec::with_capacity(setups.len());
    let mut inboxes = Vec::with_capacity(setups.len());
    for _ in &setups {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        polls.push(poll);
        peers.push(Peer { inbox: tx, waker });
        inboxes.push(rx);
    }
    let peers: Arc<[Peer]> = peers.into();
    let mut handles = Vec::with_capacity(setups.len());
    for (index, ((setup, poll), inbox)) in setups.into_iter().zip(polls).zip(inboxes).enumerate() {
        let mut own_listeners = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.iter().enumerate() {
            let mut dup = TcpListener::from_std(listener.try_clone()?);
            poll.registry().register(&mut dup, Token(i), Interest::READABLE)?;
            own_listeners.push((dup, listener.transport));
        }
        assert!(own_listeners.len() < CONN_BASE, "listener tokens stay below connection tokens");
        let stop = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicU64::new(0));
        let shared = Arc::clone(setup.server.shared());
        let worker = Worker {
            server: setup.server,
            io: StreamIo {
                registry: poll.registry().try_clone()?,
                conns: Slab::default(),
                by_tuple: HashMap::new(),
                relays: Slab::default(),
                peers: Slab::default(),
                by_connection: HashMap::new(),
                closed_peers: Vec::new(),
                shared,
                max_connections: setup.limits.max_connections,
                dirty: Vec::new(),
                ports: setup.relay_ports,
                rng: Rng::new(),
                stats: setup.stats,
            },
            poll,
            listeners: own_listeners,
            tls: setup.tls,
            limits: setup.limits,
            stop: Arc::clone(&stop),
            turns: Arc::clone(&turns),
            index,
            peers: Arc::clone(&peers),
            inbox,
            owner_of: owner_of.clone(),
            scratch: vec![0; MAX_MESSAGE].into_boxed_slice(),
            datagrams: vec![0; RELAY_BATCH * MAX_DATAGRAM].into_boxed_slice(),
            pending: Vec::new(),
            next_housekeeping: None,
        };
        let thread =
            std::thread::Builder::new().name(format!("{name}-{index}")).spawn(move || worker.run())?;
        handles.push(WorkerHandle { waker: Arc::clone(&peers[index].waker), stop, turns, thread });
    }
    Ok(handles)
}

#[derive(Debug)]
struct Worker {
    poll: Poll,
    server: Server,
    io: StreamIo,
    listeners: Vec<(TcpListener, Transport)>,
    tls: Option<Arc<ServerConfig>>,
    limits: Limits,
    stop: Arc<AtomicBool>,
    /// Bumped at the end of every turn (one store: this thread is the only writer).
    turns: Arc<AtomicU64>,
    /// This worker's place in `peers`.
    index: usize,
    peers: Arc<[Peer]>,
    /// Connections other workers accepted for this one.
    inbox: Receiver<Handoff>,
    /// Keyed (randomly, per process) so that no client can pick its worker.
    owner_of: RandomState,
    /// One read at a time.
    scratch: Box<[u8]>,
    /// One relay socket's batch of datagrams, each in its own `MAX_DATAGRAM` piece.
    datagrams: Box<[u8]>,
    /// Sources whose read budget ran out: read again next turn, before sleeping.
    pending: Vec<Token>,
    next_housekeeping: Option<Instant>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("stream worker stopped: epoll failed: {e}");
                break;
            }
            let now = now();
            for token in std::mem::take(&mut self.pending) {
                self.dispatch(token, now, Readiness::ReadAll);
            }
            for event in events.iter() {
                let readiness = if event.is_read_closed() || event.is_error() {
                    Readiness::ReadAll
                } else if event.is_readable() {
                    Readiness::Readable
                } else {
                    Readiness::WritableOnly
                };
                self.dispatch(event.token(), now, readiness);
            }
            if self.server.poll_timeout().is_some_and(|at| at <= now.instant) {
                self.server.handle_timeout(now, &mut self.io);
            }
            if self.next_housekeeping.is_some_and(|at| at <= now.instant) {
                self.housekeeping(now);
            }
            self.flush_dirty();
            self.turns.store(self.turns.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        self.shutdown();
    }

    /// Until the server's next deadline or the next housekeeping, whichever is sooner; not
    /// at all when there is more to read.
    fn timeout(&mut self, now: Instant) -> Option<Duration> {
        if !self.pending.is_empty() {
            return Some(Duration::ZERO);
        }
        if self.io.conns.is_empty() {
            self.next_housekeeping = None;
        } else if self.next_housekeeping.is_none() {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
        let deadline = match (self.server.poll_timeout(), self.next_housekeeping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Rounded up: epoll counts whole milliseconds, and waking early spins.
        deadline.map(|at| at.saturating_duration_since(now) + Duration::from_micros(999))
    }

    fn dispatch(&mut self, token: Token, now: Now, readiness: Readiness) {
        match token.0 {
            i if i == WAKER.0 => self.take_handoffs(now),
            i if i < CONN_BASE => self.accept(i, now),
            i if i < RELAY_BASE => {
                let index = i - CONN_BASE;
                if let Some(peer) = self.io.conns.get(index).and_then(|conn| conn.pipe) {
                    self.pump(peer, now);
                } else {
                    if readiness != Readiness::WritableOnly {
                        self.read_conn(index, now, readiness == Readiness::ReadAll);
                    }
                    // Writable, or readable with something to answer: flushed at the end of
                    // the turn.
                    self.io.mark_dirty(index);
                }
            }
            i if i < PEER_BASE => self.read_relay(i - RELAY_BASE, now),
            i => self.peer_event(i - PEER_BASE, now),
        }
        self.report_closed_peers();
    }

    fn accept(&mut self, index: usize, now: Now) {
        for _ in 0..ACCEPT_BUDGET {
            let (listener, transport) = &self.listeners[index];
            let transport = *transport;
            let (stream, client) = match self.take_accepted(listener.accept(), now) {
                ControlFlow::Break(()) => return,
                ControlFlow::Continue(None) => continue,
                ControlFlow::Continue(Some(accepted)) => accepted,
            };
            let owner = (self.owner_of.hash_one(client.ip()) % self.peers.len() as u64) as usize;
            if owner != self.index {
                let peer = &self.peers[owner];
                match peer.inbox.send((stream, client, transport)) {
                    Ok(()) => drop(peer.waker.wake()),
                    // That worker has stopped: so is the server.
                    Err(_) => self.io.stats.closed(CloseReason::Shutdown),
                }
                continue;
            }
            if let Err(reason) = self.admit(stream, client, transport, now) {
                self.io.stats.closed(reason);
            }
        }
        // More may be queued: come back next turn.
        self.pending.push(Token(index));
    }

    /// Sorts out one `accept` of a client or a peer. `Break`: stop accepting for now, the
    /// queue being empty or the process or the system out of descriptors or memory (then the
    /// connection stays queued and the next housekeeping tries again, rather than spin).
    /// `Continue(None)`: skip this one, the client having given up before we accepted
    /// (ECONNABORTED and the like) or the connection limit reached (closed at once).
    fn take_accepted(
        &mut self,
        accepted: io::Result<(TcpStream, SocketAddr)>,
        now: Now,
    ) -> ControlFlow<(), Option<(TcpStream, SocketAddr)>> {
        match accepted {
            Ok(accepted) => {
                ControlFlow::Continue(self.io.stats.try_open(self.io.max_connections).then_some(accepted))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ControlFlow::Break(()),
            Err(e) if is_resource_error(&e) => {
                self.io.stats.refused();
                self.next_housekeeping = Some(now.instant + HOUSEKEEPING);
                ControlFlow::Break(())
            }
            Err(_) => ControlFlow::Continue(None),
        }
    }

    fn take_handoffs(&mut self, now: Now) {
        while let Ok((stream, client, transport)) = self.inbox.try_recv() {
            if let Err(reason) = self.admit(stream, client, transport, now) {
                self.io.stats.closed(reason);
            }
        }
    }

    fn admit(
        &mut self,
        mut stream: TcpStream,
        client: SocketAddr,
        transport: Transport,
        now: Now,
    ) -> Result<(), CloseReason> {
        // The tuple names the address the client reached, not the listener's wildcard: it is
        // what the relay binds to without a relay-ip (RFC 8656 §7.2: the relayed address is
        // normally on the interface the request came in on).
        let server = stream.local_addr().map_err(|_| CloseReason::Client)?;
        // Small messages (STUN responses, media packets) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let tls = match transport {
            Transport::Tls => {
                let config = self.tls.as_ref().expect("TLS listeners start with a TLS configuration");
                Some(Box::new(ServerConnection::new(Arc::clone(config)).map_err(|_| CloseReason::Tls)?))
            }
            _ => None,
        };
        let index = self.io.conns.vacant();
        self.io
            .registry
            .register(&mut stream, Token(CONN_BASE + index), Interest::READABLE | Interest::WRITABLE)
            .map_err(|_| CloseReason::Client)?;
        let tuple = ClientTuple { transport, client, server };
        let inserted = self.io.conns.insert(Conn::new(stream, tuple, tls, now.instant));
        debug_assert_eq!(inserted, index);
        self.io.by_tuple.insert(tuple, index);
        self.io.stats.accepted(transport == Transport::Tls);
        Ok(())
    }

    /// Reads until the socket is empty or the budget is spent. A read shorter than the buffer
    /// ends it early, unless `to_the_end`: the peer's FIN (or an error) came with this edge,
    /// and no later edge will report it, so only reading on to the 0 finds it.
    fn read_conn(&mut self, index: usize, now: Now, to_the_end: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.io.conns.get_mut(index) else { return };
            let was_handshaking = conn.is_handshaking();
            let received = conn.receive(&mut self.scratch);
            if was_handshaking && !conn.is_handshaking() {
                // The handshake is the TLS listener's slow path; from here on the idle rules
                // are the TCP ones.
                conn.last_message = now.instant;
            }
            match received {
                Received::Drained(_) if !to_the_end => {
                    if let Err(reason) = self.handle_messages(index, now) {
                        self.close(index, reason);
                    }
                    return;
                }
                Received::Bytes(n) | Received::Drained(n) => {
                    if let Err(reason) = self.handle_messages(index, now) {
                        return self.close(index, reason);
                    }
                    if self.io.conns.get(index).is_some_and(|conn| conn.pipe.is_some()) {
                        return; // a client data connection now: the pipe reads it
                    }
                    budget = budget.saturating_sub(n.max(1));
                    if budget == 0 {
                        return self.pending.push(Token(CONN_BASE + index));
                    }
                }
                Received::WouldBlock => return,
                Received::Closed(reason) => return self.close(index, reason),
            }
        }
    }

    /// Hands every whole message in the connection's buffer to the server.
    ///
    /// Whether the client holds an allocation is read from the server's count around each
    /// message: a message changes at most its own tuple's allocation, and the server runs
    /// on this thread only. An allocation that expires on its own is not seen here; the
    /// longer idle limit for allocated connections covers it (see [`Limits`]).
    fn handle_messages(&mut self, index: usize, now: Now) -> Result<(), CloseReason> {
        let Some(conn) = self.io.conns.get_mut(index) else { return Ok(()) };
        let tuple = conn.tuple;
        // Taken out so the server can write to this connection while its input is read.
        let inbuf = std::mem::take(&mut conn.inbuf);
        let mut at = 0;
        let mut allocated = None;
        let mut result = Ok(());
        while at < inbuf.len() {
            let len = match frame_len(&inbuf[at..]) {
                Ok(Some(len)) if len <= inbuf.len() - at => len,
                Ok(_) => break,
                Err(_) => {
                    result = Err(CloseReason::Framing);
                    break;
                }
            };
            let before = self.server.allocations();
            self.server.handle_client(now, &tuple, &inbuf[at..at + len], &mut self.io);
            let after = self.server.allocations();
            if after != before {
                allocated = Some(after > before);
            }
            at += len;
            // ConnectionBind made this a client data connection (RFC 6062 §5.4): what follows
            // the request is the client's data for the peer, not messages.
            if let Some(peer) = self.io.conns.get(index).and_then(|conn| conn.pipe) {
                let rest = &inbuf[at..];
                if !self.io.peers.get_mut(peer).is_some_and(|peer| peer.to_peer.push(rest)) {
                    result = Err(CloseReason::Pipe);
                }
                at = inbuf.len();
                self.pending.push(Token(PEER_BASE + peer));
                break;
            }
        }
        let Some(conn) = self.io.conns.get_mut(index) else { return result };
        let mut inbuf = inbuf;
        inbuf.drain(..at);
        conn.inbuf = inbuf;
        if at > 0 {
            conn.last_message = now.instant;
        }
        if let Some(allocated) = allocated {
            conn.allocated = allocated;
        }
        result
    }

    fn read_relay(&mut self, index: usize, now: Now) {
        if matches!(self.io.relays.get(index), Some(Relay::Tcp(_))) {
            return self.accept_peers(index, now);
        }
        let mut received = [engine::Received::default(); RELAY_BATCH];
        for _ in 0..DATAGRAM_BUDGET / RELAY_BATCH {
            let Some(Relay::Udp(relay)) = self.io.relays.get(index) else { return };
            let n = match engine::recv_batch(&relay.socket, &mut self.datagrams, MAX_DATAGRAM, &mut received)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error from an earlier send, reported on this socket: nothing to read.
                Err(_) => continue,
            };
            let relay = RelayId(index as u32);
            for (datagram, bytes) in received[..n].iter().zip(self.datagrams.chunks_exact(MAX_DATAGRAM)) {
                let Some(peer) = datagram.from else { continue };
                self.server.handle_peer(now, relay, peer, &bytes[..datagram.len], &mut self.io);
            }
            // A short batch emptied the queue: the next datagram brings a new edge.
            if n < RELAY_BATCH {
                return;
            }
        }
        self.pending.push(Token(RELAY_BASE + index));
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.io.dirty);
        for &index in &dirty {
            let Some(conn) = self.io.conns.get_mut(index) else { continue };
            conn.dirty = false;
            if let Err(reason) = conn.flush() {
                self.close(index, reason);
            }
        }
        dirty.clear();
        self.io.dirty = dirty;
    }

    /// Closes connections past their [`Limits`], and returns memory from quiet ones.
    fn housekeeping(&mut self, now: Now) {
        self.next_housekeeping = None;
        let limits = &self.limits;
        let expired: Vec<(usize, CloseReason)> = self
            .io
            .conns
            .iter()
            .filter_map(|(index, conn)| {
                let quiet = now.instant.saturating_duration_since(conn.last_message);
                let reason = if conn.is_handshaking() {
                    let age = now.instant.saturating_duration_since(conn.accepted);
                    (age >= limits.tls_handshake).then_some(CloseReason::HandshakeTimeout)
                } else if conn.allocated {
                    (quiet >= limits.idle_with_allocation).then_some(CloseReason::Idle)
                } else {
                    (quiet >= limits.idle_without_allocation).then_some(CloseReason::Idle)
                };
                reason.map(|reason| (index, reason))
            })
            .collect();
        for (index, reason) in expired {
            self.close(index, reason);
        }
        for index in self.io.conns.indices() {
            let conn = self.io.conns.get_mut(index).expect("listed just now");
            if !conn.wants_flush() {
                conn.trim();
            }
        }
        // Connections left queued by a descriptor shortage.
        for index in 0..self.listeners.len() {
            self.pending.push(Token(index));
        }
    }

    /// Removes a connection; the server frees its allocation (RFC 8656 §3.1: over TCP and TLS
    /// the allocation lives no longer than the connection).
    fn close(&mut self, index: usize, reason: CloseReason) {
        if let Some(peer) = self.io.conns.get_mut(index).and_then(|conn| conn.pipe.take()) {
            // A client data connection: its peer connection goes with it, and this
            // connection is closed below, for its own reason.
            if let Some(peer) = self.io.peers.get_mut(peer) {
                peer.data = None;
            }
            self.io.drop_peer(peer, CloseReason::Pipe);
            self.report_closed_peers();
        }
        let Some(mut conn) = self.io.conns.remove(index) else { return };
        let _ = self.io.registry.deregister(&mut conn.stream);
        self.io.by_tuple.remove(&conn.tuple);
        self.io.stats.closed(reason);
        if reason != CloseReason::Client
            && let Some(tls) = &mut conn.tls
        {
            tls.send_close_notify();
        }
        // What is already queued (the answer to a last request, an error response, a TLS
        // alert) goes out if the socket takes it: a client that only shut down its sending
        // side still reads.
        let _ = conn.flush();
        self.server.handle_client_closed(&conn.tuple, &mut self.io);
    }

    fn shutdown(&mut self) {
        while self.inbox.try_recv().is_ok() {
            self.io.stats.closed(CloseReason::Shutdown);
        }
        self.server.shutdown(&mut self.io);
        for index in self.io.conns.indices() {
            self.close(index, CloseReason::Shutdown);
        }
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

fn now() -> Now {
    let unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Now { instant: Instant::now(), unix_s }
}

/// A relay socket: UDP, or the listening socket of a TCP allocation (RFC 6062).
#[derive(Debug)]
enum Relay {
    Udp(RelaySocket),
    Tcp(TcpRelay),
}

/// The worker's sockets, as the server sees them.
#[derive(Debug)]
struct StreamIo {
    registry: Registry,
    conns: Slab<Conn>,
    by_tuple: HashMap<ClientTuple, usize>,
    relays: Slab<Relay>,
    /// Peer data connections of TCP allocations, found by CONNECTION-ID too.
    peers: Slab<PeerStream>,
    by_connection: HashMap<ConnectionId, usize>,
    /// Peer connections this layer closed on its own (a side of the pipe closed or failed),
    /// to tell the server once it is not in the middle of a call.
    closed_peers: Vec<ConnectionId>,
    /// For the TCP relay's byte counters.
    shared: Arc<Shared>,
    max_connections: u64,
    /// Connections with something queued, flushed once at the end of the loop turn: one
    /// write per connection per turn however many messages it got.
    dirty: Vec<usize>,
    ports: (u16, u16),
    rng: Rng,
    stats: Arc<NetStats>,
}

impl StreamIo {
    fn mark_dirty(&mut self, index: usize) {
        if let Some(conn) = self.conns.get_mut(index)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(index);
        }
    }

    /// Registers a relay socket for reading and keeps it under a fresh id.
    fn add_relay(&mut self, mut relay: Relay) -> Result<(RelayId, SocketAddr), RelayError> {
        let index = self.relays.vacant();
        let id = u32::try_from(index).map_err(|_| RelayError::Unavailable)?;
        let (source, local): (&mut dyn mio::event::Source, SocketAddr) = match &mut relay {
            Relay::Udp(relay) => (&mut relay.socket, relay.local),
            Relay::Tcp(relay) => (&mut relay.listener, relay.local),
        };
        self.registry
            .register(source, Token(RELAY_BASE + index), Interest::READABLE)
            .map_err(|_| RelayError::Unavailable)?;
        self.relays.insert(relay);
        self.stats.relay_opened();
        Ok((RelayId(id), local))
    }
}

impl TurnIo for StreamIo {
    fn to_client(&mut self, client: &ClientTuple, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let Some(&index) = self.by_tuple.get(client) else { return false };
        let queued = self.conns.get_mut(index).is_some_and(|conn| conn.queue(write));
        self.mark_dirty(index);
        queued
    }

    fn to_peer(&mut self, relay: RelayId, peer: SocketAddr, payload: &[u8], dont_fragment: bool) -> bool {
        match self.relays.get_mut(relay.0 as usize) {
            Some(Relay::Udp(socket)) => socket.send(peer, payload, dont_fragment),
            _ => false,
        }
    }

    fn open_relay(
        &mut self,
        ip: std::net::IpAddr,
        port: PortRequest,
    ) -> Result<(RelayId, SocketAddr), RelayError> {
        let relay = RelaySocket::open(ip, port, self.ports, &mut self.rng)?;
        self.add_relay(Relay::Udp(relay))
    }

    fn close_relay(&mut self, relay: RelayId) {
        let _ = match self.relays.remove(relay.0 as usize) {
            Some(Relay::Udp(mut relay)) => self.registry.deregister(&mut relay.socket),
            Some(Relay::Tcp(mut relay)) => self.registry.deregister(&mut relay.listener),
            None => return,
        };
        self.stats.relay_closed();
    }

    fn open_tcp_relay(&mut self, ip: std::net::IpAddr) -> Result<(RelayId, SocketAddr), RelayError> {
        let relay = TcpRelay::open(ip, self.ports, &mut self.rng)?;
        self.add_relay(Relay::Tcp(relay))
    }

    fn connect_peer(&mut self, relay: RelayId, connection: ConnectionId, peer: SocketAddr) -> bool {
        let Some(Relay::Tcp(relay)) = self.relays.get(relay.0 as usize) else { return false };
        // A peer connection is a connection like any other for the limit.
        if !self.stats.try_open(self.max_connections) {
            return false;
        }
        let slot = self.peers.vacant();
        let registered = connect_from(relay.local, peer).and_then(|mut stream| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.registry.register(&mut stream, Token(PEER_BASE + slot), interest)?;
            Ok(stream)
        });
        let Ok(stream) = registered else {
            self.stats.closed(CloseReason::Client);
            return false;
        };
        self.peers.insert(PeerStream::new(stream, connection, true));
        self.by_connection.insert(connection, slot);
        true
    }

    fn bind_data(&mut self, connection: ConnectionId, data: &ClientTuple) -> bool {
        let (Some(&peer), Some(&conn)) = (self.by_connection.get(&connection), self.by_tuple.get(data))
        else {
            return false;
        };
        let (Some(peer_stream), Some(data_conn)) = (self.peers.get_mut(peer), self.conns.get_mut(conn))
        else {
            return false;
        };
        peer_stream.data = Some(conn);
        data_conn.pipe = Some(peer);
        // A pipe's idle time is that of an allocated connection: a quiet TCP session between
        // client and peer is as legitimate as a quiet control connection.
        data_conn.allocated = true;
        true
    }

    fn close_peer(&mut self, connection: ConnectionId) {
        if let Some(&index) = self.by_connection.get(&connection) {
            self.drop_peer(index, CloseReason::Pipe);
            // The server asked: it knows.
            self.closed_peers.retain(|&id| id != connection);
        }
    }
}
