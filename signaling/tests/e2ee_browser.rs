//! The web client's end-to-end encryption in a real browser: `web/sframe.js` and
//! `web/e2ee-worker.js` in headless Chromium, checked against the Rust `sframe` crate and on
//! live media (DESIGN.md invariant 9).
//!
//! One browser run (`tests/browser_e2ee/run.sh` under `unshare -n`, then `driver.py`) computes
//! and measures; the tests below each check one part of its report:
//! - every RFC 9605 Appendix C vector of the AES-GCM suites (C.1 headers, C.3 frames), taken
//!   from `sframe/tests/vectors`, the data the Rust crate is tested with;
//! - the product key schedule (`sframe::sender_keys`): JS derives the same passphrase key and
//!   sender keys, decrypts frames Rust encrypted, produces the very same bytes for the same
//!   (KID, CTR), and its own frames decrypt in Rust;
//! - hostile input to sframe.js: truncations, bit flips, every config byte; nothing throws or
//!   authenticates;
//! - media between RTCPeerConnections on loopback, one worker per participant: the receiver with
//!   the passphrase decodes audio and video and decrypts exactly the frames the sender encoded
//!   (FNV-1a 64 of each frame before encryption and after decryption, paired by RTP timestamp);
//!   another passphrase, or none, decodes nothing and says "cannot-decrypt"; replayed, flipped
//!   and malformed frames are dropped and counted; a passphrase change keeps the call going; and
//!   with E2EE off the clear receiver decodes while the encrypting one refuses clear frames.
//!
//! `scripts/install-test-deps.sh` installs Chromium and chromedriver. Nothing is skipped: a
//! missing browser, a failed install or a refused `unshare` fails every test here.

#[path = "../../scripts/test_harness.rs"]
mod harness;
#[path = "../../sframe/tests/vectors/mod.rs"]
mod vectors;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use harness::{in_private_network, install_test_deps, run_bounded};
use serde_json::{Value, json};
use sframe::sender_keys::{passphrase_key, sender_base_key};
use sframe::{CipherSuite, Context, Ctr, Kid, Usage};
use signaling::config::Config;
use signaling::hub::Hub;
use signaling::server::router;
use tower::ServiceExt;
use vectors::{HEADERS, SFRAME, unhex};

/// The product's suite: what e2ee-worker.js encrypts with.
const SUITE: CipherSuite = CipherSuite::Aes128GcmSha256_128;

/// The interop check's room and passphrase: non-ASCII on purpose (both sides must hash UTF-8).
const ROOM: &str = "standup-e2ee";
const PASSPHRASE: &str = "correct horse battery staple, grüße ✓";
/// Rust's sender (video KID; audio is this ^ 1, as in the worker) and the one JS encrypts as.
const RUST_SENDER: u64 = 0x5eed_0000_1234_5678;
const JS_SENDER: u64 = 0x0bad_cafe_0000_0042;

