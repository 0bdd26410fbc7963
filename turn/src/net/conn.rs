//! One client connection: its socket, the TLS session over it, and bounded buffers both ways.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::ServerConnection;

use super::pipe::{PipeBuf, Transfer};
use super::stats::CloseReason;
use crate::server::{ClientTuple, frame_len};

/// The longest message [`frame_len`](crate::server::frame_len) can measure: a STUN header
/// and a 65532-byte body. The read buffer holds at most one partial message of this size plus
/// one read, so a client that sends slowly (or never finishes a message) costs a bounded
/// amount of memory, and the idle timeout ends it.
pub(super) const MAX_MESSAGE: usize = 20 + 65532;

/// What waits to be written to one client: about 50 relayed media packets. A client that
/// does not read loses what does not fit (counted by the server as a full queue), as it
/// would over UDP; the buffer never grows.
pub(super) const OUT_CAPACITY: usize = 64 * 1024;

/// [`TurnIo::to_client`](crate::server::TurnIo::to_client) promises at least this much room.
const MIN_WRITE_ROOM: usize = 1504;

#[derive(Debug)]
pub(super) struct Conn {
    pub stream: TcpStream,
    pub tuple: ClientTuple,
    pub tls: Option<Box<ServerConnection>>,
    /// Received bytes (decrypted, over TLS) not yet a whole message.
    pub inbuf: Vec<u8>,
    out: OutBuf,
    /// Whether the client holds an allocation, as far as the listener can tell (see
    /// `Worker::handle_messages`).
    pub allocated: bool,
    pub accepted: Instant,
    /// The last whole message from the client: partial ones do not count, so trickling bytes
    /// keeps no connection alive.
    pub last_message: Instant,
    /// Queued in the worker's list of connections to flush.
    pub dirty: bool,
    /// A client data connection of a TCP allocation (RFC 6062 §5.4): the index of the peer
    /// connection its bytes are piped to, and no more messages are read from it.
    pub pipe: Option<usize>,
}

