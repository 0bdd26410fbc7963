//! TCP allocations (RFC 6062) end to end: the `turn` daemon on loopback, our own client over
//! real TCP and TLS connections, and real TCP peers on 127.0.0.2 (127.0.0.1 is the daemon's
//! own address, which it never relays to).
//!
//! Every socket has a read timeout, so a test that would hang fails instead; the daemon is
//! killed by a guard however the test ends.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use stun::{AddressFamily, BufferTooSmall, TransactionId};
use turn::client::{AllocateOptions, Client, Outcome, Response, parse_connection_attempt};

const TURN_BIN: &str = env!("CARGO_BIN_EXE_turn");
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PEER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const TIMEOUT: Duration = Duration::from_secs(10);
const TCP: u8 = 6;

/// A child process killed (and reaped) when the guard goes.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Daemon {
    _child: Guard,
    tcp: SocketAddr,
    tls: SocketAddr,
    metrics: SocketAddr,
    ca: CertificateDer<'static>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

impl Daemon {
    /// The daemon on 127.0.0.1 with long-term credentials ada/lovelace and bob/builder, TCP
    /// and TLS listeners, loopback peers allowed (private ones are not) and a metrics endpoint.
    fn start(name: &str) -> Self {
        Self::start_with(name, "")
    }

    /// [`start`](Self::start) with more configuration lines.
    fn start_with(name: &str, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("turn-tcp-alloc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = TempDir(dir);
        let ca = write_pki(&dir.0);
        for _ in 0..3 {
            let (tcp, tls, metrics) = (free_port(), free_port(), free_port());
            let relay = free_port().clamp(20000, 60000);
            let config = format!(
                "listening-ip=127.0.0.1\nlistening-port={tcp}\ntls-listening-port={tls}\n\
                 min-port={relay}\nmax-port={}\nlt-cred-mech\nuser=ada:lovelace\nuser=bob:builder\n\
                 realm=example.org\nallow-loopback-peers\nno-udp\ncert={}\npkey={}\n\
                 prometheus\nprometheus-address=127.0.0.1\nprometheus-port={metrics}\n{extra}",
                relay + 200,
                dir.0.join("cert.pem").display(),
                dir.0.join("key.pem").display(),
            );
            let path = dir.0.join("turnserver.conf");
            std::fs::write(&path, config).unwrap();
            let mut child = Command::new(TURN_BIN)
                .arg("--config")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the turn daemon");
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let child = Guard(child);
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut log = Vec::new();
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                if line.contains("INFO ready") {
                    // Keep draining so the daemon never blocks on a full pipe.
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return Self {
                        _child: child,
                        tcp: SocketAddr::new(LOCALHOST, tcp),
                        tls: SocketAddr::new(LOCALHOST, tls),
                        metrics: SocketAddr::new(LOCALHOST, metrics),
                        ca,
                        _dir: dir,
                    };
                }
                log.push(line);
            }
            assert!(log.iter().any(|l| l.contains("cannot listen")), "no start:\n{}", log.join("\n"));
        }
        panic!("no free ports in three tries");
    }

    fn metric(&self, name: &str) -> u64 {
        let mut stream = TcpStream::connect(self.metrics).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    fn tls_client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// A CA and a "localhost" leaf signed by it, as cert.pem and key.pem in `dir`.
fn write_pki(dir: &Path) -> CertificateDer<'static> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca.der().clone()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

fn tls_connect(daemon: &Daemon) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(daemon.tls_client(), name).unwrap();
    rustls::StreamOwned::new(conn, connect(daemon.tls))
}

/// One STUN message from a stream (header, then its body).
fn read_message(stream: &mut impl Read) -> Vec<u8> {
    let mut message = vec![0u8; 20];
    stream.read_exact(&mut message).expect("a STUN header");
    let len = usize::from(u16::from_be_bytes([message[2], message[3]]));
    message.resize(20 + len, 0);
    stream.read_exact(&mut message[20..]).expect("a STUN body");
    message
}

type Build<'a> =
    dyn Fn(&Client, &mut [u8], TransactionId) -> Result<(TransactionId, usize), BufferTooSmall> + 'a;

/// A connection to the server with our client on it; indications that arrive while a
/// response is awaited are kept for later.
struct Session<S> {
    stream: S,
    client: Client,
    transactions: u64,
    indications: VecDeque<Vec<u8>>,
}

impl<S: Read + Write> Session<S> {
    fn new(stream: S, client: Client) -> Self {
        Self { stream, client, transactions: 0, indications: VecDeque::new() }
    }

