//! The buffer of one direction of a TCP allocation's byte pipe (RFC 6062): allocated once,
//! with the peer connection, and never grown. A full buffer is backpressure: its source is
//! not read until the destination takes some, so a slow reader slows its sender down through
//! TCP's own flow control rather than costing the server memory.

use std::io::{self, Read, Write};

/// Bytes held per direction: enough to keep a loopback or LAN path busy between two turns of
/// the loop, small enough that the connection limit bounds the total (two per peer
/// connection: 128 KiB, about what a client connection costs at its fullest).
pub(super) const PIPE_CAPACITY: usize = 64 * 1024;

/// What one read or write across the pipe did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transfer {
    Moved(usize),
    /// Nothing now: the socket would block, or the buffer is full (reading) or empty
    /// (writing). Whoever frees the way runs the pipe again.
    Idle,
    /// The source closed its side.
    Eof,
    Failed,
}

/// A window `[start, end)` over a fixed buffer; the socket reads in at `end` and writes out
/// from `start`, and what is left is moved to the front when the end is reached.
#[derive(Debug)]
pub(super) struct PipeBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl PipeBuf {
    pub fn new() -> Self {
        Self { buf: vec![0; PIPE_CAPACITY].into_boxed_slice(), start: 0, end: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.buf.len()
    }

    /// The free room at the end, after moving what is held to the front if that makes room.
    pub fn room(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Counts `n` bytes written into [`room`](Self::room).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Appends `bytes` if they fit whole; `false` otherwise.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let room = self.room();
        let Some(into) = room.get_mut(..bytes.len()) else { return false };
        into.copy_from_slice(bytes);
        self.filled(bytes.len());
        true
    }

    /// One read from `source` into the room.
    pub fn read_from(&mut self, source: &mut impl Read) -> Transfer {
        let room = self.room();
        if room.is_empty() {
            return Transfer::Idle;
        }
        match source.read(room) {
            Ok(0) => Transfer::Eof,
            Ok(n) => {
                self.filled(n);
                Transfer::Moved(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Transfer::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Transfer::Moved(0),
            Err(_) => Transfer::Failed,
        }
    }

    /// One write of what is held to `sink`.
    pub fn write_to(&mut self, sink: &mut impl Write) -> Transfer {
        if self.is_empty() {
            return Transfer::Idle;
        }
        match sink.write(self.pending()) {
            Ok(0) => Transfer::Failed,
            Ok(n) => {
                self.consume(n);
                Transfer::Moved(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Transfer::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Transfer::Moved(0),
            Err(_) => Transfer::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_fills_to_its_capacity_and_reuses_freed_room() {
        let mut pipe = PipeBuf::new();
        let mut source = io::repeat(7);
        let mut total = 0;
        while let Transfer::Moved(n) = pipe.read_from(&mut source) {
            total += n;
        }
        assert_eq!(total, PIPE_CAPACITY, "full, never grown");
        assert!(pipe.is_full());
        assert_eq!(pipe.read_from(&mut source), Transfer::Idle, "a full buffer reads nothing");
        let mut sink = Vec::new();
        let mut limited = (&mut sink).take_writer(1000);
        assert_eq!(pipe.write_to(&mut limited), Transfer::Moved(1000));
        assert_eq!(pipe.read_from(&mut source), Transfer::Moved(1000), "freed room is reused");
        assert_eq!(pipe.pending().len(), PIPE_CAPACITY);
    }

    /// A writer that takes at most `left` bytes in all.
    struct Limited<'a> {
        sink: &'a mut Vec<u8>,
        left: usize,
    }

    trait TakeWriter<'a> {
        fn take_writer(self, left: usize) -> Limited<'a>;
    }

    impl<'a> TakeWriter<'a> for &'a mut Vec<u8> {
        fn take_writer(self, left: usize) -> Limited<'a> {
            Limited { sink: self, left }
        }
    }

    impl Write for Limited<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.left);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.left -= n;
            self.sink.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
