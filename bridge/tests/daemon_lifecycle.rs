//! The `bridge` binary as a sysadmin runs it: relays with a configuration file, exports its
//! counters on the Prometheus endpoint, drains and exits 0 on SIGTERM, refuses a bad
//! configuration naming the key, falls back to recvmmsg when a seccomp profile refuses
//! io_uring (as Docker's default one does), and explains a refused memory lock.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{packet, udp};

const BIN: &str = env!("CARGO_BIN_EXE_bridge");

/// How the child is restricted before it runs.
#[derive(Clone, Copy, PartialEq)]
enum Sandbox {
    None,
    /// `io_uring_setup` fails with EPERM, as under Docker's default seccomp profile.
    NoIoUring,
    /// No CAP_IPC_LOCK and a 1 MiB RLIMIT_MEMLOCK, as an unprivileged unit without LimitMEMLOCK.
    SmallMemlock,
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    _config: tempfile::TempPath,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Daemon {
    fn spawn(config: &str, sandbox: Sandbox) -> Self {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let path = file.into_temp_path();
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&path).stdout(Stdio::null()).stderr(Stdio::piped());
        command.env("BRIDGE_LOG", "info").env("NO_COLOR", "1");
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe syscalls (prctl, setrlimit, capget/capset) on stack data.
        unsafe {
            command.pre_exec(move || {
                match sandbox {
                    Sandbox::None => {}
                    Sandbox::NoIoUring => refuse_io_uring()?,
                    Sandbox::SmallMemlock => drop_ipc_lock()?,
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start bridge");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, log: Vec::new(), _config: path }
    }

    /// Waits for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line with {needle:?}; log so far:\n{}", self.log.join("\n"));
    }

    /// Waits for exit and returns the code and the rest of the log.
    fn wait_exit(mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return (status.code().unwrap_or(-1), self.log.join("\n"));
            }
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("bridge did not exit within {within:?}; log:\n{}", self.log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs a seccomp filter that fails io_uring_setup with EPERM.
fn refuse_io_uring() -> std::io::Result<()> {
    const SYS_IO_URING_SETUP: u32 = 425; // the same number on x86_64 and aarch64
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: SYS_IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prctl with a filter program that lives for the duration of the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &raw const program) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes CAP_IPC_LOCK and sets a 1 MiB memlock limit, so mlock of the pool fails.
fn drop_ipc_lock() -> std::io::Result<()> {
    const CAP_IPC_LOCK: u32 = 14;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
    let mut data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
    // SAFETY: capget/capset on our own process with correctly sized header and data arrays.
    unsafe {
        if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for d in &mut data[..1] {
            d.effective &= !(1 << CAP_IPC_LOCK);
            d.permitted &= !(1 << CAP_IPC_LOCK);
            d.inheritable &= !(1 << CAP_IPC_LOCK);
        }
        // Root regains its bounding set's capabilities at exec: drop it there first.
        let not_root = libc::getuid() != 0;
        if (libc::prctl(libc::PR_CAPBSET_DROP, CAP_IPC_LOCK as libc::c_ulong, 0, 0, 0) != 0 && !not_root)
            || libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0
            || libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn relay_config(port: u16, metrics: u16, source: SocketAddr, sink: SocketAddr, extra: &str) -> String {
    format!(
        "[engine]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\npool_slots_per_worker = 1024\n{extra}\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\ninterval_ms = 50\n\
         [relay]\nroutes = [{{ from = \"{source}\", to = [\"{sink}\"] }}]\nsend_from = \"spread\"\n"
    )
}

/// Sends `count` packets through the daemon and returns how many reached the sink.
fn relay_some(port: u16, source: &UdpSocket, sink: &UdpSocket, count: u32) -> u32 {
    let mut buf = [0u8; 2048];
    let mut received = 0;
    for seq in 0..count {
        let len = packet(0, seq, &mut buf);
        source.send_to(&buf[..len], ("127.0.0.1", port)).unwrap();
        loop {
            match sink.recv_from(&mut buf) {
                Ok(_) => received += 1,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {}
            }
            break;
        }
    }
    received
}

fn scrape(port: u16) -> String {
    // The exporter binds its listener on its own thread, shortly after the log line says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => panic!("metrics endpoint refuses: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

/// Sum of a counter over its label sets in a Prometheus text exposition.
fn metric_sum(body: &str, name: &str, label: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn relays_exports_metrics_and_drains_on_sigterm() {
    let (source, sink) = (udp("127.0.0.1:0"), udp("127.0.0.1:0"));
    let (port, metrics) = (free_udp_port(), free_tcp_port());
    let config = relay_config(port, metrics, source.local_addr().unwrap(), sink.local_addr().unwrap(), "");
    let mut daemon = Daemon::spawn(&config, Sandbox::None);
    daemon.wait_for("engine backend: io_uring");
    daemon.wait_for("metrics on");

    assert_eq!(relay_some(port, &source, &sink, 500), 500);
    let stranger = udp("127.0.0.1:0");
    stranger.send_to(b"not routed", ("127.0.0.1", port)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let body = scrape(metrics);
        let rx = metric_sum(&body, "engine_rx_packets_total", "worker=");
        let no_route = metric_sum(&body, "engine_drops_total", "reason=\"no_route\"");
        if (rx, no_route) == (501, 1) || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(metric_sum(&body, "engine_rx_packets_total", "worker="), 501, "{body}");
    assert_eq!(metric_sum(&body, "engine_tx_packets_total", "worker="), 500, "{body}");
    assert_eq!(metric_sum(&body, "engine_drops_total", "reason=\"no_route\""), 1, "{body}");
    assert!(body.contains("engine_pool_locked 1"), "{body}");

    daemon.signal(libc::SIGTERM);
    let started = Instant::now();
    let (code, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "clean exit on SIGTERM; log:\n{log}");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped within the drain bound");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn bad_configuration_names_the_key_and_exits_2() {
    let daemon = Daemon::spawn("[engine]\nworkerz = 2\n", Sandbox::None);
    let (code, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("workerz") && log.contains("configuration error"), "{log}");
}

#[test]
fn refused_io_uring_falls_back_to_mmsg_with_one_log_line() {
    let (source, sink) = (udp("127.0.0.1:0"), udp("127.0.0.1:0"));
    let (port, metrics) = (free_udp_port(), free_tcp_port());
    let config = relay_config(port, metrics, source.local_addr().unwrap(), sink.local_addr().unwrap(), "");
    let mut daemon = Daemon::spawn(&config, Sandbox::NoIoUring);
    let line = daemon.wait_for("engine backend:");
    assert!(line.contains("recvmmsg/sendmmsg") && line.contains("Operation not permitted"), "{line}");
    daemon.wait_for("relaying on");
    assert_eq!(relay_some(port, &source, &sink, 200), 200);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)).0, 0);
}

#[test]
fn required_io_uring_that_is_refused_is_an_error() {
    let config = relay_config(
        free_udp_port(),
        free_tcp_port(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        "backend = \"io_uring\"",
    );
    let daemon = Daemon::spawn(&config, Sandbox::NoIoUring);
    let (code, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("engine.backend = \"io_uring\" but the kernel refused it"), "{log}");
}

#[test]
fn refused_memory_lock_stops_start_unless_best_effort() {
    let config = |extra| {
        relay_config(
            free_udp_port(),
            free_tcp_port(),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            extra,
        )
    };

    let daemon = Daemon::spawn(&config("lock_memory = \"required\""), Sandbox::SmallMemlock);
    let (code, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("cannot lock the 4 MiB packet pool") && log.contains("LimitMEMLOCK"), "{log}");

    let mut daemon = Daemon::spawn(&config("lock_memory = \"best-effort\""), Sandbox::SmallMemlock);
    let line = daemon.wait_for("starting anyway");
    assert!(line.contains("cannot lock the 4 MiB packet pool"), "{line}");
    assert!(line.contains("LimitMEMLOCK"), "{line}");
    daemon.wait_for("relaying on");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)).0, 0);
}
