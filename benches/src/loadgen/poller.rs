//! The two kernel objects the media loop sleeps on: an epoll set over the participants'
//! sockets, and a timerfd that fires every tick. The loop wakes for whichever comes first, so
//! a packet is read (and its latency measured) when it arrives, not at the next tick.
//!
//! This file, [`super::batch`] and [`super::clock`] hold loadgen's only `unsafe`: plain
//! syscalls on descriptors and memory they own.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance with a preallocated event array.
pub struct Poller {
    epoll: OwnedFd,
    events: Box<[libc::epoll_event]>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("epoll", &self.epoll).field("capacity", &self.events.len()).finish()
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

impl Poller {
    /// Room for `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)].into_boxed_slice();
        Ok(Self { epoll, events })
    }

    /// Watches `fd` for readability (level-triggered); its events carry `token`.
    pub fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `event` is a live local the kernel copies from; `fd` is the caller's open
        // descriptor, which it keeps open while registered (the worker owns both).
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })?;
        Ok(())
    }

    /// Waits up to `timeout` for readiness; calls `ready` with the token of each ready
    /// descriptor. An interrupted wait returns no events.
    pub fn wait(&mut self, timeout: Duration, mut ready: impl FnMut(u64)) -> io::Result<()> {
        let millis = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: the kernel writes at most `events.len()` events into the boxed array, which
        // `&mut self` keeps alive and unaliased for the call.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                millis,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(error) };
        }
        for event in &self.events[..n as usize] {
            // A copy: `epoll_event` is packed on x86-64, its fields cannot be borrowed.
            let token = event.u64;
            ready(token);
        }
        Ok(())
    }
}

/// A periodic CLOCK_MONOTONIC timerfd: the media loop's tick.
#[derive(Debug)]
pub struct Ticker {
    fd: OwnedFd,
}

impl Ticker {
    pub fn new(period: Duration) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = check(unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        })?;
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let spec = libc::timespec { tv_sec: period.as_secs() as _, tv_nsec: period.subsec_nanos() as _ };
        let setting = libc::itimerspec { it_interval: spec, it_value: spec };
        // SAFETY: `setting` is a live local the kernel reads; no old value is asked for.
        check(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &setting, std::ptr::null_mut()) })?;
        Ok(Self { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Consumes the expirations so far (the descriptor stops being readable); returns how
    /// many there were, 0 if none.
    pub fn expirations(&self) -> u64 {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live local u64, the size a timerfd read requires.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
        if n == 8 { count } else { 0 }
    }
}
