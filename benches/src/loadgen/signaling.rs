//! Joining through the signaling daemon (the full path): each participant holds its own
//! WebSocket to `wss://HOST/ws` for the whole run, as a browser's meeting page does
//! (signaling/PROTOCOL.md, protocol version 1).
//!
//! ```text
//! first join: conference by conference, every member opens its WebSocket, at once
//!     hello -> welcome -> join "loadgen-<random>-<c>" -> joined
//!     (the room's third member moves it from P2P to the bridge: mode "bridge", epoch e)
//! join(offer of participant i):
//!     offer {sdp, epoch}  --------------------------->  the daemon PATCHes the bridge
//!     <---------------------------------------------  answer {sdp, epoch, tracks}
//!     the answer's ICE credentials and candidate go to connect.rs: ICE, DTLS, SRTP
//! for the rest of the run, each WebSocket on its own task:
//!     renegotiate {epoch} -> offer again: same credentials, same mids, a recvonly pair
//!     per other member (the media connection stays as it is)
//! leave_all: leave -> left, then the WebSocket closes (the daemon removes the member and
//! its bridge endpoint)
//! ```
//!
//! Topology: the daemon connects a room of exactly two members peer to peer, and loadgen
//! speaks only to the bridge, so every conference needs three members or more
//! ([`MIN_MEMBERS`]); smaller layouts are refused before anything connects, whatever the
//! daemon's `topology.p2p`. Seating all members of a conference before the first offer is
//! what moves the room to the bridge: the first member's answer needs the third one present.
//!
//! The daemon limits joins per source address (`rooms.join_burst`, then one per
//! `rooms.join_interval_ms`); loadgen waits as `retry_after_ms` says, so a large run against
//! the default limits is slow to set up. Raise them on the daemon for load tests.
//!
//! The WebSockets run on a small tokio runtime of their own, away from the media threads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;
use tokio_tungstenite::tungstenite::Message;

use super::join::{Answer, Join, Offer};
use super::layout::Layout;
use super::signaling_sdp::{self, BridgeSide, MAX_OTHERS};
use super::signaling_tls::{self, Server, Socket};

/// With two members the daemon connects them peer to peer, which loadgen does not speak.
pub const MIN_MEMBERS: usize = 3;
/// TCP, TLS and the WebSocket upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The daemon's reply to `hello` or `join`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// From an offer to its answer: the daemon calls the bridge (up to 5 s per call) and the
/// answer may be dropped for a newer epoch, then offered again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest a member waits out the daemon's join rate limit.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(600);
/// From `leave` to `left`.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The participants' WebSockets to the daemon, one task each (see the module docs).
#[derive(Debug)]
pub struct Signaling {
    runtime: tokio::runtime::Runtime,
    server: Server,
    /// Overrides the candidate address the answers carry (`--media`).
    media: Option<SocketAddr>,
    layout: Layout,
    /// `loadgen-<random>`: conference c meets in room `<rooms>-<c>`.
    rooms: String,
    seats: HashMap<u32, Seat>,
    /// Whether a member has said that the daemon rate-limits our joins (once a run).
    rate_limit_told: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Seat {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Result<(), String>>,
}

#[derive(Debug)]
enum Command {
    /// Offer what we send; the first answer (the bridge's side) goes to the reply.
    Offer(Ours, oneshot::Sender<Result<BridgeSide, String>>),
    Leave,
}

/// What a participant offers: [`Offer`] with owned strings, for its task.
#[derive(Clone, Debug)]
struct Ours {
    participant: u32,
    ice_ufrag: String,
    ice_pwd: String,
    fingerprint: String,
    audio_level_id: u8,
}

impl Ours {
    fn new(offer: &Offer<'_>) -> Self {
        Self {
            participant: offer.participant,
            ice_ufrag: offer.ice_ufrag.to_owned(),
            ice_pwd: offer.ice_pwd.to_owned(),
            fingerprint: offer.fingerprint.to_owned(),
            audio_level_id: offer.audio_level_id,
        }
    }

    fn offer(&self) -> Offer<'_> {
        Offer {
            participant: self.participant,
            conference: 0,
            ice_ufrag: &self.ice_ufrag,
            ice_pwd: &self.ice_pwd,
            fingerprint: &self.fingerprint,
            audio_level_id: self.audio_level_id,
        }
    }
}