    /// Sends a request until it is not challenged (401 first, then with credentials).
    fn request(&mut self, build: &Build<'_>) -> Response {
        for _ in 0..3 {
            self.transactions += 1;
            let mut id = [7u8; 12];
            id[4..].copy_from_slice(&self.transactions.to_be_bytes());
            let mut buf = [0u8; 1504];
            let (_, len) = build(&self.client, &mut buf, TransactionId(id)).unwrap();
            self.stream.write_all(&buf[..len]).unwrap();
            self.stream.flush().unwrap();
            let response = loop {
                let message = read_message(&mut self.stream);
                if message[0] & 0x01 == 0 && message[1] & 0x10 != 0 {
                    self.indications.push_back(message); // class bits 01: an indication
                    continue;
                }
                break self.client.handle_response(&message).unwrap();
            };
            if response.outcome != Outcome::Retry {
                return response;
            }
        }
        panic!("challenged three times");
    }

    fn indication(&mut self) -> Vec<u8> {
        self.indications.pop_front().unwrap_or_else(|| read_message(&mut self.stream))
    }

    fn allocate_tcp(&mut self) -> SocketAddr {
        let options = AllocateOptions { transport: TCP, ..AllocateOptions::default() };
        let response = self.request(&|c, b, t| c.allocate(b, t, &options));
        assert_eq!(response.outcome, Outcome::Success, "{response:?}");
        response.relayed[0]
    }

    fn connect(&mut self, peer: SocketAddr) -> Response {
        self.request(&|c, b, t| c.connect(b, t, peer))
    }

    fn bind(&mut self, id: u32) -> Response {
        self.request(&|c, b, t| c.connection_bind(b, t, id))
    }
}

fn ada() -> Client {
    Client::new("ada", "lovelace")
}

/// A TCP peer on 127.0.0.2 that echoes what it receives on one connection, and reports the
/// bytes echoed once the connection closes, and where the connection came from.
fn echo_peer() -> (SocketAddr, JoinHandle<(u64, SocketAddr)>) {
    echo_peer_on(PEER_IP)
}

fn echo_peer_on(ip: IpAddr) -> (SocketAddr, JoinHandle<(u64, SocketAddr)>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, from) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        (std::io::copy(&mut stream, &mut writer).unwrap(), from)
    });
    (addr, handle)
}

/// `len` bytes that no short cycle repeats.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `data` from another thread while reading the same number of bytes back.
fn round_trip(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sent = data.to_vec();
    let write = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; data.len()];
    (&*stream).read_exact(&mut back).unwrap();
    write.join().unwrap();
    back
}

