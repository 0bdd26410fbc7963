//! The daemon's shared state: connections, rooms and rate limits, behind one mutex. Every
//! protocol message is one short critical section that applies a room operation and queues
//! the resulting messages on the recipients' bounded channels; nothing waits inside it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::bridge::BridgeClient;
use crate::bridged;
use crate::bridges::Bridges;
use crate::config::Config;
use crate::metrics::{Counters, Gauges, JoinResult};
use crate::protocol::{ClientMessage, ErrorCode, ProtocolError, ServerMessage, VERSION};
use crate::ratelimit::{Limiter, Rate};
use crate::room::{ConnId, Effects, JoinOutcome, JoinRequest, Rooms, Topology};
use crate::secret::room_tag;

/// Messages queued per connection before it counts as stuck and is closed.
pub const OUTBOX: usize = 256;

/// What a connection's writer task gets.
#[derive(Debug)]
pub enum Outgoing {
    Message(ServerMessage),
    Close,
}

#[derive(Debug)]
struct Connection {
    outbox: mpsc::Sender<Outgoing>,
    source: IpAddr,
    greeted: bool,
}

#[derive(Debug)]
struct State {
    rooms: Rooms,
    /// The bridge side of rooms that are (or were just) on the bridge.
    bridged: HashMap<String, bridged::Shared>,
    connections: HashMap<ConnId, Connection>,
    next_conn: ConnId,
    joins: Limiter,
    guesses: Limiter,
}

#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    config: Config,
    /// Empty: no bridge configured (meetings of three or more cannot start).
    bridges: Arc<Bridges>,
    counters: Counters,
    /// Runs delayed work (the return to P2P) on the daemon's runtime.
    runtime: tokio::runtime::Handle,
}

