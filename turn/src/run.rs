//! The `turn` daemon: listeners, workers, metrics, signals.
//!
//! [`run`] starts everything a configuration asks for and returns when SIGTERM or SIGINT
//! arrives and every worker has stopped (freeing its allocations, so every relay socket is
//! closed). SIGHUP reloads the credentials from the configuration file and the TLS certificate;
//! a change of the certificate files reloads it too (checked every [`CERT_CHECK_INTERVAL`]).
//! Under systemd it says when it is ready, reloading and stopping, and feeds the watchdog
//! ([`crate::service`]). It logs through `tracing` (to the journal under systemd, see
//! `sdnotify::logging`), SIGHUP applies `log-level` again, and nothing it logs names a user, a
//! secret, a client or a peer (DESIGN.md, privacy invariants).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use sdnotify::logging::LogHandle;

use crate::auth::Credentials;
use crate::config::TurnConfig;
use crate::health::{Health, Heartbeat};
use crate::net::{
    self, CertStore, Limits, MetricsEndpoint, NetStats, StreamListener, StreamLiveness, WorkerHandle,
    WorkerSetup,
};
use crate::offload::KernelRelay;
use crate::server::{Server, Shared, Transport};
use crate::service::{self, Service};
use crate::udp::{self, UdpListener};

