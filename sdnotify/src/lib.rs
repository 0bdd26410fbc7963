//! The service manager's notification protocol (sd_notify(3)) without libsystemd: one datagram
//! of `KEY=VALUE` lines to the unix socket named by `NOTIFY_SOCKET`.
//!
//! A daemon drives it like this:
//!
//! ```no_run
//! let notifier = sdnotify::Notifier::from_env().unwrap_or_default();
//! // ... bind the listeners, check that they answer ...
//! notifier.ready()?;
//! let _watchdog = sdnotify::Watchdog::from_env(&notifier, || true)?; // a real health check
//! // ... serve until SIGTERM ...
//! notifier.stopping()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op that succeeds, so a daemon
//! calls them unconditionally. Messages carry no credentials of their own: the kernel attaches
//! the sender's process id, which is what `NotifyAccess=main` checks, so any thread may send.

#![forbid(unsafe_code)]

pub mod host;
pub mod journal;
pub mod logging;
pub mod probe;

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where notifications go; cheap to clone (the socket is shared).
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    /// `None`: not started by a service manager, every notification is dropped.
    target: Option<Arc<Target>>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names, or a disabled notifier when it is unset. An address
    /// that is set but unusable is an error (the caller logs it and may go on without).
    pub fn from_env() -> io::Result<Self> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(Self::default()),
            Some(address) => Self::for_address(address.to_str().ok_or_else(|| invalid("not UTF-8"))?),
        }
    }

    /// A notifier sending to `address`: a path, or `@name` for an abstract socket (what
    /// systemd uses for `NOTIFY_SOCKET` inside containers and in tests).
    pub fn for_address(address: &str) -> io::Result<Self> {
        let addr = if let Some(name) = address.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if address.starts_with('/') {
            SocketAddr::from_pathname(address)?
        } else {
            // systemd 253+ also speaks vsock ("vsock:CID:PORT"), for virtual machines; not needed
            // by a daemon on its host.
            return Err(invalid("NOTIFY_SOCKET is neither a path nor an abstract @name"));
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Self { target: Some(Arc::new(Target { socket, addr })) })
    }

    /// Whether a service manager is listening.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state`, one or more `KEY=VALUE` lines, as one datagram.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let Some(target) = &self.target else { return Ok(()) };
        let sent = target.socket.send_to_addr(state.as_bytes(), &target.addr)?;
        if sent == state.len() { Ok(()) } else { Err(io::Error::other("notification truncated")) }
    }

    /// Start-up (or a reload) is complete: the daemon serves.
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// A reload has begun; [`ready`](Self::ready) ends it. systemd 253+ wants the monotonic
    /// time with it (`Type=notify-reload`); older versions ignore both lines.
    pub fn reloading(&self) -> io::Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
    }

    /// Shutdown has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// A watchdog keep-alive: the daemon is healthy.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// A one-line status for `systemctl status`. Newlines would start new assignments, so they
    /// become spaces.
    pub fn status(&self, status: &str) -> io::Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.notify(&format!("STATUS={}", status.replace('\n', " ")))
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

/// The watchdog interval the service manager asked of this process (`WATCHDOG_USEC`), or
/// `None` when it asked none. `WATCHDOG_PID`, when set, must name this process: a child that
/// inherited the environment must not ping on its parent's behalf.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    match usec?.trim().parse::<u64>().ok()? {
        0 => None,
        usec => Some(Duration::from_micros(usec)),
    }
}

/// A thread that sends `WATCHDOG=1` every half interval, but only when the daemon's health
/// check passes: a daemon whose workers are stuck stops pinging, and systemd restarts it after
/// one full interval. Half the interval leaves room for one late or failed check. Dropping it
/// stops the thread at once.
#[derive(Debug)]
pub struct Watchdog {
    /// Dropping the sender wakes the thread and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts pinging when both a notify socket and a watchdog interval are in the environment;
    /// `Ok(None)` otherwise.
    pub fn from_env<F>(notifier: &Notifier, healthy: F) -> io::Result<Option<Self>>
    where
        F: FnMut() -> bool + Send + 'static,
    {
        match watchdog_interval() {
            Some(interval) if notifier.is_enabled() => {
                Self::start(notifier.clone(), interval, healthy).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Checks `healthy` and pings every `interval / 2`, the first time half an interval from now
    /// (a check may compare against the state when it started).
    pub fn start<F>(notifier: Notifier, interval: Duration, mut healthy: F) -> io::Result<Self>
    where
        F: FnMut() -> bool + Send + 'static,
    {
        let period = interval / 2;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            loop {
                match stopped.recv_timeout(period) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // A send error (the manager went away) changes nothing: keep checking, it may be
                // back after `systemctl daemon-reexec`.
                if healthy() {
                    let _ = notifier.watchdog();
                }
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