fn repo_root() -> PathBuf {
    harness::repo_root(env!("CARGO_MANIFEST_DIR"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn id_hex(id: u64) -> String {
    format!("{id:016x}")
}

// ================================================================================ input

/// C.1 headers and the C.3 frames of the suites WebCrypto can do (AES-GCM); KID and CTR as
/// decimal strings, because JSON numbers lose precision above 2^53.
fn vectors_input() -> Value {
    let headers: Vec<Value> = HEADERS
        .iter()
        .map(|&(kid, ctr, encoded)| {
            json!({"kid": kid.to_string(), "ctr": ctr.to_string(), "encoded": encoded})
        })
        .collect();
    let frames: Vec<Value> = gcm_vectors()
        .map(|v| {
            json!({
                "cipher_suite": v.cipher_suite, "kid": v.kid.to_string(), "ctr": v.ctr.to_string(),
                "base_key": v.base_key, "metadata": v.metadata, "pt": v.pt, "ct": v.ct,
            })
        })
        .collect();
    json!({"headers": headers, "frames": frames})
}

fn gcm_vectors() -> impl Iterator<Item = &'static vectors::FrameVector> {
    SFRAME.iter().filter(|v| matches!(v.cipher_suite, 0x0004 | 0x0005))
}

/// One frame for the interop check: who, which CTR, and its bytes.
struct Frame {
    kid: u64,
    ctr: u64,
    metadata: Vec<u8>,
    plaintext: Vec<u8>,
}

/// Frames of both sources of a sender, as the worker would make them: video with a VP8-like
/// clear prefix as metadata, audio with none; CTRs from 0, and one that needs 5 header bytes.
fn frames_of(sender: u64, seed: u8) -> Vec<Frame> {
    let body = |len: usize, salt: u8| (0..len).map(|i| (i as u8).wrapping_mul(31) ^ salt ^ seed).collect();
    vec![
        Frame {
            kid: sender,
            ctr: 0,
            metadata: vec![0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00],
            plaintext: body(900, 1),
        },
        Frame { kid: sender, ctr: 1, metadata: vec![0x31, 0x02, 0x00], plaintext: body(120, 2) },
        Frame { kid: sender ^ 1, ctr: 0, metadata: vec![], plaintext: body(61, 3) },
        Frame { kid: sender ^ 1, ctr: 0x1_0000_0000, metadata: vec![], plaintext: vec![] },
    ]
}

fn frame_json(f: &Frame, wire: Option<&[u8]>) -> Value {
    let mut v = json!({
        "kid": id_hex(f.kid), "ctr": f.ctr.to_string(),
        "metadata": hex(&f.metadata), "plaintext": hex(&f.plaintext),
    });
    if let Some(wire) = wire {
        v["wire"] = json!(hex(wire));
    }
    v
}

/// Rust's side of the interop check: its frames, encrypted with `sframe::Context`.
fn interop_input(pk: &[u8; 32]) -> Value {
    let mut ctx = Context::<2>::new(SUITE);
    for kid in [RUST_SENDER, RUST_SENDER ^ 1] {
        ctx.insert(Kid(kid), Usage::Encrypt, &sender_base_key(pk, ROOM, kid)).expect("two keys fit");
    }
    let rust_frames: Vec<Value> = frames_of(RUST_SENDER, 0x11)
        .iter()
        .map(|f| {
            let mut wire = vec![0u8; ctx.ciphertext_len(Kid(f.kid), Ctr(f.ctr), f.plaintext.len())];
            ctx.encrypt(Kid(f.kid), Ctr(f.ctr), &f.metadata, &f.plaintext, &mut wire).expect("encrypt");
            frame_json(f, Some(&wire))
        })
        .collect();
    let js_frames: Vec<Value> = frames_of(JS_SENDER, 0x22).iter().map(|f| frame_json(f, None)).collect();
    let sender_ids = [RUST_SENDER, RUST_SENDER ^ 1, JS_SENDER, JS_SENDER ^ 1].map(id_hex);
    json!({
        "room": ROOM, "passphrase": PASSPHRASE, "sender_ids": sender_ids,
        "rust_frames": rust_frames, "js_frames": js_frames,
    })
}

// ================================================================================ served files

/// GETs `path` from the signaling daemon's router, in process: what a browser would be served.
fn served(path: &str) -> (StatusCode, HeaderMap, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let hub = Hub::new(Config::default(), runtime.handle().clone());
    runtime.block_on(async {
        let request = Request::get(path).body(Body::empty()).expect("a GET request");
        let response = router(hub).oneshot(request).await.expect("the router's error type is Infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("a body under 1 MiB");
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).expect("UTF-8 text"))
    })
}

/// The daemon's Content-Security-Policy, as it sends it with the page's script.
fn product_csp() -> String {
    let (_, headers, _) = served("/app.js");
    headers[header::CONTENT_SECURITY_POLICY].to_str().expect("an ASCII policy").to_owned()
}

// ================================================================================ the run

/// The driver's report, from one browser run shared by every test in this file (one Chromium
/// on two cores at a time). A failed run is an `Err` every test reports.
fn report() -> &'static Value {
    static REPORT: OnceLock<Result<Value, String>> = OnceLock::new();
    let result = REPORT.get_or_init(|| {
        // Never let a panic escape: the other tests waiting on this cell would start a second run.
        std::panic::catch_unwind(run_browser).unwrap_or_else(|panic| {
            let message = panic.downcast_ref::<String>().cloned();
            let message = message.or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(message.unwrap_or_else(|| "the browser run panicked".into()))
        })
    });
    match result {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    }
}

