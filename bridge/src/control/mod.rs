//! The control API the signaling daemon drives: HTTP/JSON on a private address, every request
//! authenticated with a shared secret (see `bridge/API.md`). It runs on its own thread with a
//! single-threaded tokio runtime, away from the media workers, together with the registry's
//! housekeeping (speaker selection, consent expiry) and the media counters' export.

pub mod api;
pub mod auth;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::sfu::Registry;
use crate::sfu::counters::{MediaDrop, MediaEvent};
use api::ApiState;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Where the API listens. Keep it private: it can create and end conferences.
    pub listen: String,
    /// The shared secret (at least 16 characters). Empty: read `secret_file`, or the
    /// `BRIDGE_CONTROL_SECRET` environment variable; with none of them the API stays off.
    pub secret: String,
    pub secret_file: String,
    pub max_conferences: usize,
    pub max_endpoints: usize,
    pub max_endpoints_per_conference: usize,
    pub empty_conference_timeout_s: u64,
    /// On SIGTERM the bridge drains: it refuses new conferences and exits once the current
    /// ones have ended, or after this many seconds, whichever comes first. 0 stops at once.
    pub drain_timeout_s: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        let limits = crate::sfu::registry::Limits::default();
        Self {
            listen: "127.0.0.1:8080".into(),
            secret: String::new(),
            secret_file: String::new(),
            max_conferences: limits.max_conferences,
            max_endpoints: limits.max_endpoints,
            max_endpoints_per_conference: limits.max_endpoints_per_conference,
            empty_conference_timeout_s: limits.empty_conference_timeout.as_secs(),
            drain_timeout_s: 1800,
        }
    }
}

impl ControlConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        if !self.secret.is_empty() && self.secret.len() < auth::MIN_SECRET_LEN {
            return Err(format!("control.secret: at least {} characters", auth::MIN_SECRET_LEN));
        }
        if self.max_conferences == 0 || self.max_endpoints == 0 || self.max_endpoints_per_conference < 2 {
            return Err("control.max_*: limits must allow at least one conference of two".into());
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|e| format!("control.listen: {e}: {:?}", self.listen))
    }

    pub fn limits(&self) -> crate::sfu::registry::Limits {
        crate::sfu::registry::Limits {
            max_conferences: self.max_conferences,
            max_endpoints: self.max_endpoints,
            max_endpoints_per_conference: self.max_endpoints_per_conference,
            empty_conference_timeout: Duration::from_secs(self.empty_conference_timeout_s),
        }
    }

    /// The secret from the configuration, its file, or the environment; `None` if unset.
    pub fn resolve_secret(&self) -> Result<Option<String>, String> {
        let secret = if !self.secret.is_empty() {
            self.secret.clone()
        } else if !self.secret_file.is_empty() {
            std::fs::read_to_string(&self.secret_file)
                .map_err(|e| format!("control.secret_file {}: {e}", self.secret_file))?
                .trim()
                .to_owned()
        } else {
            match std::env::var("BRIDGE_CONTROL_SECRET") {
                Ok(secret) => secret,
                Err(_) => return Ok(None),
            }
        };
        if secret.len() < auth::MIN_SECRET_LEN {
            return Err(format!("control secret: at least {} characters", auth::MIN_SECRET_LEN));
        }
        Ok(Some(secret))
    }
}

/// Announced media addresses and the engine's facts, for the API's answers.
#[derive(Clone, Debug)]
pub struct MediaFacts {
    pub announce: Vec<IpAddr>,
    pub port: u16,
    pub workers: usize,
    pub backend: &'static str,
}

/// The running control thread. Dropping it does not stop it; the process exit does.
#[derive(Debug)]
pub struct ControlServer {
    pub local_addr: SocketAddr,
}

/// Binds the API and starts its thread. Errors (address in use) come back before any thread
/// starts, so the daemon can refuse to start with a clear message.
pub fn start(
    config: &ControlConfig,
    secret: String,
    registry: Arc<Registry>,
    facts: MediaFacts,
    metrics_interval: Duration,
) -> Result<ControlServer, String> {
    let addr = config.listen_addr()?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("control.listen {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = Arc::new(ApiState {
        registry,
        secret: secret.into_bytes(),
        announce: facts.announce,
        media_port: facts.port,
        workers: facts.workers,
        backend: facts.backend,
        wake_housekeeping: tokio::sync::Notify::new(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("control runtime: {e}"))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => return tracing::error!("control API: {e}"),
                };
                tokio::spawn(housekeeping(state.clone()));
                tokio::spawn(export_media_counters(state.registry.clone(), metrics_interval));
                if let Err(e) = axum::serve(listener, api::router(state)).await {
                    tracing::error!("control API stopped: {e}");
                }
            })
        })
        .map_err(|e| format!("control thread: {e}"))?;
    Ok(ControlServer { local_addr })
}

/// Runs the registry's tick while conferences exist, and sleeps until one appears otherwise:
/// an idle bridge wakes for nothing.
async fn housekeeping(state: Arc<ApiState>) {
    loop {
        match state.registry.tick_interval() {
            Some(interval) => {
                tokio::time::sleep(interval).await;
                state.registry.tick(Instant::now());
            }
            None => state.wake_housekeeping.notified().await,
        }
    }
}

async fn export_media_counters(registry: Arc<Registry>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        for reason in MediaDrop::ALL {
            metrics::counter!("bridge_media_drops_total", "reason" => reason.as_str())
                .absolute(registry.drops(reason));
        }
        for event in MediaEvent::ALL {
            metrics::counter!(format!("bridge_media_{}_total", event.as_str()))
                .absolute(registry.events(event));
        }
        let (conferences, endpoints) = registry.sizes();
        metrics::gauge!("bridge_conferences").set(conferences as f64);
        metrics::gauge!("bridge_endpoints").set(endpoints as f64);
        for (worker, busy) in registry.worker_busy(Instant::now()).into_iter().enumerate() {
            metrics::gauge!("bridge_worker_busy_ratio", "worker" => worker.to_string()).set(busy);
        }
    }
}