/// Whether the other side closed: a read that ends (0 bytes or a reset) rather than times out.
fn closed(stream: &mut impl Read) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn connect_then_connection_bind_pipes_megabytes_both_ways_byte_exact() {
    let daemon = Daemon::start("pipe");
    let (peer, echoed) = echo_peer();
    let mut control = Session::new(connect(daemon.tcp), ada());
    let relayed = control.allocate_tcp();
    let response = control.connect(peer);
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    let id = response.connection_id.expect("CONNECTION-ID in the Connect response");
    assert_eq!(daemon.metric("turn_peer_connections"), 1);
    // RFC 6062 §5.2: a second Connect to a peer with a connection pending or active is 446.
    assert_eq!(control.connect(peer).outcome, Outcome::Error(446));

    let mut data = Session::new(connect(daemon.tcp), ada());
    let bound = data.bind(id);
    assert_eq!((bound.outcome, bound.signed), (Outcome::Success, true), "{bound:?}");
    // 4 MiB through 64 KiB pipe buffers: backpressure, not loss.
    let sent = pattern(4 << 20, 1);
    let back = round_trip(&data.stream, &sent);
    assert!(back == sent, "the echo came back byte-exact");
    assert_eq!(control.connect(peer).outcome, Outcome::Error(446), "still active");

    // Closing the client data connection closes the peer's.
    data.stream.shutdown(Shutdown::Both).unwrap();
    // RFC 6062 §5.2: the connection to the peer leaves from the relayed address.
    assert_eq!(echoed.join().unwrap(), (4 << 20, relayed));
    let deadline = Instant::now() + TIMEOUT;
    while daemon.metric("turn_peer_connections") != 0 {
        assert!(Instant::now() < deadline, "the peer connection is gone from the gauge");
        std::thread::sleep(Duration::from_millis(20));
    }
    let relayed = |direction: &str| {
        daemon.metric(&format!("turn_tcp_relayed_bytes_total{{direction=\"{direction}\"}}"))
    };
    assert_eq!((relayed("client_to_peer"), relayed("peer_to_client")), (4 << 20, 4 << 20));
}