impl Signaling {
    /// Checks the layout and the URL (`https://HOST[:PORT]`); connects nothing yet.
    pub fn new(url: &str, layout: &Layout, media: Option<SocketAddr>) -> Result<Self, String> {
        check_layout(layout)?;
        let server = Server::parse(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loadgen-signaling")
            .enable_all()
            .build()
            .map_err(|e| format!("signaling runtime: {e}"))?;
        let mut random = [0u8; 4];
        openssl::rand::rand_bytes(&mut random).map_err(|e| format!("random room name: {e}"))?;
        let rooms = format!("loadgen-{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Ok(Self {
            runtime,
            server,
            media,
            layout: layout.clone(),
            rooms,
            seats: HashMap::new(),
            rate_limit_told: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The room of conference `index`.
    pub fn room(&self, index: usize) -> String {
        format!("{}-{index}", self.rooms)
    }

    /// Opens the WebSockets of every member of `conference` and waits until all are in
    /// its room.
    fn seat_conference(&mut self, conference: usize) -> Result<(), String> {
        let room = self.room(conference);
        let mut seated = Vec::new();
        for &participant in self.layout.members(conference) {
            let (commands, inbox) = mpsc::unbounded_channel();
            let (ready, is_ready) = oneshot::channel();
            let member = Member {
                server: self.server.clone(),
                room: room.clone(),
                participant,
                rate_limit_told: self.rate_limit_told.clone(),
            };
            let task = self.runtime.spawn(member.run(ready, inbox));
            self.seats.insert(participant, Seat { commands, task });
            seated.push((participant, is_ready));
        }
        for (participant, is_ready) in seated {
            let bound = CONNECT_TIMEOUT + REPLY_TIMEOUT * 2 + MAX_RATE_LIMIT_WAIT;
            match self.within(bound, is_ready) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.ended(participant)),
                Err(_) => return Err(format!("not in room {room} after {bound:?}")),
            }
        }
        Ok(())
    }

    /// Runs `work` on our runtime from the calling thread, for at most `bound`.
    fn within<F: Future>(&self, bound: Duration, work: F) -> Result<F::Output, Elapsed> {
        // The timer must be made inside the runtime: it belongs to the runtime's clock.
        self.runtime.block_on(async { tokio::time::timeout(bound, work).await })
    }

    /// Why the task of `participant` ended (it has, or is about to).
    fn ended(&mut self, participant: u32) -> String {
        let Some(seat) = self.seats.remove(&participant) else { return "no signaling connection".into() };
        match self.within(REPLY_TIMEOUT, seat.task) {
            Ok(Ok(Err(e))) => format!("signaling: {e}"),
            Ok(Ok(Ok(()))) => "signaling: the connection ended".into(),
            Ok(Err(e)) => format!("signaling task: {e}"),
            Err(_) => "signaling: the connection is stuck".into(),
        }
    }
}

fn check_layout(layout: &Layout) -> Result<(), String> {
    let sizes: Vec<usize> = (0..layout.conferences()).map(|c| layout.members(c).len()).collect();
    let (smallest, largest) = (sizes.iter().min().copied(), sizes.iter().max().copied());
    if smallest.is_none_or(|n| n < MIN_MEMBERS) {
        return Err(format!(
            "--signaling needs at least {MIN_MEMBERS} participants in every conference (here \
             {} in {} makes conferences of {sizes:?}): the daemon connects two members peer to \
             peer, not through the bridge; use -p >= {MIN_MEMBERS} * -c",
            layout.participants(),
            sizes.len()
        ));
    }
    if largest.is_some_and(|n| n > MAX_OTHERS + 1) {
        return Err(format!(
            "--signaling: at most {} participants per conference (an offer may have 64 m-lines)",
            MAX_OTHERS + 1
        ));
    }
    Ok(())
}

impl Join for Signaling {
    fn join(&mut self, offer: &Offer<'_>) -> Result<Answer, String> {
        if self.seats.is_empty() {
            // Everyone sits down before anyone connects media: the bridge forgets an endpoint
            // whose ICE consent lapses for 30 s, and waiting out the daemon's join rate limit
            // can take longer than that.
            for conference in 0..self.layout.conferences() {
                self.seat_conference(conference)?;
            }
        }
        let seat = self.seats.get(&offer.participant).ok_or("not seated in its conference")?;
        let (reply, answered) = oneshot::channel();
        if seat.commands.send(Command::Offer(Ours::new(offer), reply)).is_err() {
            return Err(self.ended(offer.participant));
        }
        let side = match self.within(ANSWER_TIMEOUT, answered) {
            Ok(Ok(side)) => side?,
            Ok(Err(_)) => return Err(self.ended(offer.participant)),
            Err(_) => return Err(format!("no answer from the daemon in {ANSWER_TIMEOUT:?}")),
        };
        let media = self
            .media
            .or_else(|| side.ipv4_candidate())
            .ok_or("no IPv4 candidate in the answer (set media.announce on the bridge, or pass --media)")?;
        Ok(Answer { media, ice_ufrag: side.ice_ufrag, ice_pwd: side.ice_pwd })
    }

