//! `loadgen`: simulated meetings against a running bridge, with the real protocols.
//!
//! P participants in M conferences ([`layout`]) each join ([`join`]: through the signaling
//! daemon's WebSocket, the full path, [`signaling`]; or directly through the bridge's
//! control API, the data plane alone), open ICE, DTLS and SRTP to the bridge ([`connect`]),
//! then send audio (50 packets/s with the RFC 6464 audio level) and video (frame bursts,
//! [`schedule`]) stamped with sender, stream, sequence number and send time ([`wire`]), and
//! measure what the bridge forwards to them ([`stats`], [`histogram`]). With
//! [`Config::e2ee`] every media payload is end-to-end encrypted with SFrame on top ([`e2ee`]),
//! so the bridge forwards ciphertext as it does for browsers with E2EE on. In relay mode
//! ([`relay_routes`]) they send plain RTP through the bridge's static relay instead, with no
//! signaling and no crypto.
//!
//! The drive loop:
//!
//! ```text
//! setup, participant by participant (blocking, each step with a deadline):
//!     join -> bind + connect a UDP socket -> ICE check -> DTLS handshake -> SRTP contexts
//! run: W worker threads, each owning P/W participants, until plan.stop_ns:
//!     epoll_wait(sockets + 1 ms timerfd)
//!       tick     -> each participant queues what is due -> one sendmmsg per participant
//!       readable -> recvmmsg -> SRTP unprotect -> [SFrame decrypt] -> stamp -> per-stream stats + latency
//!     senders stop at plan.send_end_ns; receivers drain until plan.stop_ns
//! main thread: a progress line every second; afterwards, leave and build the Report
//! ```
//!
//! [`Receive::Nap`] changes one thing: the workers sleep on the tick alone and drain the
//! sockets that have something after each tick. That is how `bench-report` measures the
//! bridge's CPU per packet (see [`Receive`]).
//!
//! Latency is from the sender's stamp (taken as its tick queues the packet, before SRTP and
//! `sendmmsg`) to the kernel's arrival stamp on the receiver's socket (SO_TIMESTAMPNS): the
//! sender's own queueing, both kernels' UDP paths and the bridge are in it; the time the
//! datagram then waits for its receiver to read it (a nap, a turn waiting for a core) is not,
//! since a real receiver's scheduling is no part of the bridge's latency.
//!
//! Loss counts, per stream, the packets the sender numbered (all of them sent before the
//! end of sending) that never arrived by the end of the drain.

pub mod batch;
// The participant's connection setup lives in the bridge crate, shared with its tests.
pub use bridge::client::{connect, ice, identity};
pub mod clock;
pub mod e2ee;
pub mod histogram;
pub mod http;
pub mod join;
pub mod layout;
pub mod participant;
pub mod poller;
pub mod report;
pub mod schedule;
pub mod signaling;
pub mod signaling_sdp;
pub mod signaling_tls;
pub mod stats;
pub mod wire;
pub mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::connect::ProfileChoice;
use self::identity::Identity;
use self::join::{ControlApi, Join, Offer};
use self::layout::Layout;
use self::participant::{Participant, Plan};
use self::report::{Collected, Report};
use self::schedule::{Phases, VideoPattern};
use self::signaling::Signaling;
use self::worker::{Live, Worker};
use crate::mmsg;

/// Kernel buffers of every participant socket: a keyframe burst to many receivers must never
/// overflow our own socket, so loss is the bridge's.
const SOCKET_BUFFER: usize = 4 << 20;
/// How far after setup the media starts, so every worker begins on the same schedule.
const START_DELAY: Duration = Duration::from_millis(20);

/// Where the participants send, and how they get there.
#[derive(Clone, Debug)]
pub enum Target {
    /// The SFU, joined through its control API (bridge/API.md): ICE, DTLS, SRTP.
    ControlApi {
        api: SocketAddr,
        secret: String,
        /// Instead of the candidate the bridge announces.
        media: Option<SocketAddr>,
        profiles: ProfileChoice,
        handshake_timeout: Duration,
    },
    /// The SFU, joined through the signaling daemon (signaling/PROTOCOL.md) at `url`
    /// (`https://HOST[:PORT]`), one WebSocket per participant for the whole run; then ICE,
    /// DTLS, SRTP as with the control API. Every conference needs 3 members or more.
    Signaling {
        url: String,
        /// Instead of the candidate the answers carry.
        media: Option<SocketAddr>,
        profiles: ProfileChoice,
        handshake_timeout: Duration,
    },
    /// A bridge in relay mode: plain RTP from `127.0.0.1:base_port + i` for participant i,
    /// routed as [`relay_routes`] says.
    Relay { relay: SocketAddr, base_port: u16 },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub participants: usize,
    pub conferences: usize,
    /// How long participants send.
    pub duration: Duration,
    /// How long they keep receiving afterwards.
    pub drain: Duration,
    /// The first part of `duration` whose packets count for loss but not for latency.
    pub warmup: Duration,
    pub video: VideoPattern,
    pub audio_level_id: u8,
    /// Media threads.
    pub threads: usize,
    pub target: Target,
    /// End-to-end encryption: every media payload is an SFrame frame (AES_128_GCM_SHA256_128),
    /// packets keeping their lengths ([`e2ee`]).
    pub e2ee: bool,
}

