//! Meetings move between peer to peer and the bridge, with the real bridge (its engine and
//! control API in this process) and the real daemon: two members talk P2P and the bridge has
//! nothing for them; a third moves everyone to the bridge, where each member's offer (a real
//! Chromium offer) gets an answer carrying the two others' audio and video; when one leaves,
//! the two left go back to P2P after the delay and the bridge forgets the meeting.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::control::{self, ControlConfig, MediaFacts};
use bridge::media::dtls::Certificate;
use bridge::sfu::{MediaWorker, Registry};
use common::{Client, Daemon};
use engine::{BackendChoice, Engine, EngineConfig, MemoryLock};
use serde_json::{Value, json};

const SECRET: &str = "bridge-mode-secret-0123456789";
const CHROMIUM_OFFER: &str = include_str!("../../bridge/tests/clients/fixtures/chromium_offer.sdp");

/// The fixture offer as participant `i` would send it: its own SSRCs and ICE credentials.
fn offer(i: u32) -> String {
    CHROMIUM_OFFER
        .replace("3907202182", &(1000 + i * 10).to_string())
        .replace("2991698661", &(1001 + i * 10).to_string())
        .replace("4058958742", &(1002 + i * 10).to_string())
        .replace("a=ice-ufrag:hbXO", &format!("a=ice-ufrag:cli{i}"))
}

struct Bridge {
    _engine: Engine,
    registry: Arc<Registry>,
    url: String,
}

fn start_bridge() -> Bridge {
    let registry = Arc::new(Registry::new(Certificate::generate().unwrap(), Default::default(), 1));
    let config = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 256,
        backend: BackendChoice::Auto,
        ..EngineConfig::default()
    };
    let engine = Engine::start(&config, |w| MediaWorker::new(registry.clone(), w)).unwrap();
    let control = ControlConfig { listen: "127.0.0.1:0".into(), ..ControlConfig::default() };
    let facts = MediaFacts {
        announce: vec!["127.0.0.1".parse().unwrap()],
        port: engine.local_addr().port(),
        workers: 1,
        backend: "test",
    };
    let server =
        control::start(&control, SECRET.into(), registry.clone(), facts, Duration::from_secs(1)).unwrap();
    Bridge { _engine: engine, registry, url: format!("http://{}", server.local_addr) }
}

/// Answers every `renegotiate` with a new offer until an answer carries `tracks` tracks.
async fn settle(client: &mut Client, i: u32, tracks: usize, daemon: &Daemon) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "participant {i} never got an answer with {tracks} tracks");
        let Some(message) = client.try_recv(Duration::from_secs(12)).await else {
            panic!("participant {i}: nothing more; daemon log:\n{}", daemon.log_text());
        };
        match message["type"].as_str() {
            Some("mode") | Some("renegotiate") if message["mode"] != "p2p" => {
                client.send(json!({"type": "offer", "sdp": offer(i), "epoch": message["epoch"]})).await;
            }
            Some("answer") if message["tracks"].as_array().unwrap().len() == tracks => return message,
            Some("error") => panic!("participant {i}: {message}"),
            _ => {}
        }
    }
}

