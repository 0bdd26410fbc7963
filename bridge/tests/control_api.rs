//! The control API of the real `bridge` binary over HTTP, as bridge/API.md documents it:
//! authentication, the conference and endpoint life cycle, validation errors that name the
//! field, and a conference that disappears with its last endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");
const SECRET: &str = "control-secret-0123456789";

/// Tests take turns: each picks free ports for its bridge, and two picking at once could get
/// the same one.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Bridge {
    _turn: std::sync::MutexGuard<'static, ()>,
    child: Child,
    api: SocketAddr,
    metrics: SocketAddr,
    _config: tempfile::TempPath,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Bridge {
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, metrics_port) = (free_port(), free_port());
    let config = format!(
        r#"
[engine]
listen = "127.0.0.1:0"
workers = 2
lock_memory = "off"
pool_slots_per_worker = 512
[metrics]
listen = "127.0.0.1:{metrics_port}"
interval_ms = 100
[control]
listen = "127.0.0.1:{port}"
secret = "{SECRET}"
max_endpoints_per_conference = 3
"#
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(config.as_bytes()).unwrap();
    let path = file.into_temp_path();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut ready = false;
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("control API on") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the bridge did not start its control API");
    // The log pipe closes here (its reader is dropped): the daemon must keep serving. It once
    // died of EPIPE when its next log line found nobody reading.
    let api = format!("127.0.0.1:{port}").parse().unwrap();
    let metrics = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    Bridge { _turn: turn, child, api, metrics, _config: path }
}

