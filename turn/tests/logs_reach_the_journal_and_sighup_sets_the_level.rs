//! The `turn` binary as systemd runs it: its stderr is the journal stream (`JOURNAL_STREAM`
//! names the file's device and inode), so every line goes to the journal socket
//! (`MEETING_JOURNAL_SOCKET`, a datagram socket of this test) as a native entry with fields,
//! and none to stderr; no entry carries a secret, a password or a user name. SIGHUP applies the
//! file's `log-level`: debug entries appear only after it, a file with a bad level keeps the
//! old one (an error entry says so), and a quieter level silences info entries. When
//! `JOURNAL_STREAM` names another file, plain lines go to stderr, without colour.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_turn");
const SECRET: &str = "journal-test-static-auth-secret";
const USER: &str = "journaltestuser";
const PASSWORD: &str = "journal-test-password";
const WAIT: Duration = Duration::from_secs(15);

/// One journal entry: its fields in order, values as bytes.
#[derive(Debug)]
struct Entry {
    raw: Vec<u8>,
    fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// Reads both forms of the native protocol: `NAME=value\n`, and `NAME\n`, a little-endian
    /// u64 length, the value, `\n`.
    fn decode(raw: &[u8]) -> Self {
        let mut fields = Vec::new();
        let mut data = raw;
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n').expect("a field ends with a newline");
            let line = &data[..end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.push((String::from_utf8_lossy(&line[..eq]).into_owned(), line[eq + 1..].to_vec()));
                data = &data[end + 1..];
            } else {
                let len = u64::from_le_bytes(data[end + 1..end + 9].try_into().unwrap()) as usize;
                fields.push((
                    String::from_utf8_lossy(line).into_owned(),
                    data[end + 9..end + 9 + len].to_vec(),
                ));
                assert_eq!(
                    data[end + 9 + len],
                    b'\n',
                    "binary field {:?} ends with a newline",
                    fields.last()
                );
                data = &data[end + 10 + len..];
            }
        }
        Self { raw: raw.to_vec(), fields }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn priority(&self) -> u8 {
        self.get("PRIORITY").and_then(|p| p.parse().ok()).expect("every entry has a PRIORITY")
    }

    fn message(&self) -> String {
        self.get("MESSAGE").expect("every entry has a MESSAGE")
    }
}

/// The stand-in for journald: every entry received, in order.
struct Journal {
    socket: UnixDatagram,
    entries: Vec<Entry>,
}

impl Journal {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Self { socket, entries: Vec::new() }
    }

    /// Receives until an entry after the `from`-th satisfies `found`; its index.
    fn wait_for(&mut self, from: usize, what: &str, found: impl Fn(&Entry) -> bool) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.entries.iter().skip(from).position(&found) {
                return from + i;
            }
            assert!(Instant::now() < deadline, "no entry {what} in {:#?}", self.messages());
            self.receive();
        }
    }

    /// Takes whatever has arrived, waiting at most the read timeout.
    fn receive(&mut self) {
        let mut datagram = vec![0u8; 128 * 1024];
        while let Ok(n) = self.socket.recv(&mut datagram) {
            self.entries.push(Entry::decode(&datagram[..n]));
        }
    }

    fn messages(&self) -> Vec<(u8, String)> {
        self.entries.iter().map(|e| (e.priority(), e.message())).collect()
    }
}

struct Turn {
    child: Child,
    dir: PathBuf,
}

