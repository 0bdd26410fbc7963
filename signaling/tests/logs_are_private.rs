//! Privacy invariant 6: at the most verbose log level, the daemon's logs hold no room name,
//! display name, e-mail, chat text or password, through a meeting that uses all of them.

mod common;

use common::{Client, Daemon};
use serde_json::json;

#[tokio::test]
async fn trace_logs_hold_no_names_texts_or_passwords() {
    let daemon = Daemon::start("", "trace");
    let room = "secretive-herons-whisper-quietly";
    let mut ada = Client::connect(daemon.addr).await;
    ada.send(json!({"type": "join", "room": room, "name": "Adalovelace", "email": "ada@example.org"})).await;
    ada.until("joined").await;
    ada.send(json!({"type": "set_password", "password": "hunter2pass"})).await;
    ada.until("settings").await;
    let mut bob = Client::connect(daemon.addr).await;
    assert_eq!(bob.join(room, "Bobbytables", Some("wrongguess")).await["code"], "password");
    bob.send(json!({"type": "join", "room": room, "name": "Bobbytables", "email": "bob@example.net", "password": "hunter2pass"})).await;
    bob.until("joined").await;
    ada.send(json!({"type": "chat", "text": "the eagle lands at noon"})).await;
    bob.until("chat").await;
    bob.send(json!({"type": "leave"})).await;
    bob.until("left").await;
    drop(ada);
    std::thread::sleep(std::time::Duration::from_millis(500));

    let log = daemon.log_text();
    assert!(log.lines().count() > 3, "the test saw the daemon's log: {log}");
    for secret in [
        room,
        "secretive",
        "Adalovelace",
        "Bobbytables",
        "ada@example.org",
        "bob@example.net",
        "eagle lands",
        "hunter2pass",
        "wrongguess",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}