fn run_browser() -> Result<Value, String> {
    install_test_deps(&repo_root());
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    // The browser runs the scripts exactly as the daemon serves them, under its CSP.
    for script in ["sframe.js", "e2ee-worker.js"] {
        let (_, _, body) = served(&format!("/{script}"));
        std::fs::write(dir.path().join(script), body).map_err(|e| format!("write {script}: {e}"))?;
    }
    let input = json!({
        "served": {"dir": dir.path(), "csp": product_csp()},
        "vectors": vectors_input(),
        "interop": interop_input(&passphrase_key(PASSPHRASE, ROOM)),
        "passphrases": {
            "room": "e2ee-media", "alice": "media passphrase one",
            "carol": "a different passphrase", "rotated": "media passphrase two",
        },
    });
    let input_path = dir.path().join("input.json");
    std::fs::write(&input_path, input.to_string()).map_err(|e| format!("write input: {e}"))?;

    let mut command = in_private_network(&repo_root().join("signaling/tests/browser_e2ee/run.sh"));
    command.arg(&input_path).current_dir(repo_root());
    let started = Instant::now();
    let out = run_bounded(command, Duration::from_secs(280));
    eprintln!("{}", out.stderr);
    eprintln!("the browser run took {:.1} s", started.elapsed().as_secs_f64());
    let report =
        out.stdout.lines().rev().find_map(|line| serde_json::from_str::<Value>(line).ok()).ok_or_else(
            || format!("no JSON report from driver.py ({}):\n{}\n{}", out.status, out.stdout, out.stderr),
        )?;
    if !out.status.success() || report["ok"] != true {
        return Err(format!(
            "the browser run failed ({}): {}\n--- stderr ---\n{}",
            out.status, report, out.stderr
        ));
    }
    Ok(report)
}

// ================================================================================ report access

fn media_phase(name: &str) -> &'static Value {
    let phase = &report()["media"][name];
    assert_eq!(phase["goal_met"], true, "the {name} phase did not reach its goal: {}", summary(phase));
    &phase["report"]
}

/// A phase's report without the frame hash lists, for messages.
fn summary(phase: &Value) -> String {
    let mut v = phase.clone();
    strip_recent(&mut v);
    format!("{v:#}")
}

fn strip_recent(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("recent");
            map.values_mut().for_each(strip_recent);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_recent),
        _ => {}
    }
}

fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// (video frames decoded, audio samples decoded that were not concealment) at receiver `name`.
fn decoded(report: &Value, name: &str) -> (u64, u64) {
    let inbound = &report["pairs"][name]["inbound"];
    let samples = u64_at(inbound, "/audio/totalSamplesReceived");
    let concealed = u64_at(inbound, "/audio/concealedSamples");
    (u64_at(inbound, "/video/framesDecoded"), samples.saturating_sub(concealed))
}

/// The worker-side stats of `name`'s transform for `kind` ("sender": alice's transform to it).
fn transform<'a>(report: &'a Value, name: &str, side: &str, kind: &str) -> &'a Value {
    let t = &report["pairs"][name][side][kind];
    assert!(t.is_object(), "no {side} {kind} transform stats for {name}: {}", summary(report));
    t
}

