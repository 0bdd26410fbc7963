//! The WebSocket protocol against the real daemon, from a Rust client: malformed, oversized
//! and out-of-order messages get clear errors and never affect another room; rate limits
//! trigger and say when to retry; nothing tells a non-member whether a room exists.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Daemon};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_messages_get_clear_errors_and_do_not_touch_other_rooms() {
    let daemon = Daemon::start("", "info");
    let mut bystander = Client::connect(daemon.addr).await;
    assert_eq!(bystander.join("calm-rooms", "Bea", None).await["type"], "joined");

    // Before hello: only hello.
    let mut client = Client::raw(daemon.addr).await;
    client.send(json!({"type": "join", "room": "noisy-rooms"})).await;
    let error = client.recv().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("bad_state")),
        "{error}"
    );
    client.send(json!({"type": "hello", "version": 2})).await;
    assert_eq!(client.recv().await["code"], "version");

    let mut client = Client::connect(daemon.addr).await;
    let cases = [
        ("{not json", "bad_message", "key must be a string"),
        (r#"{"type":"explode"}"#, "bad_message", "unknown variant"),
        (r#"{"type":"chat","text":"early"}"#, "bad_state", "join a meeting first"),
        (r#"{"type":"join","room":"Not A Room!"}"#, "bad_message", "join.room"),
        (r#"{"type":"join","room":"noisy-rooms","name":7}"#, "bad_message", "invalid type"),
        (r#"{"type":"admit","id":"0123456789abcdef"}"#, "bad_state", "join a meeting first"),
    ];
    for (frame, code, text) in cases {
        client.send_text(frame.to_owned()).await;
        let error = client.recv().await;
        assert_eq!(error["code"], code, "{frame}: {error}");
        assert!(error["message"].as_str().unwrap().contains(text), "{frame}: {error}");
    }
    client.send_text(format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(70_000))).await;
    assert!(client.recv().await["message"].as_str().unwrap().contains("frame of"));
    client.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert!(client.recv().await["message"].as_str().unwrap().contains("binary"));

    // In a room: moderator-only actions from a non-moderator, signals outside P2P.
    assert_eq!(client.join("noisy-rooms", "Nox", None).await["type"], "joined");
    let mut second = Client::connect(daemon.addr).await;
    assert_eq!(second.join("noisy-rooms", "Sec", None).await["type"], "joined");
    second.send(json!({"type": "set_password", "password": "x"})).await;
    let error = second.until("error").await;
    assert_eq!(error["code"], "bad_state", "{error}");
    second.send(json!({"type": "join", "room": "calm-rooms"})).await;
    assert!(second.until("error").await["message"].as_str().unwrap().contains("already"));

    // The bystander in the other room heard none of it.
    bystander.send(json!({"type": "chat", "text": "still fine"})).await;
    let echo = bystander.recv().await;
    assert_eq!((echo["type"].as_str(), echo["text"].as_str()), (Some("chat"), Some("still fine")));
    assert_eq!(bystander.try_recv(Duration::from_millis(300)).await, None, "nothing leaked across rooms");
}

#[tokio::test]
async fn too_many_errors_close_the_connection() {
    let daemon = Daemon::start("", "info");
    let mut client = Client::connect(daemon.addr).await;
    for _ in 0..20 {
        client.send_text("garbage".into()).await;
    }
    let mut errors = 0;
    while let Some(message) = client.try_recv(Duration::from_secs(2)).await {
        assert_eq!(message["code"], "bad_message");
        errors += 1;
    }
    assert_eq!(errors, 20, "twenty errors, then the server closed");
}

#[tokio::test]
async fn join_attempts_and_password_guesses_are_rate_limited() {
    let daemon =
        Daemon::start("[rooms]\njoin_burst = 30\nguess_burst = 3\nguess_interval_ms = 60000\n", "info");
    let mut owner = Client::connect(daemon.addr).await;
    owner.join("locked-rooms", "Own", None).await;
    owner.send(json!({"type": "set_password", "password": "right"})).await;
    owner.until("settings").await;

    let mut guesser = Client::connect(daemon.addr).await;
    for _ in 0..3 {
        assert_eq!(guesser.join("locked-rooms", "G", Some("wrong")).await["code"], "password");
    }
    let limited = guesser.join("locked-rooms", "G", Some("right")).await;
    assert_eq!(limited["code"], "rate_limited", "even the right password waits: {limited}");
    let retry = limited["retry_after_ms"].as_u64().unwrap();
    assert!((1..=60_000).contains(&retry), "{limited}");
    assert!(limited["message"].as_str().unwrap().contains("try again in"));

    let daemon = Daemon::start("[rooms]\njoin_burst = 2\njoin_interval_ms = 60000\n", "info");
    let mut client = Client::connect(daemon.addr).await;
    for room in ["one-rooms", "two-rooms"] {
        assert_eq!(client.join(room, "J", None).await["type"], "joined");
        client.send(json!({"type": "leave"})).await;
        assert_eq!(client.until("left").await["type"], "left");
        client = Client::connect(daemon.addr).await;
    }
    assert_eq!(client.join("three-rooms", "J", None).await["code"], "rate_limited");
}

#[tokio::test]
async fn a_non_member_cannot_tell_an_existing_room_from_a_missing_one() {
    let daemon = Daemon::start("", "info");
    let mut member = Client::connect(daemon.addr).await;
    member.join("existing-rooms", "M", None).await;

    // The page and its headers are the same for both.
    let existing = http_get(daemon.addr, "/existing-rooms").await;
    let missing = http_get(daemon.addr, "/missing-rooms").await;
    let strip_date =
        |r: &str| r.lines().filter(|l| !l.to_lowercase().starts_with("date:")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip_date(&existing), strip_date(&missing));

    // And so is the time they take, within a bound: median of 40 requests each.
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..80 {
        let path = if i % 2 == 0 { "/existing-rooms" } else { "/missing-rooms" };
        let start = Instant::now();
        http_get(daemon.addr, path).await;
        times[i % 2].push(start.elapsed());
    }
    for t in &mut times {
        t.sort();
    }
    let (a, b) = (times[0][20], times[1][20]);
    let difference = a.abs_diff(b);
    assert!(difference < Duration::from_millis(3), "median {a:?} vs {b:?}");
}

/// One HTTPS GET; the response head and body as text.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = common::tls(addr).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn welcome_carries_time_limited_turn_credentials_when_configured() {
    let daemon = Daemon::start(
        "[turn]\nurls = [\"turn:turn.example:3478\", \"turns:turn.example:443\"]\nsecret = \"north-shared-secret\"\nttl_s = 600\n",
        "info",
    );
    let mut client = Client::raw(daemon.addr).await;
    client.send(json!({"type": "hello", "version": 1})).await;
    let welcome = client.recv().await;
    let server = &welcome["ice_servers"][0];
    assert_eq!(server["urls"], json!(["turn:turn.example:3478", "turns:turn.example:443"]));
    let username = server["username"].as_str().unwrap();
    let expiry: u64 = username.split_once(':').unwrap().0.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 590..=now + 610).contains(&expiry), "expires in ttl_s: {username}");
    assert_eq!(
        server["credential"].as_str().unwrap(),
        stun::rest_api_password("north-shared-secret", username)
    );
}

#[tokio::test]
async fn speaking_time_reported_in_p2p_reaches_every_member() {
    let daemon = Daemon::start("", "info");
    let mut ada = Client::connect(daemon.addr).await;
    let ada_id = ada.join("chatty-rooms", "Ada", None).await["id"].as_str().unwrap().to_owned();
    let mut bob = Client::connect(daemon.addr).await;
    bob.join("chatty-rooms", "Bob", None).await;
    ada.until("mode").await;
    bob.until("mode").await;
    ada.send(json!({"type": "speaking", "ms": 1500})).await;
    ada.send(json!({"type": "speaking", "ms": 700})).await;
    // Statistics go out every 2 s while they change.
    let speakers = bob.until("speakers").await;
    let entry = speakers["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ada_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["ms"], 2200, "{speakers}");
    ada.send(json!({"type": "speaking", "ms": 20_000})).await;
    assert_eq!(ada.until("error").await["code"], "bad_message", "at most 10 s per report");
}