/// How often the certificate files are checked for a change.
pub const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Why the daemon could not start.
#[derive(Debug)]
pub enum RunError {
    /// The configuration cannot work (exit status 2, like a parse error).
    Config(String),
    /// The system refused something: a port taken, no permission (exit status 1).
    Io(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Io(_) => 1,
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) | Self::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the daemon until SIGTERM or SIGINT. `path` is where `config` came from: SIGHUP reads
/// the credentials and the log level (applied through `log`) from it again.
pub fn run(config: &TurnConfig, path: &Path, log: &LogHandle) -> Result<(), RunError> {
    let certs = tls_certificate(config)?;
    // Registered before anything starts, so a signal during start-up is not lost.
    let mut signals = Signals::register().map_err(|e| RunError::Io(format!("signal handlers: {e}")))?;
    let shared = Arc::new(Shared { kernel_relay: load_kernel_relay(config)?, ..Shared::new(config) });
    let stats = Arc::new(NetStats::default());
    let mut nonce_key = [0u8; 32];
    SystemRandom::new().fill(&mut nonce_key).map_err(|_| RunError::Io("no system randomness".into()))?;

    let listeners = bind_stream_listeners(config)?;
    let udp = start_udp(config, &shared, nonce_key)?;
    let workers = start_stream_workers(config, &listeners, certs.as_ref(), &shared, &stats, nonce_key)?;
    let mut probed =
        service::Listeners { udp: udp.as_ref().map(UdpListener::local_addr), ..Default::default() };
    listeners.iter().for_each(|l| probed.stream(l.local, l.transport));
    let health = watch_workers(udp.as_ref(), &workers);
    if config.prometheus {
        probed.metrics = Some(start_metrics(config, &shared, &stats, &health)?);
    }
    let mut service = Service::ready(probed, health).map_err(RunError::Io)?;
    tracing::info!("ready");
    log_credentials(config);

    loop {
        let timeout = certs.as_ref().map(|_| CERT_CHECK_INTERVAL);
        match signals.wait(timeout) {
            Signal::Stop => break,
            Signal::Reload => {
                service.reloading();
                reload_file(path, config, &shared, log);
                if let Some(certs) = &certs {
                    report_reload(certs.reload(), "SIGHUP", &stats);
                } else {
                    tracing::info!("SIGHUP: no TLS certificate to reload");
                }
                service.reloaded();
            }
            Signal::None => {
                if let Some(result) = certs.as_ref().and_then(|c| c.reload_if_changed()) {
                    report_reload(result, "the files changed", &stats);
                }
            }
        }
    }
    service.stopping();
    tracing::info!("stopping");
    for worker in &workers {
        worker.stop();
    }
    for worker in workers {
        worker.join();
    }
    if let Some(udp) = udp
        && !udp.stop()
    {
        tracing::warn!("the UDP workers did not stop in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The certificate, when a TLS listener is to run: it must load now, or the daemon does not
/// start (a reload later may fail and keep the old one; a first load has none to keep).
fn tls_certificate(config: &TurnConfig) -> Result<Option<Arc<CertStore>>, RunError> {
    if config.no_tls {
        return Ok(None);
    }
    let (Some(cert), Some(pkey)) = (&config.cert, &config.pkey) else {
        return Err(RunError::Config(format!(
            "the TLS listener (tls-listening-port={}) needs cert and pkey: set both, or set no-tls",
            config.tls_listening_port
        )));
    };
    CertStore::load(cert, pkey).map(Some).map_err(RunError::Config)
}

/// SIGHUP: the log level first (so the reload's own lines show at the new one), then the
/// credentials (`realm`, `use-auth-secret`, `static-auth-secret`, `lt-cred-mech`, `user`), for
/// every worker's next authentication. A file that no longer parses changes nothing; other
/// settings that changed are reported, not applied.
fn reload_file(path: &Path, running: &TurnConfig, shared: &Shared, log: &LogHandle) {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| TurnConfig::parse(&text).map(|parsed| parsed.config));
    let new = match parsed {
        Ok(new) => new,
        Err(e) => {
            return tracing::error!(
                "SIGHUP: {}: {e}; the credentials and the log level ({}) stay as they were",
                path.display(),
                log.level()
            );
        }
    };
    log.reload(new.log_level);
    shared.credentials.replace(Credentials::new(&new));
    tracing::info!("credentials reloaded (SIGHUP); new authentications use them");
    log_credentials(&new);
    let mut others = new;
    others.realm.clone_from(&running.realm);
    others.use_auth_secret = running.use_auth_secret;
    others.static_auth_secrets.clone_from(&running.static_auth_secrets);
    others.lt_cred_mech = running.lt_cred_mech;
    others.users.clone_from(&running.users);
    others.log_level = running.log_level;
    if others != *running {
        tracing::warn!("SIGHUP: settings other than the credentials changed too; they apply after a restart");
    }
}

/// The in-kernel ChannelData relay on the configured interfaces, or `None` when none is.
fn load_kernel_relay(config: &TurnConfig) -> Result<Option<KernelRelay>, RunError> {
    if config.kernel_relay_interfaces.is_empty() {
        return Ok(None);
    }
    let relay = KernelRelay::load(&config.kernel_relay_interfaces).map_err(RunError::Io)?;
    tracing::info!(interfaces = ?config.kernel_relay_interfaces, "kernel relay attached");
    Ok(Some(relay))
}

/// How many credentials are in force: counts only, never a name or a secret.
fn log_credentials(config: &TurnConfig) {
    tracing::debug!(
        static_auth_secrets = config.static_auth_secrets.len(),
        users = config.users.len(),
        "credentials in force"
    );
}

fn report_reload(result: Result<(), String>, why: &str, stats: &NetStats) {
    stats.cert_reloaded(result.is_ok());
    match result {
        Ok(()) => tracing::info!("TLS certificate reloaded ({why}); new handshakes use it"),
        Err(e) => tracing::error!("TLS certificate reload ({why}) failed, the old one stays: {e}"),
    }
}

fn bind_stream_listeners(config: &TurnConfig) -> Result<Vec<StreamListener>, RunError> {
    let mut listeners = Vec::new();
    let wildcard = config.listening_ips.is_empty();
    let mut kinds = Vec::new();
    if !config.no_tcp {
        kinds.push((Transport::Tcp, config.listening_port, "tcp"));
    }
    if !config.no_tls {
        kinds.push((Transport::Tls, config.tls_listening_port, "tls"));
    }
    for ip in net::listening_ips(&config.listening_ips) {
        for &(transport, port, name) in &kinds {
            let addr = SocketAddr::new(ip, port);
            match StreamListener::bind(addr, transport) {
                Ok(listener) => {
                    tracing::info!("{name} listening on {}", listener.local);
                    listeners.push(listener);
                }
                // A host without IPv6 still serves IPv4 when no address was asked for.
                Err(e)
                    if wildcard
                        && ip.is_ipv6()
                        && matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)) =>
                {
                    tracing::info!("{name}: IPv6 is not available here ({e}); IPv4 only");
                }
                Err(e) => return Err(RunError::Io(format!("cannot listen on {name} {addr}: {e}"))),
            }
        }
    }
    Ok(listeners)
}

/// TURN over UDP on the packet engine, unless `no-udp`: one `Server` per engine worker, on
/// the same quota, metrics and nonce key as the stream workers (a nonce from one transport is
/// good on the other).
fn start_udp(
    config: &TurnConfig,
    shared: &Arc<Shared>,
    nonce_key: [u8; 32],
) -> Result<Option<UdpListener>, RunError> {
    if config.no_udp {
        return Ok(None);
    }
    let engine = udp::engine_defaults();
    let listener = udp::start_udp(config, Arc::clone(shared), nonce_key, &engine).map_err(RunError::Io)?;
    for addr in listener.local_addrs() {
        tracing::info!("listening on {addr} (UDP)");
    }
    Ok(Some(listener))
}

/// One stream worker per core, each with its own `Server` on the shared quota and metrics.
fn start_stream_workers(
    config: &TurnConfig,
    listeners: &[StreamListener],
    certs: Option<&Arc<CertStore>>,
    shared: &Arc<Shared>,
    stats: &Arc<NetStats>,
    nonce_key: [u8; 32],
) -> Result<Vec<WorkerHandle>, RunError> {
    if listeners.is_empty() {
        return Ok(Vec::new());
    }
    let tls = certs.map(|c| c.server_config()).transpose().map_err(RunError::Config)?;
    let count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let setups = (0..count)
        .map(|_| WorkerSetup {
            server: Server::new(config, Arc::clone(shared), nonce_key),
            tls: tls.clone(),
            limits: Limits::default(),
            stats: Arc::clone(stats),
            relay_ports: (config.min_port, config.max_port),
        })
        .collect();
    let workers = net::spawn_all("turn-stream", listeners, setups)
        .map_err(|e| RunError::Io(format!("cannot start the stream workers: {e}")))?;
    Ok(workers)
}

/// The health check of `/health` and the watchdog: the UDP engine's workers and the stream
/// workers must all keep turning their loops.
fn watch_workers(udp: Option<&UdpListener>, workers: &[WorkerHandle]) -> Arc<Health> {
    let mut groups: Vec<(&'static str, Box<dyn Heartbeat>)> = Vec::new();
    if let Some(udp) = udp {
        groups.push(("a UDP worker is stuck", Box::new(udp.engine().liveness())));
    }
    if !workers.is_empty() {
        groups.push(("a TCP/TLS worker is stuck", Box::new(StreamLiveness::new(workers))));
    }
    Arc::new(Health::new(groups, Instant::now()))
}

/// Starts the metrics endpoint; returns the address it is bound to.
fn start_metrics(
    config: &TurnConfig,
    shared: &Arc<Shared>,
    stats: &Arc<NetStats>,
    health: &Arc<Health>,
) -> Result<SocketAddr, RunError> {
    let addr = SocketAddr::new(config.prometheus_address, config.prometheus_port);
    let endpoint = MetricsEndpoint::bind(addr, Arc::clone(shared), Arc::clone(stats), Arc::clone(health))
        .map_err(|e| RunError::Io(format!("cannot serve metrics on {addr}: {e}")))?;
    let bound = endpoint.local_addr().map_err(|e| RunError::Io(format!("metrics on {addr}: {e}")))?;
    tracing::info!("metrics on http://{addr}/metrics");
    std::thread::Builder::new()
        .name("turn-metrics".into())
        .spawn(move || endpoint.serve())
        .map_err(|e| RunError::Io(format!("cannot start the metrics thread: {e}")))?;
    Ok(bound)
}

enum Signal {
    Stop,
    Reload,
    /// The wait timed out.
    None,
}

/// SIGTERM/SIGINT and SIGHUP as flags, plus a self-pipe that wakes the waiting thread: the
/// handlers do nothing but store and write, all the work happens on the main thread.
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    wake: UnixStream,
}

impl Signals {
    fn register() -> io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let (wake, write) = UnixStream::pair()?;
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        // Actions of one signal run in registration order: the flag is set before the wake.
        for (signal, flag) in [(SIGTERM, &stop), (SIGINT, &stop), (SIGHUP, &reload)] {
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(Self { stop, reload, wake })
    }

    /// The next signal, or `Signal::None` after `timeout` (`None`: wait for a signal).
    fn wait(&mut self, timeout: Option<Duration>) -> Signal {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Signal::Stop;
            }
            if self.reload.swap(false, Ordering::SeqCst) {
                return Signal::Reload;
            }
            if self.wake.set_read_timeout(timeout).is_err() {
                return Signal::None;
            }
            let mut bytes = [0u8; 16];
            match self.wake.read(&mut bytes) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Signal::None,
            }
        }
    }
}
