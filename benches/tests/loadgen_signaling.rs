//! loadgen joined through the signaling daemon, the full path a browser takes: the real
//! bridge (engine, media workers, control API) and the real daemon (its hub and HTTPS/WebSocket
//! server, pointed at the bridge's control API), both in this process on ephemeral loopback
//! ports.
//!
//! Two conferences of three: each room goes to the bridge when its third member joins, every
//! member offers, answers the renegotiations as the others' sources appear, and opens ICE,
//! DTLS and SRTP with what the daemon's answer says. Over 3 s of media nothing is lost, every
//! participant receives both streams of both other members of its own conference and nothing
//! of the other; after loadgen leaves, the daemon has no rooms and the bridge no conferences
//! or endpoints.
//!
//! The daemon is wired as `signaling::daemon::run` wires it (TLS from a self-signed
//! certificate in a state directory, the listener, the hub, the server), minus the signal
//! handling and the speaker timers; cargo builds the `signaling` binary for signaling's own
//! tests only.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::loadgen::connect::ProfileChoice;
use benches::loadgen::report::Report;
use benches::loadgen::wire::StreamKind;
use benches::loadgen::{self, Target};
use signaling::hub::Hub;

mod common;
use common::{SECRET, load, start_sfu};

/// The signaling daemon on its own runtime; dropping it stops it.
struct Daemon {
    /// Owns the server's tasks: they end with it.
    _runtime: tokio::runtime::Runtime,
    hub: Arc<Hub>,
    url: String,
    state_dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn start_daemon(bridge_api: SocketAddr) -> Daemon {
    let state_dir = std::env::temp_dir().join(format!("loadgen-signaling-{}", std::process::id()));
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\
         [bridge]\nurl = \"http://{bridge_api}\"\nsecret = \"{SECRET}\"\n",
        state_dir.display()
    );
    let config = signaling::config::Config::parse(&text).expect("the daemon's test configuration parses");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (hub, addr) = runtime.block_on(async {
        let tls = signaling::tls::server_config(&config).expect("a self-signed certificate");
        let listener = tokio::net::TcpListener::bind(config.listen_addr().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Hub::new(config, tokio::runtime::Handle::current());
        tokio::spawn(signaling::server::serve(listener, tls, hub.clone()));
        (hub, addr)
    });
    Daemon { _runtime: runtime, hub, url: format!("https://{addr}"), state_dir }
}

fn through(url: &str) -> Target {
    Target::Signaling {
        url: url.to_owned(),
        media: None,
        profiles: ProfileChoice::Both,
        handshake_timeout: Duration::from_secs(5),
    }
}

fn summary(report: &Report) -> String {
    format!("{}\n{}", report.table(), serde_json::to_string(&report.to_json()["total"]).unwrap())
}

#[test]
fn meetings_through_the_signaling_daemon_lose_nothing_and_leave_nothing_behind() {
    let started = Instant::now();
    let sfu = start_sfu();
    let daemon = start_daemon(sfu.control.unwrap());
    let config = load(6, 2, 3.0, through(&daemon.url));
    let report = loadgen::run(&config, |_| {}).expect("loadgen runs through the daemon");
    let text = summary(&report);
    println!("{text}");

    assert_eq!(report.config["target"]["join"], "signaling");
    assert_eq!(report.profile, "AeadAes128Gcm", "the bridge prefers GCM when offered");
    // Participant p is in conference p mod 2: {0, 2, 4} and {1, 3, 5}. Each receives audio
    // and video from its two others, and those are all the streams there are.
    let expected: BTreeSet<(u32, u32, StreamKind)> = (0..6u32)
        .flat_map(|receiver| {
            (0..6u32)
                .filter(move |&sender| sender != receiver && sender % 2 == receiver % 2)
                .flat_map(move |sender| StreamKind::BOTH.map(|kind| (receiver, sender, kind)))
        })
        .collect();
    let streams: BTreeSet<(u32, u32, StreamKind)> =
        report.streams.iter().map(|s| (s.receiver, s.sender, s.kind)).collect();
    assert_eq!(streams, expected, "{text}");
    assert_eq!(report.streams.len(), 24, "{text}");
    for stream in &report.streams {
        assert!(stream.sent > 0, "{stream:?}");
        assert_eq!(stream.received, stream.sent, "{stream:?}\n{text}");
        assert_eq!((stream.lost, stream.duplicates, stream.reordered), (0, 0, 0), "{stream:?}");
    }
    // 3 s of audio at 50 packets/s per stream.
    assert!(report.streams.iter().filter(|s| s.kind == StreamKind::Audio).all(|s| s.sent == 150), "{text}");
    assert_eq!(report.unexpected.misrouted, 0, "nothing from the other conference\n{text}");
    assert_eq!(report.unexpected.malformed + report.unexpected.srtp_failed, 0, "{text}");
    assert_eq!((report.total.lost, report.send_failed), (0, 0), "{text}");
    // Plausible latencies only: this machine's other work sets the tail, not the bridge.
    let latency = report.total.latency;
    assert!(latency.min_us.unwrap() > 0.0 && latency.p50_us.unwrap() < 50_000.0, "{text}");

    // Leaving closed every room, and the daemon removed every bridge endpoint (it does so on
    // its own tasks, just after the `left`s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sfu.registry.sizes() != (0, 0) || daemon.hub.room_count() != 0 {
        assert!(
            Instant::now() < deadline,
            "after leaving: bridge (conferences, endpoints) {:?}, daemon rooms {}",
            sfu.registry.sizes(),
            daemon.hub.room_count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sfu.engine.stop();
    println!("whole test: {:?}", started.elapsed());
}

#[test]
fn two_member_conferences_are_refused_before_connecting() {
    // Nothing listens there: the layout is refused first.
    let config = load(5, 2, 1.0, through("https://127.0.0.1:9"));
    let error = loadgen::run(&config, |_| {}).unwrap_err();
    assert!(error.contains("at least 3 participants in every conference"), "{error}");
}
