//! Starting and stopping the workers.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::affinity::{allowed_cpus, pin_current_thread};
use crate::config::{BackendChoice, ConfigError, EngineConfig};
use crate::counters::{Counts, WorkerCounters};
use crate::handler::{Handler, WorkerId};
use crate::liveness::Liveness;
use crate::load::Load;
use crate::mesh;
use crate::pool::{PacketPool, PoolError, SLOT_SIZE};
use crate::socket;
use crate::steer;
use crate::wake::Waker;
use crate::worker::sockets::SocketTable;
use crate::worker::{Core, Ready, Shutdown, WorkerSetup, mmsg, uring};

/// The backend the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    IoUring,
    Mmsg,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IoUring => "io_uring",
            Self::Mmsg => "recvmmsg/sendmmsg",
        })
    }
}

/// Why the engine did not start.
#[derive(Debug)]
pub enum StartError {
    Config(ConfigError),
    Pool(PoolError),
    /// `backend = "io_uring"` was configured and the kernel refused it.
    IoUringRefused(std::io::Error),
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `steer_by_source_ip` was configured and the kernel refused the reuseport program.
    Steer(std::io::Error),
    Worker {
        worker: WorkerId,
        source: std::io::Error,
    },
    Io(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Pool(e @ PoolError::Lock { .. }) => {
                write!(
                    f,
                    "{e}; or set engine.lock_memory = \"best-effort\" to run with swappable packet memory"
                )
            }
            Self::Pool(e) => write!(f, "{e}"),
            Self::IoUringRefused(e) => {
                write!(f, "engine.backend = \"io_uring\" but the kernel refused it: {e}")
            }
            Self::Bind { addr, source } => write!(f, "cannot bind the media port {addr}: {source}"),
            Self::Steer(e) => write!(
                f,
                "engine.steer_by_source_ip = true but the kernel refused the SO_REUSEPORT BPF program: {e}"
            ),
            Self::Worker { worker, source } => write!(f, "worker {} failed to start: {source}", worker.0),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<PoolError> for StartError {
    fn from(e: PoolError) -> Self {
        Self::Pool(e)
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A running engine. Dropping it stops the workers (as [`Engine::stop`] does).
#[derive(Debug)]
pub struct Engine {
    threads: Vec<JoinHandle<()>>,
    exited: mpsc::Receiver<WorkerId>,
    shutdown: Arc<Shutdown>,
    wakers: Arc<[Waker]>,
    counters: Vec<Arc<WorkerCounters>>,
    /// The listen addresses as bound, `listen` first.
    local_addrs: Vec<SocketAddr>,
    backend: Backend,
    pool_locked: bool,
}

/// Stops an engine from another thread (a signal handler loop).
#[derive(Clone, Debug)]
pub struct StopHandle {
    shutdown: Arc<Shutdown>,
    wakers: Arc<[Waker]>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.shutdown.request();
        self.wakers.iter().for_each(Waker::wake);
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.requested()
    }
}

/// Picks the backend, with the one log line that says which runs and why.
fn select_backend(choice: BackendChoice) -> Result<Backend, StartError> {
    match (choice, uring::probe()) {
        (BackendChoice::Mmsg, _) => {
            tracing::info!("engine backend: recvmmsg/sendmmsg (configured)");
            Ok(Backend::Mmsg)
        }
        (_, Ok(defer_taskrun)) => {
            let flags =
                if defer_taskrun { "single issuer, deferred task run" } else { "without DEFER_TASKRUN" };
            tracing::info!("engine backend: io_uring (multishot recvmsg, provided buffer ring, {flags})");
            Ok(Backend::IoUring)
        }
        (BackendChoice::IoUring, Err(e)) => Err(StartError::IoUringRefused(e)),
        (BackendChoice::Auto, Err(e)) => {
            tracing::warn!("engine backend: recvmmsg/sendmmsg, because io_uring is unavailable: {e}");
            Ok(Backend::Mmsg)
        }
    }
}

/// Binds one SO_REUSEPORT group on `listen`, worker i's socket i-th, and returns the address
/// bound with the group. The first bind resolves port 0; the others join it. Bound in worker
/// order: the group numbers its sockets by bind order, and the steering program (one per
/// group) returns a worker's index as a socket's index.
fn bind_group(
    listen: SocketAddr,
    workers: usize,
    config: &EngineConfig,
) -> Result<(SocketAddr, Vec<UdpSocket>), StartError> {
    let mut addr = listen;
    let mut group = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = socket::bind_reuseport(addr, config.socket_buffer)
            .map_err(|source| StartError::Bind { addr, source })?;
        addr = socket.local_addr()?;
        group.push(socket);
    }
    if config.steer_by_source_ip && workers > 1 {
        steer::attach(&group[0], workers).map_err(StartError::Steer)?;
    }
    Ok((addr, group))
}

impl Engine {
    /// Allocates the pool, binds one socket per worker and listen address and starts the
    /// workers, each running the handler `make_handler` builds for it. Returns once every
    /// worker is receiving.
    pub fn start<H, F>(config: &EngineConfig, mut make_handler: F) -> Result<Self, StartError>
    where
        H: Handler,
        F: FnMut(WorkerId) -> H,
    {
        config.validate()?;
        let workers = config.worker_count();
        let backend = select_backend(config.backend)?;
        let pool =
            Arc::new(PacketPool::new(config.pool_slots_per_worker, workers as u16, config.lock_memory)?);
        tracing::info!(
            "packet pool: {workers} x {} slots of {SLOT_SIZE} bytes ({} MiB), {}",
            config.pool_slots_per_worker,
            (pool.len() * SLOT_SIZE) >> 20,
            if pool.is_locked() { "locked in RAM" } else { "not locked" }
        );

        // Per worker, its listeners: its share of each listen address, in listen address order.
        let mut sockets: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        let mut local_addrs = Vec::new();
        for listen in config.listen_addrs() {
            let (addr, group) = bind_group(listen, workers, config)?;
            local_addrs.push(addr);
            sockets.iter_mut().zip(group).for_each(|(listeners, socket)| listeners.push(socket));
        }
        if config.steer_by_source_ip && workers > 1 {
            tracing::info!("listener: datagrams steered to {workers} workers by source IP address");
        }

        let wakers: Arc<[Waker]> = (0..workers).map(|_| Waker::new()).collect::<Result<Vec<_>, _>>()?.into();
        let ports = mesh::build(wakers.clone(), config.handoff_queue, config.pool_slots_per_worker as usize);
        let shutdown = Arc::new(Shutdown::new(workers, config.drain_timeout()));
        let counters: Vec<_> = (0..workers).map(|_| Arc::new(WorkerCounters::default())).collect();
        let cpus = allowed_cpus();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (exit_tx, exited) = mpsc::channel();

        let mut threads = Vec::with_capacity(workers);
        for (i, (listeners, port)) in sockets.into_iter().zip(ports).enumerate() {
            let id = WorkerId(i as u16);
            let sockets = SocketTable::new(listeners, config.max_sockets_per_worker, config.socket_buffer)?;
            let core = Core::new(
                id,
                pool.clone(),
                port,
                counters[i].clone(),
                config.send_queue,
                config.max_fanout,
                sockets,
            );
            let setup = WorkerSetup {
                core,
                shutdown: shutdown.clone(),
                mmsg_batch: config.mmsg_batch,
                gso: config.gso,
                batch_wait_us: config.batch_wait_us,
                ready: Ready(ready_tx.clone()),
            };
            let handler = make_handler(id);
            let cpu = (config.pin_workers && !cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            let (shutdown, wakers, ready, exit) =
                (shutdown.clone(), wakers.clone(), ready_tx.clone(), exit_tx.clone());
            let thread = std::thread::Builder::new().name(format!("engine-{i}")).spawn(move || {
                if let Some(cpu) = cpu
                    && let Err(e) = pin_current_thread(cpu)
                {
                    tracing::warn!(worker = i, cpu, "cannot pin worker: {e}");
                }
                let result = match backend {
                    Backend::IoUring => uring::run(setup, handler),
                    Backend::Mmsg => mmsg::run(setup, handler),
                };
                if let Err(e) = result {
                    tracing::error!(worker = i, "worker stopped: {e}; stopping the engine");
                    shutdown.done_producing(id);
                    shutdown.request();
                    wakers.iter().for_each(Waker::wake);
                    let _ = ready.send(Err((id, e)));
                }
                let _ = exit.send(id);
            })?;
            threads.push(thread);
        }
        drop(ready_tx);

        let engine = Self {
            threads,
            exited,
            shutdown,
            wakers,
            counters,
            local_addrs,
            backend,
            pool_locked: pool.is_locked(),
        };
        for _ in 0..workers {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(_)) => {}
                Ok(Err((worker, source))) => return Err(StartError::Worker { worker, source }),
                Err(_) => {
                    let source =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "no ready signal within 10 s");
                    return Err(StartError::Worker { worker: WorkerId(0), source });
                }
            }
        }
        Ok(engine)
    }

