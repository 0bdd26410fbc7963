//! Waking a sleeping worker when another core hands it work.
//!
//! A worker with nothing to do sleeps in the kernel (io_uring wait or poll) on its eventfd as
//! well as its socket. Before sleeping it raises `sleeping` and re-checks its inbound queues;
//! a producer, after pushing, checks `sleeping` and writes the eventfd only if it is raised.
//! This is the store-then-load handshake (Dekker): each side stores, then loads what the other
//! stores. Each side needs a SeqCst *fence* between its store and its load: a SeqCst load
//! alone does not stop the earlier Release store of the queue index from being reordered after
//! it (x86 reorders a store with a later load), and then both sides can miss each other and
//! the worker sleeps on a full queue. With the fences at least one side sees the other's
//! write. A busy worker costs its peers no syscall at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering, fence};

#[derive(Debug)]
pub struct Waker {
    eventfd: OwnedFd,
    sleeping: AtomicBool,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { eventfd, sleeping: AtomicBool::new(false) })
    }

    pub fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Called by the owner before it re-checks its queues and blocks.
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Called by the owner when it runs again.
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Called by a producer after pushing work for the owner. Returns whether it woke it.
    pub fn wake_if_sleeping(&self) -> bool {
        fence(Ordering::SeqCst);
        let woke = self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel);
        if woke {
            self.wake();
        }
        woke
    }

    /// Unconditional wake (shutdown).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter (EAGAIN) means
        // a wake is already pending, which is all we need.
        unsafe { libc::write(self.fd(), (&raw const one).cast(), 8) };
    }

    /// Clears pending wakes (poll backend; io_uring reads the eventfd itself).
    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when nothing is pending.
        unsafe { libc::read(self.fd(), (&raw mut value).cast(), 8) };
    }
}
