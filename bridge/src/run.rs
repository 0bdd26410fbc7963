//! Process-level wiring: privacy hardening, engine, metrics, signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::{Engine, MetricsPump};
use sdnotify::host::Supervision;

use crate::config::BridgeConfig;
use crate::control::{self, MediaFacts};
use crate::media::dtls::Certificate;
use crate::relay::{self, Relay};
use crate::service::Service;
use crate::sfu::{MediaWorker, Registry};

/// Turns core dumps off: a dump would write packet memory and keys to disk (privacy invariant 5).
pub fn disable_core_dumps() {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on this process with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Runs the bridge until SIGTERM or SIGINT; returns the process exit code. SIGHUP is logged and
/// otherwise ignored (the appliance has no file to read again).
pub fn run(config: BridgeConfig) -> i32 {
    run_with_hangup(config, &mut || {
        tracing::info!("SIGHUP: nothing to reload; the configuration is read at start only");
    })
}

/// [`run`], calling `on_hangup` on the main loop's thread for each SIGHUP (the daemon reloads its
/// log level there).
pub fn run_with_hangup(config: BridgeConfig, on_hangup: &mut dyn FnMut()) -> i32 {
    run_supervised(config, Supervision::Own, on_hangup)
}

/// [`run_with_hangup`], told who speaks to the service manager: one of several daemons in a
/// process (the appliance) hands its health check to the process's host instead.
pub fn run_supervised(config: BridgeConfig, supervision: Supervision, on_hangup: &mut dyn FnMut()) -> i32 {
    disable_core_dumps();
    crate::host::warn_untuned(&config.engine);
    // Before anything starts, so a SIGTERM during start-up still drains and exits cleanly.
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, signalled.clone()) {
            tracing::error!("cannot install signal handler: {e}");
            return 1;
        }
    }
    // SIGHUP's default action ends the process; a reflexive `systemctl reload` must not.
    let hangup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone()) {
        tracing::error!("cannot install signal handler: {e}");
        return 1;
    }
    let engine = if config.relay.routes.is_empty() {
        start_sfu(&config).map(|sfu| (sfu.engine, sfu.control, Some(sfu.registry)))
    } else {
        start_relay(&config).map(|engine| (engine, None, None))
    };
    let (engine, control, registry) = match engine {
        Ok(started) => started,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };

    let _pump = match start_metrics(&config, &engine) {
        Ok(pump) => pump,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };

    // Port 0 (tests) cannot be probed: the exporter does not say which port it got.
    let metrics = config.metrics.listen_addr().ok().flatten().filter(|addr| addr.port() != 0);
    let mut service = match Service::ready(&engine, control, metrics, supervision) {
        Ok(service) => service,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };

    let stop = engine.stop_handle();
    let drain_timeout = Duration::from_secs(config.control.drain_timeout_s);
    let mut drain: Option<Drain> = None;
    let mut signal_seen = false;
    while !stop.is_stopping() {
        if signalled.swap(false, Ordering::Relaxed) {
            signal_seen = true;
            match (&registry, &drain) {
                (Some(registry), None) if !drain_timeout.is_zero() && registry.sizes().0 > 0 => {
                    drain = Some(Drain::start(registry, drain_timeout, &mut service));
                }
                _ => break, // nothing to wait for, or a second signal: stop now
            }
        }
        if let (Some(registry), Some(d)) = (&registry, &mut drain)
            && d.done(registry, &service)
        {
            break;
        }
        if hangup.swap(false, Ordering::Relaxed) {
            on_hangup();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let failed = stop.is_stopping() && !signal_seen;
    service.stopping();
    tracing::info!("stopping: draining queued packets");
    let clean = engine.stop();
    tracing::info!("stopped");
    if failed || !clean { 1 } else { 0 }
}

/// A drain on SIGTERM: new conferences are refused, the current ones go on until they end or
/// the deadline passes. The meetings a rolling restart must not cut.
struct Drain {
    deadline: Instant,
    last_count: usize,
}

impl Drain {
    fn start(registry: &Registry, timeout: Duration, service: &mut Service) -> Self {
        registry.set_draining(true);
        service.stopping();
        let (conferences, endpoints) = registry.sizes();
        tracing::info!(
            conferences,
            endpoints,
            "SIGTERM: draining; exiting when the last conference ends or in {} s (a second SIGTERM stops now)",
            timeout.as_secs()
        );
        Self { deadline: Instant::now() + timeout, last_count: usize::MAX }
    }

    /// Whether the bridge may stop now: no conference left, or out of time.
    fn done(&mut self, registry: &Registry, service: &Service) -> bool {
        let (conferences, endpoints) = registry.sizes();
        if conferences == 0 {
            tracing::info!("drained: the last conference has ended");
            return true;
        }
        if Instant::now() >= self.deadline {
            tracing::warn!(conferences, endpoints, "drain time ran out: stopping with conferences left");
            return true;
        }
        if conferences != self.last_count {
            self.last_count = conferences;
            service.status(&format!("draining: {conferences} conferences, {endpoints} endpoints left"));
        }
        false
    }
}

/// Relay mode: the static forwarding table, no crypto (the benchmark baseline).
fn start_relay(config: &BridgeConfig) -> Result<Engine, String> {
    let table = relay::table(&config.relay, config.engine.worker_count());
    let engine = Engine::start(&config.engine, |_| Relay::new(table.clone())).map_err(|e| e.to_string())?;
    tracing::info!(
        "bridge relaying on {} with {} workers, {} routes",
        engine.local_addr(),
        engine.workers(),
        config.relay.routes.len()
    );
    Ok(engine)
}

/// A running SFU: the engine with its media workers, the registry they share with the control
/// API, and where that API listens (`None`: no secret, so it is off).
#[derive(Debug)]
pub struct Sfu {
    pub engine: Engine,
    pub registry: Arc<Registry>,
    pub control: Option<SocketAddr>,
}

/// SFU mode: the media workers and the control API. Public for the tools and tests that run
/// the bridge in their own process (`bench-report`, loadgen's tests).
pub fn start_sfu(config: &BridgeConfig) -> Result<Sfu, String> {
    let secret = config.control.resolve_secret()?;
    let certificate = Certificate::generate().map_err(|e| format!("DTLS certificate: {e}"))?;
    let workers = config.engine.worker_count();
    let registry = Registry::new(certificate, config.control.limits(), workers);
    #[cfg(feature = "test-tap")]
    let registry = registry.with_tap(config.test_tap.records);
    #[cfg(feature = "test-tap")]
    if let Some(tap) = registry.tap() {
        tracing::warn!("test build: the tap records the first {} forwarded packets", tap.capacity());
    }
    let registry = Arc::new(registry);
    let engine = Engine::start(&config.engine, |worker| MediaWorker::new(registry.clone(), worker))
        .map_err(|e| format!("engine: {e}"))?;
    registry.watch_workers(engine.load());
    let listen = engine.local_addr();
    let announce = config.media.announced(listen);
    if announce.is_empty() {
        tracing::warn!(
            "media.announce is empty and engine.listen is {listen}: endpoints get no ICE candidates"
        );
    }
    tracing::info!("bridge media on {listen} with {} workers, announced as {announce:?}", engine.workers());
    let Some(secret) = secret else {
        tracing::warn!("control API off: set control.secret, control.secret_file or BRIDGE_CONTROL_SECRET");
        return Ok(Sfu { engine, registry, control: None });
    };
    let facts = MediaFacts {
        announce,
        port: listen.port(),
        workers: engine.workers(),
        backend: match engine.backend() {
            engine::Backend::IoUring => "io_uring",
            engine::Backend::Mmsg => "mmsg",
        },
    };
    let interval = Duration::from_millis(config.metrics.interval_ms);
    let server = control::start(&config.control, secret, registry.clone(), facts, interval)?;
    tracing::info!("control API on http://{}/v1/", server.local_addr);
    Ok(Sfu { engine, registry, control: Some(server.local_addr) })
}

fn start_metrics(config: &BridgeConfig, engine: &Engine) -> Result<Option<MetricsPump>, String> {
    let Some(addr) = config.metrics.listen_addr()? else {
        return Ok(None);
    };
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("metrics.listen {addr}: {e}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    let interval = Duration::from_millis(config.metrics.interval_ms);
    MetricsPump::start(engine.counter_handles(), engine.pool_locked(), interval)
        .map(Some)
        .map_err(|e| e.to_string())
}
