//! An engine with several listen addresses (`listen` plus `extra_listen`: IPv4, a second IPv4
//! and IPv6 loopback), with each backend: a datagram to any of them reaches a handler that sees
//! that listener (`socket().is_listener()`, `local_addr()`), and the answer leaves from the
//! address the client sent to, whether the handling worker sends it, another worker does (a
//! cross-core hand-off names the listener by index), or the received slot is forwarded back.
//! With `steer_by_source_ip` one source address reaches the same worker on every listener.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, SocketId, Via,
    WorkerId,
};

const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Mmsg];
const WORKERS: usize = 2;

/// Answers a datagram by its first byte, always from the socket it arrived on:
/// - `F`: forwards the datagram itself back (the received slot is shared with the send);
/// - `X`: writes the report below and has the other worker send it (a hand-off);
/// - anything else: writes the report and sends it from this worker.
///
/// The report: the socket's index, whether it is a listener, whether `Output::listener` finds
/// it by its address, this worker's index, then the socket's local address as text.
struct Report;

impl Handler for Report {
    fn handle(
        &mut self,
        _: std::time::Instant,
        from: SocketAddr,
        packet: &mut Datagram<'_>,
        out: &mut Output<'_>,
    ) {
        let socket = packet.socket();
        let local = packet.local_addr();
        if packet.first() == Some(&b'F') {
            packet.forward(Destination::from_socket(socket, from));
            return;
        }
        let via = match packet.first() {
            Some(b'X') => Via::Worker(WorkerId((out.worker().0 + 1) % WORKERS as u16)),
            _ => Via::Here,
        };
        let found = out.listener(local) == Some(socket);
        let head =
            [socket.index() as u8, u8::from(socket.is_listener()), u8::from(found), out.worker().0 as u8];
        out.send(Destination { addr: from, via, socket }, |buf| {
            buf.extend_from_slice(&head).unwrap();
            buf.extend_from_slice(local.to_string().as_bytes()).unwrap();
        });
    }
}

fn start(backend: BackendChoice) -> Engine {
    let config = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        extra_listen: vec!["127.0.0.3:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        workers: WORKERS,
        pin_workers: false,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 256,
        steer_by_source_ip: true,
        backend,
        ..EngineConfig::default()
    };
    Engine::start(&config, |_| Report).expect("engine starts")
}

/// Sends `request` to `to` from `client` and returns the answer, checking who sent it.
fn exchange(client: &UdpSocket, to: SocketAddr, request: &[u8]) -> Vec<u8> {
    client.send_to(request, to).unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = loop {
        match client.recv_from(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            received => break received.expect("an answer in time"),
        }
    };
    assert_eq!(from, to, "the answer leaves from the address the client sent to");
    buf[..n].to_vec()
}

fn client(ip: &str) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket
}

#[test]
fn a_datagram_to_any_listen_address_is_handled_and_answered_there() {
    for backend in BACKENDS {
        let engine = start(backend);
        let addrs = engine.local_addrs().to_vec();
        assert_eq!(addrs.len(), 3, "{backend:?}");
        assert_eq!(engine.local_addr(), addrs[0]);
        assert_eq!(
            addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>(),
            ["127.0.0.1", "127.0.0.3", "::1"]
        );
        assert!(addrs.iter().all(|a| a.port() != 0), "{addrs:?}");

        let v4 = client("127.0.0.1");
        let v6 = client("::1");
        let mut workers = Vec::new();
        for (index, &addr) in addrs.iter().enumerate() {
            let client = if addr.is_ipv4() { &v4 } else { &v6 };
            for request in [&b"report"[..], b"X"] {
                let answer = exchange(client, addr, request);
                let (head, local) = answer.split_at(4);
                assert_eq!(&head[..3], [index as u8, 1, 1], "{backend:?} {addr} {request:?}");
                assert_eq!(std::str::from_utf8(local).unwrap(), addr.to_string(), "{backend:?}");
                if addr.is_ipv4() && request == b"report" {
                    workers.push(head[3]);
                }
            }
            assert_eq!(exchange(client, addr, b"F echo"), b"F echo", "{backend:?} {addr}");
        }
        assert_eq!(
            workers[0], workers[1],
            "{backend:?}: steering sends one source IP to one worker on each address"
        );
        assert_eq!(SocketId::LISTENER.index(), 0);
        let totals = engine.totals();
        assert_eq!(totals.total_drops(), 0, "{backend:?}: {totals:?}");
        assert!(totals.handoffs >= 3, "{backend:?}: the X answers crossed cores: {totals:?}");
        assert!(engine.stop(), "{backend:?}");
    }
}

#[test]
fn a_listen_address_given_twice_is_refused() {
    let config = EngineConfig {
        listen: "127.0.0.1:40999".parse().unwrap(),
        extra_listen: vec!["127.0.0.1:40999".parse().unwrap()],
        ..EngineConfig::default()
    };
    let error = config.validate().unwrap_err();
    assert_eq!(error.key, "extra_listen");
}