impl Config {
    /// The settings as the JSON result echoes them (no secret).
    pub fn to_json(&self) -> Value {
        let target = match &self.target {
            Target::ControlApi { api, media, profiles, .. } => {
                json!({"mode": "sfu", "api": api.to_string(), "media": media.map(|m| m.to_string()),
                       "profiles": format!("{profiles:?}")})
            }
            Target::Signaling { url, media, profiles, .. } => {
                json!({"mode": "sfu", "join": "signaling", "signaling": url,
                       "media": media.map(|m| m.to_string()), "profiles": format!("{profiles:?}")})
            }
            Target::Relay { relay, base_port } => {
                json!({"mode": "relay", "relay": relay.to_string(), "base_port": base_port})
            }
        };
        json!({
            "participants": self.participants,
            "conferences": self.conferences,
            "duration_s": self.duration.as_secs_f64(),
            "drain_s": self.drain.as_secs_f64(),
            "latency_warmup_s": self.warmup.as_secs_f64(),
            "audio_pps": schedule::AUDIO_PPS,
            "video_pps": self.video.pps,
            "fps": self.video.fps,
            "gop_frames": self.video.gop_frames,
            "keyframe_weight": self.video.keyframe_weight,
            "pace_pps": self.video.pace_pps,
            "threads": self.threads,
            "e2ee": self.e2ee.then_some("sframe AES_128_GCM_SHA256_128"),
            "target": target,
        })
    }
}

/// How the media threads wait for what the bridge forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Receive {
    /// Sleep in `epoll_wait` on every socket: a packet is read, and its latency measured, as
    /// it arrives.
    #[default]
    Wake,
    /// Sleep on the 1 ms tick only, then drain the sockets that have something (found by a
    /// poll that never sleeps). A receiver asleep on its socket must be woken by each
    /// delivery that finds it asleep, and on loopback the wake-up runs inside the bridge's
    /// send and is charged to the bridge, which a bridge sending to a NIC never pays
    /// (`bench-report`'s sinks nap for the same reason). Latencies are the same: they end
    /// at the kernel's arrival stamp, not at the read.
    Nap,
}

/// How [`run_with`] runs, beyond what the [`Config`] says about the load.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    pub receive: Receive,
    /// How often the progress callback is called while media runs.
    pub progress_every: Duration,
    /// The media threads' nice value (0: unchanged). Sharing a host with the bridge, loadgen
    /// at 19 yields its cores to the bridge at once, so that the bridge's packets never wait
    /// for the load generator to finish its turn, which is the measurement's artefact, not
    /// the bridge's latency.
    pub nice: i32,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { receive: Receive::Wake, progress_every: Duration::from_secs(1), nice: 0 }
    }
}

/// The live figures the progress line shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub sent: u64,
    pub received: u64,
    /// Missing packets so far (gaps below what arrived).
    pub gaps: u64,
}

/// The `[relay]` table that routes every participant's packets to the other members of its
/// conference, participant i sending from `127.0.0.1:base_port + i`. Participants alone in
/// their conference get no route (the relay drops their packets as unrouted).
pub fn relay_routes(participants: usize, conferences: usize, base_port: u16, drop_every: u32) -> String {
    let layout = Layout::round_robin(participants, conferences);
    let addr = |p: u32| format!("\"127.0.0.1:{}\"", u32::from(base_port) + p);
    let mut routes = Vec::new();
    for p in 0..participants {
        let to: Vec<String> = layout
            .members(layout.conference(p))
            .iter()
            .filter(|&&m| m as usize != p)
            .map(|&m| addr(m))
            .collect();
        if !to.is_empty() {
            routes.push(format!("  {{ from = {}, to = [{}] }},", addr(p as u32), to.join(", ")));
        }
    }
    format!("[relay]\ndrop_every = {drop_every}\nroutes = [\n{}\n]\n", routes.join("\n"))
}

