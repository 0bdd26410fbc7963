//! The stream worker's side of TCP allocations (RFC 6062): peers accepted on TCP relays,
//! connections to peers completing, and the pump that moves bytes between a peer data
//! connection and its client data connection.

use std::ops::ControlFlow;

use mio::{Interest, Token};

use super::{ACCEPT_BUDGET, CloseReason, PEER_BASE, READ_BUDGET, RELAY_BASE, Relay, StreamIo, Worker};
use crate::net::peer_stream::PeerStream;
use crate::net::pipe::Transfer;
use crate::server::{Now, RelayId};

impl Worker {
    /// An event on a peer data connection: the end of a connection attempt, or pipe traffic.
    pub(super) fn peer_event(&mut self, index: usize, now: Now) {
        let Some(peer) = self.io.peers.get_mut(index) else { return };
        if peer.connecting {
            let id = peer.id;
            match peer.connect_outcome() {
                None => return,
                Some(true) => peer.connecting = false,
                Some(false) => {
                    self.io.drop_peer(index, CloseReason::Client);
                    // Reported as the Connect's outcome, not as a close.
                    self.io.closed_peers.retain(|&closed| closed != id);
                    return self.server.handle_peer_connected(now, id, false, &mut self.io);
                }
            }
            self.server.handle_peer_connected(now, id, true, &mut self.io);
        }
        self.pump(index, now);
    }

    /// Moves bytes both ways between a peer connection and its client data connection (or,
    /// before ConnectionBind, from the peer into its buffer) until neither way moves any.
    ///
    /// Edge-triggered readiness never repeats itself, so every way stops for a reason that
    /// ends with a new event or a new call: a read that would block or a write that would
    /// block (the socket's next edge calls this again), or a full buffer, which the write
    /// out of it empties in this same loop, or if that write blocks, at its writable edge.
    /// A pipe that keeps moving past its budget yields to the others until the next turn.
    pub(super) fn pump(&mut self, index: usize, now: Now) {
        let mut budget = READ_BUDGET;
        let io = &mut self.io;
        let metrics = &io.shared.metrics;
        // A side whose read would block stays unread for the rest of this call: its next
        // edge brings a new one. (A full buffer is not that: the write out of it may empty it.)
        let (mut peer_drained, mut client_drained) = (false, false);
        loop {
            let Some(peer) = io.peers.get_mut(index) else { return };
            if peer.connecting {
                return;
            }
            let mut moved = 0;
            let mut failed = false;
            if !peer_drained && !peer.peer_done {
                match peer.to_client.read_from(&mut peer.stream) {
                    Transfer::Moved(n) => moved += n,
                    Transfer::Eof => peer.peer_done = true,
                    Transfer::Failed => failed = true,
                    Transfer::Idle => peer_drained = !peer.to_client.is_full(),
                }
            }
            if let Some(conn) = peer.data.and_then(|data| io.conns.get_mut(data)) {
                // The ConnectionBind response, still queued, goes before any piped byte.
                if conn.flush().is_err() {
                    failed = true;
                } else if !conn.wants_flush() {
                    match conn.pipe_write(&mut peer.to_client) {
                        Transfer::Moved(n) => {
                            metrics.tcp_relayed_to_client(n);
                            conn.last_message = now.instant;
                            moved += n;
                        }
                        Transfer::Failed | Transfer::Eof => failed = true,
                        Transfer::Idle => {}
                    }
                }
                if !client_drained && !peer.client_done {
                    match conn.pipe_read(&mut peer.to_peer) {
                        Transfer::Moved(n) => {
                            conn.last_message = now.instant;
                            moved += n;
                        }
                        Transfer::Eof => peer.client_done = true,
                        Transfer::Failed => failed = true,
                        Transfer::Idle => client_drained = !peer.to_peer.is_full(),
                    }
                }
                match peer.to_peer.write_to(&mut peer.stream) {
                    Transfer::Moved(n) => {
                        metrics.tcp_relayed_to_peer(n);
                        moved += n;
                    }
                    Transfer::Failed | Transfer::Eof => failed = true,
                    Transfer::Idle => {}
                }
            } else if peer.data.is_some() {
                failed = true; // the data connection went away
            }
            if failed || peer.finished() {
                io.drop_peer(index, CloseReason::Pipe);
                return;
            }
            if moved == 0 {
                return;
            }
            budget = budget.saturating_sub(moved);
            if budget == 0 {
                return self.pending.push(Token(PEER_BASE + index));
            }
        }
    }

    /// Tells the server about peer connections the I/O layer closed on its own.
    pub(super) fn report_closed_peers(&mut self) {
        while let Some(id) = self.io.closed_peers.pop() {
            self.server.handle_peer_closed(id, &mut self.io);
        }
    }

    /// Peers connecting to a TCP relay (RFC 6062 §5.3): each is offered to the server, which
    /// names it or has it closed; each counts toward the connection limit.
    pub(super) fn accept_peers(&mut self, index: usize, now: Now) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(Relay::Tcp(relay)) = self.io.relays.get(index) else { return };
            let (mut stream, peer) = match self.take_accepted(relay.listener.accept(), now) {
                ControlFlow::Break(()) => return,
                ControlFlow::Continue(None) => continue,
                ControlFlow::Continue(Some(accepted)) => accepted,
            };
            let relay = RelayId(index as u32);
            let Some(id) = self.server.handle_peer_accepted(now, relay, peer, &mut self.io) else {
                self.io.stats.closed(CloseReason::Pipe);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let slot = self.io.peers.vacant();
            if self
                .io
                .registry
                .register(&mut stream, Token(PEER_BASE + slot), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                self.io.stats.closed(CloseReason::Client);
                self.server.handle_peer_closed(id, &mut self.io);
                continue;
            }
            self.io.peers.insert(PeerStream::new(stream, id, false));
            self.io.by_connection.insert(id, slot);
            // What the peer sent before we registered raised no event of its own.
            self.pending.push(Token(PEER_BASE + slot));
        }
        self.pending.push(Token(RELAY_BASE + index));
    }
}

impl StreamIo {
    /// Closes a peer data connection and its client data connection, if bound; the server
    /// hears of it through `closed_peers` (unless it asked for the close itself).
    pub(super) fn drop_peer(&mut self, index: usize, reason: CloseReason) {
        let Some(mut peer) = self.peers.remove(index) else { return };
        let _ = self.registry.deregister(&mut peer.stream);
        self.by_connection.remove(&peer.id);
        self.stats.closed(reason);
        self.closed_peers.push(peer.id);
        if let Some(data) = peer.data {
            self.drop_data_conn(data);
        }
    }

    /// Closes a client data connection (it holds no allocation: the server has nothing to
    /// free), after writing what it can of what is queued.
    fn drop_data_conn(&mut self, index: usize) {
        let Some(mut conn) = self.conns.remove(index) else { return };
        let _ = self.registry.deregister(&mut conn.stream);
        self.by_tuple.remove(&conn.tuple);
        if let Some(tls) = &mut conn.tls {
            tls.send_close_notify();
        }
        let _ = conn.flush();
        self.stats.closed(CloseReason::Pipe);
    }
}
