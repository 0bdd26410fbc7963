//! Receiving on a socket the handler opened and answering from it allocates nothing per
//! packet, with either backend: only opening the socket (the control path) may allocate.
//!
//! The only test in its binary, so no other test's allocations land in the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, SocketId,
};

/// Counts every allocation in the process, then forwards to the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..2000 {
            round_trip(&client, relay, &mut buf);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(allocations, 0, "{backend:?}: 2000 datagrams in and 4000 out");
        assert!(engine.stop());
    }
}
