use super::*;

/// Splits a datagram into its fields, reading both forms as journald does.
fn decode(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let end = data.iter().position(|&b| b == b'\n').expect("every field ends with a newline");
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.push((String::from_utf8(line[..eq].to_vec()).unwrap(), line[eq + 1..].to_vec()));
            data = &data[end + 1..];
        } else {
            let len = u64::from_le_bytes(data[end + 1..end + 9].try_into().unwrap()) as usize;
            let value = data[end + 9..end + 9 + len].to_vec();
            assert_eq!(data[end + 9 + len], b'\n', "the binary form ends with a newline");
            fields.push((String::from_utf8(line.to_vec()).unwrap(), value));
            data = &data[end + 10 + len..];
        }
    }
    fields
}

fn value<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    let mut values = fields.iter().filter(|(n, _)| n == name);
    let (_, value) = values.next().unwrap_or_else(|| panic!("no {name} in {fields:?}"));
    assert!(values.next().is_none(), "{name} twice");
    value
}

fn entry<'a>(message: &'a str, fields: &'a [(&'static str, String)]) -> Entry<'a> {
    Entry {
        priority: 6,
        identifier: "turn",
        target: "turn::run",
        file: Some("turn/src/run.rs"),
        line: Some(42),
        message,
        fields,
    }
}

fn encoded(entry: &Entry<'_>, max: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(&mut buf, entry, max);
    buf
}

#[test]
fn simple_fields_are_name_equals_value_lines() {
    let fields = [("workers", "2".to_string())];
    let buf = encoded(&entry("ready", &fields), MAX_DATAGRAM);
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "PRIORITY=6\nSYSLOG_IDENTIFIER=turn\nTARGET=turn::run\nCODE_FILE=turn/src/run.rs\nCODE_LINE=42\n\
         WORKERS=2\nMESSAGE=ready\n"
    );
}

#[test]
fn a_value_with_a_newline_takes_the_binary_form() {
    let fields = [("error", "first\nsecond".to_string())];
    let buf = encoded(&entry("two\nlines", &fields), MAX_DATAGRAM);
    let tail = b"MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\n";
    assert!(buf.ends_with(tail), "{:?}", String::from_utf8_lossy(&buf));
    let decoded = decode(&buf);
    assert_eq!(value(&decoded, "ERROR"), b"first\nsecond");
    assert_eq!(value(&decoded, "MESSAGE"), b"two\nlines");
}

#[test]
fn field_names_are_sanitized() {
    let mut name = Vec::new();
    for (raw, expected) in [
        ("conference", "CONFERENCE"),
        ("peer.addr", "PEER_ADDR"),
        ("rtt-ms", "RTT_MS"),
        ("größe", "GR__E"),
        ("_hidden", "F__HIDDEN"),
        ("2fa", "F_2FA"),
        ("", "F_"),
        ("priority", "F_PRIORITY"),
        ("message_id", "MESSAGE_ID"),
    ] {
        sanitize(raw, &mut name);
        assert_eq!(String::from_utf8(name.clone()).unwrap(), expected, "{raw:?}");
    }
    sanitize(&"x".repeat(100), &mut name);
    assert_eq!(name.len(), 64, "journald ignores names past 64 bytes");
    // A sanitized name never collides with the entry's own PRIORITY.
    let fields = [("PRIORITY", "0".to_string())];
    let decoded = decode(&encoded(&entry("m", &fields), MAX_DATAGRAM));
    assert_eq!(value(&decoded, "PRIORITY"), b"6");
    assert_eq!(value(&decoded, "F_PRIORITY"), b"0");
}

#[test]
fn priorities_follow_syslog() {
    assert_eq!(priority(&Level::ERROR), 3);
    assert_eq!(priority(&Level::WARN), 4);
    assert_eq!(priority(&Level::INFO), 6);
    assert_eq!(priority(&Level::DEBUG), 7);
    assert_eq!(priority(&Level::TRACE), 7);
}

#[test]
fn an_oversized_message_is_cut_to_fit() {
    let max = 8192;
    let long = "é".repeat(10_000); // two bytes each: the cut must find a character boundary
    let buf = encoded(&entry(&long, &[]), max);
    assert!(buf.len() <= max, "{} bytes", buf.len());
    assert!(buf.len() > max - 16, "the room is used: {} bytes", buf.len());
    let decoded = decode(&buf);
    let message = String::from_utf8(value(&decoded, "MESSAGE").to_vec()).expect("cut on a boundary");
    assert!(message.ends_with(CUT) && long.starts_with(message.trim_end_matches(CUT)));
    assert_eq!(value(&decoded, "PRIORITY"), b"6", "the other fields stay");

    // With a newline the binary form's length must still match what follows.
    let long = format!("a\n{}", "b".repeat(20_000));
    let buf = encoded(&entry(&long, &[]), max);
    assert!(buf.len() <= max);
    assert!(value(&decode(&buf), "MESSAGE").starts_with(b"a\nbbb"));
}

#[test]
fn long_and_many_fields_leave_the_message_its_room() {
    let fields: Vec<_> = (0..100).map(|i| (["a", "b", "c"][i % 3], "v".repeat(5000))).collect();
    let buf = encoded(&entry("the message", &fields), 16 * 1024);
    assert!(buf.len() <= 16 * 1024);
    let decoded = decode(&buf);
    assert_eq!(value(&decoded, "MESSAGE"), b"the message");
    let a = decoded.iter().find(|(n, _)| n == "A").expect("the first fields are kept");
    assert_eq!(a.1.len(), MAX_FIELD_VALUE + CUT.len(), "a long value is cut");
}

#[test]
fn journal_stream_must_name_this_stderr() {
    assert!(names_stream("64768:1234", 64768, 1234));
    assert!(names_stream("64768:1234\n", 64768, 1234));
    assert!(!names_stream("64768:1235", 64768, 1234), "another file: inherited, not ours");
    assert!(!names_stream("64768", 64768, 1234));
    assert!(!names_stream("x:1234", 64768, 1234));
}

#[test]
fn events_reach_a_socket_as_entries() {
    use tracing_subscriber::layer::SubscriberExt;
    let dir = std::env::temp_dir().join(format!("sdnotify-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);
    let journal = UnixDatagram::bind(&path).unwrap();
    journal.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let layer = JournalLayer::connect(&path, "test").unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(workers = 2, reason = "stuck\nloop", "health check failed");
    });
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let n = journal.recv(&mut datagram).unwrap();
    let decoded = decode(&datagram[..n]);
    assert_eq!(value(&decoded, "PRIORITY"), b"4");
    assert_eq!(value(&decoded, "MESSAGE"), b"health check failed");
    assert_eq!(value(&decoded, "SYSLOG_IDENTIFIER"), b"test");
    assert_eq!(value(&decoded, "WORKERS"), b"2");
    assert_eq!(value(&decoded, "REASON"), b"stuck\nloop");
    assert!(value(&decoded, "CODE_FILE").ends_with(b"journal_tests.rs"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_listening_is_an_error_at_connect() {
    let path = std::env::temp_dir().join(format!("sdnotify-journal-none-{}", std::process::id()));
    assert!(JournalLayer::connect(&path, "test").is_err());
}