    fn leave_all(&mut self) -> Result<(), String> {
        let mut seats: Vec<(u32, Seat)> = self.seats.drain().collect();
        seats.sort_by_key(|(participant, _)| *participant);
        for (_, seat) in &seats {
            let _ = seat.commands.send(Command::Leave);
        }
        // All leave at once; each task is bounded by LEAVE_TIMEOUT.
        let failed: Vec<String> = self.runtime.block_on(async {
            let mut failed = Vec::new();
            for (participant, seat) in seats {
                let outcome = match tokio::time::timeout(LEAVE_TIMEOUT * 2, seat.task).await {
                    Ok(Ok(Ok(()))) => continue,
                    Ok(Ok(Err(e))) => e,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "did not leave in time".into(),
                };
                failed.push(format!("participant {participant}: {outcome}"));
            }
            failed
        });
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }
}

/// One participant's WebSocket, on its task.
#[derive(Debug)]
struct Member {
    server: Server,
    room: String,
    participant: u32,
    rate_limit_told: Arc<AtomicBool>,
}

impl Member {
    /// Joins, says so on `ready`, then negotiates until told to leave. An error ends the
    /// connection (the daemon then removes the member); it comes back from the task.
    async fn run(
        self,
        ready: oneshot::Sender<()>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), String> {
        let mut ws = signaling_tls::connect(&self.server, CONNECT_TIMEOUT).await?;
        send(&mut ws, json!({"type": "hello", "version": 1})).await?;
        let welcome = recv(&mut ws, REPLY_TIMEOUT).await?;
        if welcome["type"] != "welcome" {
            return Err(format!("hello: {}", describe(&welcome)));
        }
        let others = self.enter(&mut ws).await?;
        let _ = ready.send(());
        let mut negotiation = Negotiation::new(others);
        let mut pending: Option<oneshot::Sender<Result<BridgeSide, String>>> = None;
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let message = match frame {
                        Some(Ok(Message::Text(text))) => parse(text.as_str())?,
                        Some(Ok(Message::Close(_))) | None => return Err("the daemon closed the connection".into()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(format!("WebSocket: {e}")),
                    };
                    match negotiation.handle_message(&message) {
                        Some(Step::Send(offer)) => send(&mut ws, offer).await?,
                        Some(Step::Answered(side)) => {
                            if let Some(reply) = pending.take() {
                                let _ = reply.send(Ok(side));
                            }
                        }
                        Some(Step::Failed(e)) => match pending.take() {
                            Some(reply) => _ = reply.send(Err(e)),
                            None => eprintln!("loadgen: participant {}: {e}", self.participant),
                        },
                        None => {}
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Offer(ours, reply)) => {
                        pending = Some(reply);
                        if let Some(offer) = negotiation.handle_ours(ours) {
                            send(&mut ws, offer).await?;
                        }
                    }
                    Some(Command::Leave) | None => return leave(&mut ws).await,
                },
            }
        }
    }

    /// `join` until `joined`, waiting out the daemon's rate limit. Returns how many others
    /// are in the room.
    async fn enter(&self, ws: &mut Socket) -> Result<usize, String> {
        let started = Instant::now();
        let join =
            json!({"type": "join", "room": self.room, "name": format!("loadgen-{}", self.participant)});
        loop {
            send(ws, join.clone()).await?;
            let reply = recv(ws, REPLY_TIMEOUT).await?;
            match reply["type"].as_str() {
                Some("joined") => {
                    let members = reply["participants"].as_array().map_or(1, Vec::len);
                    return Ok(members.saturating_sub(1));
                }
                Some("error") if reply["code"] == "rate_limited" => {
                    let wait = Duration::from_millis(reply["retry_after_ms"].as_u64().unwrap_or(1000));
                    if started.elapsed() + wait > MAX_RATE_LIMIT_WAIT {
                        return Err(format!("join: still rate-limited after {:?}", started.elapsed()));
                    }
                    if !self.rate_limit_told.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "loadgen: the daemon rate-limits joins from this address; waiting \
                             (raise rooms.join_burst on the daemon for load tests)"
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
                Some("lobby") => return Err(format!("room {}: its lobby is on", self.room)),
                _ => return Err(format!("join {}: {}", self.room, describe(&reply))),
            }
        }
    }
}

