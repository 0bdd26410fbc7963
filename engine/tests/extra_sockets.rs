//! A handler opens UDP sockets of its own at run time (what a TURN server does for each
//! allocation's relay address), receives on them, answers from them and closes them; with both
//! backends. Closing ends delivery at once and releases the descriptor; the per-worker limit is
//! an error, not a panic; hundreds of sockets receive side by side; misuse is counted.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Counts, Datagram, Destination, DropReason, Engine, EngineConfig, Handler, MemoryLock,
    Output, SocketId, SocketLimitReached, Via, WorkerId,
};

const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Mmsg];

/// What the handler saw, for the test to check.
#[derive(Default)]
struct Log {
    /// Datagrams handled on sockets the handler opened.
    handled: AtomicU64,
    /// Datagrams whose `socket()` or `local_addr()` did not match the socket they came to.
    mismatched: AtomicU64,
    /// Datagrams handled on a socket after the handler closed it.
    after_close: AtomicU64,
}

/// Control datagrams on the listener, by first byte; the answer goes back from the listener:
/// - `O count family`: open `count` sockets on 127.0.0.1 (family 4) or [::1] (6), port 0;
///   answers `o` and their ports, or `e` and 1 when the limit refused, 0 for another error;
/// - `C port`: close the socket on `port`; answers `c` and 1 when it was open;
/// - `X port`: send one datagram from the (closed) socket that had `port`; answers `x`;
/// - `W port`: send one datagram from the socket on `port` through the other worker; `w`;
/// - `R port`: close the socket on `port` and open another; answers `r` and its port;
/// - `L`: close the listener and each closed id again; answers `l` and how many of those
///   closes returned true;
/// - anything else: answers `?`.
///
/// Datagrams on an opened socket are echoed from that same socket.
struct Relay {
    open: HashMap<u16, SocketId>,
    closed: Vec<(u16, SocketId)>,
    log: Arc<Log>,
}

impl Relay {
    fn new(log: Arc<Log>) -> Self {
        Self { open: HashMap::new(), closed: Vec::new(), log }
    }

    fn control(&mut self, from: SocketAddr, packet: &Datagram<'_>, out: &mut Output<'_>) {
        let port = || u16::from_be_bytes([packet[1], packet[2]]);
        let mut answer = Vec::new();
        match packet[0] {
            b'O' => {
                let ip = if packet[2] == 6 { "[::1]" } else { "127.0.0.1" };
                let local: SocketAddr = format!("{ip}:0").parse().unwrap();
                answer.push(b'o');
                for _ in 0..packet[1] {
                    match out.open_udp(local) {
                        Ok((id, addr)) => {
                            assert_eq!(out.local_addr(id), Some(addr));
                            self.open.insert(addr.port(), id);
                            answer.extend_from_slice(&addr.port().to_be_bytes());
                        }
                        Err(e) => {
                            let limit = e.get_ref().and_then(|e| e.downcast_ref::<SocketLimitReached>());
                            answer = vec![b'e', u8::from(limit.is_some())];
                            break;
                        }
                    }
                }
            }
            b'C' => {
                let closed = self.open.remove(&port()).is_some_and(|id| {
                    self.closed.push((port(), id));
                    out.close_socket(id)
                });
                answer = vec![b'c', u8::from(closed)];
            }
            b'R' => {
                let id = self.open.remove(&port()).expect("an open port");
                self.closed.push((port(), id));
                assert!(out.close_socket(id));
                let (id, addr) = out.open_udp("127.0.0.1:0".parse().unwrap()).expect("room");
                self.open.insert(addr.port(), id);
                answer.push(b'r');
                answer.extend_from_slice(&addr.port().to_be_bytes());
            }
            b'X' => {
                let (_, id) = *self.closed.iter().find(|(p, _)| *p == port()).expect("a closed port");
                out.send(Destination::from_socket(id, from), |buf| buf.extend_from_slice(b"late").unwrap());
                answer.push(b'x');
            }
            b'W' => {
                let other = Via::Worker(WorkerId(1 - out.worker().0));
                let to = Destination { via: other, ..Destination::from_socket(self.open[&port()], from) };
                out.send(to, |buf| buf.extend_from_slice(b"elsewhere").unwrap());
                answer.push(b'w');
            }
            b'L' => {
                let mut closed = u8::from(out.close_socket(SocketId::LISTENER));
                for &(_, id) in &self.closed {
                    closed += u8::from(out.close_socket(id));
                }
                answer = vec![b'l', closed];
            }
            _ => answer.push(b'?'),
        }
        out.send(Destination::here(from), |buf| buf.extend_from_slice(&answer).unwrap());
    }
}