    /// The media port's address, `listen` (with the port resolved when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Every listen address, `listen` then `extra_listen`, with ports resolved: listener `i`
    /// of each worker is bound to the `i`-th.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn workers(&self) -> usize {
        self.counters.len()
    }

    pub fn pool_locked(&self) -> bool {
        self.pool_locked
    }

    /// Each worker's latest published counters.
    pub fn counts(&self) -> Vec<Counts> {
        self.counters.iter().map(|c| c.load()).collect()
    }

    /// Counters summed over workers.
    pub fn totals(&self) -> Counts {
        let mut total = Counts::default();
        self.counters.iter().for_each(|c| total.add(&c.load()));
        total
    }

    /// The shared counter blocks, for an exporter that reads them without the engine.
    pub fn counter_handles(&self) -> Vec<Arc<WorkerCounters>> {
        self.counters.clone()
    }

    /// A health check for a service watchdog: do the workers still turn their loops?
    pub fn liveness(&self) -> Liveness {
        Liveness::new(self.counters.clone(), self.wakers.clone())
    }

    /// Each worker's share of time spent busy rather than waiting, for load reports.
    pub fn load(&self) -> Load {
        Load::new(self.counters.clone(), Instant::now())
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { shutdown: self.shutdown.clone(), wakers: self.wakers.clone() }
    }

    /// Stops receiving, lets queued packets leave (up to the drain timeout) and joins the
    /// workers. Returns false when a worker did not exit in time; it is left behind.
    pub fn stop(mut self) -> bool {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> bool {
        if self.threads.is_empty() {
            return true;
        }
        self.stop_handle().stop();
        let deadline = Instant::now() + self.shutdown.drain_timeout + Duration::from_secs(1);
        let mut exited = 0;
        while exited < self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.exited.recv_timeout(left) {
                Ok(_) => exited += 1,
                Err(_) => {
                    tracing::error!("{} engine worker(s) did not stop in time", self.threads.len() - exited);
                    self.threads.clear();
                    return false;
                }
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        true
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
