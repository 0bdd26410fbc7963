//! The `turn` daemon against coturn's own test clients, and its command line and
//! configuration handling, and the TLS certificate reload.
//!
//! `turnutils_uclient` (Debian package coturn, installed by scripts/install-test-deps.sh) runs
//! against our daemon over UDP, TCP (`-t`) and TLS (`-S`), with REST API credentials (`-W`), to a
//! `turnutils_peer` echo server on 127.0.0.2 (127.0.0.1 is the daemon's own address, which
//! it never relays to). Without `-c` every uclient session is an RTP/RTCP pair: the RTP
//! allocation asks for EVEN-PORT with the R bit and the RTCP one redeems the RESERVATION-TOKEN
//! on a second connection. The data goes as Send and Data indications (`-s`) or through
//! channels (ChannelBind, then ChannelData; uclient draws channel numbers from RFC 5766's
//! 0x4000..=0x7FFF, which the server accepts, see `ChannelNumber`). Over UDP as well.
//!
//! Everything stays on loopback. Each test bounds its own time, and every child process is
//! killed by a guard when the test ends, however it ends.

#[path = "../../scripts/test_harness.rs"]
#[allow(dead_code)] // shared with other crates' tests; the network namespace is not used here
mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{install_test_deps, run_bounded};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

const TURN_BIN: &str = env!("CARGO_BIN_EXE_turn");
const SECRET: &str = "0123456789abcdef0123";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The echo peer's address: loopback, but not the daemon's own.
const PEER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Two cores: one uclient run at a time.
static UCLIENT: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    harness::repo_root(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("turn-uclient-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when the guard goes.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free right now on `ip`: the kernel picks it, we release it. The daemon is started
/// again with other ports if one was taken in between (see [`Daemon::start`]).
fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

fn free_udp_port(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    tcp: u16,
    tls: u16,
    metrics: u16,
}

/// The running daemon, with its stderr lines as they come.
struct Daemon {
    child: Guard,
    lines: Receiver<String>,
    log: Vec<String>,
    /// Lines before this one have been matched by a `wait_for` already.
    seen: usize,
    ports: Ports,
}

impl Daemon {
    /// Writes `config(ports)` and starts the daemon on it, until it says "ready". Ports are
    /// drawn again (three tries) if another process took one first.
    fn start(dir: &TempDir, config: impl Fn(Ports) -> String) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let ports =
                Ports { tcp: free_port(LOCALHOST), tls: free_port(LOCALHOST), metrics: free_port(LOCALHOST) };
            let path = dir.path("turnserver.conf");
            std::fs::write(&path, config(ports)).unwrap();
            let mut daemon = Self::spawn(&path, ports);
            match daemon.wait_for("INFO ready", START_TIMEOUT) {
                Ok(()) => return daemon,
                Err(log) if log.contains("cannot listen") => last = log,
                Err(log) => panic!("the daemon did not start:\n{log}"),
            }
        }
        panic!("the daemon found no free ports in three tries:\n{last}");
    }

    fn spawn(config: &Path, ports: Ports) -> Self {
        let mut child = Command::new(TURN_BIN)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the turn daemon");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child: Guard(child), lines, log: Vec::new(), seen: 0, ports }
    }

    /// Waits for a stderr line containing `needle` after the last line matched before;
    /// `Err(log so far)` on timeout or exit.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        if let Some(i) = self.log[self.seen..].iter().position(|l| l.contains(needle)) {
            self.seen += i + 1;
            return Ok(());
        }
        self.seen = self.log.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.log.push(line);
                    self.seen = self.log.len();
                    if found {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no {needle:?} within {limit:?}:\n{}", self.log.join("\n")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("exited without {needle:?}:\n{}", self.log.join("\n")));
                }
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.0.id().to_string()).status();
        assert!(status.unwrap().success(), "kill -{name}");
    }

    /// SIGTERM, then the exit status within `limit`.
    fn terminate(mut self, limit: Duration) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.log.push(line);
                }
                return (status, self.log.join("\n"));
            }
            assert!(Instant::now() < deadline, "no exit within {limit:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics(&self) -> String {
        http_get(SocketAddr::new(LOCALHOST, self.ports.metrics), "/metrics")
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The value of an unlabelled or exactly labelled sample.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

/// A CA and a leaf for "localhost" signed by it, as PEM files in `dir`; returns the leaf DER.
struct Pki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("turn test CA {name}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    Pki { ca: ca.der().clone(), leaf: leaf.der().clone(), leaf_pem: leaf.pem(), key_pem: key.serialize_pem() }
}

fn install(pki: &Pki, dir: &TempDir) {
    // Written next to the target and renamed over it, as certbot and friends do.
    for (name, pem) in [("cert.pem", &pki.leaf_pem), ("key.pem", &pki.key_pem)] {
        let tmp = dir.path(&format!("{name}.new"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.path(name)).unwrap();
    }
}

/// A turnserver.conf for 127.0.0.1 with REST API credentials and both stream listeners.
fn base_config(dir: &TempDir, ports: Ports, relay: (u16, u16)) -> String {
    format!(
        "# written by turn/tests/uclient.rs\n\
         listening-ip=127.0.0.1\nlistening-port={}\ntls-listening-port={}\n\
         min-port={}\nmax-port={}\n\
         use-auth-secret\nstatic-auth-secret={SECRET}\nrealm=example.org\n\
         allow-loopback-peers\nno-udp\n\
         cert={}\npkey={}\n\
         prometheus\nprometheus-address=127.0.0.1\nprometheus-port={}\n",
        ports.tcp,
        ports.tls,
        relay.0,
        relay.1,
        dir.path("cert.pem").display(),
        dir.path("key.pem").display(),
        ports.metrics,
    )
}

/// What uclient reported at the end of a run.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    sent: u64,
    received: u64,
    lost: u64,
    send_dropped: u64,
}

/// uclient 4.6 closes with
/// `start_mclient: tot_send_msgs=40, tot_recv_msgs=40` and
/// `Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)`.
fn totals(output: &str) -> Option<Totals> {
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let msgs = output.lines().rfind(|l| l.contains("start_mclient: tot_send_msgs="))?;
    let lost = output.lines().rfind(|l| l.contains("Total lost packets"))?;
    Some(Totals {
        sent: number_after(msgs, "tot_send_msgs=")?,
        received: number_after(msgs, "tot_recv_msgs=")?,
        lost: number_after(lost, "Total lost packets")?,
        send_dropped: number_after(lost, "total send dropped")?,
    })
}

/// The relayed ports uclient was given, and whether a RESERVATION-TOKEN came with each
/// (`-v` prints `Received relay addr: ip:port` then `clnet_allocate: rtv=<token>`).
fn relays(output: &str) -> Vec<(u16, bool)> {
    let mut found = Vec::new();
    let mut port = None;
    for line in output.lines() {
        if let Some(addr) = line.split("Received relay addr: ").nth(1) {
            port = addr.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        } else if let (Some(rtv), Some(p)) = (line.split("rtv=").nth(1), port.take()) {
            found.push((p, rtv.trim() != "0"));
        }
    }
    found
}

/// uclient's `-m` counts sessions, an RTP/RTCP pair being two (without `-c`): two pairs. Each
/// pair also makes a probe allocation first (for ALTERNATE-SERVER), then closes it.
const SESSIONS: u64 = 4;

/// Messages per session and the gap between them (uclient's `-n` and `-z`, ms).
#[derive(Clone, Copy, Debug)]
struct Pace {
    messages: u64,
    gap_ms: u32,
}

/// Ten messages 10 ms apart: every message alone on the wire.
const PACED: Pace = Pace { messages: 10, gap_ms: 10 };
/// 500 messages 1 ms apart: answers queue up behind each other on a stream, which is where a
/// server that packs several messages into one TLS record loses them for uclient.
const FAST: Pace = Pace { messages: 500, gap_ms: 1 };

/// How uclient reaches the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// How the data goes: Send and Data indications (`-s`), or ChannelBind then ChannelData.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    Indications,
    Channels,
}

