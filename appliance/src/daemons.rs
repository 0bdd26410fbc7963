//! The bridge and the signaling daemon side by side, one service to the service manager
//! (`sdnotify::host`): one `READY=1` once both serve, one watchdog fed only while both are
//! healthy, one `STOPPING=1` when the first of them ends (SIGTERM reaches both: each handles it
//! as it does when it runs alone).

use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use sdnotify::Notifier;
use sdnotify::host::Host;

/// Both daemons get this long to serve. Each bounds its own start (the probes of its listeners,
/// 10 s); this is the backstop.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Runs both until they have ended; the process exit code (the signaling daemon's when it
/// failed, else the bridge's).
pub fn run(bridge: bridge::config::BridgeConfig, signaling: signaling::config::Config) -> i32 {
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("NOTIFY_SOCKET: {e}; not notifying the service manager");
        Notifier::default()
    });
    let mut host = Host::new(notifier);
    let (ended, exits) = mpsc::channel();
    let supervision = host.daemon("bridge");
    let spawned = spawn("bridge", &ended, move || {
        // SIGHUP: the bridge has nothing to reload; the signaling daemon reloads its certificate.
        bridge::run::run_supervised(bridge, supervision, &mut || {})
    })
    .and_then(|()| {
        let supervision = host.daemon("signaling");
        spawn("signaling", &ended, move || {
            signaling::daemon::run_supervised(signaling, supervision, Box::new(|| {}))
        })
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a daemon's thread: {e}");
        return 1;
    }
    drop(ended);
    match host.ready(READY_WITHIN) {
        Ok(()) => tracing::info!("bridge and signaling serve"),
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    }
    let mut codes = Vec::with_capacity(2);
    // The first to end ends the service: the other is stopping too, or cannot serve alone.
    codes.extend(exits.recv());
    host.stopping();
    codes.extend(exits.recv());
    let code = |name| codes.iter().find(|(n, _)| *n == name).map_or(1, |&(_, code)| code);
    match code("signaling") {
        0 => code("bridge"),
        failed => failed,
    }
}

/// Runs `daemon` on a thread of its own; its exit code goes to `ended` however it ends (a
/// panic counts as exit code 1).
fn spawn<F>(name: &'static str, ended: &Sender<(&'static str, i32)>, daemon: F) -> std::io::Result<()>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let exit = Exit { name, code: 1, ended: ended.clone() };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // The whole guard moves in (a closure would otherwise capture only its field).
            let mut exit = exit;
            exit.code = daemon();
        })
        .map(drop)
}

/// Reports a daemon's end when its thread drops it, after returning or while unwinding.
struct Exit {
    name: &'static str,
    code: i32,
    ended: Sender<(&'static str, i32)>,
}

impl Drop for Exit {
    fn drop(&mut self) {
        let _ = self.ended.send((self.name, self.code));
    }
}
