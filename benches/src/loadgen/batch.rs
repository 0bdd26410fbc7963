//! The send side of the media loop: a preallocated `sendmmsg` batch. A participant's packets
//! of one tick (an audio packet, a video frame's burst, a consent check) are written straight
//! into its buffers and go out in one system call on the participant's connected socket.

use std::os::fd::RawFd;

use crate::mmsg;

/// Room for one datagram: any packet loadgen sends plus the SRTP tag.
const SLOT: usize = 1500;

pub struct SendBatch {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    buffers: Box<[[u8; SLOT]]>,
    /// Datagrams written and not yet sent.
    queued: usize,
    /// The socket the queued datagrams are for.
    fd: RawFd,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.buffers.len())
            .field("queued", &self.queued)
            .finish()
    }
}

/// What the batch sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub sent: u64,
    pub failed: u64,
}

impl SendBatch {
    pub fn new(capacity: usize) -> Self {
        let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Self {
            headers: (0..capacity).map(|_| mmsg::zeroed_header()).collect(),
            iovecs: vec![empty; capacity].into_boxed_slice(),
            buffers: vec![[0u8; SLOT]; capacity].into_boxed_slice(),
            queued: 0,
            fd: -1,
        }
    }

    /// Writes one datagram for socket `fd` with `write`, which fills the buffer and returns
    /// the datagram's length (`None`: nothing to send after all). A full batch, or one for
    /// another socket, is sent first.
    /// A datagram `write` refuses (SRTP could not protect it) counts as failed.
    pub fn push(&mut self, fd: RawFd, sent: &mut Sent, write: impl FnOnce(&mut [u8]) -> Option<usize>) {
        if self.queued == self.buffers.len() || (self.queued > 0 && fd != self.fd) {
            *sent = add(*sent, self.flush());
        }
        self.fd = fd;
        match write(&mut self.buffers[self.queued]) {
            Some(len) => {
                self.iovecs[self.queued].iov_len = len.min(SLOT);
                self.queued += 1;
            }
            None => sent.failed += 1,
        }
    }

    /// Sends what is queued.
    pub fn flush(&mut self) -> Sent {
        if self.queued == 0 {
            return Sent::default();
        }
        let count = self.queued;
        self.queued = 0;
        // The pointers are set on every flush from `self`, borrowed for the whole call, so
        // they can never be stale.
        let rows = self.headers[..count].iter_mut().zip(self.iovecs.iter_mut()).zip(self.buffers.iter_mut());
        for ((header, iov), buffer) in rows {
            iov.iov_base = buffer.as_mut_ptr().cast();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            // The socket is connected to the bridge: no destination address.
            header.msg_hdr.msg_name = std::ptr::null_mut();
            header.msg_hdr.msg_namelen = 0;
        }
        // SAFETY: every header points at its own iovec, over its own buffer, all owned by
        // `self`, which is borrowed mutably for the whole call.
        let outcome = unsafe { mmsg::send_all(self.fd, &mut self.headers[..count]) };
        Sent { sent: outcome.sent as u64, failed: outcome.failed as u64 }
    }
}

pub fn add(a: Sent, b: Sent) -> Sent {
    Sent { sent: a.sent + b.sent, failed: a.failed + b.failed }
}
