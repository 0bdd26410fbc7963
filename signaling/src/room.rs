//! Meeting rooms, sans-IO: every operation takes the time and returns the messages to send to
//! which connection. A room exists only while it has members (privacy invariant 1): the last
//! leave drops it with its password, lobby, chat and speaker statistics, and the next join of
//! the same name makes a new, unrelated room.

use std::collections::HashMap;

use serde_json::Value;

use crate::protocol::{ChatView, ErrorCode, ParticipantView, ProtocolError, ServerMessage, SpeakerView};
use crate::secret::{Password, random_id};

/// A WebSocket connection, as the daemon numbers them.
pub type ConnId = u64;

/// Room messages kept for late joiners; the oldest go first.
pub const CHAT_HISTORY: usize = 500;

/// One outgoing message.
#[derive(Debug, PartialEq)]
pub struct Out {
    pub to: ConnId,
    pub message: ServerMessage,
}

/// What the daemon must do besides sending messages.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub out: Vec<Out>,
    /// Connections to close after their messages (denied, left).
    pub close: Vec<ConnId>,
    /// Connections no longer in the room (denied, or refused by a password set while they
    /// waited): they may join again.
    pub unplaced: Vec<ConnId>,
    /// The room's topology may have changed: re-evaluate it.
    pub topology_changed: bool,
}

impl Effects {
    fn send(&mut self, to: ConnId, message: ServerMessage) {
        self.out.push(Out { to, message });
    }

    fn error(&mut self, to: ConnId, error: ProtocolError) {
        self.send(to, error.into());
    }
}

#[derive(Debug)]
struct Member {
    id: String,
    conn: ConnId,
    name: Option<String>,
    email: Option<String>,
    audio: bool,
    video: bool,
    e2ee: bool,
    speaking_ms: u64,
    /// Whether this member was sent the bridge `mode` of the room's current bridge period: a
    /// newcomer to a room already on the bridge needs `mode`, the others `renegotiate`.
    on_bridge: bool,
}

impl Member {
    fn view(&self) -> ParticipantView {
        ParticipantView {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            audio: self.audio,
            video: self.video,
            e2ee: self.e2ee,
        }
    }
}

/// Someone knocking at the lobby.
#[derive(Debug)]
struct Waiting {
    id: String,
    conn: ConnId,
    name: Option<String>,
    email: Option<String>,
    /// The password they gave when knocking: checked again if one is set meanwhile.
    password: Option<Password>,
}

/// How media flows in the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Zero or one member: nothing to connect.
    Alone,
    P2p {
        epoch: u64,
    },
    Bridge {
        epoch: u64,
    },
}

#[derive(Debug)]
pub struct Room {
    members: Vec<Member>,
    lobby: Vec<Waiting>,
    moderator: Option<String>,
    password: Option<Password>,
    lobby_enabled: bool,
    chat: Vec<ChatView>,
    epoch: u64,
    topology: Topology,
    speakers_changed: bool,
    dominant: Option<String>,
}

/// A join request.
#[derive(Debug)]
pub struct JoinRequest {
    pub conn: ConnId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

/// How a join attempt ended, for rate limiting.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    Lobby,
    WrongPassword,
    Full,
}