/// One HTTP/1.1 request; returns (status, JSON body or Null).
fn request(
    api: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n");
    if let Some(secret) = auth {
        head += &format!("Authorization: Bearer {secret}\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head += "Content-Type: application/json\r\n";
    }
    head += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    // A server refusing a large body may answer and reset the connection before it has read
    // it all: keep whatever arrived before the reset.
    let _ = stream.write_all(head.as_bytes());
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let response = String::from_utf8_lossy(&bytes).into_owned();
    assert!(response.len() >= 12, "no HTTP response to {method} {path}");
    let status = response[9..12].parse().unwrap();
    let payload = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

fn call(api: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    request(api, method, path, Some(SECRET), body.map(|b| b.to_string()).as_deref())
}

#[test]
fn every_request_needs_the_secret() {
    let bridge = start();
    for auth in [None, Some("wrong-secret-0123456789"), Some("control-secret-012345678")] {
        let (status, body) = request(bridge.api, "GET", "/v1/health", auth, None);
        assert_eq!(status, 401, "{auth:?}");
        assert!(body["error"].as_str().unwrap().contains("Bearer"));
        let (status, _) = request(bridge.api, "POST", "/v1/conferences", auth, None);
        assert_eq!(status, 401);
    }
    let (status, body) = call(bridge.api, "GET", "/v1/health", None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["workers"], 2);
    // `/health` is for checks that hold no secret: the status only.
    let (status, body) = request(bridge.api, "GET", "/health", None, None);
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[test]
fn conference_and_endpoint_life_cycle() {
    let bridge = start();
    let api = bridge.api;
    let (status, conference) = call(api, "POST", "/v1/conferences", None);
    assert_eq!(status, 201);
    let c = conference["id"].as_str().unwrap().to_owned();
    assert_eq!(c.len(), 16);

    let (status, endpoint) = call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None);
    assert_eq!(status, 201, "{endpoint}");
    let e = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["ice"]["lite"], true);
    assert!(endpoint["ice"]["pwd"].as_str().unwrap().len() >= 22);
    assert_eq!(endpoint["ice"]["candidates"][0]["ip"], "127.0.0.1", "engine.listen's address is announced");
    assert_eq!(endpoint["dtls"]["setup"], "passive");
    let fingerprint = endpoint["dtls"]["fingerprint"]["value"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 32 * 3 - 1);

    let update = json!({
        "ice": {"ufrag": "abcd", "pwd": "0123456789012345678901"},
        "dtls": {"setup": "active", "fingerprint": {"hash": "sha-256", "value": fingerprint.to_lowercase()}},
        "sources": [
            {"ssrc": 1001, "kind": "audio", "msid": "s a"},
            {"ssrc": 1002, "kind": "video", "msid": "s v", "rtx_ssrc": 1003}
        ],
        "payload_types": [{"pt": 96, "kind": "video", "name": "VP8", "clock_rate": 90000},
                          {"pt": 97, "kind": "video", "name": "rtx", "clock_rate": 90000, "apt": 96}],
        "header_extensions": [{"id": 1, "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}]
    });
    let path = format!("/v1/conferences/{c}/endpoints/{e}");
    let (status, patched) = call(api, "PATCH", &path, Some(update));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["ice"], "new");
    assert_eq!(patched["dtls"], "new");
    assert_eq!(patched["sources"][1]["rtx_ssrc"], 1003);

    let (status, state) = call(api, "GET", &format!("/v1/conferences/{c}"), None);
    assert_eq!(status, 200);
    assert_eq!(state["endpoints"][0]["id"], e.as_str());
    assert_eq!(state["dominant_speaker"], Value::Null);

    // A second endpoint may not claim the first one's SSRC.
    let (_, other) = call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None);
    let other_path = format!("/v1/conferences/{c}/endpoints/{}", other["id"].as_str().unwrap());
    let (status, body) =
        call(api, "PATCH", &other_path, Some(json!({"sources": [{"ssrc": 1003, "kind": "audio"}]})));
    assert_eq!(status, 409, "{body}");

    // The gauges reach Prometheus.
    std::thread::sleep(Duration::from_millis(300));
    let mut scrape = TcpStream::connect(bridge.metrics).unwrap();
    scrape.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    scrape.read_to_string(&mut text).unwrap();
    assert!(text.contains("bridge_conferences 1"), "{text}");
    assert!(text.contains("bridge_endpoints 2"), "{text}");
    assert!(text.contains("bridge_media_drops_total{reason=\"unknown_address\"}"), "{text}");
    assert!(text.contains("bridge_worker_busy_ratio{worker=\"1\"}"), "one gauge per worker: {text}");

    assert_eq!(call(api, "DELETE", &other_path, None).0, 204);
    assert_eq!(call(api, "DELETE", &path, None).0, 204);
    let (status, _) = call(api, "GET", &format!("/v1/conferences/{c}"), None);
    assert_eq!(status, 404, "the conference went with its last endpoint");
    assert_eq!(call(api, "DELETE", &path, None).0, 404);
}

#[test]
fn invalid_requests_get_errors_that_name_the_field() {
    let bridge = start();
    let api = bridge.api;
    let (_, conference) = call(api, "POST", "/v1/conferences", None);
    let c = conference["id"].as_str().unwrap().to_owned();
    let (_, endpoint) = call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None);
    let path = format!("/v1/conferences/{c}/endpoints/{}", endpoint["id"].as_str().unwrap());
    let cases = [
        (json!({"ice": {"ufrag": "a b", "pwd": "0123456789012345678901"}}), "ice.ufrag"),
        (json!({"ice": {"ufrag": "abcd", "pwd": "short"}}), "ice.pwd"),
        (json!({"dtls": {"fingerprint": {"hash": "sha-1", "value": "00"}}}), "dtls.fingerprint.hash"),
        (json!({"dtls": {"fingerprint": {"hash": "sha-256", "value": "00:11"}}}), "dtls.fingerprint.value"),
        (
            json!({"dtls": {"setup": "passive", "fingerprint": {"hash": "sha-256", "value": "00"}}}),
            "dtls.setup",
        ),
        (json!({"sources": [{"ssrc": 5, "kind": "audio"}, {"ssrc": 5, "kind": "video"}]}), "appears twice"),
        (json!({"sources": [{"ssrc": 5, "kind": "smell"}]}), "unknown variant"),
        (json!({"colour": "blue"}), "unknown field `colour`"),
    ];
    for (body, expected) in cases {
        let (status, answer) = call(api, "PATCH", &path, Some(body.clone()));
        assert_eq!(status, 400, "{body}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message:?} should name {expected:?}");
    }
    let (status, _) = request(api, "PATCH", &path, Some(SECRET), Some("{not json"));
    assert_eq!(status, 400);
    let (status, _) = call(api, "GET", "/v1/conferences/0123456789abcdef", None);
    assert_eq!(status, 404);
    let (status, _) = call(api, "GET", "/v1/conferences/not-an-id", None);
    assert_eq!(status, 404);
    // A body over 64 KiB is refused. The server answers 413 and closes without reading the
    // rest, so the client may see the reset before the answer: either way, not applied.
    let huge = format!("{{\"sources\": [{}]}}", vec!["{\"ssrc\": 1, \"kind\": \"audio\"}"; 3000].join(","));
    let mut stream = TcpStream::connect(api).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(huge.as_bytes()));
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    if answer.len() >= 12 {
        assert_eq!(&answer[9..12], b"413", "bodies over 64 KiB are refused");
    }
    let (status, state) = call(api, "GET", &format!("/v1/conferences/{c}"), None);
    assert_eq!(status, 200);
    assert_eq!(state["endpoints"][0]["sources"], json!([]), "the large body was not applied");
    // max_endpoints_per_conference = 3 in this configuration.
    for _ in 0..2 {
        assert_eq!(call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None).0, 201);
    }
    assert_eq!(call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None).0, 503);
}