impl Turn {
    /// Starts the daemon on `turnserver.conf` in `dir` with stderr to `dir/stderr`, which
    /// `JOURNAL_STREAM` names when `journal_stream` (and some other file when not).
    fn start(dir: &Path, journal_stream: bool) -> Self {
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let stat = if journal_stream { stderr.metadata() } else { std::fs::metadata(dir) }.unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(dir.join("turnserver.conf"))
            .env("JOURNAL_STREAM", format!("{}:{}", stat.dev(), stat.ino()))
            .env("MEETING_JOURNAL_SOCKET", dir.join("journal.socket"))
            .env_remove("TURN_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start turn");
        Self { child, dir: dir.to_owned() }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("turn-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, port: u16, level: &str) {
    let config = format!(
        "listening-ip=127.0.0.1\nlistening-port={port}\nno-udp\nno-tls\nrealm=example.org\n\
         use-auth-secret\nstatic-auth-secret={SECRET}\nlt-cred-mech\nuser={USER}:{PASSWORD}\n\
         log-level={level}\n"
    );
    // Written whole, then renamed: the daemon never reads half a file.
    std::fs::write(dir.join("next.conf"), config).unwrap();
    std::fs::rename(dir.join("next.conf"), dir.join("turnserver.conf")).unwrap();
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn entries_carry_fields_and_no_secret_and_sighup_sets_the_level() {
    let dir = scratch("native");
    let port = free_tcp_port();
    write_config(&dir, port, "info");
    let mut journal = Journal::bind(&dir.join("journal.socket"));
    let mut turn = Turn::start(&dir, true);

    let ready = journal.wait_for(0, "\"ready\"", |e| e.message() == "ready");
    let entry = &journal.entries[ready];
    assert_eq!(entry.priority(), 6, "info is syslog's 6");
    assert_eq!(entry.get("SYSLOG_IDENTIFIER").as_deref(), Some("turn"));
    assert_eq!(entry.get("TARGET").as_deref(), Some("turn::run"));
    assert!(entry.get("CODE_FILE").is_some_and(|f| f.ends_with("run.rs")), "{entry:?}");
    assert!(entry.get("CODE_LINE").is_some_and(|l| l.parse::<u32>().is_ok()), "{entry:?}");
    assert!(
        journal.entries.iter().any(|e| e.message() == format!("tcp listening on 127.0.0.1:{port}")),
        "{:#?}",
        journal.messages()
    );
    journal.receive();
    assert!(
        journal.entries.iter().all(|e| e.priority() < 7),
        "info: no debug entry {:#?}",
        journal.messages()
    );

    // Louder: debug entries from the reload on, with the change's own entry first.
    write_config(&dir, port, "debug");
    let before = journal.entries.len();
    turn.signal("-HUP");
    let changed = journal.wait_for(before, "\"log level changed\"", |e| e.message() == "log level changed");
    let entry = &journal.entries[changed];
    assert_eq!(entry.get("OLD_LEVEL").as_deref(), Some("info"), "{entry:?}");
    assert_eq!(entry.get("NEW_LEVEL").as_deref(), Some("debug"), "{entry:?}");
    let counted = journal.wait_for(changed, "at debug", |e| e.priority() == 7);
    let entry = &journal.entries[counted];
    assert_eq!(entry.message(), "credentials in force");
    assert_eq!(entry.get("STATIC_AUTH_SECRETS").as_deref(), Some("1"));
    assert_eq!(entry.get("USERS").as_deref(), Some("1"));

    // A bad level: an error entry, and the level in force stays debug (the next change says so).
    write_config(&dir, port, "loud");
    let before = journal.entries.len();
    turn.signal("-HUP");
    let refused = journal.wait_for(before, "refusing the file", |e| e.priority() == 3);
    let message = journal.entries[refused].message();
    assert!(message.contains("log-level") && message.contains("\"loud\""), "{message}");
    assert!(message.contains("stay as they were") && message.contains("(debug)"), "{message}");

    // Quieter: said before the swap, and nothing at info or below after it.
    write_config(&dir, port, "warn");
    let before = journal.entries.len();
    turn.signal("-HUP");
    let quieter = journal.wait_for(before, "the change to warn", |e| e.message() == "log level changed");
    assert_eq!(journal.entries[quieter].get("OLD_LEVEL").as_deref(), Some("debug"), "the bad file kept it");
    assert_eq!(journal.entries[quieter].get("NEW_LEVEL").as_deref(), Some("warn"));
    turn.signal("-TERM");
    let status = turn.child.wait().unwrap();
    assert!(status.success(), "{status}");
    journal.receive();
    let after = &journal.entries[quieter + 1..];
    assert!(after.iter().all(|e| e.priority() <= 4), "only warnings and errors at warn: {after:#?}");
    assert!(!journal.messages().iter().any(|(_, m)| m == "stopped"), "info is off by then");

    for entry in &journal.entries {
        let raw = String::from_utf8_lossy(&entry.raw);
        for private in [SECRET, PASSWORD, USER] {
            assert!(!raw.contains(private), "{private:?} in a journal entry: {raw:?}");
        }
    }
    let stderr = turn.stderr();
    assert!(
        !stderr.contains("ready") && !stderr.contains("listening on"),
        "lines went to stderr too: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_stream_of_another_file_means_plain_stderr() {
    let dir = scratch("stderr");
    write_config(&dir, free_tcp_port(), "info");
    let mut journal = Journal::bind(&dir.join("journal.socket"));
    let mut turn = Turn::start(&dir, false);
    let deadline = Instant::now() + WAIT;
    while !turn.stderr().contains("INFO ready") {
        assert!(Instant::now() < deadline, "no ready line on stderr: {}", turn.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    turn.signal("-TERM");
    assert!(turn.child.wait().unwrap().success());
    journal.receive();
    assert!(journal.entries.is_empty(), "entries went to the journal: {:#?}", journal.messages());
    let stderr = turn.stderr();
    assert!(!stderr.contains('\x1b'), "no colour in a file: {stderr:?}");
    assert!(stderr.contains("INFO stopped"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