/// `turnutils_uclient` with two RTP/RTCP pairs, 10 messages of 120 bytes from each session,
/// (with DONT-FRAGMENT, `-g`), to the echo peer; returns its output.
fn uclient(transport: Transport, data: Data, pace: Pace, port: u16, peer_port: u16) -> String {
    let mut command = Command::new("turnutils_uclient");
    command.args(["-g", "-X", "-v"]);
    match transport {
        Transport::Udp => {}
        Transport::Tcp => drop(command.arg("-t")),
        Transport::Tls => drop(command.args(["-t", "-S"])),
    }
    if data == Data::Indications {
        command.arg("-s");
    }
    command
        .args(["-m", &SESSIONS.to_string(), "-n", &pace.messages.to_string(), "-l", "120"])
        .args(["-z", &pace.gap_ms.to_string()])
        .args(["-e", &PEER_IP.to_string(), "-r", &peer_port.to_string()])
        .args(["-W", SECRET, "-u", "uclient", "-p", &port.to_string()])
        .arg(LOCALHOST.to_string());
    let out = run_bounded(command, Duration::from_secs(60));
    assert!(out.status.success(), "uclient failed: {}\n{}\n{}", out.status, out.stdout, out.stderr);
    out.stdout + &out.stderr
}

fn interop(transport: Transport, data: Data, pace: Pace) {
    interop_on(transport, data, pace, Relay::Daemon);
}