#[test]
fn a_draining_bridge_keeps_its_conferences_and_refuses_new_ones() {
    let bridge = start();
    let api = bridge.api;
    let (_, conference) = call(api, "POST", "/v1/conferences", None);
    let c = conference["id"].as_str().unwrap().to_owned();
    assert_eq!(call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None).0, 201);

    let (status, body) = call(api, "POST", "/v1/drain", None);
    assert_eq!((status, &body["draining"], &body["conferences"]), (200, &json!(true), &json!(1)), "{body}");
    let (status, health) = call(api, "GET", "/v1/health", None);
    assert_eq!((status, health["status"].as_str()), (503, Some("draining")));
    let (status, health) = request(api, "GET", "/health", None, None);
    assert_eq!((status, health["status"].as_str()), (503, Some("draining")), "{health}");
    let (status, refused) = call(api, "POST", "/v1/conferences", None);
    assert_eq!(status, 503, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("draining"));
    // The current meeting goes on, and someone may still join it.
    assert_eq!(call(api, "GET", &format!("/v1/conferences/{c}"), None).0, 200);
    assert_eq!(call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None).0, 201);
    let (_, stats) = call(api, "GET", "/v1/stats", None);
    assert_eq!(
        (&stats["draining"], &stats["conferences"], &stats["endpoints"]),
        (&json!(true), &json!(1), &json!(2))
    );

    // Cancelled: new conferences again.
    let (status, _) = call(api, "POST", "/v1/drain", Some(json!({"draining": false})));
    assert_eq!(status, 200);
    assert_eq!(call(api, "GET", "/v1/health", None).0, 200);
    assert_eq!(call(api, "POST", "/v1/conferences", None).0, 201);
    let (status, body) = call(api, "POST", "/v1/drain", Some(json!({"draining": "soon"})));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn stats_report_load_rate_and_drops() {
    let bridge = start();
    let api = bridge.api;
    let (status, stats) = call(api, "GET", "/v1/stats", None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (&stats["conferences"], &stats["endpoints"], &stats["draining"]),
        (&json!(0), &json!(0), &json!(false))
    );
    assert_eq!(stats["rtp_forwarded_total"], 0);
    assert_eq!(stats["rtp_forwarded_per_second"], Value::Null, "no rate before two samples a second apart");
    // No limit is touched: the stress is the CPU's (0 in the first second, ~0 when idle).
    let cpu_busy = stats["cpu_busy"].as_f64().unwrap();
    assert!((0.0..0.05).contains(&cpu_busy), "{stats}");
    assert_eq!(stats["stress"], cpu_busy, "{stats}");
    assert!(stats["drops"].as_object().unwrap().contains_key("unknown_address"), "{stats}");

    // Garbage from an unknown address is a counted drop; the rate appears after a second.
    let (_, conference) = call(api, "POST", "/v1/conferences", None);
    let (_, endpoint) =
        call(api, "POST", &format!("/v1/conferences/{}/endpoints", conference["id"].as_str().unwrap()), None);
    let media = endpoint["ice"]["candidates"][0]["port"].as_u64().unwrap() as u16;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        socket.send_to(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], ("127.0.0.1", media)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    let (_, stats) = call(api, "GET", "/v1/stats", None);
    assert_eq!((&stats["conferences"], &stats["endpoints"]), (&json!(1), &json!(1)));
    assert!(stats["drops"]["unknown_address"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["drops_total"].as_u64().unwrap() >= 5, "{stats}");
    assert_eq!(stats["rtp_forwarded_per_second"], 0.0, "{stats}");
    let (stress, cpu_busy) = (stats["stress"].as_f64().unwrap(), stats["cpu_busy"].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&cpu_busy), "a share of the busiest worker's time: {stats}");
    assert!(stress >= cpu_busy && stress >= 1e-4, "the larger of CPU and limits: {stats}");
    assert!(stress < 0.05, "one conference of the default 10,000, idle workers: {stats}");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

/// The exit status within `limit`, or `None` if the bridge is still running then.
fn exits_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sigterm_drains_until_the_last_conference_ends() {
    let mut bridge = start();
    let api = bridge.api;
    let (_, conference) = call(api, "POST", "/v1/conferences", None);
    let c = conference["id"].as_str().unwrap().to_owned();
    let (_, endpoint) = call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None);
    let e = endpoint["id"].as_str().unwrap().to_owned();

    sigterm(&bridge.child);
    assert_eq!(exits_within(&mut bridge.child, Duration::from_millis(600)), None, "it waits for the meeting");
    let (status, health) = call(api, "GET", "/v1/health", None);
    assert_eq!((status, health["status"].as_str()), (503, Some("draining")));
    assert_eq!(call(api, "POST", "/v1/conferences", None).0, 503, "no new conference");
    assert_eq!(call(api, "GET", &format!("/v1/conferences/{c}"), None).0, 200, "the current one goes on");

    // The meeting ends: the bridge exits, cleanly.
    assert_eq!(call(api, "DELETE", &format!("/v1/conferences/{c}/endpoints/{e}"), None).0, 204);
    let status =
        exits_within(&mut bridge.child, Duration::from_secs(5)).expect("exit after the last conference");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_sigterm_stops_a_drain_at_once() {
    let mut bridge = start();
    let api = bridge.api;
    let (_, conference) = call(api, "POST", "/v1/conferences", None);
    let c = conference["id"].as_str().unwrap();
    assert_eq!(call(api, "POST", &format!("/v1/conferences/{c}/endpoints"), None).0, 201);
    sigterm(&bridge.child);
    assert_eq!(exits_within(&mut bridge.child, Duration::from_millis(400)), None);
    sigterm(&bridge.child);
    let status = exits_within(&mut bridge.child, Duration::from_secs(5)).expect("a second SIGTERM stops it");
    assert!(status.success(), "{status:?}");
}