/// Runs one load test: setup, `duration` of media, the drain, teardown. `progress` is called
/// about once a second while media runs.
pub fn run(config: &Config, progress: impl FnMut(&Progress)) -> Result<Report, String> {
    run_with(config, &RunOptions::default(), progress)
}

/// [`run`], with the receive mode and progress period of `options`. `progress` runs on the
/// calling thread, which is otherwise idle during the media: it may block (the workers go on),
/// which delays its next call.
pub fn run_with(
    config: &Config,
    options: &RunOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, String> {
    if config.participants == 0 || config.threads == 0 {
        return Err("need at least one participant and one thread".into());
    }
    let layout = Arc::new(Layout::round_robin(config.participants, config.conferences));
    let (mut participants, mut join) = setup(config, &layout)?;

    // Deal participants out to the workers round robin, so each has a mix of conferences.
    let mut shares: Vec<Vec<Participant>> = (0..config.threads).map(|_| Vec::new()).collect();
    for (i, participant) in participants.drain(..).enumerate() {
        shares[i % config.threads].push(participant);
    }
    let start_ns = clock::now_ns() + START_DELAY.as_nanos() as u64;
    let send_end_ns = start_ns + config.duration.as_nanos() as u64;
    let plan = Plan {
        start_ns,
        send_end_ns,
        measure_from_ns: start_ns + config.warmup.min(config.duration).as_nanos() as u64,
        stop_ns: send_end_ns + config.drain.as_nanos() as u64,
    };
    let mut threads = Vec::new();
    let mut lives = Vec::new();
    for (w, share) in shares.into_iter().enumerate().filter(|(_, s)| !s.is_empty()) {
        let live = Arc::new(Live::default());
        let nice = options.nice;
        let worker = Worker::new(share, layout.clone(), config.video, plan, live.clone(), options.receive);
        let thread = std::thread::Builder::new()
            .name(format!("loadgen-{w}"))
            .spawn(move || {
                if nice != 0 {
                    renice_this_thread(nice);
                }
                worker.run()
            })
            .map_err(|e| format!("worker thread: {e}"))?;
        threads.push(thread);
        lives.push(live);
    }

    let started = Instant::now();
    let every = options.progress_every.max(Duration::from_millis(1));
    let mut next_report = started + every;
    while !lives.iter().all(|l| l.done.load(Ordering::Acquire)) {
        std::thread::sleep(every.min(Duration::from_millis(20)));
        if Instant::now() >= next_report {
            next_report += every;
            progress(&Progress {
                elapsed: started.elapsed(),
                sent: lives.iter().map(|l| l.sent.load(Ordering::Relaxed)).sum(),
                received: lives.iter().map(|l| l.received.load(Ordering::Relaxed)).sum(),
                gaps: lives.iter().map(|l| l.gaps.load(Ordering::Relaxed)).sum(),
            });
        }
    }

    let mut collected = Collected {
        participants: Vec::with_capacity(config.participants),
        latency: Default::default(),
        packets_out: 0,
        packets_in: 0,
        send_failed: 0,
    };
    for thread in threads {
        let outcome =
            thread.join().map_err(|_| "a worker thread panicked")?.map_err(|e| format!("worker: {e}"))?;
        collected.participants.extend(outcome.participants);
        for (mine, theirs) in collected.latency.iter_mut().zip(&outcome.latency) {
            mine.merge(theirs);
        }
        collected.packets_out += outcome.sent.sent;
        collected.packets_in += outcome.received;
        collected.send_failed += outcome.sent.failed;
    }
    collected.participants.sort_by_key(|p| p.index);
    if let Some(join) = &mut join {
        // Best effort: the bridge expires what we leave behind anyway.
        if let Err(e) = join.leave_all() {
            eprintln!("loadgen: leaving: {e}");
        }
    }
    Ok(Report::build(config.to_json(), config.duration, &layout, &collected, config.e2ee))
}

/// Every participant, in index order, and the join to leave through at the end (none in
/// relay mode).
type Joined = (Vec<Participant>, Option<Box<dyn Join>>);

/// Creates and connects every participant, and with `--e2ee` gives each its SFrame keys.
fn setup(config: &Config, layout: &Layout) -> Result<Joined, String> {
    // PBKDF2 is slow on purpose: once per run, before anyone joins.
    let keys = config.e2ee.then(e2ee::RunKeys::random).transpose()?;
    let (participants, join) = connect_everyone(config, layout)?;
    let participants = match &keys {
        Some(keys) => participants.into_iter().map(|p| p.encrypting(keys, layout)).collect(),
        None => participants,
    };
    Ok((participants, join))
}

/// Creates and connects every participant, as the target says.
fn connect_everyone(config: &Config, layout: &Layout) -> Result<Joined, String> {
    let count = config.participants;
    let phases = |i: usize| Phases::of(i, count, &config.video);
    let mut participants = Vec::with_capacity(count);
    match &config.target {
        Target::Relay { relay, base_port } => {
            for i in 0..count {
                let port = u16::try_from(usize::from(*base_port) + i).map_err(|_| "--base-port too high")?;
                let local = SocketAddr::from(([127, 0, 0, 1], port));
                let socket =
                    mmsg::udp_socket(local, SOCKET_BUFFER).map_err(|e| format!("bind {local}: {e}"))?;
                socket.connect(relay).map_err(|e| format!("connect {relay}: {e}"))?;
                socket.set_nonblocking(true).map_err(|e| e.to_string())?;
                mmsg::timestamp_arrivals(socket.as_raw_fd()).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
                let participant =
                    Participant::new(i as u32, layout, socket, None, None, config.audio_level_id, phases(i));
                participants.push(participant);
            }
            Ok((participants, None))
        }
        Target::ControlApi { api, secret, media, profiles, handshake_timeout } => {
            let join = Box::new(ControlApi::new(*api, secret.clone(), *media));
            connect_all(config, layout, join, *profiles, *handshake_timeout, phases)
        }
        Target::Signaling { url, media, profiles, handshake_timeout } => {
            let join = Box::new(Signaling::new(url, layout, *media)?);
            connect_all(config, layout, join, *profiles, *handshake_timeout, phases)
        }
    }
}

/// Joins and connects every participant through `join`.
fn connect_all(
    config: &Config,
    layout: &Layout,
    mut join: Box<dyn Join>,
    profiles: ProfileChoice,
    handshake_timeout: Duration,
    phases: impl Fn(usize) -> Phases,
) -> Result<Joined, String> {
    let count = config.participants;
    let mut participants = Vec::with_capacity(count);
    for i in 0..count {
        let participant = connect_participant(config, layout, join.as_mut(), i, profiles, handshake_timeout)
            .map_err(|e| format!("participant {i}: {e}"))?;
        participants.push(Participant::new(
            i as u32,
            layout,
            participant.0,
            Some(participant.1),
            Some(participant.2),
            config.audio_level_id,
            phases(i),
        ));
    }
    Ok((participants, Some(join)))
}

/// Join, ICE, DTLS, SRTP for participant `i`: its connected socket, SRTP state and checks.
fn connect_participant(
    config: &Config,
    layout: &Layout,
    join: &mut dyn Join,
    i: usize,
    profiles: ProfileChoice,
    timeout: Duration,
) -> Result<(UdpSocket, connect::Secured, ice::Checks), String> {
    let identity = Identity::generate().map_err(|e| format!("certificate: {e}"))?;
    let conference = layout.conference(i);
    let offer = Offer {
        participant: i as u32,
        conference,
        ice_ufrag: &identity.ufrag,
        ice_pwd: &identity.pwd,
        fingerprint: &identity.fingerprint,
        audio_level_id: config.audio_level_id,
    };
    let answer = join.join(&offer)?;
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let socket = mmsg::udp_socket(any, SOCKET_BUFFER).map_err(|e| format!("bind: {e}"))?;
    socket.connect(answer.media).map_err(|e| format!("connect {}: {e}", answer.media))?;
    let mut checks = ice::Checks::new(&answer.ice_ufrag, &answer.ice_pwd, &identity.ufrag, i as u32);
    // Two SSRCs per member, and the bridge's own for RTCP, with room to spare.
    let streams = 2 * layout.members(conference).len() + 16;
    let secured = connect::connect(&socket, &mut checks, &identity, profiles, streams, timeout)?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    mmsg::timestamp_arrivals(socket.as_raw_fd()).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    Ok((socket, secured, checks))
}

/// Sets the calling thread's nice value (Linux: `setpriority` on a thread id is per thread).
/// Failing (lowering it without the privilege) leaves it as it was, with a note.
fn renice_this_thread(nice: i32) {
    // SAFETY: gettid has no preconditions; setpriority takes plain integers.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        eprintln!("loadgen: nice {nice}: {}", std::io::Error::last_os_error());
    }
}