/// The states transform `id` of worker `worker` went through, in order.
fn states(report: &Value, worker: &str, id: &str) -> Vec<String> {
    report["workers"][worker]["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["id"] == id)
        .filter_map(|s| s["state"].as_str().map(String::from))
        .collect()
}

fn kids(t: &Value) -> BTreeSet<String> {
    t["kids"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(String::from)).collect()
}

fn alice_ids(id: &str) -> (String, String) {
    let video = u64::from_str_radix(id, 16).expect("aliceId is hex");
    (id_hex(video), id_hex(video ^ 1))
}

fn assert_no_worker_errors(report: &Value) {
    let workers = report["workers"].as_object().expect("workers in the report");
    assert_eq!(workers.len(), 5, "{}", summary(report));
    for (name, w) in workers {
        assert_eq!(w["uncaught"], json!([]), "{name}'s worker threw: {}", summary(report));
        assert_eq!(w["errors"], json!([]), "{name}'s worker reported errors: {}", summary(report));
    }
}

/// Every frame both alice's transform to `name` and `name`'s receiver recorded has the same hash
/// on both sides, and there are at least `least` such frames.
fn assert_same_frames(report: &Value, name: &str, kind: &str, least: u64) {
    let m = &report["matches"][format!("{name}:{kind}")];
    assert!(m.get("error").is_none(), "{name} {kind}: {m}");
    assert_eq!(m["mismatched"], 0, "{name} decrypted {kind} frames alice never encoded: {m}");
    assert!(u64_at(m, "/common") >= least, "{name}: too few {kind} frames to compare: {m}");
}

// ================================================================================ tests

#[test]
fn worker_scripts_are_served_like_app_js() {
    let (_, app_headers, _) = served("/app.js");
    for script in ["sframe.js", "e2ee-worker.js"] {
        let (status, headers, body) = served(&format!("/{script}"));
        assert_eq!(status, StatusCode::OK, "/{script}");
        let on_disk = std::fs::read_to_string(repo_root().join("signaling/web").join(script)).expect("read");
        assert!(body == on_disk, "/{script} serves signaling/web/{script}");
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_SECURITY_POLICY,
            header::REFERRER_POLICY,
            header::CACHE_CONTROL,
            header::X_CONTENT_TYPE_OPTIONS,
        ] {
            assert_eq!(headers.get(&name), app_headers.get(&name), "/{script} header {name}");
        }
    }
}

#[test]
fn product_csp_lets_the_worker_run() {
    // The browser run serves every file with the daemon's policy; the worker and its
    // importScripts("sframe.js") must load and nothing may be blocked.
    let r = media_phase("clear");
    assert_eq!(r["csp"], json!([]), "CSP violations in the page");
    assert_no_worker_errors(r);
    assert!(u64_at(transform(r, "bob", "sender", "video"), "/frames") > 0, "the worker ran");
}

#[test]
fn rfc9605_vectors_in_chromium() {
    let got = &report()["vectors"];
    let headers = got["headers"].as_array().expect("header results");
    assert_eq!(headers.len(), HEADERS.len());
    assert_eq!(headers.len(), 289, "every C.1 vector");
    for (&(kid, ctr, encoded), h) in HEADERS.iter().zip(headers) {
        assert_eq!(h["encoded"], encoded, "encode kid={kid:#x} ctr={ctr:#x}");
        let expected = json!({"kid": kid.to_string(), "ctr": ctr.to_string(), "length": encoded.len() / 2});
        assert_eq!(h["parsed"], expected, "parse {encoded}");
    }
    let frames = got["frames"].as_array().expect("frame results");
    assert_eq!(frames.len(), 2, "the two AES-GCM suites of C.3");
    for (v, f) in gcm_vectors().zip(frames) {
        let suite = v.cipher_suite;
        assert_eq!(f["cipher_suite"], suite);
        assert_eq!(f["sframe_key"], v.sframe_key, "suite {suite:#06x} sframe_key");
        assert_eq!(f["sframe_salt"], v.sframe_salt, "suite {suite:#06x} sframe_salt");
        assert_eq!(f["nonce"], v.nonce, "suite {suite:#06x} nonce");
        assert_eq!(f["ct"], v.ct, "suite {suite:#06x} encrypt");
        assert_eq!(f["pt"], v.pt, "suite {suite:#06x} decrypt");
    }
}