async fn until_mode(client: &mut Client, mode: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no mode {mode}");
        let message = client.recv().await;
        if message["type"] == "mode" && message["mode"] == mode {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_talk_p2p_three_go_through_the_bridge_and_back() {
    let bridge = start_bridge();
    let config = format!(
        "[bridge]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n[topology]\np2p_delay_ms = 300\n",
        bridge.url
    );
    let daemon = Daemon::start(&config, "debug");
    let room = "busy-beavers-build-quickly";

    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for (i, name) in ["Ada", "Bob"].into_iter().enumerate() {
        let mut client = Client::connect(daemon.addr).await;
        let joined = client.join(room, name, None).await;
        ids.push(joined["id"].as_str().unwrap().to_owned());
        clients.push(client);
        let _ = i;
    }
    for client in &mut clients {
        let mode = until_mode(client, "p2p").await;
        assert!(mode["peer"].is_string());
    }
    assert_eq!(bridge.registry.sizes(), (0, 0), "P2P: the bridge has nothing for this meeting");

    let mut cy = Client::connect(daemon.addr).await;
    ids.push(cy.join(room, "Cy", None).await["id"].as_str().unwrap().to_owned());
    clients.push(cy);

    // Every member offers, renegotiates as others' sources appear, and ends up receiving the two
    // others' audio and video.
    let answers = {
        let [a, b, c] = &mut clients[..] else { unreachable!() };
        let (a, b, c) =
            tokio::join!(settle(a, 0, 4, &daemon), settle(b, 1, 4, &daemon), settle(c, 2, 4, &daemon));
        [a, b, c]
    };
    for (i, answer) in answers.iter().enumerate() {
        let mut senders: Vec<&str> =
            answer["tracks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        senders.sort();
        senders.dedup();
        let mut others: Vec<&str> = ids.iter().filter(|id| **id != ids[i]).map(String::as_str).collect();
        others.sort();
        assert_eq!(senders, others, "participant {i} receives exactly the two others");
        let sdp = answer["sdp"].as_str().unwrap();
        assert!(sdp.contains("a=ice-lite") && sdp.contains("a=setup:passive"));
    }
    assert_eq!(bridge.registry.sizes(), (1, 3), "one conference with an endpoint per member");

    // Cy leaves: back to P2P after the delay, and the bridge forgets the meeting.
    let mut cy = clients.pop().unwrap();
    cy.send(json!({"type": "leave"})).await;
    for client in &mut clients {
        until_mode(client, "p2p").await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge.registry.sizes() != (0, 0) {
        assert!(Instant::now() < deadline, "the bridge still has {:?}", bridge.registry.sizes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = daemon.log_text();
    assert!(!log.contains(room) && !log.contains("Ada"), "private logs");
}

/// Two members in `room` with P2P off: their meeting goes to a bridge at once.
async fn bridged_pair(daemon: &Daemon, room: &str, first: u32) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..2 {
        let mut client = Client::connect(daemon.addr).await;
        client.join(room, &format!("P{}", first + i), None).await;
        clients.push(client);
    }
    let [a, b] = &mut clients[..] else { unreachable!() };
    tokio::join!(settle(a, first, 2, daemon), settle(b, first + 1, 2, daemon));
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_meetings_avoid_a_draining_bridge_and_current_ones_stay() {
    let (one, two) = (start_bridge(), start_bridge());
    let config = format!(
        "[topology]\np2p = false\n[[bridges]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         [[bridges]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        one.url, two.url
    );
    let daemon = Daemon::start(&config, "debug");

    // Both idle: the first meeting goes to the first bridge.
    let mut first = bridged_pair(&daemon, "first-meeting-room", 0).await;
    assert_eq!((one.registry.sizes(), two.registry.sizes()), ((1, 2), (0, 0)));

    // The first bridge drains: it takes no new conference, so the next meeting goes to the
    // second.
    one.registry.set_draining(true);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the daemon's cached load
    let _second = bridged_pair(&daemon, "second-meeting-room", 10).await;
    assert_eq!((one.registry.sizes(), two.registry.sizes()), ((1, 2), (1, 2)));

    // The meeting on the draining bridge goes on, and someone may still join it there.
    let mut late = Client::connect(daemon.addr).await;
    late.join("first-meeting-room", "Late", None).await;
    first.push(late);
    let [a, b, c] = &mut first[..] else { unreachable!() };
    tokio::join!(settle(a, 0, 4, &daemon), settle(b, 1, 4, &daemon), settle(c, 20, 4, &daemon));
    assert_eq!(one.registry.sizes(), (1, 3), "the late member joined the meeting where it is");

    // A refusal the cached load did not foresee: the second bridge drains just now, the first
    // is still draining, so a third meeting has nowhere to go and says so.
    two.registry.set_draining(true);
    let mut c = Client::connect(daemon.addr).await;
    c.join("third-meeting-room", "Q", None).await;
    let mut d = Client::connect(daemon.addr).await;
    d.join("third-meeting-room", "R", None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        assert!(Instant::now() < deadline, "no error for a meeting no bridge takes");
        let message = c.recv().await;
        match message["type"].as_str() {
            Some("mode") | Some("renegotiate") => {
                c.send(json!({"type": "offer", "sdp": offer(30), "epoch": message["epoch"]})).await;
            }
            Some("error") => break message,
            _ => {}
        }
    };
    assert_eq!(error["code"], "unavailable", "{error}");
    assert_eq!((one.registry.sizes().0, two.registry.sizes().0), (1, 1), "no conference was made");
}
