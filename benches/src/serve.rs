//! The child side of `bench-report`: one forwarder in a process of its own.
//!
//! ```text
//! bench-report --serve kernel|kernel-per-core|relay|srtp-gcm|srtp-cm --route FROM=TO[,TO...]... [--workers N] [--pool-slots N]
//!                                                   [--lifetime-secs S]
//! BRIDGE_CONTROL_SECRET=... bench-report --serve sfu [--workers N] [--pool-slots N] [--lifetime-secs S]
//! ```
//!
//! The child binds 127.0.0.1:0, prints one [`Ready`] line on stdout and forwards until its
//! stdin closes (the parent is done with it, or died), SIGTERM arrives (default action), or
//! `--lifetime-secs` pass, whichever comes first, so it can never outlive a run for long.
//!
//! `sfu` is the whole bridge as `bridge::run` wires it: engine, media workers and the control
//! API, the latter on another ephemeral port that the ready line names. It needs no routes:
//! the parent's load generator joins through the API. The API secret comes from the
//! environment (the parent draws a random one), so it never shows in a process listing.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use bridge::config::BridgeConfig;
use bridge::media::srtp::Profile;
use bridge::media::srtp_relay::{SrtpRelay, SrtpRoute};
use bridge::relay::{self, Relay, RelayConfig, Route};
use engine::{BackendChoice, Engine, EngineConfig, MemoryLock};

use crate::{kernel, mmsg, srtp};

/// Kernel buffer of the forwarder sockets: the engine's default, given to the baseline too.
const SOCKET_BUFFER: usize = 4 << 20;

/// Which forwarder a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The recvmmsg/sendmmsg baseline ([`kernel`]) on one unpinned thread and one socket.
    Kernel,
    /// The same baseline in the engine's layout: `workers` threads, each pinned to a core
    /// with its own SO_REUSEPORT socket on the shared port.
    KernelPerCore,
    /// The engine in relay mode ([`bridge::relay`]).
    Relay,
    /// The engine running [`SrtpRelay`] with AEAD_AES_128_GCM: every packet decrypted on
    /// arrival and re-encrypted per copy, keys from [`srtp`].
    SrtpGcm,
    /// The same with AES_CM_128_HMAC_SHA1_80.
    SrtpCm,
    /// The whole SFU ([`bridge::sfu::MediaWorker`] on the engine, with the control API),
    /// driven by [`crate::loadgen`] through real ICE, DTLS and SRTP.
    Sfu,
}

impl Kind {
    /// The SRTP profile of an SRTP forwarder; `None` for the plain forwarders.
    pub fn srtp_profile(self) -> Option<Profile> {
        match self {
            Self::SrtpGcm => Some(Profile::AeadAes128Gcm),
            Self::SrtpCm => Some(Profile::Aes128CmHmacSha1_80),
            Self::Kernel | Self::KernelPerCore | Self::Relay | Self::Sfu => None,
        }
    }

    /// Whether the engine runs it (so that `--pool-slots` and `--batch-wait-us` apply).
    pub fn is_engine(self) -> bool {
        matches!(self, Self::Relay | Self::SrtpGcm | Self::SrtpCm | Self::Sfu)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment in a format string apply.
        f.pad(match self {
            Self::Kernel => "kernel",
            Self::KernelPerCore => "kernel-per-core",
            Self::Relay => "relay",
            Self::SrtpGcm => "srtp-gcm",
            Self::SrtpCm => "srtp-cm",
            Self::Sfu => "sfu",
        })
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kernel" => Ok(Self::Kernel),
            "kernel-per-core" => Ok(Self::KernelPerCore),
            "relay" => Ok(Self::Relay),
            "srtp-gcm" => Ok(Self::SrtpGcm),
            "srtp-cm" => Ok(Self::SrtpCm),
            "sfu" => Ok(Self::Sfu),
            other => Err(format!(
                "--serve {other}: expected kernel, kernel-per-core, relay, srtp-gcm, srtp-cm or sfu"
            )),
        }
    }
}

/// What a child is asked to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub kind: Kind,
    pub routes: Vec<Route>,
    /// Engine workers of the relay, threads of the per-core baseline (the 1-thread baseline
    /// ignores it).
    pub workers: usize,
    /// Packet slots per engine worker (relay only); `None` for the engine's default.
    pub pool_slots: Option<u32>,
    pub batch_wait_us: Option<u32>,
    /// Upper bound on the child's life, in case the parent neither closes stdin nor kills it.
    pub lifetime: Duration,
    /// The control API's secret ([`Kind::Sfu`] only). Handed over in the child's environment
    /// as `BRIDGE_CONTROL_SECRET`, never on its command line.
    pub control_secret: Option<String>,
}