#[test]
fn product_keys_and_frames_match_rust() {
    let got = &report()["interop"];
    let pk = passphrase_key(PASSPHRASE, ROOM);
    assert_eq!(got["passphrase_key"], hex(&pk), "PBKDF2 passphrase_key");
    for id in [RUST_SENDER, RUST_SENDER ^ 1, JS_SENDER, JS_SENDER ^ 1] {
        assert_eq!(got["base_keys"][id_hex(id)], hex(&sender_base_key(&pk, ROOM, id)), "sender {id:#x}");
    }

    let input = interop_input(&pk);
    let rust_frames = input["rust_frames"].as_array().expect("rust frames");
    let js_view = got["rust_frames"].as_array().expect("JS on Rust's frames");
    assert_eq!(js_view.len(), rust_frames.len());
    for (sent, seen) in rust_frames.iter().zip(js_view) {
        assert_eq!(seen["decrypted"], sent["plaintext"], "JS decrypts Rust's frame {sent}");
        assert_eq!(seen["reencrypted"], sent["wire"], "JS encrypts to Rust's bytes: {sent}");
    }

    let mut ctx = Context::<2>::new(SUITE);
    for kid in [JS_SENDER, JS_SENDER ^ 1] {
        ctx.insert(Kid(kid), Usage::Decrypt, &sender_base_key(&pk, ROOM, kid)).expect("two keys fit");
    }
    let js_frames = got["js_frames"].as_array().expect("JS frames");
    let expected = frames_of(JS_SENDER, 0x22);
    assert_eq!(js_frames.len(), expected.len());
    for (frame, wire) in expected.iter().zip(js_frames) {
        let wire = unhex(wire.as_str().expect("hex"));
        let mut plain = vec![0u8; wire.len()];
        let opened = ctx.decrypt(&frame.metadata, &wire, &mut plain).expect("Rust decrypts the JS frame");
        assert_eq!((opened.kid, opened.ctr), (Kid(frame.kid), Ctr(frame.ctr)));
        assert_eq!(&plain[..opened.len], &frame.plaintext[..]);
    }
    eprintln!("PBKDF2 (600,000 iterations) in Chromium: {} ms", got["pbkdf2_ms"]);
}

#[test]
fn hostile_input_is_counted_never_thrown() {
    let got = &report()["hostile"];
    assert_eq!(got["threw"], 0, "sframe.js threw on hostile input: {got:#}");
    assert_eq!(got["accepted"], 0, "a tampered frame authenticated: {got:#}");
    assert_eq!(got["control"], true, "the untouched frame must still decrypt: {got:#}");
    assert!(u64_at(got, "/cases") > 2000, "{got:#}");
    for reason in ["empty", "truncated-header", "non-minimal-header", "too-short", "authentication"] {
        assert!(u64_at(got, &format!("/reasons/{reason}")) > 0, "no {reason} case: {got:#}");
    }
    let fnv = &report()["fnv"];
    assert_eq!(fnv, &json!(["cbf29ce484222325", "af63dc4c8601ec8c", "85944171f73967e8"]), "FNV-1a 64");
}