impl Room {
    fn new() -> Self {
        Self {
            members: Vec::new(),
            lobby: Vec::new(),
            moderator: None,
            password: None,
            lobby_enabled: false,
            chat: Vec::new(),
            epoch: 0,
            topology: Topology::Alone,
            speakers_changed: false,
            dominant: None,
        }
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn member(&self, conn: ConnId) -> Option<&Member> {
        self.members.iter().find(|m| m.conn == conn)
    }

    fn member_by_id(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn fresh_id(&self) -> String {
        loop {
            let id = random_id();
            if self.member_by_id(&id).is_none() && !self.lobby.iter().any(|w| w.id == id) {
                return id;
            }
        }
    }

    fn is_moderator(&self, conn: ConnId) -> bool {
        self.member(conn).is_some_and(|m| Some(&m.id) == self.moderator.as_ref())
    }

    fn broadcast(&self, effects: &mut Effects, message: &ServerMessage, except: Option<ConnId>) {
        for member in self.members.iter().filter(|m| Some(m.conn) != except) {
            effects.send(member.conn, message.clone());
        }
    }

    fn settings(&self) -> ServerMessage {
        ServerMessage::Settings { password: self.password.is_some(), lobby: self.lobby_enabled }
    }

    /// A join into this room (existing or just made).
    pub fn join(&mut self, request: JoinRequest, max_members: usize, effects: &mut Effects) -> JoinOutcome {
        if self.members.len() >= max_members {
            effects.error(request.conn, ProtocolError::new(ErrorCode::Full, "the meeting is full"));
            return JoinOutcome::Full;
        }
        if let Some(password) = &self.password {
            // The right password passes the lobby too.
            if !request.password.as_deref().is_some_and(|p| password.matches(p)) {
                effects.error(
                    request.conn,
                    ProtocolError::new(ErrorCode::Password, "this meeting needs a password"),
                );
                return JoinOutcome::WrongPassword;
            }
        } else if self.lobby_enabled && !self.members.is_empty() {
            let id = self.fresh_id();
            if let Some(moderator) = self.moderator.as_ref().and_then(|m| self.member_by_id(m)) {
                effects.send(
                    moderator.conn,
                    ServerMessage::Knock { id: id.clone(), name: request.name.clone() },
                );
            }
            effects.send(request.conn, ServerMessage::Lobby);
            self.lobby.push(Waiting {
                id,
                conn: request.conn,
                name: request.name,
                email: request.email,
                password: request.password.map(Password::new),
            });
            return JoinOutcome::Lobby;
        }
        let id = self.fresh_id();
        self.admit_member(id, request.conn, request.name, request.email, effects);
        JoinOutcome::Joined
    }

    fn admit_member(
        &mut self,
        id: String,
        conn: ConnId,
        name: Option<String>,
        email: Option<String>,
        effects: &mut Effects,
    ) {
        let member = Member {
            id: id.clone(),
            conn,
            name,
            email,
            audio: true,
            video: true,
            e2ee: false,
            speaking_ms: 0,
            on_bridge: false,
        };
        let view = member.view();
        self.broadcast(effects, &ServerMessage::ParticipantJoined { participant: view }, None);
        self.members.push(member);
        if self.moderator.is_none() {
            self.moderator = Some(id.clone());
        }
        effects.send(
            conn,
            ServerMessage::Joined {
                id,
                moderator: self.moderator.clone(),
                participants: self.members.iter().map(Member::view).collect(),
                chat: self.chat.clone(),
                password: self.password.is_some(),
                lobby: self.lobby_enabled,
                speakers: self.speaker_views(),
            },
        );
        effects.topology_changed = true;
    }

    /// A member or lobby waiter leaves (or its connection dropped).
    pub fn leave(&mut self, conn: ConnId, effects: &mut Effects) {
        if let Some(at) = self.lobby.iter().position(|w| w.conn == conn) {
            let waiting = self.lobby.remove(at);
            self.tell_moderator(effects, ServerMessage::LobbyLeft { id: waiting.id });
            return;
        }
        let Some(at) = self.members.iter().position(|m| m.conn == conn) else { return };
        let member = self.members.remove(at);
        self.broadcast(effects, &ServerMessage::ParticipantLeft { id: member.id.clone() }, None);
        if self.moderator.as_ref() == Some(&member.id) {
            // Rights pass to whoever has been in the meeting longest.
            self.moderator = self.members.first().map(|m| m.id.clone());
            if let Some(next) = self.moderator.clone() {
                self.broadcast(effects, &ServerMessage::Moderator { id: next.clone() }, None);
                for waiting in &self.lobby {
                    let conn = self.members[0].conn;
                    effects.send(
                        conn,
                        ServerMessage::Knock { id: waiting.id.clone(), name: waiting.name.clone() },
                    );
                }
            }
        }
        if self.members.is_empty() {
            // The meeting is over: nobody is left to admit the lobby.
            for waiting in self.lobby.drain(..) {
                effects.error(waiting.conn, ProtocolError::new(ErrorCode::Denied, "the meeting has ended"));
                effects.close.push(waiting.conn);
                effects.unplaced.push(waiting.conn);
            }
        }
        effects.topology_changed = true;
    }

    fn tell_moderator(&self, effects: &mut Effects, message: ServerMessage) {
        if let Some(moderator) = self.moderator.as_ref().and_then(|m| self.member_by_id(m)) {
            effects.send(moderator.conn, message);
        }
    }

    fn require_moderator(&self, conn: ConnId) -> Result<(), ProtocolError> {
        if self.is_moderator(conn) {
            Ok(())
        } else {
            Err(ProtocolError::state("only the moderator can do that"))
        }
    }

    pub fn set_password(&mut self, conn: ConnId, password: Option<String>, effects: &mut Effects) {
        if let Err(e) = self.require_moderator(conn) {
            return effects.error(conn, e);
        }
        self.password = password.map(Password::new);
        self.broadcast(effects, &self.settings(), None);
    }

    pub fn set_lobby(&mut self, conn: ConnId, enabled: bool, effects: &mut Effects) {
        if let Err(e) = self.require_moderator(conn) {
            return effects.error(conn, e);
        }
        self.lobby_enabled = enabled;
        self.broadcast(effects, &self.settings(), None);
        if !enabled {
            // Turning the lobby off lets everyone waiting in (subject to the password).
            let waiting: Vec<String> = self.lobby.iter().map(|w| w.id.clone()).collect();
            for id in waiting {
                self.decide(&id, true, effects);
            }
        }
    }

    pub fn admit_or_deny(&mut self, conn: ConnId, id: &str, admit: bool, effects: &mut Effects) {
        if let Err(e) = self.require_moderator(conn) {
            return effects.error(conn, e);
        }
        if !self.lobby.iter().any(|w| w.id == id) {
            return effects.error(conn, ProtocolError::state("nobody with that id is waiting"));
        }
        self.decide(id, admit, effects);
    }

    fn decide(&mut self, id: &str, admit: bool, effects: &mut Effects) {
        let Some(at) = self.lobby.iter().position(|w| w.id == id) else { return };
        let waiting = self.lobby.remove(at);
        self.tell_moderator(effects, ServerMessage::LobbyLeft { id: waiting.id.clone() });
        if !admit {
            effects.error(
                waiting.conn,
                ProtocolError::new(ErrorCode::Denied, "the moderator did not let you in"),
            );
            effects.close.push(waiting.conn);
            effects.unplaced.push(waiting.conn);
            return;
        }
        // A password set while they waited applies to them too.
        if let Some(password) = &self.password {
            let given = waiting.password.as_ref().is_some_and(|p| password.matches(p.expose()));
            if !given {
                effects.error(
                    waiting.conn,
                    ProtocolError::new(ErrorCode::Password, "this meeting needs a password"),
                );
                effects.unplaced.push(waiting.conn);
                return;
            }
        }
        self.admit_member(waiting.id, waiting.conn, waiting.name, waiting.email, effects);
    }

    pub fn chat(
        &mut self,
        conn: ConnId,
        text: String,
        to: Option<String>,
        now_ms: u64,
        effects: &mut Effects,
    ) {
        let Some(sender) = self.member(conn) else {
            return effects.error(conn, ProtocolError::state("join first"));
        };
        let (from, name) = (sender.id.clone(), sender.name.clone());
        match to {
            Some(to) => {
                let Some(recipient) = self.member_by_id(&to) else {
                    return effects.error(conn, ProtocolError::state("chat.to: nobody with that id is here"));
                };
                let message =
                    ServerMessage::Chat { from, name, text, at: now_ms, private: true, to: Some(to.clone()) };
                effects.send(recipient.conn, message.clone());
                if recipient.conn != conn {
                    effects.send(conn, message);
                }
            }
            None => {
                let entry =
                    ChatView { from: from.clone(), name: name.clone(), text: text.clone(), at: now_ms };
                if self.chat.len() == CHAT_HISTORY {
                    self.chat.remove(0);
                }
                self.chat.push(entry);
                self.broadcast(
                    effects,
                    &ServerMessage::Chat { from, name, text, at: now_ms, private: false, to: None },
                    None,
                );
            }
        }
    }

    /// Relays a P2P signal to the member's peer, and only while the room is in P2P mode.
    ///
    /// A signal of an earlier P2P epoch is dropped without an error: it is a normal race (the
    /// peer sent it before it read the topology change), and relayed it would reach the next
    /// P2P connection between the same two members, which could not apply it.
    pub fn signal(&self, conn: ConnId, to: &str, data: Value, epoch: u64, effects: &mut Effects) {
        let Some(sender) = self.member(conn) else {
            return effects.error(conn, ProtocolError::state("join first"));
        };
        let Topology::P2p { epoch: current } = self.topology else {
            return effects.error(conn, ProtocolError::state("signal: the meeting is not peer to peer"));
        };
        if epoch != current {
            return;
        }
        let Some(peer) = self.member_by_id(to).filter(|p| p.conn != conn) else {
            return effects.error(conn, ProtocolError::state("signal.to: not your peer"));
        };
        effects.send(peer.conn, ServerMessage::Signal { from: sender.id.clone(), data, epoch });
    }

    pub fn media(&mut self, conn: ConnId, audio: bool, video: bool, effects: &mut Effects) {
        let Some(member) = self.members.iter_mut().find(|m| m.conn == conn) else {
            return effects.error(conn, ProtocolError::state("join first"));
        };
        member.audio = audio;
        member.video = video;
        let view = member.view();
        self.broadcast(effects, &ServerMessage::ParticipantUpdated { participant: view }, None);
    }

    /// A member turned end-to-end encryption on or off: everyone learns it, so pages can show
    /// whose media they should be able to decrypt. Repeating the current state sends nothing.
    pub fn e2ee(&mut self, conn: ConnId, enabled: bool, effects: &mut Effects) {
        let Some(member) = self.members.iter_mut().find(|m| m.conn == conn) else {
            return effects.error(conn, ProtocolError::state("join first"));
        };
        if member.e2ee == enabled {
            return;
        }
        member.e2ee = enabled;
        let view = member.view();
        self.broadcast(effects, &ServerMessage::ParticipantUpdated { participant: view }, None);
    }

    /// Speaking time a member measured itself (P2P mode).
    pub fn speaking(&mut self, conn: ConnId, ms: u32, effects: &mut Effects) {
        if !matches!(self.topology, Topology::P2p { .. } | Topology::Alone) {
            return; // the bridge's dominant speaker is the source then
        }
        let Some(member) = self.members.iter_mut().find(|m| m.conn == conn) else {
            return effects.error(conn, ProtocolError::state("join first"));
        };
        if ms > 0 {
            member.speaking_ms += u64::from(ms);
            self.speakers_changed = true;
        }
    }

    /// Credits speaking time to the bridge's dominant speaker (bridge mode).
    pub fn credit_dominant(&mut self, id: Option<&str>, ms: u64) {
        self.dominant = id.map(str::to_owned);
        if let Some(member) = id.and_then(|id| self.members.iter_mut().find(|m| m.id == id)) {
            member.speaking_ms += ms;
            self.speakers_changed = true;
        }
    }

    fn speaker_views(&self) -> Vec<SpeakerView> {
        self.members.iter().map(|m| SpeakerView { id: m.id.clone(), ms: m.speaking_ms }).collect()
    }

    /// The speaker statistics, if they changed since the last call.
    pub fn speakers_update(&mut self, effects: &mut Effects) {
        if std::mem::take(&mut self.speakers_changed) {
            let message =
                ServerMessage::Speakers { speakers: self.speaker_views(), dominant: self.dominant.clone() };
            self.broadcast(effects, &message, None);
        }
    }

    /// Decides the topology for the current members. `p2p_allowed` is false while the delay
    /// before returning to P2P runs.
    pub fn update_topology(&mut self, p2p_enabled: bool, p2p_allowed: bool, effects: &mut Effects) {
        let wanted = match self.members.len() {
            0 | 1 => Topology::Alone,
            2 if p2p_enabled && (p2p_allowed || !matches!(self.topology, Topology::Bridge { .. })) => {
                Topology::P2p { epoch: 0 }
            }
            _ => Topology::Bridge { epoch: 0 },
        };
        let same_kind = std::mem::discriminant(&wanted) == std::mem::discriminant(&self.topology);
        if !matches!(wanted, Topology::Bridge { .. }) {
            self.members.iter_mut().for_each(|m| m.on_bridge = false);
        }
        match (&wanted, same_kind) {
            (Topology::Alone, _) => self.topology = Topology::Alone,
            (Topology::P2p { .. }, true) => {}
            (Topology::P2p { .. }, false) => {
                self.epoch += 1;
                self.topology = Topology::P2p { epoch: self.epoch };
                // The one who joined later is polite: it yields when both offer at once.
                let (first, second) = (&self.members[0], &self.members[1]);
                for (member, peer, polite) in [(first, second, false), (second, first, true)] {
                    effects.send(
                        member.conn,
                        ServerMessage::Mode {
                            mode: "p2p",
                            peer: Some(peer.id.clone()),
                            polite: Some(polite),
                            epoch: self.epoch,
                        },
                    );
                }
            }
            (Topology::Bridge { .. }, _) => {
                self.epoch += 1;
                self.topology = Topology::Bridge { epoch: self.epoch };
                let epoch = self.epoch;
                for member in &mut self.members {
                    let message = if member.on_bridge {
                        ServerMessage::Renegotiate { epoch }
                    } else {
                        ServerMessage::Mode { mode: "bridge", peer: None, polite: None, epoch }
                    };
                    member.on_bridge = true;
                    effects.send(member.conn, message);
                }
            }
        }
    }

    /// Ids of the members, in join order.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }

    /// The current epoch, when the room is on the bridge.
    pub fn bridge_epoch(&self) -> Option<u64> {
        match self.topology {
            Topology::Bridge { epoch } => Some(epoch),
            _ => None,
        }
    }

    /// Asks every member to offer again (someone's sources changed), on the bridge only.
    pub fn renegotiate(&mut self, effects: &mut Effects) {
        if matches!(self.topology, Topology::Bridge { .. }) {
            self.epoch += 1;
            self.topology = Topology::Bridge { epoch: self.epoch };
            self.broadcast(effects, &ServerMessage::Renegotiate { epoch: self.epoch }, None);
        }
    }

    /// The member's id on connection `conn`.
    pub fn id_of(&self, conn: ConnId) -> Option<&str> {
        self.member(conn).map(|m| m.id.as_str())
    }

    pub fn in_lobby(&self, conn: ConnId) -> bool {
        self.lobby.iter().any(|w| w.conn == conn)
    }
}

/// Every room of this daemon, by name. Nothing here can enumerate rooms to a client.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    /// Which room each connection is in (member or lobby).
    placed: HashMap<ConnId, String>,
}

impl Rooms {
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Members of every room, and the rooms on the bridge (for metrics).
    pub fn census(&self) -> (usize, usize) {
        let members = self.rooms.values().map(Room::member_count).sum();
        let bridged = self.rooms.values().filter(|r| r.bridge_epoch().is_some()).count();
        (members, bridged)
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    pub fn room_of(&self, conn: ConnId) -> Option<&str> {
        self.placed.get(&conn).map(String::as_str)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.get_mut(name)
    }

    /// Joins `name`, making the room if nobody is in it.
    pub fn join(
        &mut self,
        name: &str,
        request: JoinRequest,
        max_members: usize,
        effects: &mut Effects,
    ) -> JoinOutcome {
        let conn = request.conn;
        let room = self.rooms.entry(name.to_owned()).or_insert_with(Room::new);
        let outcome = room.join(request, max_members, effects);
        match outcome {
            JoinOutcome::Joined | JoinOutcome::Lobby => {
                self.placed.insert(conn, name.to_owned());
            }
            JoinOutcome::WrongPassword | JoinOutcome::Full => {
                if room.is_empty() && room.lobby.is_empty() {
                    self.rooms.remove(name);
                }
            }
        }
        outcome
    }

    /// The connection leaves whatever room it is in; an emptied room is dropped whole.
    pub fn leave(&mut self, conn: ConnId, effects: &mut Effects) -> Option<String> {
        let name = self.placed.remove(&conn)?;
        let room = self.rooms.get_mut(&name)?;
        room.leave(conn, effects);
        for closed in &effects.unplaced {
            self.placed.remove(closed);
        }
        if room.is_empty() {
            self.rooms.remove(&name);
        }
        Some(name)
    }

    /// After a lobby decision: connections turned away are no longer placed.
    pub fn forget(&mut self, conns: &[ConnId]) {
        for conn in conns {
            self.placed.remove(conn);
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.rooms.keys()
    }
}

#[cfg(test)]
mod tests;