impl ServeOptions {
    /// The command-line arguments that make a child run these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--serve".to_owned(), self.kind.to_string()];
        for route in &self.routes {
            let to: Vec<String> = route.to.iter().map(SocketAddr::to_string).collect();
            args.extend(["--route".to_owned(), format!("{}={}", route.from, to.join(","))]);
        }
        args.extend(["--workers".to_owned(), self.workers.to_string()]);
        args.extend(["--lifetime-secs".to_owned(), self.lifetime.as_secs().to_string()]);
        if let Some(wait) = self.batch_wait_us {
            args.extend(["--batch-wait-us".to_owned(), wait.to_string()]);
        }
        if let Some(slots) = self.pool_slots {
            args.extend(["--pool-slots".to_owned(), slots.to_string()]);
        }
        args
    }

    /// Reads what [`to_args`](Self::to_args) wrote (`args` starts after `--serve`).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (kind, mut rest) = args
            .split_first()
            .ok_or("--serve needs kernel, kernel-per-core, relay, srtp-gcm, srtp-cm or sfu")?;
        let mut options = Self {
            kind: kind.parse()?,
            routes: Vec::new(),
            workers: 1,
            pool_slots: None,
            batch_wait_us: None,
            lifetime: Duration::from_secs(600),
            control_secret: None,
        };
        while let [flag, value, tail @ ..] = rest {
            match flag.as_str() {
                "--route" => options.routes.push(parse_route(value)?),
                "--workers" => {
                    options.workers = value.parse().map_err(|e| format!("--workers {value}: {e}"))?
                }
                "--batch-wait-us" => {
                    options.batch_wait_us =
                        Some(value.parse().map_err(|e| format!("--batch-wait-us {value}: {e}"))?);
                }
                "--pool-slots" => {
                    options.pool_slots =
                        Some(value.parse().map_err(|e| format!("--pool-slots {value}: {e}"))?);
                }
                "--lifetime-secs" => {
                    let secs = value.parse().map_err(|e| format!("--lifetime-secs {value}: {e}"))?;
                    options.lifetime = Duration::from_secs(secs);
                }
                other => return Err(format!("unknown serve option {other}")),
            }
            rest = tail;
        }
        if let [dangling] = rest {
            return Err(format!("{dangling} needs a value"));
        }
        if options.routes.is_empty() && options.kind != Kind::Sfu {
            return Err("--serve needs at least one --route".to_owned());
        }
        Ok(options)
    }
}

/// `FROM=TO[,TO...]`.
fn parse_route(text: &str) -> Result<Route, String> {
    let bad = |e: std::net::AddrParseError| format!("--route {text}: {e}");
    let (from, to) =
        text.split_once('=').ok_or_else(|| format!("--route {text}: expected FROM=TO[,TO...]"))?;
    let to = to.split(',').map(|addr| addr.parse().map_err(bad)).collect::<Result<_, _>>()?;
    Ok(Route { from: from.parse().map_err(bad)?, to })
}

/// The one line a child prints once it forwards: `ready port=P backend=B workers=W`, and
/// ` control=ADDR` after it for the SFU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The media port on 127.0.0.1.
    pub port: u16,
    /// `kernel-mmsg` for the baseline, the engine's backend name for the relay.
    pub backend: String,
    pub workers: usize,
    /// The SFU's control API.
    pub control: Option<SocketAddr>,
}

