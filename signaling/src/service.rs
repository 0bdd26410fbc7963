//! Running under systemd (`Type=notify`, `WatchdogSec=`): `READY=1` once the HTTPS listener
//! accepts and its connection tasks run, a watchdog fed while the runtime and the listener
//! answer, and SIGHUP, which reloads the TLS certificate. Outside systemd the notifications
//! are no-ops and SIGHUP still reloads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use sdnotify::host::Supervision;
use sdnotify::{Notifier, probe};

use crate::config::Config;
use crate::tls::Certificate;

/// How long the listener gets to answer its first connection before start-up fails.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// One probe's patience: loopback answers in microseconds unless something is stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Not a TLS record: the server reads it, fails the handshake and closes the connection, which
/// is the reaction the probe waits for. It costs no handshake and logs nothing.
const NOT_TLS: &[u8] = b"probe\r\n";

/// What the daemon does first on each SIGHUP, before the certificate.
pub type OnHangup = Box<dyn FnMut() + Send>;

/// The notifier from `NOTIFY_SOCKET` (disabled, with a warning, when that is unusable), or a
/// disabled one when the daemon is hosted (the host notifies for the process).
pub fn notifier(supervision: &Supervision) -> Notifier {
    supervision.notifier().unwrap_or_else(|e| {
        tracing::warn!("NOTIFY_SOCKET: {e}; not notifying the service manager");
        Notifier::default()
    })
}

/// Runs beside the server for the daemon's lifetime: waits until `listen` answers, sends
/// `READY=1`, starts the watchdog (hosted: hands its check to the host instead), then handles
/// SIGHUP. Returns only when start-up fails (the
/// exit code), so the daemon's `select!` ends with it.
pub async fn supervise(
    notifier: Notifier,
    supervision: Supervision,
    listen: SocketAddr,
    config: Config,
    certificate: Arc<Certificate>,
    mut on_hangup: OnHangup,
) -> i32 {
    // First: SIGHUP's default action would end the process.
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!("SIGHUP handler: {e}");
            return 1;
        }
    };
    let answered = tokio::task::spawn_blocking(move || {
        probe::until_ok(READY_WITHIN, || probe::stream_reacts(listen, NOT_TLS, PROBE_TIMEOUT))
    })
    .await;
    match answered {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!("https://{listen}/ does not answer: {e}");
            return 1;
        }
        Err(e) => {
            tracing::error!("readiness probe: {e}");
            return 1;
        }
    }
    if let Err(e) = notifier.status(&format!("serving on {listen}")).and_then(|()| notifier.ready()) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
    let runtime = tokio::runtime::Handle::current();
    let healthy = move || {
        let runtime = runs_tasks(&runtime);
        let listener = probe::stream_reacts(listen, NOT_TLS, PROBE_TIMEOUT).is_ok();
        if !(runtime && listener) {
            tracing::warn!(runtime, listener, "health check failed: not feeding the watchdog");
        }
        runtime && listener
    };
    let _watchdog = match supervision.watch(&notifier, healthy) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            tracing::error!("watchdog thread: {e}");
            return 1;
        }
    };
    while hangups.recv().await.is_some() {
        let _ = notifier.reloading();
        on_hangup();
        match certificate.reload(&config) {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded; new connections use it"),
            Err(e) => tracing::error!("SIGHUP: TLS certificate reload failed, the old one stays: {e}"),
        }
        let _ = notifier.ready();
    }
    std::future::pending().await
}

/// Whether the runtime runs a new task within the probe timeout: its workers are not all
/// blocked.
fn runs_tasks(runtime: &tokio::runtime::Handle) -> bool {
    let (done, ran) = mpsc::channel();
    runtime.spawn(async move {
        let _ = done.send(());
    });
    ran.recv_timeout(PROBE_TIMEOUT).is_ok()
}
