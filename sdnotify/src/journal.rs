//! The journal's native protocol: one unix datagram per entry, to `/run/systemd/journal/socket`,
//! made of `FIELD=value\n` lines, or for a value that holds a newline the binary form
//! `FIELD\n`, its length as a little-endian u64, the value and `\n` (systemd's "Native Journal
//! Protocol"). Each tracing event becomes one entry with `PRIORITY`, `MESSAGE`,
//! `SYSLOG_IDENTIFIER`, `TARGET`, `CODE_FILE`, `CODE_LINE` and its own fields, upper-cased, so
//! `journalctl -o verbose` shows them and `journalctl FIELD=value` selects by them.
//!
//! An entry larger than [`MAX_DATAGRAM`] has its message cut short rather than being lost:
//! systemd passes larger entries in a sealed memfd, which needs more than std offers.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Where journald listens.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides [`DEFAULT_SOCKET`]; tests point it at a socket of their own.
pub const SOCKET_ENV: &str = "MEETING_JOURNAL_SOCKET";
/// The largest datagram sent. A unix datagram may be as large as the sender's socket buffer
/// (`net.core.wmem_default`, about 208 KiB); 64 KiB stays well below it on any host and far
/// above any line a daemon of ours should log.
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Event field values beyond this are cut, so that the message always keeps room.
const MAX_FIELD_VALUE: usize = 2048;
/// Room kept for `MESSAGE` when event fields are many or long.
const MESSAGE_RESERVE: usize = 4096;
/// journald ignores longer field names.
const MAX_NAME: usize = 64;
/// Ends a value that was cut.
const CUT: &str = "…";
/// The fields this layer sets itself; an event field of the same name gets a prefix instead of
/// adding a second value to them.
const OWN_FIELDS: [&str; 6] =
    ["PRIORITY", "MESSAGE", "SYSLOG_IDENTIFIER", "TARGET", "CODE_FILE", "CODE_LINE"];

/// The socket path: [`SOCKET_ENV`] when set, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV).map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// Whether standard error is the journal stream systemd connected (`JOURNAL_STREAM=dev:ino`
/// names it). Inherited by a child whose stderr goes elsewhere, the variable no longer
/// matches, which is why it is compared rather than merely present.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let stat =
        std::io::stderr().as_fd().try_clone_to_owned().and_then(|fd| std::fs::File::from(fd).metadata());
    match (stream.to_str(), stat) {
        (Some(stream), Ok(stat)) => names_stream(stream, stat.dev(), stat.ino()),
        _ => false,
    }
}

/// Whether `JOURNAL_STREAM`'s value names the file with `dev` and `ino`.
fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else { return false };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The syslog priority of a tracing level (syslog(3): 3 err, 4 warning, 6 info, 7 debug).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A [`Layer`] that sends every event it is shown to the journal. Sending never blocks the
/// caller on an error and never panics: a failed send is counted ([`JournalLayer::dropped`]).
#[derive(Debug)]
pub struct JournalLayer {
    socket: UnixDatagram,
    identifier: String,
    /// One datagram's worth, reused: events from any thread take turns (logging is off the
    /// packet path, and the lock is held for one encoding and one send).
    buf: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

impl JournalLayer {
    /// Connects to the journal socket at `path`; an error when nothing listens there.
    /// `identifier` becomes every entry's `SYSLOG_IDENTIFIER`.
    pub fn connect(path: &Path, identifier: &str) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Self {
            socket,
            identifier: identifier.to_owned(),
            buf: Mutex::new(Vec::with_capacity(1024)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Entries the journal did not take (it was gone, or its queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let entry = Entry {
            priority: priority(meta.level()),
            identifier: &self.identifier,
            target: meta.target(),
            file: meta.file(),
            line: meta.line(),
            message: &fields.message,
            fields: &fields.others,
        };
        // encode() cannot panic, so a poisoned lock only means another thread's send was cut
        // short; the buffer is cleared before use anyway.
        let mut buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        buf.clear();
        encode(&mut buf, &entry, MAX_DATAGRAM);
        if self.socket.send(&buf).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An event's message and other fields, as text.
#[derive(Default)]
struct EventFields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.others.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        // Events from the `log` crate carry their metadata as `log.*` fields; TARGET and
        // CODE_* already say it.
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.others.push((field.name(), format!("{value:?}")));
        }
    }
}

/// One journal entry before encoding.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub priority: u8,
    pub identifier: &'a str,
    pub target: &'a str,
    pub file: Option<&'a str>,
    pub line: Option<u32>,
    pub message: &'a str,
    /// Event fields by their tracing names, sanitized on encoding.
    pub fields: &'a [(&'static str, String)],
}