impl Ready {
    /// The media address.
    pub fn media(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Backend names contain no spaces: `io_uring`, `mmsg`, `kernel-mmsg`.
        write!(f, "ready port={} backend={} workers={}", self.port, self.backend, self.workers)?;
        match self.control {
            Some(control) => write!(f, " control={control}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Ready {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let bad = || format!("unexpected ready line from the forwarder: {line:?}");
        let mut fields = line.trim().strip_prefix("ready ").ok_or_else(bad)?.split(' ');
        let mut value = |key: &str| fields.next().and_then(|f| f.strip_prefix(key)).ok_or_else(bad);
        let port = value("port=")?.parse().map_err(|_| bad())?;
        let backend = value("backend=")?.to_owned();
        let workers = value("workers=")?.parse().map_err(|_| bad())?;
        let control = match fields.next() {
            None => None,
            Some(field) => Some(field.strip_prefix("control=").and_then(|a| a.parse().ok()).ok_or_else(bad)?),
        };
        Ok(Self { port, backend, workers, control })
    }
}

/// Runs the forwarder `options` names until the parent lets go (see the module docs).
pub fn run(options: &ServeOptions) -> Result<(), String> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    match options.kind {
        Kind::Kernel => serve_kernel(options, listen),
        Kind::KernelPerCore => serve_kernel_per_core(options, listen),
        Kind::Relay | Kind::SrtpGcm | Kind::SrtpCm => serve_relay(options, listen),
        Kind::Sfu => serve_sfu(options, listen),
    }
}

fn serve_kernel(options: &ServeOptions, listen: SocketAddr) -> Result<(), String> {
    let socket = mmsg::udp_socket(listen, SOCKET_BUFFER).map_err(|e| format!("bind {listen}: {e}"))?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    let routes = options.routes.clone();
    std::thread::Builder::new()
        .name("kernel-forwarder".to_owned())
        .spawn(move || {
            let error = kernel::run(&socket, &routes);
            // A dead forwarder must not look like a slow one: end the process, which the
            // parent notices.
            eprintln!("kernel forwarder stopped: {error}");
            std::process::exit(1);
        })
        .map_err(|e| e.to_string())?;
    announce(&Ready { port, backend: "kernel-mmsg".to_owned(), workers: 1, control: None })?;
    wait_for_parent(options.lifetime);
    // The forwarder thread sleeps in recvmmsg; returning from main ends it with the process.
    Ok(())
}

/// The baseline in the engine's layout: the first socket resolves port 0, the others join it
/// through SO_REUSEPORT, and thread i, pinned to allowed CPU i (mod their number) as the
/// engine pins worker i, forwards on socket i.
fn serve_kernel_per_core(options: &ServeOptions, listen: SocketAddr) -> Result<(), String> {
    let threads = options.workers.max(1);
    let mut sockets = Vec::with_capacity(threads);
    let mut addr = listen;
    for _ in 0..threads {
        let socket =
            mmsg::udp_socket_reuseport(addr, SOCKET_BUFFER).map_err(|e| format!("bind {addr}: {e}"))?;
        addr = socket.local_addr().map_err(|e| e.to_string())?;
        sockets.push(socket);
    }
    let cpus = engine::affinity::allowed_cpus();
    for (i, socket) in sockets.into_iter().enumerate() {
        let routes = options.routes.clone();
        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        std::thread::Builder::new()
            .name(format!("kernel-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu
                    && let Err(e) = engine::affinity::pin_current_thread(cpu)
                {
                    eprintln!("kernel forwarder {i}: cannot pin to CPU {cpu}: {e}");
                }
                let error = kernel::run(&socket, &routes);
                eprintln!("kernel forwarder {i} stopped: {error}");
                std::process::exit(1);
            })
            .map_err(|e| e.to_string())?;
    }
    announce(&Ready {
        port: addr.port(),
        backend: "kernel-mmsg".to_owned(),
        workers: threads,
        control: None,
    })?;
    wait_for_parent(options.lifetime);
    Ok(())
}

fn serve_relay(options: &ServeOptions, listen: SocketAddr) -> Result<(), String> {
    let engine = start_relay(options, listen)?;
    announce(&Ready {
        port: engine.local_addr().port(),
        backend: backend_name(&engine).to_owned(),
        workers: engine.workers(),
        control: None,
    })?;
    wait_for_parent(options.lifetime);
    if engine.stop() { Ok(()) } else { Err("engine workers did not stop in time".to_owned()) }
}

/// Says on stderr what the engine dropped, by reason, if anything: where the SFU's loss
/// happened, which the kernel's socket counters cannot tell once a packet is inside.
fn report_drops(engine: &Engine) {
    let totals = engine.totals();
    if totals.total_drops() == 0 {
        return;
    }
    let reasons: Vec<String> = engine::DropReason::ALL
        .into_iter()
        .filter(|&reason| totals.drops(reason) > 0)
        .map(|reason| format!("{}={}", reason.as_str(), totals.drops(reason)))
        .collect();
    eprintln!("bench-report --serve: engine drops over its life: {}", reasons.join(" "));
}

fn backend_name(engine: &Engine) -> &'static str {
    match engine.backend() {
        engine::Backend::IoUring => "io_uring",
        engine::Backend::Mmsg => "mmsg",
    }
}

/// The SFU as `bridge::run` starts it, with the engine configured as for the relay and the
/// control API on an ephemeral port of 127.0.0.1.
fn serve_sfu(options: &ServeOptions, listen: SocketAddr) -> Result<(), String> {
    let text = "[control]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n";
    let mut config = BridgeConfig::parse(text)?;
    config.engine = engine_config(options, listen);
    if config.control.resolve_secret()?.is_none() {
        return Err("the SFU child needs BRIDGE_CONTROL_SECRET".into());
    }
    let bridge::run::Sfu { engine, control, .. } = bridge::run::start_sfu(&config)?;
    announce(&Ready {
        port: engine.local_addr().port(),
        backend: backend_name(&engine).to_owned(),
        workers: engine.workers(),
        control,
    })?;
    wait_for_parent(options.lifetime);
    report_drops(&engine);
    if engine.stop() { Ok(()) } else { Err("engine workers did not stop in time".to_owned()) }
}

