//! Receiving on a socket the handler opened and answering from it allocates nothing per
//! packet, with either backend: only opening the socket (the control path) may allocate.
//!
//! The only test in its binary, so no other test's allocations land in the count.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, SocketId,
};

#[path = "../../scripts/counting_allocator.rs"]
mod counting_allocator;

#[global_allocator]
static GLOBAL: counting_allocator::Counting = counting_allocator::Counting;

/// A datagram on the listener opens a socket and answers with its port; datagrams on that
/// socket are echoed from it, one forward and one fresh packet each (both send paths).
struct Relay;

impl Handler for Relay {
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        if packet.socket() == SocketId::LISTENER {
            let (_, addr) = out.open_udp("127.0.0.1:0".parse().unwrap()).expect("room for one socket");
            out.send(Destination::here(from), |buf| {
                buf.extend_from_slice(&addr.port().to_be_bytes()).unwrap()
            });
            return;
        }
        let socket = packet.socket();
        out.send(Destination::from_socket(socket, from), |buf| buf.extend_from_slice(b"ack").unwrap());
        packet.forward(Destination::from_socket(socket, from));
    }
}

fn round_trip(client: &UdpSocket, to: SocketAddr, buf: &mut [u8]) {
    client.send_to(&[0x5A; 600], to).unwrap();
    for _ in 0..2 {
        loop {
            match client.recv_from(buf) {
                Ok((_, from)) => {
                    assert_eq!(from, to);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("no answer: {e}"),
            }
        }
    }
}

#[test]
fn the_extra_socket_path_allocates_nothing_per_packet() {
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 256,
            max_sockets_per_worker: 1,
            backend,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, |_| Relay).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2048];
        client.send_to(b"open", engine.local_addr()).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(n, 2);
        let relay = SocketAddr::from(([127, 0, 0, 1], u16::from_be_bytes([buf[0], buf[1]])));
        for _ in 0..100 {
            round_trip(&client, relay, &mut buf); // warm-up
        }

        let before = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..2000 {
            round_trip(&client, relay, &mut buf);
        }
        let allocations = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(allocations, 0, "{backend:?}: 2000 datagrams in and 4000 out");
        assert!(engine.stop());
    }
}
