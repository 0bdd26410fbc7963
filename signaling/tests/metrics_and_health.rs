//! The daemon's private metrics listener: `GET /metrics` counts connections, rooms, members,
//! join results and protocol errors as they happen, never names them; `GET /health` answers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{Client, Daemon};
use serde_json::json;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_meeting_and_health_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let daemon = Daemon::start(&format!("[metrics]\nlisten = \"{metrics}\"\n"), "info");

    let (status, body) = get(metrics, "/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"], "ok");

    let room = "secret-sounding-room-name";
    let mut ada = Client::connect(daemon.addr).await;
    let joined = ada.join(room, "Ada Lovelace", None).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let mut bob = Client::connect(daemon.addr).await;
    bob.join(room, "Bob", None).await;
    bob.send_text("{not json".into()).await;
    assert_eq!(bob.until("error").await["code"], "bad_message");

    let (status, text) = get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(value(&text, "signaling_connections"), Some(2.0), "{text}");
    assert_eq!(value(&text, "signaling_rooms"), Some(1.0), "{text}");
    assert_eq!(value(&text, "signaling_participants"), Some(2.0), "{text}");
    assert_eq!(value(&text, "signaling_joins_total{result=\"joined\"}"), Some(2.0), "{text}");
    assert_eq!(value(&text, "signaling_protocol_errors_total"), Some(1.0), "{text}");
    assert!(!text.contains(room) && !text.contains("Ada"), "no names in metrics:\n{text}");

    ada.send(json!({"type": "leave"})).await;
    bob.send(json!({"type": "leave"})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, text) = get(metrics, "/metrics");
        if value(&text, "signaling_rooms") == Some(0.0) && value(&text, "signaling_participants") == Some(0.0)
        {
            assert_eq!(value(&text, "signaling_connections_total"), Some(2.0), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the room never left the metrics:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(get(metrics, "/nothing").0, 404);
}