impl Handler for Relay {
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        if packet.socket() == SocketId::LISTENER {
            return self.control(from, packet, out);
        }
        let id = packet.socket();
        if self.closed.iter().any(|&(_, closed)| closed == id) {
            self.log.after_close.fetch_add(1, Ordering::Relaxed);
        }
        if self.open.get(&packet.local_addr().port()) != Some(&id) {
            self.log.mismatched.fetch_add(1, Ordering::Relaxed);
        }
        self.log.handled.fetch_add(1, Ordering::Relaxed);
        packet.forward(Destination::from_socket(id, from));
    }
}

struct Rig {
    engine: Engine,
    /// Talks to the listener.
    control: UdpSocket,
    log: Arc<Log>,
}

impl Rig {
    fn start(backend: BackendChoice, workers: usize, max_sockets: usize) -> Self {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 1024,
            max_sockets_per_worker: max_sockets,
            backend,
            ..EngineConfig::default()
        };
        let log = Arc::new(Log::default());
        let engine = Engine::start(&config, |_| Relay::new(log.clone())).expect("engine starts");
        let control = peer("127.0.0.1:0");
        Self { engine, control, log }
    }

    /// Sends a control datagram and returns the answer.
    fn ask(&self, request: &[u8]) -> Vec<u8> {
        self.control.send_to(request, self.engine.local_addr()).unwrap();
        let (answer, from) = receive(&self.control).expect("an answer");
        assert_eq!(from, self.engine.local_addr(), "control answers come from the listener");
        answer
    }

    /// Opens `count` sockets; their addresses.
    fn open(&self, count: u8, family: u8) -> Vec<SocketAddr> {
        let answer = self.ask(&[b'O', count, family]);
        assert_eq!(answer[0], b'o', "opened: {answer:?}");
        let ip = if family == 6 { "::1" } else { "127.0.0.1" };
        let ip: std::net::IpAddr = ip.parse().unwrap();
        answer[1..].chunks(2).map(|p| SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]]))).collect()
    }

    fn close(&self, addr: SocketAddr) -> bool {
        let [hi, lo] = addr.port().to_be_bytes();
        let answer = self.ask(&[b'C', hi, lo]);
        assert_eq!(answer[0], b'c');
        answer[1] == 1
    }

    /// Counters once published (at the end of a loop turn).
    fn settled(&self) -> Counts {
        std::thread::sleep(Duration::from_millis(50));
        self.engine.totals()
    }
}

fn peer(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    socket
}

/// One datagram, or `None` after the read timeout.
fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            // Blocking calls in these test processes now and then return EINTR: retry.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// Sends `payload` to `to` and checks the echo comes back from `to`.
fn echo(peer: &UdpSocket, to: SocketAddr, payload: &[u8]) {
    peer.send_to(payload, to).unwrap();
    let (answer, from) = receive(peer).unwrap_or_else(|| panic!("no echo from {to}"));
    assert_eq!(from, to, "the echo leaves from the socket the datagram came to");
    assert_eq!(answer, payload);
}

/// The inode of the UDP socket bound to `port`, which must exist. The kernel writes
/// /proc/net/udp a page at a time, and sockets opening or closing meanwhile (other tests, the
/// flood) can make a read skip entries: look again before giving up.
fn bound_inode(port: u16) -> u64 {
    (0..50)
        .find_map(|_| {
            udp_inode(port).or_else(|| {
                std::thread::sleep(Duration::from_millis(2));
                None
            })
        })
        .unwrap_or_else(|| panic!("no UDP socket bound to port {port}"))
}

/// The inode of the UDP socket bound to `port` in this network namespace, if one is listed.
fn udp_inode(port: u16) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port).then(|| fields[9].parse().ok()).flatten()
        })
    })
}

/// Whether this process holds a descriptor of socket `inode`.
fn holds_socket(inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == wanted))
}