#[test]
fn same_passphrase_decodes_exactly_what_was_sent() {
    let r = media_phase("e2ee");
    let (video, audio) = decoded(r, "bob");
    assert!(video >= 30 && audio > 0, "bob decoded {video} video frames and {audio} audio samples");
    let (video_kid, audio_kid) = alice_ids(r["aliceId"].as_str().expect("aliceId"));
    for (kind, kid) in [("video", &video_kid), ("audio", &audio_kid)] {
        let sent = transform(r, "bob", "sender", kind);
        assert!(u64_at(sent, "/encrypted") >= 30, "alice encrypted too few {kind} frames: {sent}");
        assert_eq!(u64_at(sent, "/passed"), 0, "alice sent clear {kind} frames with E2EE on: {sent}");
        assert_eq!(kids(sent), BTreeSet::from([kid.clone()]), "alice's {kind} KID");
        assert_eq!(states(r, "alice", &format!("bob:{kind}")), ["encrypting"]);
        let got = transform(r, "bob", "receiver", kind);
        assert!(u64_at(got, "/decrypted") >= 30, "bob decrypted too few {kind} frames: {got}");
        assert_eq!(u64_at(got, "/passed"), 0, "bob passed undecrypted {kind} frames: {got}");
        assert!(kids(got).contains(kid), "bob saw alice's {kind} KID: {got}");
        assert_eq!(states(r, "bob", &format!("bob:{kind}")).last().map(String::as_str), Some("decrypting"));
        assert_same_frames(r, "bob", kind, 30);
    }
    assert_no_worker_errors(r);
    eprintln!("bob decoded {video} video frames and {audio} audio samples; {}", r["matches"]);
}

#[test]
fn other_or_no_passphrase_decodes_nothing() {
    let r = media_phase("e2ee");
    for name in ["carol", "dave"] {
        assert_eq!(decoded(r, name), (0, 0), "{name} decoded media: {}", summary(&r["pairs"][name]));
        for kind in ["video", "audio"] {
            let got = transform(r, name, "receiver", kind);
            assert!(u64_at(got, "/frames") >= 30, "{name} got too few {kind} frames: {got}");
            assert_eq!(
                u64_at(got, "/decrypted") + u64_at(got, "/passed"),
                0,
                "{name} forwarded {kind}: {got}"
            );
            assert_eq!(
                u64_at(got, "/failed"),
                u64_at(got, "/frames"),
                "{name}: every {kind} frame failed: {got}"
            );
            // Carol's frames fail to authenticate (or arrive while her PBKDF2 runs); dave has no key.
            let expected =
                if name == "carol" { ["authentication", "deriving"] } else { ["no-key", "no-key"] };
            let counted = if name == "carol" {
                u64_at(got, "/reasons/authentication") + u64_at(got, "/reasons/deriving")
            } else {
                u64_at(got, "/reasons/no-key")
            };
            assert_eq!(counted, u64_at(got, "/frames"), "{name} {kind}: all {expected:?}: {got}");
            assert!(u64_at(got, &format!("/reasons/{}", expected[0])) > 0, "{name} {kind}: {got}");
            assert_eq!(states(r, name, &format!("{name}:{kind}")), ["cannot-decrypt"], "{name} {kind}");
            eprintln!("{name} {kind}: {} frames, all dropped: {}", got["frames"], got["reasons"]);
        }
    }
}

#[test]
fn tampered_frames_are_dropped_and_counted() {
    let r = media_phase("e2ee");
    assert_no_worker_errors(r);
    for kind in ["video", "audio"] {
        let got = transform(r, "eve", "receiver", kind);
        let frames = u64_at(got, "/frames");
        // Three of every four frames are tampered with; the fourth is authentic.
        assert!(u64_at(got, "/decrypted") > 0, "eve decrypted no authentic {kind} frame: {got}");
        assert!(u64_at(got, "/failed") * 2 >= frames, "eve: too few {kind} failures: {got}");
        assert_eq!(u64_at(got, "/passed"), 0, "eve passed undecrypted {kind} frames: {got}");
        for reason in ["replayed", "authentication"] {
            assert!(u64_at(got, &format!("/reasons/{reason}")) > 0, "eve {kind}: no {reason}: {got}");
        }
        let malformed: u64 = ["empty", "truncated-header", "non-minimal-header", "too-short"]
            .iter()
            .map(|reason| u64_at(got, &format!("/reasons/{reason}")))
            .sum();
        assert!(malformed > 0, "eve {kind}: no malformed frame counted: {got}");
        assert!(
            !got["reasons"].as_object().expect("reasons").keys().any(|k| k.starts_with("exception")),
            "eve {kind}: an exception in the frame loop: {got}"
        );
        // What eve let through is exactly what alice encoded: nothing tampered reached the decoder.
        assert_same_frames(r, "eve", kind, 5);
        eprintln!("eve {kind}: {frames} frames, {} decrypted, failures {}", got["decrypted"], got["reasons"]);
    }
}

