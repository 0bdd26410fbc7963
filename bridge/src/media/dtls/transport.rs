//! The "socket" OpenSSL reads and writes: two bounded queues of whole datagrams. OpenSSL
//! drives it through the `openssl` crate's stream BIO (`SslStream`), so no memory BIOs are
//! needed (DESIGN.md). Each `write` is one datagram: during the handshake OpenSSL buffers a
//! flight's records and flushes at most [`MTU`](super::MTU) bytes per write; afterwards it
//! writes one record per call. Each `read` hands over one datagram, which is what OpenSSL's
//! DTLS record layer expects of a datagram BIO.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use super::DtlsError;

/// Received datagrams waiting for OpenSSL. `handle_datagram` lets OpenSSL consume each one
/// right away, so this only fills if OpenSSL stops reading; the bound keeps a flood from
/// growing memory.
pub const INCOMING_LIMIT: usize = 8;
/// Datagrams waiting for `poll_transmit`. A full flight is a handful; a caller that does not
/// poll loses the excess, which retransmission recovers, as with a full socket buffer.
pub const OUTGOING_LIMIT: usize = 32;

#[derive(Debug, Default)]
pub struct Datagrams {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
    /// Outgoing datagrams dropped because the queue was full or the caller's buffer too small.
    dropped_outgoing: u64,
}

impl Datagrams {
    /// Queues a received datagram for OpenSSL.
    pub fn push_incoming(&mut self, datagram: &[u8]) -> Result<(), DtlsError> {
        if self.incoming.len() >= INCOMING_LIMIT {
            return Err(DtlsError::QueueFull);
        }
        self.incoming.push_back(datagram.to_vec());
        Ok(())
    }

    /// Copies the next datagram to send into `out`; returns its length. A datagram larger
    /// than `out` is dropped (and counted), never truncated.
    pub fn pop_outgoing(&mut self, out: &mut [u8]) -> Option<usize> {
        while let Some(datagram) = self.outgoing.pop_front() {
            let Some(dst) = out.get_mut(..datagram.len()) else {
                self.dropped_outgoing += 1;
                continue;
            };
            dst.copy_from_slice(&datagram);
            return Some(datagram.len());
        }
        None
    }

    pub fn dropped_outgoing(&self) -> u64 {
        self.dropped_outgoing
    }
}

impl Read for Datagrams {
    /// One datagram per call; `WouldBlock` when none is queued, which OpenSSL turns into
    /// `SSL_ERROR_WANT_READ`. A datagram longer than `buf` is cut, as `recv` would.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        Ok(len)
    }
}

impl Write for Datagrams {
    /// One datagram per call, always accepted: when the queue is full it is dropped like a
    /// packet on a full socket buffer, so OpenSSL never sees a write error.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outgoing.len() >= OUTGOING_LIMIT {
            self.dropped_outgoing += 1;
        } else {
            self.outgoing.push_back(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_is_bounded_and_read_one_datagram_at_a_time() {
        let mut queue = Datagrams::default();
        for i in 0..INCOMING_LIMIT {
            queue.push_incoming(&[i as u8; 3]).unwrap();
        }
        assert_eq!(queue.push_incoming(&[9]), Err(DtlsError::QueueFull));
        let mut buf = [0u8; 16];
        assert_eq!(queue.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], &[0; 3]);
        let mut tiny = [0u8; 2];
        assert_eq!(queue.read(&mut tiny).unwrap(), 2, "cut, as recv cuts");
        while queue.read(&mut buf).is_ok() {}
        assert_eq!(queue.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn outgoing_drops_what_does_not_fit() {
        let mut queue = Datagrams::default();
        for _ in 0..OUTGOING_LIMIT + 2 {
            assert_eq!(queue.write(&[1; 100]).unwrap(), 100);
        }
        assert_eq!(queue.dropped_outgoing(), 2);
        let mut small = [0u8; 50];
        assert_eq!(queue.pop_outgoing(&mut small), None, "too big for the buffer: dropped");
        assert_eq!(queue.dropped_outgoing(), 2 + OUTGOING_LIMIT as u64);
    }
}