#[test]
fn an_opened_socket_receives_and_answers_from_itself() {
    for backend in BACKENDS {
        let rig = Rig::start(backend, 1, 4);
        let [relay] = rig.open(1, 4)[..] else { panic!("one socket") };
        assert_ne!(relay.port(), rig.engine.local_addr().port());
        let client = peer("127.0.0.1:0");
        for i in 0..20u8 {
            echo(&client, relay, &[i; 100]);
        }
        // IPv6, where the host has it: the socket is IPv6-only and answers from ::1.
        let ipv6 = UdpSocket::bind("[::1]:0").is_ok();
        if ipv6 {
            let [relay6] = rig.open(1, 6)[..] else { panic!("one socket") };
            echo(&peer("[::1]:0"), relay6, b"six");
        }
        // The listener still answers as before.
        assert_eq!(rig.ask(b"hello"), b"?", "{backend:?}");
        let counts = rig.settled();
        assert_eq!(rig.log.mismatched.load(Ordering::Relaxed), 0, "{backend:?}: socket() names the socket");
        assert!(rig.log.handled.load(Ordering::Relaxed) >= 20);
        assert_eq!(counts.sockets_open, 1 + u64::from(ipv6), "{counts:?}");
        assert_eq!(counts.total_drops(), 0, "{backend:?}: {counts:?}");
        assert!(rig.engine.stop());
    }
}