/// `leave`, then what the daemon still sends until `left` and its close.
async fn leave(ws: &mut Socket) -> Result<(), String> {
    send(ws, json!({"type": "leave"})).await?;
    let deadline = Instant::now() + LEAVE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(ws, left).await {
            Ok(message) if message["type"] == "left" => break,
            Ok(_) => continue,
            // The daemon closes the socket right after `left`: a close here is no failure.
            Err(_) if Instant::now() < deadline => break,
            Err(e) => return Err(format!("leave: {e}")),
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

async fn send(ws: &mut Socket, message: Value) -> Result<(), String> {
    ws.send(Message::Text(message.to_string().into())).await.map_err(|e| format!("WebSocket: {e}"))
}

/// The next protocol message within `wait`.
async fn recv(ws: &mut Socket, wait: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return parse(text.as_str()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                return Err("the daemon closed the connection".into());
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("WebSocket: {e}")),
            Err(_) => return Err(format!("no message from the daemon in {wait:?}")),
        }
    }
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the daemon sent invalid JSON: {e}"))
}

/// A message for an error line: an `error`'s code and text, else the message's type.
fn describe(message: &Value) -> String {
    match message["type"].as_str() {
        Some("error") => format!("{}: {}", message["code"].as_str().unwrap_or("?"), message["message"]),
        Some(other) => format!("unexpected {other:?}"),
        None => "a message without a type".into(),
    }
}

/// What the daemon's messages make a member do.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send this `offer`.
    Send(Value),
    /// The first answer: the bridge's side of the connection.
    Answered(BridgeSide),
    Failed(String),
}

/// One member's side of bridge-mode negotiation (PROTOCOL.md, "Media topology"), without IO:
/// the daemon's messages and our offer in, offers and the bridge's side out.
#[derive(Debug)]
struct Negotiation {
    ours: Option<Ours>,
    /// Other members in the room now.
    others: usize,
    /// Receiving m-line pairs offered so far: they stay when members leave (RFC 3264 §8).
    pairs: usize,
    /// The room's bridge epoch, while it is on the bridge.
    epoch: Option<u64>,
    /// The `o=` version of our last offer.
    version: u64,
    /// From the first answer; every later one must name the same endpoint.
    bridge: Option<BridgeSide>,
}

impl Negotiation {
    fn new(others: usize) -> Self {
        Self { ours: None, others, pairs: 0, epoch: None, version: 0, bridge: None }
    }

    /// We know what we send: offer now if the room is on the bridge already.
    fn handle_ours(&mut self, ours: Ours) -> Option<Value> {
        self.ours = Some(ours);
        self.offer()
    }

    fn handle_message(&mut self, message: &Value) -> Option<Step> {
        match message["type"].as_str()? {
            "participant_joined" => self.others += 1,
            "participant_left" => self.others = self.others.saturating_sub(1),
            "mode" if message["mode"] == "bridge" => {
                self.epoch = message["epoch"].as_u64();
                return self.offer().map(Step::Send);
            }
            // P2P (a room back at two): nothing to offer until the bridge takes it again.
            "mode" => self.epoch = None,
            "renegotiate" => {
                self.epoch = message["epoch"].as_u64();
                return self.offer().map(Step::Send);
            }
            // The daemon drops answers to stale offers itself; this is the same check on our
            // side, for an answer that crossed a `renegotiate` on the wire.
            "answer" if self.epoch.is_some() && message["epoch"].as_u64() == self.epoch => {
                let side = match message["sdp"].as_str().ok_or("answer without sdp".to_owned()) {
                    Ok(sdp) => signaling_sdp::read_answer(sdp),
                    Err(e) => Err(e),
                };
                let side = match side {
                    Ok(side) => side,
                    Err(e) => return Some(Step::Failed(e)),
                };
                return match &self.bridge {
                    None => {
                        self.bridge = Some(side.clone());
                        Some(Step::Answered(side))
                    }
                    Some(first) if first.ice_ufrag == side.ice_ufrag && first.ice_pwd == side.ice_pwd => None,
                    Some(_) => {
                        Some(Step::Failed("a renegotiation moved us to another bridge endpoint".into()))
                    }
                };
            }
            "error" => return Some(Step::Failed(format!("the daemon: {}", describe(message)))),
            _ => {}
        }
        None
    }