pub(super) enum Received {
    /// Bytes were appended to `inbuf`.
    Bytes(usize),
    /// Bytes were appended to `inbuf`, and they were all the socket had: a read shorter than
    /// the buffer empties the receive queue, and the next segment brings a new edge, so the
    /// reader need not spend a system call to hear `EAGAIN` (tokio reasons the same way).
    Drained(usize),
    WouldBlock,
    Closed(CloseReason),
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        tuple: ClientTuple,
        tls: Option<Box<ServerConnection>>,
        now: Instant,
    ) -> Self {
        Self {
            stream,
            tuple,
            tls,
            inbuf: Vec::new(),
            out: OutBuf::default(),
            allocated: false,
            accepted: now,
            last_message: now,
            dirty: false,
            pipe: None,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Reads what the socket has (one read, or over TLS one batch of records) into `inbuf`.
    pub fn receive(&mut self, scratch: &mut [u8]) -> Received {
        let Some(tls) = &mut self.tls else {
            return match self.stream.read(scratch) {
                Ok(0) => Received::Closed(CloseReason::Client),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    if n < scratch.len() { Received::Drained(n) } else { Received::Bytes(n) }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Received::Bytes(0),
                Err(_) => Received::Closed(CloseReason::Client),
            };
        };
        match tls.read_tls(&mut self.stream) {
            Ok(0) => return Received::Closed(CloseReason::Client),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Received::Bytes(0),
            Err(_) => return Received::Closed(CloseReason::Client),
        }
        if tls.process_new_packets().is_err() {
            // Best effort: the alert tells the client why.
            let _ = tls.write_tls(&mut self.stream);
            let reason = if tls.is_handshaking() { CloseReason::Tls } else { CloseReason::Client };
            return Received::Closed(reason);
        }
        let mut total = 0;
        loop {
            match tls.reader().read(scratch) {
                // close_notify: the client is done.
                Ok(0) => return Received::Closed(CloseReason::Client),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    total += n;
                }
                // No more plaintext until more records arrive.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Received::Closed(CloseReason::Client),
            }
        }
        Received::Bytes(total)
    }

    /// Queues one message for the client; `false` if it does not fit.
    pub fn queue(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        self.out.write(write)
    }

    /// Whether anything waits: plaintext of ours, or records (handshake included) of rustls.
    pub fn wants_flush(&self) -> bool {
        !self.out.pending().is_empty() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Writes what the socket takes now; the rest waits for the next writable event.
    pub fn flush(&mut self) -> Result<(), CloseReason> {
        let Some(tls) = &mut self.tls else {
            while !self.out.pending().is_empty() {
                match self.stream.write(self.out.pending()) {
                    Ok(0) => return Err(CloseReason::Client),
                    Ok(n) => self.out.consume(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(CloseReason::Client),
                }
            }
            return Ok(());
        };
        loop {
            let mut progress = false;
            if !self.out.pending().is_empty() {
                // One message per TLS record: some clients (coturn's turnutils_uclient) take one
                // message from each record they read and lose the rest. Our own output always
                // frames; rustls takes what fits under its buffer limit, the rest stays with us.
                let pending = self.out.pending();
                let message = match frame_len(pending) {
                    Ok(Some(len)) if len <= pending.len() => &pending[..len],
                    _ => pending,
                };
                let n = tls.writer().write(message).map_err(|_| CloseReason::Tls)?;
                self.out.consume(n);
                progress |= n > 0;
            }
            if tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => return Err(CloseReason::Client),
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(_) => return Err(CloseReason::Client),
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Reads (over TLS: decrypts) what fits into `into`, one socket read at most.
    pub fn pipe_read(&mut self, into: &mut PipeBuf) -> Transfer {
        let Some(tls) = &mut self.tls else { return into.read_from(&mut self.stream) };
        // Plaintext rustls holds already comes first: the socket is read only when it is
        // drained, so rustls's own buffer stays small.
        let mut moved = 0;
        loop {
            match into.read_from(&mut tls.reader()) {
                Transfer::Moved(n) => {
                    moved += n;
                    continue;
                }
                Transfer::Eof => return Transfer::Eof,
                Transfer::Failed => return Transfer::Failed,
                Transfer::Idle => {}
            }
            if moved > 0 || into.is_full() {
                return if moved > 0 { Transfer::Moved(moved) } else { Transfer::Idle };
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Transfer::Eof,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Transfer::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Transfer::Failed,
            }
            if tls.process_new_packets().is_err() {
                let _ = tls.write_tls(&mut self.stream);
                return Transfer::Failed;
            }
        }
    }

    /// Writes what the socket takes now from `from` (over TLS: encrypts as much as rustls
    /// buffers, then sends its records).
    pub fn pipe_write(&mut self, from: &mut PipeBuf) -> Transfer {
        let Some(tls) = &mut self.tls else { return from.write_to(&mut self.stream) };
        let mut moved = 0;
        loop {
            let mut progress = false;
            if !from.is_empty() {
                let n = tls.writer().write(from.pending()).unwrap_or(0);
                from.consume(n);
                moved += n;
                progress |= n > 0;
            }
            if tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => return Transfer::Failed,
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(_) => return Transfer::Failed,
                }
            }
            if !progress {
                break;
            }
        }
        if moved > 0 { Transfer::Moved(moved) } else { Transfer::Idle }
    }

    /// Gives memory back from a connection that has gone quiet.
    pub fn trim(&mut self) {
        if self.inbuf.is_empty() && self.inbuf.capacity() > 16 * 1024 {
            self.inbuf = Vec::new();
        }
        self.out.trim();
    }
}

/// A fixed-size window `[start, end)` over one allocation: messages are written in place at
/// `end`, the socket takes from `start`. Allocated (zeroed by the allocator, so untouched
/// pages cost nothing) on the first message, and released when the connection goes quiet.
#[derive(Debug, Default)]
struct OutBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl OutBuf {
    fn write(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.buf.is_empty() {
            self.buf = vec![0; OUT_CAPACITY];
        }
        if self.buf.len() - self.end < MIN_WRITE_ROOM && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = &mut self.buf[self.end..];
        if room.len() < MIN_WRITE_ROOM {
            return false;
        }
        let len = room.len();
        self.end += write(room).min(len);
        true
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn trim(&mut self) {
        if self.start == self.end {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_buffer_is_bounded_and_reuses_its_room() {
        let mut out = OutBuf::default();
        let mut queued = 0;
        while out.write(|buf| {
            buf[..1200].fill(7);
            1200
        }) {
            queued += 1;
        }
        assert_eq!(queued, (OUT_CAPACITY - MIN_WRITE_ROOM) / 1200 + 1, "full, never grown");
        assert_eq!(out.buf.len(), OUT_CAPACITY);
        out.consume(2400);
        assert!(out.write(|_| 1200), "room freed at the front is reused");
        assert_eq!(out.pending().len(), queued * 1200 - 2400 + 1200);
        let all = out.pending().len();
        out.consume(all);
        out.trim();
        assert!(out.buf.is_empty(), "a drained buffer is released");
    }
}