#[test]
fn a_flood_of_fresh_kids_derives_few_keys() {
    // The budget of a decrypt transform (the flood's is fresh): a burst of 8 derivations, then 2
    // per second (e2ee-worker.js).
    let got = &report()["flood"];
    let stats = &got["stats"];
    let count = 400;
    let seconds = got["ms"].as_f64().expect("ms") / 1000.0;
    let derived = u64_at(stats, "/reasons/authentication");
    let refused = u64_at(stats, "/reasons/derivation-limit");
    assert_eq!(u64_at(stats, "/frames"), count, "{got}");
    assert_eq!(derived + refused, count, "every frame failed, for one of these two reasons: {got}");
    assert_eq!((u64_at(got, "/forwarded"), u64_at(stats, "/decrypted")), (0, 0), "{got}");
    assert!(derived as f64 <= 8.0 + 2.0 * seconds + 1.0, "{derived} derivations in {seconds} s: {got}");
    assert!(derived > 0 && refused > 0, "some KIDs get keys, then the budget refuses: {got}");
    assert!(stats["kids"].as_array().is_some_and(|k| k.len() <= 64), "KIDs kept are bounded: {got}");
    eprintln!("flood of {count} fresh KIDs in {seconds:.2} s: {derived} derived, {refused} refused");
}

#[test]
fn key_rotation_keeps_decoding() {
    let phase = &report()["media"]["rotation"];
    let r = media_phase("rotation");
    let (video_kid, audio_kid) = alice_ids(phase["new_alice_id"].as_str().expect("new id"));
    let before = u64_at(phase, "/bob_before");
    let (video, audio) = decoded(r, "bob");
    assert!(video >= before + 30, "bob decoded {video} frames, {before} before the rotation");
    eprintln!("rotation: bob decoded {before} video frames before, {video} after {} s", phase["seconds"]);
    assert!(audio > 0);
    assert!(kids(transform(r, "bob", "receiver", "video")).contains(&video_kid), "{}", summary(r));
    assert!(kids(transform(r, "bob", "receiver", "audio")).contains(&audio_kid), "{}", summary(r));
    for kind in ["video", "audio"] {
        assert_eq!(states(r, "bob", &format!("bob:{kind}")).last().map(String::as_str), Some("decrypting"));
        assert_same_frames(r, "bob", kind, 30);
    }
    assert_no_worker_errors(r);
}

#[test]
fn e2ee_off_passes_clear_frames_and_e2ee_receivers_refuse_them() {
    let phase = &report()["media"]["clear"];
    let r = media_phase("clear");
    assert!(decoded(r, "dave").0 >= 15, "dave decoded no clear video: {}", summary(&r["pairs"]["dave"]));
    for kind in ["video", "audio"] {
        assert_eq!(states(r, "alice", &format!("dave:{kind}")).last().map(String::as_str), Some("clear"));
        assert_eq!(states(r, "dave", &format!("dave:{kind}")).last().map(String::as_str), Some("clear"));
        assert!(u64_at(transform(r, "dave", "receiver", kind), "/passed") > 0);
        assert_eq!(
            states(r, "bob", &format!("bob:{kind}")).last().map(String::as_str),
            Some("cannot-decrypt")
        );
    }
    assert_eq!(
        phase["bob_final"],
        phase["bob_settled"],
        "bob (E2EE on) decoded clear frames: {}",
        summary(&r["pairs"]["bob"])
    );
    assert_no_worker_errors(r);
}
