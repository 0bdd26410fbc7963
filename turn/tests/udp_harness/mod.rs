//! TURN over UDP on the packet engine, driven by our own client over real loopback sockets:
//! the server on 127.0.0.2 (listener and relay addresses), clients and peers on 127.0.0.1, so
//! a peer is never one of the server's own addresses (a server also listening on ::1 has its
//! clients there on ::1). Every receive has a deadline.

#![allow(dead_code)] // each test file uses part of it

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{BackendChoice, EngineConfig, MemoryLock};
use stun::{BufferTooSmall, TransactionId};
use turn::client::{AllocateOptions, Client, Outcome, Response};
use turn::config::TurnConfig;
use turn::server::Shared;
use turn::udp::{UdpListener, start_udp};

pub const SECRET: &str = "0123456789abcdef0123";
pub const REALM: &str = "example.org";
pub const SERVER_IP: &str = "127.0.0.2";
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Mmsg];
/// How long any one receive waits.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// REST API credentials (use-auth-secret), relay ports `min..=max` (pick them above the
/// ephemeral range, 61000 and up, and apart per test), `extra` lines appended.
pub fn config((min, max): (u16, u16), extra: &str) -> TurnConfig {
    let text = format!(
        "use-auth-secret\nstatic-auth-secret={SECRET}\nrealm={REALM}\nlistening-ip={SERVER_IP}\n\
         min-port={min}\nmax-port={max}\nno-tcp\nno-tls\n{extra}\n"
    );
    let mut config = TurnConfig::parse(&text).unwrap().config;
    config.listening_port = 0; // the engine picks a free one
    config
}

pub fn engine_config(backend: BackendChoice, workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        pin_workers: false,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 256,
        backend,
        socket_buffer: 0,
        drain_timeout_ms: 200,
        ..EngineConfig::default()
    }
}

pub fn start(config: &TurnConfig, backend: BackendChoice, workers: usize) -> (UdpListener, Arc<Shared>) {
    let shared = Arc::new(Shared::new(config));
    let listener = start_udp(config, Arc::clone(&shared), [7; 32], &engine_config(backend, workers))
        .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    (listener, shared)
}

/// Relay sockets open over every worker of the engine, waited for until `expected` (the
/// counters are published once per loop turn).
pub fn wait_sockets_open(listener: &UdpListener, expected: u64) -> u64 {
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let open = listener.engine().totals().sockets_open;
        if open == expected || Instant::now() >= deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A REST API client whose credential is good for an hour.
pub fn rest_client() -> Client {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let username = format!("{}:meeting", now + 3600);
    Client::new(&username, &stun::rest_api_password(SECRET, &username))
}

/// A peer on 127.0.0.1.
pub fn peer() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    socket
}

pub type Build = dyn Fn(&Client, &mut [u8], TransactionId) -> Result<(TransactionId, usize), BufferTooSmall>;

/// Our client on a UDP socket of 127.0.0.1 (of ::1 for a server on IPv6).
pub struct UdpClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub client: Client,
    transactions: u64,
}

impl UdpClient {
    pub fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind(if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).unwrap();
        socket.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        Self { socket, server, client: rest_client(), transactions: 0 }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).unwrap();
    }

    /// The next datagram from the server, `None` after the socket's read timeout.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((len, from)) => {
                    assert_eq!(from, self.server, "only the server talks to the client");
                    return Some(len);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    fn transaction(&mut self) -> TransactionId {
        self.transactions += 1;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(b"test");
        id[4..].copy_from_slice(&self.transactions.to_be_bytes());
        TransactionId(id)
    }

    /// One request and its response (other datagrams are skipped); sent again after a challenge.
    pub fn exchange(&mut self, build: &Build) -> Response {
        for _ in 0..2 {
            let mut buf = [0u8; 2048];
            let transaction = self.transaction();
            let (_, len) = build(&self.client, &mut buf, transaction).unwrap();
            self.send(&buf[..len]);
            let response = loop {
                let len = self.recv(&mut buf).expect("the server answers in time");
                if let Ok(response) = self.client.handle_response(&buf[..len])
                    && response.transaction_id == transaction
                {
                    break response;
                }
            };
            if response.outcome != Outcome::Retry {
                return response;
            }
        }
        panic!("challenged twice");
    }

    pub fn allocate(&mut self, options: AllocateOptions) -> Response {
        self.exchange(&move |c, buf, t| c.allocate(buf, t, &options))
    }

    pub fn permit(&mut self, peers: &[SocketAddr]) -> Response {
        let peers = peers.to_vec();
        self.exchange(&move |c, buf, t| c.create_permission(buf, t, &peers))
    }

    pub fn bind(&mut self, channel: u16, peer: SocketAddr) -> Response {
        self.exchange(&move |c, buf, t| c.channel_bind(buf, t, channel, peer))
    }

    pub fn refresh(&mut self, lifetime: Option<u32>) -> Response {
        self.exchange(&move |c, buf, t| c.refresh(buf, t, lifetime, None))
    }
}

/// The error code of a response, 0 for success.
pub fn code(response: &Response) -> u16 {
    match response.outcome {
        Outcome::Success => 0,
        Outcome::Retry => panic!("a challenge where an answer was expected"),
        Outcome::Error(code) => code,
    }
}

/// A datagram at `peer`: its bytes and sender.
pub fn peer_recv(peer: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    loop {
        match peer.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            received => return received.expect("the peer receives in time"),
        }
    }
}