#[test]
fn closing_ends_delivery_and_releases_the_descriptor() {
    for backend in BACKENDS {
        let rig = Rig::start(backend, 1, 4);
        let [relay] = rig.open(1, 4)[..] else { panic!("one socket") };
        let inode = bound_inode(relay.port());
        assert!(holds_socket(inode), "{backend:?}: the process holds the socket");
        let client = peer("127.0.0.1:0");
        echo(&client, relay, b"before");

        // Datagrams keep coming while the socket closes: some are in the kernel's queue, or in
        // io_uring's hands, when the handler closes it. None may reach the handler afterwards.
        let flooding = Arc::new(AtomicBool::new(true));
        let flood = {
            let flooding = flooding.clone();
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                while flooding.load(Ordering::Relaxed) {
                    let _ = socket.send_to(&[7; 200], relay);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(rig.close(relay), "{backend:?}: the open socket closes");
        let handled_at_close = rig.log.handled.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        flooding.store(false, Ordering::Relaxed);
        flood.join().unwrap();

        let deadline = Instant::now() + Duration::from_secs(2);
        while holds_socket(inode) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!holds_socket(inode), "{backend:?}: the descriptor is closed");
        assert_eq!(udp_inode(relay.port()), None, "{backend:?}: the port is free again");
        assert_eq!(
            rig.log.after_close.load(Ordering::Relaxed),
            0,
            "{backend:?}: nothing handled after close"
        );
        assert_eq!(rig.log.handled.load(Ordering::Relaxed), handled_at_close, "{backend:?}");
        assert!(handled_at_close > 1, "{backend:?}: the flood reached the socket before it closed");

        // A datagram to the old port is not handled; the listener still works.
        client.send_to(b"after", relay).unwrap();
        assert_eq!(receive(&client), None, "{backend:?}: no echo after close");
        assert_eq!(rig.log.handled.load(Ordering::Relaxed), handled_at_close, "{backend:?}");
        let counts = rig.settled();
        assert_eq!(counts.sockets_open, 0, "{backend:?}: {counts:?}");
        assert!(rig.engine.stop());
    }
}

#[test]
fn the_limit_is_an_error_and_is_counted() {
    for backend in BACKENDS {
        let rig = Rig::start(backend, 1, 3);
        let sockets = rig.open(3, 4);
        assert_eq!(sockets.len(), 3);
        assert_eq!(rig.ask(&[b'O', 1, 4]), vec![b'e', 1], "{backend:?}: the fourth is refused by the limit");
        let counts = rig.settled();
        assert_eq!((counts.sockets_open, counts.socket_open_failures), (3, 1), "{backend:?}: {counts:?}");

        // A closed socket makes room at once, even while its descriptor is still closing.
        assert!(rig.close(sockets[0]));
        let [again] = rig.open(1, 4)[..] else { panic!("one socket") };
        echo(&peer("127.0.0.1:0"), again, b"again");
        for &relay in &sockets[1..] {
            echo(&peer("127.0.0.1:0"), relay, b"still");
        }
        assert!(rig.engine.stop());

        // The default configuration allows no extra socket.
        let rig = Rig::start(backend, 1, 0);
        assert_eq!(rig.ask(&[b'O', 1, 4]), vec![b'e', 1], "{backend:?}");
        assert!(rig.engine.stop());
    }
}

#[test]
fn two_hundred_sockets_receive_side_by_side() {
    const SOCKETS: usize = 200;
    for backend in BACKENDS {
        let rig = Rig::start(backend, 1, 256);
        let relays = rig.open(SOCKETS as u8, 4);
        assert_eq!(relays.len(), SOCKETS);
        let inodes: Vec<u64> = relays.iter().map(|r| bound_inode(r.port())).collect();
        let client = peer("127.0.0.1:0");
        for round in 0..3u8 {
            for (i, relay) in relays.iter().enumerate() {
                client.send_to(&[round, (i >> 8) as u8, i as u8], relay).unwrap();
            }
            let mut seen = [false; SOCKETS];
            for _ in 0..SOCKETS {
                let (answer, from) = receive(&client).expect("every socket echoes");
                let i = usize::from(answer[1]) << 8 | usize::from(answer[2]);
                assert_eq!((answer[0], from), (round, relays[i]), "{backend:?}: from the socket it went to");
                assert!(!std::mem::replace(&mut seen[i], true), "{backend:?}: one echo each");
            }
        }
        assert_eq!(rig.log.mismatched.load(Ordering::Relaxed), 0);
        for &relay in &relays {
            assert!(rig.close(relay));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while inodes.iter().any(|&i| holds_socket(i)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!inodes.iter().any(|&i| holds_socket(i)), "{backend:?}: every descriptor is closed");
        assert_eq!(rig.settled().sockets_open, 0);
        assert!(rig.engine.stop());
    }
}

#[test]
fn misuse_is_dropped_and_counted_never_a_panic() {
    for backend in BACKENDS {
        let rig = Rig::start(backend, 2, 4);
        let [relay] = rig.open(1, 4)[..] else { panic!("one socket") };
        let [hi, lo] = relay.port().to_be_bytes();

        // A socket sends only from the worker that opened it.
        assert_eq!(rig.ask(&[b'W', hi, lo]), b"w");
        assert_eq!(rig.settled().drops(DropReason::UnknownSocket), 1, "{backend:?}");

        // Closing the listener, or an id already closed, does nothing; sending from a closed
        // socket is dropped and counted.
        assert!(rig.close(relay));
        assert_eq!(rig.ask(b"L"), vec![b'l', 0], "{backend:?}: no such close succeeds");
        assert_eq!(rig.ask(&[b'X', hi, lo]), b"x");
        assert_eq!(rig.settled().drops(DropReason::UnknownSocket), 2, "{backend:?}");

        // Everything else still works.
        let [again] = rig.open(1, 4)[..] else { panic!("one socket") };
        echo(&peer("127.0.0.1:0"), again, b"fine");
        assert!(rig.engine.stop());
    }
}

#[test]
fn churning_sockets_never_cross_wires() {
    const SOCKETS: usize = 4;
    const CYCLES: usize = 60;
    for backend in BACKENDS {
        let rig = Rig::start(backend, 1, SOCKETS);
        let relays = rig.open(SOCKETS as u8, 4);
        let mut inodes: Vec<u64> = relays.iter().map(|r| bound_inode(r.port())).collect();
        // Every socket ever opened is flooded throughout, the closed ones too, while sockets
        // close and open (reusing table indexes) under it.
        let targets = Arc::new(std::sync::Mutex::new(relays.clone()));
        let flooding = Arc::new(AtomicBool::new(true));
        let flood = {
            let (targets, flooding) = (targets.clone(), flooding.clone());
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                while flooding.load(Ordering::Relaxed) {
                    let targets = targets.lock().unwrap().clone();
                    for to in targets {
                        let _ = socket.send_to(&[1; 64], to);
                    }
                }
            })
        };
        let mut current = relays;
        for cycle in 0..CYCLES {
            let old = current[cycle % SOCKETS];
            let [hi, lo] = old.port().to_be_bytes();
            let answer = rig.ask(&[b'R', hi, lo]);
            assert_eq!(answer[0], b'r', "{backend:?}");
            let new = SocketAddr::from(([127, 0, 0, 1], u16::from_be_bytes([answer[1], answer[2]])));
            current[cycle % SOCKETS] = new;
            inodes.push(bound_inode(new.port()));
            targets.lock().unwrap().push(new);
        }
        flooding.store(false, Ordering::Relaxed);
        flood.join().unwrap();

        assert_eq!(
            rig.log.after_close.load(Ordering::Relaxed),
            0,
            "{backend:?}: nothing handled after close"
        );
        assert_eq!(rig.log.mismatched.load(Ordering::Relaxed), 0, "{backend:?}: socket() always right");
        for &relay in &current {
            echo(&peer("127.0.0.1:0"), relay, b"current");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let held = || inodes.iter().filter(|&&i| holds_socket(i)).count();
        while held() > SOCKETS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(held(), SOCKETS, "{backend:?}: only the open sockets hold descriptors");
        assert_eq!(rig.settled().sockets_open, SOCKETS as u64, "{backend:?}");
        assert!(rig.engine.stop());
    }
}