impl Hub {
    pub fn new(config: Config, runtime: tokio::runtime::Handle) -> Arc<Self> {
        let rooms = &config.rooms;
        let joins = Limiter::new(Rate {
            burst: rooms.join_burst,
            every: Duration::from_millis(rooms.join_interval_ms),
        });
        let guesses = Limiter::new(Rate {
            burst: rooms.guess_burst,
            every: Duration::from_millis(rooms.guess_interval_ms),
        });
        let clients = config
            .bridge_list()
            .filter_map(|b| match BridgeClient::new(&b.url, &b.secret) {
                Ok(client) => Some(client),
                Err(e) => {
                    tracing::error!("{e}; this bridge is left out");
                    None
                }
            })
            .collect();
        let bridges = Arc::new(Bridges::new(clients));
        if bridges.is_empty() {
            tracing::warn!("no bridge: meetings of three or more cannot start");
        }
        Arc::new(Self {
            bridges,
            counters: Counters::default(),
            state: Mutex::new(State {
                rooms: Rooms::default(),
                bridged: HashMap::new(),
                connections: HashMap::new(),
                next_conn: 1,
                joins,
                guesses,
            }),
            config,
            runtime,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new WebSocket connection; returns its id and the receiving end of its outbox.
    pub fn connect(&self, source: IpAddr) -> (ConnId, mpsc::Receiver<Outgoing>) {
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        let mut state = self.state();
        let conn = state.next_conn;
        state.next_conn += 1;
        state.connections.insert(conn, Connection { outbox, source, greeted: false });
        self.counters.connection();
        (conn, inbox)
    }

    /// Events counted for `/metrics`.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Connections, rooms and members now (for `/metrics` and `/health`).
    pub fn gauges(&self) -> Gauges {
        let state = self.state();
        let (participants, rooms_on_bridge) = state.rooms.census();
        Gauges {
            connections: state.connections.len(),
            rooms: state.rooms.len(),
            participants,
            rooms_on_bridge,
            bridges: self.bridges.len(),
        }
    }

    /// The connection is gone: it leaves its room.
    pub fn disconnect(self: &Arc<Self>, conn: ConnId) {
        let mut state = self.state();
        state.connections.remove(&conn);
        let mut effects = Effects::default();
        if let Some(name) = state.rooms.leave(conn, &mut effects) {
            tracing::debug!(conn, room = %room_tag(&name), "left (disconnected)");
            self.after(&mut state, Some(&name), effects);
        }
    }

    /// Number of rooms (for health and tests; never exposed per name).
    pub fn room_count(&self) -> usize {
        self.state().rooms.len()
    }

    /// Sends an error to one connection.
    pub fn reject(&self, conn: ConnId, error: ProtocolError) {
        let state = self.state();
        deliver(&state, conn, error.into());
    }

    /// Handles one valid message from `conn`.
    pub fn handle(self: &Arc<Self>, conn: ConnId, message: ClientMessage) {
        // SDP parsing takes a while for a big offer: do it before taking the lock.
        let parsed = match &message {
            ClientMessage::Offer { sdp, .. } => Some(crate::sdp::parse_offer(sdp)),
            _ => None,
        };
        let mut state = self.state();
        let Some(connection) = state.connections.get_mut(&conn) else { return };
        let greeted = connection.greeted;
        let source = connection.source;
        if !greeted {
            match message {
                ClientMessage::Hello { version: VERSION } => {
                    connection.greeted = true;
                    let ice_servers = crate::turn::ice_servers(&self.config.turn, SystemTime::now());
                    let welcome = ServerMessage::Welcome { version: VERSION, ice_servers };
                    deliver(&state, conn, welcome);
                }
                ClientMessage::Hello { version } => {
                    let message =
                        format!("protocol version {version} is not supported; this server speaks {VERSION}");
                    deliver(&state, conn, ProtocolError::new(ErrorCode::Version, message).into());
                    close(&state, conn);
                }
                _ => deliver(&state, conn, ProtocolError::state("say hello first").into()),
            }
            return;
        }
        let room = state.rooms.room_of(conn).map(str::to_owned);
        let mut effects = Effects::default();
        match (message, room) {
            (ClientMessage::Hello { .. }, _) => {
                effects.out.push(error_to(conn, ProtocolError::state("hello: already greeted")))
            }
            (ClientMessage::Join { room, name, email, password }, None) => {
                let now = Instant::now();
                if let Err(wait) = state.joins.take(source, now) {
                    self.counters.join(JoinResult::RateLimited);
                    return deliver(&state, conn, rate_limited("join attempts", wait));
                }
                // A source out of guesses may not try a password at all: otherwise a right guess
                // would still get in and the limit would only hide the wrong ones.
                if let Err(wait) = state.guesses.check(source, now) {
                    self.counters.join(JoinResult::RateLimited);
                    return deliver(&state, conn, rate_limited("password guesses", wait));
                }
                let request = JoinRequest { conn, name, email, password };
                let max = self.config.rooms.max_participants;
                let outcome = state.rooms.join(&room, request, max, &mut effects);
                if outcome == JoinOutcome::WrongPassword {
                    let _ = state.guesses.take(source, now);
                }
                self.counters.join(match outcome {
                    JoinOutcome::Joined => JoinResult::Joined,
                    JoinOutcome::Lobby => JoinResult::Lobby,
                    JoinOutcome::WrongPassword => JoinResult::WrongPassword,
                    JoinOutcome::Full => JoinResult::Full,
                });
                tracing::debug!(conn, room = %room_tag(&room), ?outcome, "join");
                return self.after(&mut state, Some(&room), effects);
            }
            (ClientMessage::Join { .. }, Some(_)) => {
                effects.out.push(error_to(conn, ProtocolError::state("join: already in a meeting")))
            }
            (ClientMessage::Leave, Some(room)) => {
                state.rooms.leave(conn, &mut effects);
                effects.out.push(crate::room::Out { to: conn, message: ServerMessage::Left });
                effects.close.push(conn);
                return self.after(&mut state, Some(&room), effects);
            }
            (_, None) => effects.out.push(error_to(conn, ProtocolError::state("join a meeting first"))),
            (message, Some(name)) => {
                let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                let State { rooms, bridged, .. } = &mut *state;
                let Some(room) = rooms.get_mut(&name) else { return };
                if room.in_lobby(conn) {
                    effects.out.push(error_to(conn, ProtocolError::state("wait until you are let in")));
                } else {
                    match message {
                        ClientMessage::Chat { text, to } => room.chat(conn, text, to, now_ms, &mut effects),
                        ClientMessage::SetPassword { password } => {
                            room.set_password(conn, password, &mut effects)
                        }
                        ClientMessage::SetLobby { enabled } => room.set_lobby(conn, enabled, &mut effects),
                        ClientMessage::Admit { id } => room.admit_or_deny(conn, &id, true, &mut effects),
                        ClientMessage::Deny { id } => room.admit_or_deny(conn, &id, false, &mut effects),
                        ClientMessage::Signal { to, data, epoch } => {
                            room.signal(conn, &to, data, epoch, &mut effects)
                        }
                        ClientMessage::Speaking { ms } => room.speaking(conn, ms, &mut effects),
                        ClientMessage::Media { audio, video } => room.media(conn, audio, video, &mut effects),
                        ClientMessage::E2ee { enabled } => room.e2ee(conn, enabled, &mut effects),
                        ClientMessage::Offer { epoch, .. } => {
                            let parsed = parsed.expect("parsed above");
                            if let Some(error) = self.offer(room, bridged, conn, &name, parsed, epoch) {
                                effects.out.push(error_to(conn, error));
                            }
                        }
                        ClientMessage::Hello { .. } | ClientMessage::Join { .. } | ClientMessage::Leave => {}
                    }
                }
                return self.after(&mut state, Some(&name), effects);
            }
        }
        self.after(&mut state, None, effects);
    }

    /// Starts answering a member's offer on the bridge. Returns an error to send at once, if
    /// any; an offer for an old epoch is ignored (PROTOCOL.md).
    fn offer(
        self: &Arc<Self>,
        room: &crate::room::Room,
        bridged: &mut HashMap<String, bridged::Shared>,
        conn: ConnId,
        name: &str,
        parsed: Result<crate::sdp::Offer, crate::sdp::SdpError>,
        epoch: u64,
    ) -> Option<ProtocolError> {
        if self.bridges.is_empty() {
            return Some(ProtocolError::new(ErrorCode::Unavailable, "offer: no bridge is configured"));
        }
        let bridges = self.bridges.clone();
        let current = room.bridge_epoch()?;
        if current != epoch {
            return None;
        }
        let offer = match parsed {
            Ok(offer) => offer,
            Err(e) => return Some(ProtocolError::bad(format!("offer.sdp: {e}"))),
        };
        let member = room.id_of(conn)?.to_owned();
        let present = room.member_ids();
        // (The hub's lock is held here: the entry comes from the caller's state, not a relock.)
        let shared = bridged.entry(name.to_owned()).or_default().clone();
        let hub = self.clone();
        let name = name.to_owned();
        self.runtime.spawn(async move {
            let result = bridged::answer_offer(&bridges, &shared, &member, &present, &offer, epoch).await;
            hub.answered(&name, conn, epoch, result);
        });
        None
    }

    /// An answer came back from the bridge: send it if the room is still at that epoch.
    fn answered(
        self: &Arc<Self>,
        name: &str,
        conn: ConnId,
        epoch: u64,
        result: Result<bridged::Answered, String>,
    ) {
        let mut state = self.state();
        let mut effects = Effects::default();
        let Some(room) = state.rooms.get_mut(name) else { return };
        if room.bridge_epoch() != Some(epoch) || room.id_of(conn).is_none() {
            return;
        }
        match result {
            Ok(answered) => {
                let tracks = answered
                    .answer
                    .tracks
                    .iter()
                    .map(|t| crate::protocol::TrackView {
                        mid: t.mid.clone(),
                        id: t.id.clone(),
                        kind: t.kind.as_str().to_owned(),
                    })
                    .collect();
                effects.out.push(crate::room::Out {
                    to: conn,
                    message: ServerMessage::Answer { sdp: answered.answer.sdp, epoch, tracks },
                });
                if answered.sources_changed && room.member_count() > 1 {
                    room.renegotiate(&mut effects);
                }
            }
            Err(e) => {
                self.counters.bridge_error();
                tracing::warn!(room = %room_tag(name), "bridge: {e}");
                let error = ProtocolError::new(ErrorCode::Unavailable, "the media bridge is not available");
                effects.out.push(error_to(conn, error));
            }
        }
        for out in effects.out {
            deliver(&state, out.to, out.message);
        }
    }

    /// Drops the bridge endpoints of members who left, or all of a room's when it left the
    /// bridge.
    fn prune_bridge(self: &Arc<Self>, state: &mut State, name: &str) {
        let bridges = self.bridges.clone();
        let Some(shared) = state.bridged.get(name).cloned() else { return };
        let present = match state.rooms.get_mut(name) {
            Some(room) if room.bridge_epoch().is_some() => room.member_ids(),
            _ => {
                state.bridged.remove(name);
                Vec::new()
            }
        };
        self.runtime.spawn(async move { bridged::prune(&bridges, &shared, &present).await });
    }

    /// Credits a second of speaking time to each bridged room's dominant speaker (called
    /// once a second).
    pub async fn poll_dominant_speakers(self: &Arc<Self>, elapsed_ms: u64) {
        let bridges = self.bridges.clone();
        let rooms: Vec<(String, bridged::Shared)> =
            self.state().bridged.iter().map(|(n, s)| (n.clone(), s.clone())).collect();
        for (name, shared) in rooms {
            let dominant = bridged::dominant_member(&bridges, &shared).await;
            let mut state = self.state();
            if let Some(room) = state.rooms.get_mut(&name)
                && room.bridge_epoch().is_some()
            {
                room.credit_dominant(dominant.as_deref(), elapsed_ms);
            }
        }
    }

    /// Delivers effects, forgets turned-away connections and re-evaluates the room's topology.
    fn after(self: &Arc<Self>, state: &mut State, room: Option<&str>, mut effects: Effects) {
        state.rooms.forget(&effects.unplaced);
        if effects.topology_changed
            && let Some(name) = room
            && let Some(room) = state.rooms.get_mut(name)
        {
            let was_bridge = matches!(room.topology(), Topology::Bridge { .. });
            room.update_topology(self.config.topology.p2p, false, &mut effects);
            if was_bridge && room.member_count() == 2 && self.config.topology.p2p {
                self.schedule_p2p(name.to_owned());
            }
        }
        if effects.topology_changed
            && let Some(name) = room
        {
            self.prune_bridge(state, name);
        }
        for out in effects.out {
            deliver(state, out.to, out.message);
        }
        for conn in effects.close {
            close(state, conn);
        }
    }

    /// After the delay, a room still at two members on the bridge goes back to P2P.
    fn schedule_p2p(self: &Arc<Self>, name: String) {
        let hub = self.clone();
        let delay = self.config.p2p_delay();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let mut state = hub.state();
            let mut effects = Effects::default();
            if let Some(room) = state.rooms.get_mut(&name) {
                room.update_topology(hub.config.topology.p2p, true, &mut effects);
            }
            hub.prune_bridge(&mut state, &name);
            for out in effects.out {
                deliver(&state, out.to, out.message);
            }
        });
    }

    /// Sends speaker statistics of rooms where they changed (called every 2 s).
    pub fn speakers_tick(&self) {
        let mut state = self.state();
        let names: Vec<String> = state.rooms.names().cloned().collect();
        let mut effects = Effects::default();
        for name in names {
            if let Some(room) = state.rooms.get_mut(&name) {
                room.speakers_update(&mut effects);
            }
        }
        for out in effects.out {
            deliver(&state, out.to, out.message);
        }
    }
}

fn error_to(conn: ConnId, error: ProtocolError) -> crate::room::Out {
    crate::room::Out { to: conn, message: error.into() }
}

fn rate_limited_error(what: &str, wait: Duration) -> ProtocolError {
    let ms = wait.as_millis() as u64 + 1;
    ProtocolError {
        code: ErrorCode::RateLimited,
        message: format!("too many {what} from your address; try again in {} s", ms.div_ceil(1000)),
        retry_after_ms: Some(ms),
    }
}

fn rate_limited(what: &str, wait: Duration) -> ServerMessage {
    rate_limited_error(what, wait).into()
}

/// Queues a message; a connection whose outbox is full is not reading and gets closed.
fn deliver(state: &State, conn: ConnId, message: ServerMessage) {
    if let Some(connection) = state.connections.get(&conn)
        && connection.outbox.try_send(Outgoing::Message(message)).is_err()
    {
        let _ = connection.outbox.try_send(Outgoing::Close);
    }
}

fn close(state: &State, conn: ConnId) {
    if let Some(connection) = state.connections.get(&conn) {
        let _ = connection.outbox.try_send(Outgoing::Close);
    }
}