#[test]
fn an_ipv6_tcp_relay_connects_out_from_its_address_and_pipes() {
    // ::1 is the relay's own address too, which only an explicit allowance opens.
    let daemon = Daemon::start_with("v6", "relay-ip=127.0.0.1\nrelay-ip=::1\nallowed-peer-ip=::1\n");
    let (peer, echoed) = echo_peer_on(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let mut control = Session::new(connect(daemon.tcp), ada());
    let options =
        AllocateOptions { transport: TCP, family: Some(AddressFamily::V6), ..AllocateOptions::default() };
    let response = control.request(&|c, b, t| c.allocate(b, t, &options));
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    let relayed = response.relayed[0];
    assert_eq!(relayed.ip(), Ipv6Addr::LOCALHOST, "{response:?}");
    let response = control.connect(peer);
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    let id = response.connection_id.expect("CONNECTION-ID in the Connect response");

    let mut data = Session::new(connect(daemon.tcp), ada());
    assert_eq!(data.bind(id).outcome, Outcome::Success);
    let sent = pattern(256 << 10, 3);
    assert!(round_trip(&data.stream, &sent) == sent, "the echo came back byte-exact");
    data.stream.shutdown(Shutdown::Both).unwrap();
    assert_eq!(echoed.join().unwrap(), (256 << 10, relayed), "from the IPv6 relayed address");
}

#[test]
fn a_closed_port_is_447_a_forbidden_peer_403_an_unknown_connection_id_400() {
    let daemon = Daemon::start("errors");
    let mut control = Session::new(connect(daemon.tcp), ada());
    control.allocate_tcp();
    let closed_port =
        SocketAddr::new(PEER_IP, TcpListener::bind((PEER_IP, 0)).unwrap().local_addr().unwrap().port());
    assert_eq!(control.connect(closed_port).outcome, Outcome::Error(447));
    assert_eq!(daemon.metric("turn_peer_connect_failures_total"), 1);
    // A private address is refused by the peer policy, as for UDP.
    let private = "10.1.2.3:80".parse().unwrap();
    assert_eq!(control.connect(private).outcome, Outcome::Error(403));
    assert_eq!(daemon.metric("turn_denied_peers_total{reason=\"private\"}"), 1);
    // The daemon's own address is never a peer.
    assert_eq!(control.connect(daemon.tcp).outcome, Outcome::Error(403));
    let mut data = Session::new(connect(daemon.tcp), ada());
    assert_eq!(data.bind(0xdead_beef).outcome, Outcome::Error(400));
    // A control connection cannot bind itself.
    assert_eq!(control.bind(1).outcome, Outcome::Error(400));
    // The refused connection stays a STUN connection.
    let again = Session::new(connect(daemon.tcp), ada()).request(&|c, b, t| c.connection_bind(b, t, 1));
    assert_eq!(again.outcome, Outcome::Error(400));
    assert_eq!(daemon.metric("turn_peer_connections"), 0);
}

#[test]
fn a_udp_allocation_takes_no_connect_and_tcp_takes_no_even_port() {
    let daemon = Daemon::start("kinds");
    let mut udp = Session::new(connect(daemon.tcp), ada());
    let response = udp.request(&|c, b, t| c.allocate(b, t, &AllocateOptions::default()));
    assert_eq!(response.outcome, Outcome::Success);
    assert_eq!(udp.connect(SocketAddr::new(PEER_IP, 9)).outcome, Outcome::Error(400));
    let mut tcp = Session::new(connect(daemon.tcp), ada());
    let even = AllocateOptions { transport: TCP, even_port: Some(false), ..AllocateOptions::default() };
    assert_eq!(tcp.request(&|c, b, t| c.allocate(b, t, &even)).outcome, Outcome::Error(400));
    let df = AllocateOptions { transport: TCP, dont_fragment: true, ..AllocateOptions::default() };
    assert_eq!(tcp.request(&|c, b, t| c.allocate(b, t, &df)).outcome, Outcome::Error(400));
}

/// Connects to `relayed` from 127.0.0.2 (where the permission is).
fn peer_connects(relayed: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(PEER_IP, 0).into()).unwrap();
    socket.connect_timeout(&relayed.into(), TIMEOUT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn a_peer_connecting_to_the_relay_is_announced_bound_and_piped_until_it_closes() {
    let daemon = Daemon::start("incoming");
    let mut control = Session::new(connect(daemon.tcp), ada());
    let relayed = control.allocate_tcp();
    let permission = control.request(&|c, b, t| c.create_permission(b, t, &[SocketAddr::new(PEER_IP, 1)]));
    assert_eq!(permission.outcome, Outcome::Success);
    let mut peer = peer_connects(relayed);
    // Sent before ConnectionBind: buffered, then delivered first.
    peer.write_all(b"early bytes").unwrap();
    let (from, id) = parse_connection_attempt(&control.indication()).expect("a ConnectionAttempt indication");
    assert_eq!(from, peer.local_addr().unwrap(), "XOR-PEER-ADDRESS names the peer");
    let mut data = Session::new(connect(daemon.tcp), ada());
    assert_eq!(data.bind(id).outcome, Outcome::Success);
    let mut early = [0u8; 11];
    data.stream.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early bytes");
    data.stream.write_all(b"to the peer").unwrap();
    let mut got = [0u8; 11];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the peer");
    // Closing the peer closes the client data connection.
    drop(peer);
    assert!(closed(&mut data.stream), "the data connection closes with its peer");
    // The control connection is untouched.
    assert_eq!(control.request(&|c, b, t| c.refresh(b, t, Some(600), None)).outcome, Outcome::Success);
}

#[test]
fn a_peer_without_permission_is_closed_and_never_announced() {
    let daemon = Daemon::start("unpermitted");
    let mut control = Session::new(connect(daemon.tcp), ada());
    let relayed = control.allocate_tcp();
    let mut peer = peer_connects(relayed);
    assert!(closed(&mut peer), "closed right after the accept");
    let refresh = control.request(&|c, b, t| c.refresh(b, t, Some(600), None));
    assert_eq!(refresh.outcome, Outcome::Success);
    assert!(control.indications.is_empty(), "no ConnectionAttempt came before the response");
    assert_eq!(daemon.metric("turn_peer_connections"), 0);
}

#[test]
fn refresh_with_lifetime_zero_closes_peer_and_data_connections() {
    let daemon = Daemon::start("refresh0");
    let (peer, echoed) = echo_peer();
    let mut control = Session::new(connect(daemon.tcp), ada());
    control.allocate_tcp();
    let id = control.connect(peer).connection_id.unwrap();
    let mut data = Session::new(connect(daemon.tcp), ada());
    assert_eq!(data.bind(id).outcome, Outcome::Success);
    assert_eq!(round_trip(&data.stream, b"ping"), b"ping");
    assert_eq!(control.request(&|c, b, t| c.refresh(b, t, Some(0), None)).outcome, Outcome::Success);
    assert!(closed(&mut data.stream), "the data connection goes with the allocation");
    assert_eq!(echoed.join().unwrap().0, 4, "the peer connection too");
}

#[test]
fn closing_the_control_connection_closes_an_unbound_peer_connection() {
    let daemon = Daemon::start("control-close");
    let (peer, echoed) = echo_peer();
    let mut control = Session::new(connect(daemon.tcp), ada());
    control.allocate_tcp();
    assert!(control.connect(peer).connection_id.is_some());
    drop(control);
    assert_eq!(echoed.join().unwrap().0, 0, "the peer sees its connection close");
}

#[test]
fn a_tls_client_pipes_over_a_tls_data_connection() {
    let daemon = Daemon::start("tls");
    let (peer, echoed) = echo_peer();
    let mut control = Session::new(tls_connect(&daemon), ada());
    control.allocate_tcp();
    let id = control.connect(peer).connection_id.unwrap();
    let mut data = Session::new(tls_connect(&daemon), ada());
    assert_eq!(data.bind(id).outcome, Outcome::Success);
    // Chunks larger than a TLS record and than the pipe buffer, echoed one at a time.
    let mut total = 0;
    for (i, len) in [1, 1000, 16 * 1024 + 1, 200 * 1024].into_iter().enumerate() {
        let chunk = pattern(len, i as u64 + 2);
        data.stream.write_all(&chunk).unwrap();
        data.stream.flush().unwrap();
        let mut back = vec![0u8; len];
        data.stream.read_exact(&mut back).unwrap();
        assert!(back == chunk, "chunk {i} came back byte-exact");
        total += len as u64;
    }
    data.stream.conn.send_close_notify();
    data.stream.flush().unwrap();
    assert_eq!(echoed.join().unwrap().0, total);
}

#[test]
fn a_peer_sending_more_than_the_buffer_before_connection_bind_is_slowed_not_cut() {
    let daemon = Daemon::start("early-flood");
    let mut control = Session::new(connect(daemon.tcp), ada());
    let relayed = control.allocate_tcp();
    let permission = control.request(&|c, b, t| c.create_permission(b, t, &[SocketAddr::new(PEER_IP, 1)]));
    assert_eq!(permission.outcome, Outcome::Success);
    let peer = peer_connects(relayed);
    // Far more than the server holds for an unbound connection (64 KiB) and than the
    // sockets' buffers: the peer's writes block until the client binds and reads.
    let flood = pattern(32 << 20, 9);
    let mut writer = peer.try_clone().unwrap();
    writer.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let sent = flood.clone();
    let writing = std::thread::spawn(move || writer.write_all(&sent).map(|()| Instant::now()));
    let (_, id) = parse_connection_attempt(&control.indication()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!writing.is_finished(), "the peer is held back before ConnectionBind");
    let mut data = Session::new(connect(daemon.tcp), ada());
    assert_eq!(data.bind(id).outcome, Outcome::Success);
    let mut got = vec![0u8; flood.len()];
    data.stream.read_exact(&mut got).unwrap();
    assert!(got == flood, "every byte, in order, once bound");
    writing.join().unwrap().unwrap();
}