/// Appends `entry` to `buf` as one datagram of at most `max` bytes (`max` well above
/// [`MESSAGE_RESERVE`]). The message goes last, so that whatever room is left is its own: cut
/// short, it ends with "…".
pub(crate) fn encode(buf: &mut Vec<u8>, entry: &Entry<'_>, max: usize) {
    let start = buf.len();
    put(buf, b"PRIORITY", &[b'0' + entry.priority.min(7)]);
    put(buf, b"SYSLOG_IDENTIFIER", cut(entry.identifier, MAX_FIELD_VALUE).0.as_bytes());
    put(buf, b"TARGET", cut(entry.target, MAX_FIELD_VALUE).0.as_bytes());
    if let Some(file) = entry.file {
        put(buf, b"CODE_FILE", cut(file, MAX_FIELD_VALUE).0.as_bytes());
    }
    if let Some(line) = entry.line {
        put(buf, b"CODE_LINE", line.to_string().as_bytes());
    }
    let mut name = Vec::with_capacity(MAX_NAME);
    for (raw, value) in entry.fields {
        sanitize(raw, &mut name);
        let (value, was_cut) = cut(value, MAX_FIELD_VALUE);
        let size = field_size(&name, value.as_bytes(), was_cut);
        // A field that would crowd out the message is left out, not the message.
        if buf.len() - start + size + MESSAGE_RESERVE > max {
            continue;
        }
        put_parts(buf, &name, &[value.as_bytes(), if was_cut { CUT.as_bytes() } else { b"" }]);
    }
    let message = entry.message.as_bytes();
    if buf.len() - start + field_size(b"MESSAGE", message, false) <= max {
        put(buf, b"MESSAGE", message);
        return;
    }
    // Assume the binary form's 8 length bytes: whether the kept part holds a newline is not
    // known before cutting.
    let room = max.saturating_sub(buf.len() - start + b"MESSAGE".len() + 1 + 8 + 1 + CUT.len());
    let (kept, _) = cut(entry.message, room);
    put_parts(buf, b"MESSAGE", &[kept.as_bytes(), CUT.as_bytes()]);
}

/// `value` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn cut(value: &str, max: usize) -> (&str, bool) {
    if value.len() <= max {
        return (value, false);
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    (&value[..end], true)
}

/// The bytes `put` writes for a field, with "…" added when `cut`.
fn field_size(name: &[u8], value: &[u8], cut: bool) -> usize {
    let len = value.len() + if cut { CUT.len() } else { 0 };
    let binary = if value.contains(&b'\n') { 8 } else { 0 };
    name.len() + 1 + binary + len + 1
}

fn put(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    put_parts(buf, name, &[value]);
}

/// Writes one field whose value is `parts` joined: `NAME=value\n`, or when the value holds a
/// newline, `NAME\n` + length (u64, little-endian) + value + `\n`.
fn put_parts(buf: &mut Vec<u8>, name: &[u8], parts: &[&[u8]]) {
    buf.extend_from_slice(name);
    if parts.iter().any(|part| part.contains(&b'\n')) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        buf.push(b'\n');
        buf.extend_from_slice(&(len as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    parts.iter().for_each(|part| buf.extend_from_slice(part));
    buf.push(b'\n');
}

/// A journal field name for a tracing field name: upper case, `[A-Z0-9_]` only (anything else
/// becomes `_`), at most 64 bytes. Names starting with `_` are the journal's trusted fields and
/// a leading digit is not allowed, so those, and the names this layer sets itself, get an `F_`
/// prefix (`_id` becomes `F__ID`, `2fa` becomes `F_2FA`).
pub(crate) fn sanitize(raw: &str, name: &mut Vec<u8>) {
    name.clear();
    name.extend(
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() as u8 } else { b'_' }),
    );
    let reserved = OWN_FIELDS.iter().any(|own| own.as_bytes() == name.as_slice());
    if name.first().is_none_or(|first| *first == b'_' || first.is_ascii_digit()) || reserved {
        name.splice(0..0, *b"F_");
    }
    name.truncate(MAX_NAME);
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
