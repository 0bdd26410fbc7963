//! Several daemons in one process (the appliance runs the bridge and the signaling daemon): to
//! the service manager they are one service, so one `READY=1` once every daemon serves, one
//! watchdog fed only while every daemon is healthy, one `STOPPING=1`.
//!
//! Each daemon is written for a process of its own and takes a [`Supervision`]: `Own`, it
//! notifies and runs its watchdog itself; hosted, its notifier is disabled and the health check
//! it would have fed its watchdog with goes to the [`Host`] instead, which is also how the host
//! learns that the daemon serves.
//!
//! ```no_run
//! use sdnotify::host::Host;
//! let mut host = Host::new(sdnotify::Notifier::from_env().unwrap_or_default());
//! let (a, b) = (host.daemon("bridge"), host.daemon("signaling"));
//! // ... start each daemon on a thread of its own with its Supervision ...
//! # drop((a, b));
//! host.ready(std::time::Duration::from_secs(30))?; // READY=1, the watchdog starts
//! // ... until a daemon returns ...
//! host.stopping();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::{Notifier, Watchdog};

/// A daemon's health check, as a watchdog runs it.
pub type HealthCheck = Box<dyn FnMut() -> bool + Send>;

/// Who speaks to the service manager for a daemon.
#[derive(Debug, Default)]
pub enum Supervision {
    /// The daemon is the service: `NOTIFY_SOCKET` and `WATCHDOG_USEC` are its own.
    #[default]
    Own,
    /// The daemon is one of several in the process; the [`Host`] speaks for all of them.
    Hosted(Hosted),
}

/// A hosted daemon's line to its host. Dropped before the daemon served (it failed to start),
/// it tells the host so, and the host stops waiting for it.
#[derive(Debug)]
pub struct Hosted {
    name: &'static str,
    host: Option<Sender<Event>>,
}

enum Event {
    Ready(&'static str, HealthCheck),
    Gone(&'static str),
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ready(name, _) => write!(f, "Ready({name})"),
            Self::Gone(name) => write!(f, "Gone({name})"),
        }
    }
}

impl Drop for Hosted {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            let _ = host.send(Event::Gone(self.name));
        }
    }
}

impl Supervision {
    /// The notifier the daemon sends through: the manager's (`NOTIFY_SOCKET`) for its own
    /// service, a disabled one when hosted, so that its READY, STATUS and STOPPING go nowhere.
    pub fn notifier(&self) -> io::Result<Notifier> {
        match self {
            Self::Own => Notifier::from_env(),
            Self::Hosted(_) => Ok(Notifier::default()),
        }
    }

    /// The daemon serves and `healthy` tells whether it still does. Its own service: starts
    /// the watchdog (after the daemon's `READY=1`). Hosted: hands `healthy` to the host, whose
    /// one watchdog runs it with the other daemons' checks.
    pub fn watch<F>(self, notifier: &Notifier, healthy: F) -> io::Result<Option<Watchdog>>
    where
        F: FnMut() -> bool + Send + 'static,
    {
        match self {
            Self::Own => Watchdog::from_env(notifier, healthy),
            Self::Hosted(mut hosted) => {
                if let Some(host) = hosted.host.take() {
                    // The host gone (it gave up waiting) leaves nobody to tell: not our failure.
                    let _ = host.send(Event::Ready(hosted.name, Box::new(healthy)));
                }
                Ok(None)
            }
        }
    }
}

/// The process's side: the one service the manager sees.
#[derive(Debug)]
pub struct Host {
    notifier: Notifier,
    events: Receiver<Event>,
    sender: Sender<Event>,
    daemons: Vec<&'static str>,
    watchdog: Option<Watchdog>,
}

impl Host {
    pub fn new(notifier: Notifier) -> Self {
        let (sender, events) = mpsc::channel();
        Self { notifier, events, sender, daemons: Vec::new(), watchdog: None }
    }

    /// The supervision for one more daemon, `name`d in errors.
    pub fn daemon(&mut self, name: &'static str) -> Supervision {
        self.daemons.push(name);
        Supervision::Hosted(Hosted { name, host: Some(self.sender.clone()) })
    }

    /// Waits until every daemon serves, then sends `READY=1` and starts one watchdog that is fed
    /// only while every daemon's check passes (each check runs every time, so each daemon logs
    /// its own failure). An error when a daemon stopped first, or `within` passed.
    pub fn ready(&mut self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        let mut checks = Vec::with_capacity(self.daemons.len());
        while checks.len() < self.daemons.len() {
            match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Ready(_, check)) => checks.push(check),
                Ok(Event::Gone(name)) => {
                    return Err(io::Error::other(format!("the {name} stopped before serving")));
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let waiting = self.daemons.len() - checks.len();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{waiting} daemon(s) did not serve within {within:?}"),
                    ));
                }
            }
        }
        self.notifier.ready()?;
        let healthy = move || checks.iter_mut().fold(true, |all, check| check() & all);
        self.watchdog = Watchdog::from_env(&self.notifier, healthy)?;
        Ok(())
    }

    /// Shutdown has begun: the watchdog ends and the manager hears so, once.
    pub fn stopping(&mut self) {
        drop(self.watchdog.take());
        let _ = self.notifier.stopping();
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}