    fn offer(&mut self) -> Option<Value> {
        let (ours, epoch) = (self.ours.as_ref()?, self.epoch?);
        self.pairs = self.pairs.max(self.others).min(MAX_OTHERS);
        self.version += 1;
        let sdp = signaling_sdp::offer(&ours.offer(), self.pairs, self.version);
        Some(json!({"type": "offer", "sdp": sdp, "epoch": epoch}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ours {
        Ours {
            participant: 4,
            ice_ufrag: "abcd".into(),
            ice_pwd: "0123456789abcdef012345".into(),
            fingerprint: "AA:BB".into(),
            audio_level_id: 1,
        }
    }

    fn answer(epoch: u64, ufrag: &str) -> Value {
        let sdp = format!(
            "v=0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:pw\r\na=fingerprint:sha-256 CC\r\na=setup:passive\r\n\
             a=candidate:1 1 udp 9 127.0.0.1 4000 typ host\r\n"
        );
        json!({"type": "answer", "sdp": sdp, "epoch": epoch, "tracks": []})
    }

    fn pairs(step: Option<Step>) -> (usize, u64) {
        let Some(Step::Send(offer)) = step else { panic!("expected an offer, got {step:?}") };
        let sdp = offer["sdp"].as_str().unwrap();
        (sdp.matches("a=recvonly").count() / 2, offer["epoch"].as_u64().unwrap())
    }

    /// A member seated second: P2P ignored, the bridge's epoch awaited, offers grow with the
    /// room and never shrink, stale answers ignored, the endpoint checked.
    #[test]
    fn offers_follow_the_rooms_epochs_and_members() {
        let mut n = Negotiation::new(1);
        assert_eq!(n.handle_message(&json!({"type": "mode", "mode": "p2p", "peer": "x", "epoch": 1})), None);
        assert_eq!(n.handle_message(&json!({"type": "participant_joined", "participant": {}})), None);
        assert_eq!(
            n.handle_message(&json!({"type": "mode", "mode": "bridge", "epoch": 2})),
            None,
            "not yet ours"
        );
        assert_eq!(pairs(n.handle_ours(ours()).map(Step::Send)), (2, 2));
        assert_eq!(
            n.handle_message(&json!({"type": "renegotiate", "epoch": 3})).map(|s| pairs(Some(s))),
            Some((2, 3))
        );
        assert_eq!(n.handle_message(&answer(2, "brdg")), None, "an answer to the stale offer");
        let Some(Step::Answered(side)) = n.handle_message(&answer(3, "brdg")) else { panic!() };
        assert_eq!(side.ipv4_candidate(), Some("127.0.0.1:4000".parse().unwrap()));
        n.handle_message(&json!({"type": "participant_joined", "participant": {}}));
        assert_eq!(pairs(n.handle_message(&json!({"type": "renegotiate", "epoch": 4}))), (3, 4));
        assert_eq!(n.handle_message(&answer(4, "brdg")), None, "the same endpoint: nothing new");
        n.handle_message(&json!({"type": "participant_left", "id": "x"}));
        assert_eq!(
            pairs(n.handle_message(&json!({"type": "renegotiate", "epoch": 5}))),
            (3, 5),
            "m-lines stay"
        );
        assert!(matches!(n.handle_message(&answer(5, "othr")), Some(Step::Failed(_))));
        assert!(matches!(
            n.handle_message(&json!({"type": "error", "code": "unavailable", "message": "no bridge"})),
            Some(Step::Failed(e)) if e.contains("unavailable")
        ));
        assert_eq!(n.version, 4, "o= version grows with every offer");
    }

    #[test]
    fn layouts_with_two_member_conferences_are_refused() {
        assert!(check_layout(&Layout::round_robin(6, 2)).is_ok());
        let error = check_layout(&Layout::round_robin(5, 2)).unwrap_err();
        assert!(error.contains("[3, 2]") && error.contains("peer to"), "{error}");
        assert!(check_layout(&Layout::round_robin(2, 1)).is_err());
        assert!(check_layout(&Layout::round_robin(33, 1)).is_err());
    }
}