/// Who relays channel data: the daemon's sockets, or its kernel relay on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relay {
    Daemon,
    Kernel,
}

fn interop_on(transport: Transport, data: Data, pace: Pace, relay: Relay) {
    install_test_deps(&repo_root());
    let _one_at_a_time = UCLIENT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new(transport.name());
    install(&pki("interop"), &dir);
    let relay_range = match transport {
        Transport::Udp => (45000, 45999),
        Transport::Tcp => (47000, 47999),
        Transport::Tls => (46000, 46999),
    };
    let daemon = Daemon::start(&dir, |ports| {
        let mut config = base_config(&dir, ports, relay_range);
        if relay == Relay::Kernel {
            config.push_str("kernel-relay-interface=lo\n");
        }
        if transport == Transport::Udp { config.replace("no-udp\n", "") } else { config }
    });
    let peer_port = free_udp_port(PEER_IP);
    let _peer = Guard(
        Command::new("turnutils_peer")
            .args(["-L", &PEER_IP.to_string(), "-p", &peer_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnutils_peer"),
    );
    std::thread::sleep(Duration::from_millis(300)); // the peer binds its socket

    let started = Instant::now();
    let port = if transport == Transport::Tls { daemon.ports.tls } else { daemon.ports.tcp };
    let output = uclient(transport, data, pace, port, peer_port);
    let elapsed = started.elapsed();

    let totals = totals(&output).unwrap_or_else(|| panic!("no totals in uclient's output:\n{output}"));
    let expected = SESSIONS * pace.messages;
    assert_eq!(totals, Totals { sent: expected, received: expected, lost: 0, send_dropped: 0 }, "{output}");

    // EVEN-PORT with the R bit, then the reserved odd port on the RTCP connection.
    let relays = relays(&output);
    let pairs =
        relays.windows(2).filter(|w| w[0].1 && w[0].0 % 2 == 0 && w[1].0 == w[0].0 + 1 && !w[1].1).count();
    assert!(pairs as u64 >= SESSIONS / 2, "an even/odd pair per RTP/RTCP pair: {relays:?}");
    for (port, _) in &relays {
        assert!(
            (relay_range.0..=relay_range.1).contains(port),
            "relay port {port} outside min-port..max-port"
        );
    }

    let metrics = daemon.metrics();
    let name = transport.name();
    if transport != Transport::Udp {
        let accepted =
            sample(&metrics, &format!("turn_stream_connections_accepted_total{{transport=\"{name}\"}}"));
        assert!(accepted >= SESSIONS, "a connection per session: {metrics}");
    }
    assert_eq!(sample(&metrics, "turn_relayed_packets_total{direction=\"client_to_peer\"}"), expected);
    assert_eq!(sample(&metrics, "turn_relayed_packets_total{direction=\"peer_to_client\"}"), expected);
    if relay == Relay::Kernel {
        // Every message went through the kernel (the totals above include its counts).
        for direction in ["client_to_peer", "peer_to_client"] {
            let line = format!("turn_kernel_relayed_packets_total{{direction=\"{direction}\"}}");
            assert_eq!(sample(&metrics, &line), expected, "{metrics}");
        }
    }
    let (status, log) = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("INFO stopped"), "{log}");
    eprintln!("uclient over {name} ({data:?}): {expected} messages each way, none lost, in {elapsed:?}");
}

#[test]
fn uclient_over_udp_relays_every_message_through_channels_with_reserved_port_pairs() {
    interop(Transport::Udp, Data::Channels, PACED);
}

/// Needs root (CAP_BPF, CAP_NET_ADMIN) for the program; fails without.
#[test]
fn uclient_over_udp_through_the_kernel_relay_loses_nothing() {
    interop_on(Transport::Udp, Data::Channels, FAST, Relay::Kernel);
}

#[test]
fn uclient_over_udp_relays_every_message_as_indications() {
    interop(Transport::Udp, Data::Indications, PACED);
}

#[test]
fn uclient_over_tcp_relays_every_message_with_reserved_port_pairs() {
    interop(Transport::Tcp, Data::Indications, PACED);
}

#[test]
fn uclient_over_tls_relays_every_message_through_channels_with_reserved_port_pairs() {
    interop(Transport::Tls, Data::Channels, PACED);
}

#[test]
fn uclient_over_tls_at_a_thousand_messages_per_second_loses_nothing() {
    interop(Transport::Tls, Data::Channels, FAST);
}

#[test]
fn uclient_over_tcp_at_a_thousand_messages_per_second_loses_nothing() {
    interop(Transport::Tcp, Data::Channels, FAST);
}

#[test]
fn uclient_over_udp_at_a_thousand_messages_per_second_loses_nothing() {
    interop(Transport::Udp, Data::Channels, FAST);
}

/// RFC 6062 between uclient's own clients (`-T`): each allocates a TCP relay, permits and
/// Connects to its partner's relayed address (a peer connection from one of our relays to
/// another), both sides ConnectionBind a data connection, and every message crosses two
/// byte pipes. uclient's `-m 4` is four clients here, two pairs.
#[test]
fn uclient_tcp_relay_between_clients_loses_nothing() {
    install_test_deps(&repo_root());
    let _one_at_a_time = UCLIENT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("tcprelay");
    install(&pki("tcprelay"), &dir);
    // The clients' relayed addresses are the daemon's own: allowed explicitly as peers, as
    // the shared benchmark does (never in production).
    let daemon = Daemon::start(&dir, |ports| {
        base_config(&dir, ports, (48000, 48999)) + "relay-ip=127.0.0.1\nallowed-peer-ip=127.0.0.1\n"
    });
    let pace = Pace { messages: 500, gap_ms: 1 };
    let mut command = Command::new("turnutils_uclient");
    command
        .args(["-T", "-v", "-m", &SESSIONS.to_string(), "-n", &pace.messages.to_string(), "-l", "120"])
        .args(["-z", &pace.gap_ms.to_string(), "-e", "127.0.0.1", "-r", "3480"])
        .args(["-W", SECRET, "-u", "uclient", "-p", &daemon.ports.tcp.to_string()])
        .arg(LOCALHOST.to_string());
    let out = run_bounded(command, Duration::from_secs(60));
    let output = out.stdout + &out.stderr;
    assert!(out.status.success(), "uclient failed: {}\n{output}", out.status);
    let totals = totals(&output).unwrap_or_else(|| panic!("no totals in uclient's output:\n{output}"));
    let expected = SESSIONS * pace.messages;
    assert_eq!(totals, Totals { sent: expected, received: expected, lost: 0, send_dropped: 0 }, "{output}");

    let metrics = daemon.metrics();
    for direction in ["client_to_peer", "peer_to_client"] {
        let bytes = sample(&metrics, &format!("turn_tcp_relayed_bytes_total{{direction=\"{direction}\"}}"));
        assert!(bytes >= expected * 120, "every message through the pipes, {direction}: {metrics}");
    }
    assert_eq!(sample(&metrics, "turn_peer_connect_failures_total"), 0, "{metrics}");
    let (status, log) = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{log}");
    eprintln!("uclient -T: {expected} messages each way over TCP allocations, none lost");
}

fn run_turn(args: &[&str]) -> harness::Output {
    let mut command = Command::new(TURN_BIN);
    command.args(args);
    run_bounded(command, Duration::from_secs(10))
}

#[test]
fn help_and_version_answer_and_a_bad_command_line_exits_2() {
    let help = run_turn(&["--help"]);
    assert!(help.status.success());
    assert!(help.stdout.contains("usage: turn --config FILE"), "{}", help.stdout);
    let version = run_turn(&["--version"]);
    assert!(version.status.success());
    assert!(version.stdout.starts_with("turn "), "{}", version.stdout);
    for args in
        [&[][..], &["--config"][..], &["--frobnicate"][..], &["--config", "/nonexistent/turn.conf"][..]]
    {
        let out = run_turn(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("turn: "), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn an_unknown_option_is_named_in_a_warning_and_the_daemon_still_starts() {
    let dir = TempDir::new("unknown");
    install(&pki("unknown"), &dir);
    let daemon = Daemon::start(&dir, |ports| {
        format!("{}no-tlsv1_2\nfrobnicate=7\n", base_config(&dir, ports, (45000, 45099)))
    });
    let log = daemon.log.join("\n");
    assert!(log.contains("unknown option \"no-tlsv1_2\" ignored"), "{log}");
    assert!(log.contains("unknown option \"frobnicate\" ignored"), "{log}");
    assert!(!log.contains("UDP is not served yet"), "no-udp is set: {log}");
    let health = http_get(SocketAddr::new(LOCALHOST, daemon.ports.metrics), "/health");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
}

#[test]
fn invalid_values_exit_2_with_a_message() {
    let dir = TempDir::new("invalid");
    let base = format!("use-auth-secret\nstatic-auth-secret={SECRET}\nrealm=example.org\n");
    let cases = [
        (format!("{base}listening-port=70000\n"), "line 4: listening-port: \"70000\" is not a port"),
        (format!("{base}no-udp\n"), "needs cert and pkey"),
        (format!("{base}cert={0}\npkey={0}\n", dir.path("missing.pem").display()), "missing.pem"),
    ];
    for (text, expected) in cases {
        let path = dir.path("bad.conf");
        std::fs::write(&path, &text).unwrap();
        let out = run_turn(&["--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{text}: {}", out.stderr);
    }
}

#[test]
fn garbage_on_a_stream_closes_it_and_binding_works() {
    let dir = TempDir::new("garbage");
    install(&pki("garbage"), &dir);
    let daemon = Daemon::start(&dir, |ports| base_config(&dir, ports, (45100, 45199)));
    let addr = SocketAddr::new(LOCALHOST, daemon.ports.tcp);

    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&binding_request()).unwrap();
    let response = read_stun(&mut stream);
    assert_eq!(&response[..2], &[0x01, 0x01], "a Binding success response");
    assert_eq!(&response[8..20], &binding_request()[8..20], "to our transaction");

    // 0x80: RTP, not TURN; a stream cannot be resynchronised, so it is closed.
    stream.write_all(&[0x80; 64]).unwrap();
    let mut rest = Vec::new();
    // EOF, or a reset when our unread bytes were still queued at the server's close.
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "closed, not timed out: {e}"),
    }
    let metrics = daemon.metrics();
    assert_eq!(sample(&metrics, "turn_stream_connections_closed_total{reason=\"framing\"}"), 1, "{metrics}");
}

/// A request and the client's FIN in one segment reach the server as one epoll edge. The
/// server stops reading at a read shorter than its buffer, which is right for data alone but
/// would leave the FIN unseen until the idle timeout: it must read on to the end.
#[test]
fn a_request_with_the_fin_in_its_segment_is_answered_and_the_connection_closed() {
    let dir = TempDir::new("fin");
    install(&pki("fin"), &dir);
    let daemon = Daemon::start(&dir, |ports| base_config(&dir, ports, (45200, 45299)));
    let addr = SocketAddr::new(LOCALHOST, daemon.ports.tcp);
    for _ in 0..5 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let corked = socket2::SockRef::from(&stream);
        corked.set_tcp_cork(true).unwrap();
        stream.write_all(&binding_request()).unwrap();
        // Shutting down sends what the cork held with the FIN.
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("the server closes its side, no read timeout");
        assert!(started.elapsed() < Duration::from_secs(4), "closed at once, not by a timeout");
        assert_eq!(&answer[..2], &[0x01, 0x01], "the Binding request was answered first");
    }
}

fn binding_request() -> [u8; 20] {
    let mut message = [0u8; 20];
    message[1] = 0x01; // Binding request, no attributes
    message[4..8].copy_from_slice(&0x2112_a442_u32.to_be_bytes());
    message[8..].copy_from_slice(b"uclient-test");
    message
}

/// A TLS client that trusts every test CA, so that it can tell which leaf it was shown.
/// Without resumption: a resumed session reports the certificate of the session it resumes.
fn tls_client(roots: &[&CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects, completes the handshake, and returns the stream and the leaf the server showed.
fn handshake(config: &Arc<rustls::ClientConfig>, port: u16) -> (TlsStream, CertificateDer<'static>) {
    let tcp = TcpStream::connect((LOCALHOST, port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    let leaf = tls.conn.peer_certificates().expect("a server certificate")[0].clone();
    (tls, leaf)
}

fn binding_over(tls: &mut TlsStream) {
    tls.write_all(&binding_request()).unwrap();
    let response = read_stun(tls);
    assert_eq!(&response[..2], &[0x01, 0x01], "a Binding success response over TLS");
}

/// One whole STUN message from a stream: the header, then as many bytes as it says.
fn read_stun(stream: &mut impl Read) -> Vec<u8> {
    let mut message = vec![0u8; 20];
    stream.read_exact(&mut message).unwrap();
    let len = usize::from(u16::from_be_bytes([message[2], message[3]]));
    message.resize(20 + len, 0);
    stream.read_exact(&mut message[20..]).unwrap();
    message
}

#[test]
fn the_tls_certificate_reloads_on_sighup_and_on_file_change() {
    let dir = TempDir::new("reload");
    let (first, second, third) = (pki("one"), pki("two"), pki("three"));
    install(&first, &dir);
    let mut daemon = Daemon::start(&dir, |ports| base_config(&dir, ports, (45200, 45299)));
    let client = tls_client(&[&first.ca, &second.ca, &third.ca]);
    let port = daemon.ports.tls;

    let (mut established, leaf) = handshake(&client, port);
    assert_eq!(leaf, first.leaf);
    binding_over(&mut established);

    install(&second, &dir);
    daemon.signal("HUP");
    daemon.wait_for("reloaded (SIGHUP)", Duration::from_secs(10)).unwrap();
    assert_eq!(handshake(&client, port).1, second.leaf, "a new handshake gets the new certificate");
    binding_over(&mut established); // the session from before carries on

    // A broken pair is refused and the certificate in use stays.
    std::fs::write(dir.path("cert.pem"), "not a certificate\n").unwrap();
    daemon.signal("HUP");
    daemon.wait_for("failed, the old one stays", Duration::from_secs(10)).unwrap();
    assert_eq!(handshake(&client, port).1, second.leaf);

    // No signal: the files' change is noticed within the check interval.
    install(&third, &dir);
    daemon.wait_for("reloaded (the files changed)", Duration::from_secs(15)).unwrap();
    assert_eq!(handshake(&client, port).1, third.leaf);
    binding_over(&mut established);

    let metrics = daemon.metrics();
    // At least: the periodic check may also have caught a file between two writes.
    assert!(sample(&metrics, "turn_tls_certificate_reloads_total{result=\"ok\"}") >= 2, "{metrics}");
    assert!(sample(&metrics, "turn_tls_certificate_reloads_total{result=\"failed\"}") >= 1, "{metrics}");
}