/// The engine as the bridge runs it, with memory locking off (a benchmark needs no protection
/// from swap, and may run without a raised RLIMIT_MEMLOCK).
fn engine_config(options: &ServeOptions, listen: SocketAddr) -> EngineConfig {
    let defaults = EngineConfig::default();
    EngineConfig {
        listen,
        workers: options.workers,
        pool_slots_per_worker: options.pool_slots.unwrap_or(defaults.pool_slots_per_worker),
        batch_wait_us: options.batch_wait_us.unwrap_or(defaults.batch_wait_us),
        lock_memory: MemoryLock::Off,
        backend: BackendChoice::Auto,
        socket_buffer: SOCKET_BUFFER,
        ..defaults
    }
}

/// The engine in relay mode (or running [`SrtpRelay`] on the same routes, for the SRTP
/// kinds).
fn start_relay(options: &ServeOptions, listen: SocketAddr) -> Result<Engine, String> {
    let relay_config = RelayConfig { routes: options.routes.clone(), ..RelayConfig::default() };
    relay_config.validate()?;
    let config = engine_config(options, listen);
    let table = relay::table(&relay_config, config.worker_count());
    let started = match options.kind.srtp_profile() {
        None => Engine::start(&config, |_| Relay::new(table.clone())),
        Some(profile) => {
            // Source i is the i-th route, as in the load generator. Every worker builds its own
            // contexts (SRTP state is per core); a source's packets all reach one worker.
            let sources: Vec<SocketAddr> = options.routes.iter().map(|route| route.from).collect();
            Engine::start(&config, |_| {
                let routes: HashMap<SocketAddr, SrtpRoute> = sources
                    .iter()
                    .enumerate()
                    .map(|(index, from)| {
                        let to =
                            table[from].iter().map(|&dest| (dest, srtp::sink_context(profile))).collect();
                        (*from, SrtpRoute { inbound: srtp::source_context(profile, index), to })
                    })
                    .collect();
                SrtpRelay::new(routes)
            })
        }
    };
    started.map_err(|e| format!("engine: {e}"))
}

fn announce(ready: &Ready) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{ready}").and_then(|()| stdout.flush()).map_err(|e| format!("stdout: {e}"))
}

/// Blocks until stdin reaches end of file or `lifetime` passes.
fn wait_for_parent(lifetime: Duration) {
    let (closed_tx, closed) = mpsc::channel();
    // A thread, because a read on stdin cannot time out. It sleeps in `read` and costs the
    // measured process no CPU.
    let spawned = std::thread::Builder::new().name("stdin-watch".to_owned()).spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = closed_tx.send(());
    });
    if spawned.is_ok() {
        let _ = closed.recv_timeout(lifetime);
    } else {
        std::thread::sleep(lifetime);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_args() {
        let options = ServeOptions {
            kind: Kind::Relay,
            routes: vec![Route {
                from: "127.0.0.1:5000".parse().unwrap(),
                to: vec!["127.0.0.1:6000".parse().unwrap(), "127.0.0.1:6001".parse().unwrap()],
            }],
            workers: 2,
            pool_slots: Some(512),
            batch_wait_us: Some(100),
            lifetime: Duration::from_secs(30),
            control_secret: None,
        };
        let args = options.to_args();
        let parsed = ServeOptions::parse(&args[1..]).unwrap();
        assert_eq!(parsed.kind, Kind::Relay);
        assert_eq!(parsed.routes[0].to, options.routes[0].to);
        assert_eq!((parsed.workers, parsed.pool_slots, parsed.batch_wait_us), (2, Some(512), Some(100)));
        assert_eq!(parsed.lifetime, Duration::from_secs(30));
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [Kind::Kernel, Kind::KernelPerCore, Kind::Relay, Kind::SrtpGcm, Kind::SrtpCm, Kind::Sfu] {
            assert_eq!(kind.to_string().parse::<Kind>().unwrap(), kind);
        }
        assert!("kernel-per-socket".parse::<Kind>().is_err());
    }

    #[test]
    fn ready_line_round_trips() {
        let ready = Ready { port: 4242, backend: "io_uring".to_owned(), workers: 2, control: None };
        assert_eq!(ready.to_string().parse::<Ready>().unwrap(), ready);
        let sfu = Ready { control: Some("127.0.0.1:8080".parse().unwrap()), ..ready };
        assert_eq!(sfu.to_string().parse::<Ready>().unwrap(), sfu);
        assert!("listening on 4242".parse::<Ready>().is_err());
    }
}
