//! Running under systemd (`Type=notify`, `WatchdogSec=`): readiness once the bridge really
//! serves, a watchdog fed only while it is healthy, and the stop notice. Outside systemd all of
//! it is a no-op.

use std::net::SocketAddr;
use std::time::Duration;

use engine::Engine;
use sdnotify::host::Supervision;
use sdnotify::{Notifier, Watchdog, probe};

/// How long the listeners get to answer their first request before start-up fails.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// One probe's patience: loopback answers in microseconds unless something is stuck.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The bridge's side of the service manager's protocol.
#[derive(Debug)]
pub struct Service {
    notifier: Notifier,
    watchdog: Option<Watchdog>,
}

impl Service {
    /// Waits until the control API (`control`) and the metrics endpoint (`metrics`) answer
    /// HTTP requests, then sends `READY=1` and starts the watchdog. The engine's workers are
    /// already receiving (`Engine::start` returns only then). The watchdog is fed while every
    /// worker turns its loop and the control API answers: a stuck worker drops media, a stuck
    /// API leaves the signaling daemon unable to place anyone, and a restart cures both.
    /// Hosted in a bigger process (`supervision`), the host gets that check instead and speaks
    /// for the bridge.
    pub fn ready(
        engine: &Engine,
        control: Option<SocketAddr>,
        metrics: Option<SocketAddr>,
        supervision: Supervision,
    ) -> Result<Self, String> {
        // Any status proves the server answers: the API wants a secret the probe does not send.
        for (addr, path) in [(control, "/v1/health"), (metrics, "/metrics")] {
            if let Some(addr) = addr {
                probe::until_ok(READY_WITHIN, || probe::http_status(addr, path, PROBE_TIMEOUT))
                    .map_err(|e| format!("http://{addr}{path} does not answer: {e}"))?;
            }
        }
        let notifier = supervision.notifier().unwrap_or_else(|e| {
            tracing::warn!("NOTIFY_SOCKET: {e}; not notifying the service manager");
            Notifier::default()
        });
        let status = format!("forwarding on {} with {} workers", engine.local_addr(), engine.workers());
        if let Err(e) = notifier.status(&status).and_then(|()| notifier.ready()) {
            tracing::warn!("cannot notify the service manager: {e}");
        }
        let mut liveness = engine.liveness();
        let healthy = move || {
            let workers = liveness.check();
            let api =
                control.is_none_or(|addr| probe::http_status(addr, "/v1/health", PROBE_TIMEOUT).is_ok());
            if !(workers && api) {
                tracing::warn!(workers, api, "health check failed: not feeding the watchdog");
            }
            workers && api
        };
        let watchdog = supervision.watch(&notifier, healthy).map_err(|e| format!("watchdog thread: {e}"))?;
        if watchdog.is_some() {
            tracing::info!("watchdog on: fed while the workers turn and the control API answers");
        }
        Ok(Self { notifier, watchdog })
    }

    /// Shutdown has begun: the watchdog ends (draining workers stop turning, which is no
    /// failure) and the manager hears so.
    pub fn stopping(&mut self) {
        drop(self.watchdog.take());
        let _ = self.notifier.stopping();
    }

    /// What `systemctl status` shows while a drain waits for meetings to end.
    pub fn status(&self, status: &str) {
        let _ = self.notifier.status(status);
    }
}
