//! Exhausted pools, full queues and fan-out past the limit drop packets and count them under
//! their reason; the worker never blocks, never grows a buffer, and keeps forwarding after.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Counts, Datagram, Destination, DropReason, Engine, EngineConfig, Handler, MemoryLock,
    Output, Via, WorkerId,
};

/// Byte 0 of a datagram says what to do with it: 0 forward once, 1 forward `copies` times,
/// 2 write `copies` new packets.
#[derive(Clone, Copy)]
struct Spray {
    sink: SocketAddr,
    copies: usize,
    cross_core: bool,
}

impl Handler for Spray {
    fn handle(&mut self, _now: Instant, _from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let via = if self.cross_core { Via::Worker(WorkerId(1 - out.worker().0)) } else { Via::Here };
        let to = Destination { via, ..Destination::here(self.sink) };
        match packet.first() {
            Some(0) => {
                packet.forward(Destination::here(self.sink));
            }
            Some(1) => (0..self.copies).for_each(|_| {
                packet.forward(to);
            }),
            Some(2) => (0..self.copies).for_each(|i| {
                out.send(to, |buf| buf.extend_from_slice(&(i as u32).to_be_bytes()).unwrap());
            }),
            _ => out.drop_packet(DropReason::Rejected),
        }
    }
}

struct Rig {
    engine: Engine,
    client: UdpSocket,
    sink: UdpSocket,
}

impl Rig {
    fn start(config: EngineConfig, copies: usize, cross_core: bool) -> Self {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let handler = Spray { sink: sink.local_addr().unwrap(), copies, cross_core };
        let config =
            EngineConfig { listen: "127.0.0.1:0".parse().unwrap(), lock_memory: MemoryLock::Off, ..config };
        let engine = Engine::start(&config, |_| handler).expect("engine starts");
        Self { engine, client, sink }
    }

    /// Sends one datagram and collects what reaches the sink until it goes quiet.
    fn exchange(&self, kind: u8) -> usize {
        self.client.send_to(&[kind, 0xAA, 0xBB], self.engine.local_addr()).unwrap();
        let mut buf = [0u8; 64];
        let mut received = 0;
        loop {
            match self.sink.recv_from(&mut buf) {
                Ok(_) => received += 1,
                // Blocking calls in these test processes now and then return EINTR: retry.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // quiet for the read timeout
            }
        }
        received
    }

    /// Counters once they have been published (workers publish at the end of a loop turn).
    fn settled(&self) -> Counts {
        std::thread::sleep(Duration::from_millis(50));
        self.engine.totals()
    }

    /// After the overload, the engine still forwards an ordinary datagram.
    fn still_forwards(self) {
        assert_eq!(self.exchange(0), 1, "a plain datagram is forwarded after the overload");
        assert!(self.engine.stop(), "engine stops in time");
    }
}

const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Mmsg];

#[test]
fn exhausted_pool_drops_and_counts() {
    for backend in BACKENDS {
        let config =
            EngineConfig { workers: 1, pool_slots_per_worker: 64, backend, ..EngineConfig::default() };
        let rig = Rig::start(config, 200, false);
        let delivered = rig.exchange(2);
        let counts = rig.settled();
        let dropped = counts.drops(DropReason::PoolEmpty);
        assert!(dropped > 0 && delivered > 0, "{backend:?}: {delivered} delivered, {counts:?}");
        assert_eq!(delivered as u64 + dropped, 200, "{backend:?}: every new packet is sent or counted");
        rig.still_forwards();
    }
}

#[test]
fn full_send_queue_drops_and_counts() {
    for backend in BACKENDS {
        let config = EngineConfig { workers: 1, send_queue: 16, backend, ..EngineConfig::default() };
        let rig = Rig::start(config, 100, false);
        let delivered = rig.exchange(1);
        let counts = rig.settled();
        assert_eq!(delivered, 16, "{backend:?}: the queue's capacity is sent");
        assert_eq!(counts.drops(DropReason::SendQueueFull), 84, "{backend:?}: {counts:?}");
        rig.still_forwards();
    }
}

#[test]
fn full_handoff_queue_drops_and_counts() {
    for backend in BACKENDS {
        let config = EngineConfig { workers: 2, handoff_queue: 2, backend, ..EngineConfig::default() };
        let rig = Rig::start(config, 200, true);
        let delivered = rig.exchange(1);
        let counts = rig.settled();
        let dropped = counts.drops(DropReason::HandoffFull);
        assert!(dropped > 0, "{backend:?}: {counts:?}");
        assert_eq!(counts.handoffs + dropped, 200, "{backend:?}: every copy handed off or counted");
        assert_eq!(delivered as u64, counts.handoffs, "{backend:?}: every handed-off copy is sent");
        rig.still_forwards();
    }
}

#[test]
fn fanout_past_the_limit_drops_and_counts() {
    for backend in BACKENDS {
        let config = EngineConfig { workers: 1, max_fanout: 4, backend, ..EngineConfig::default() };
        let rig = Rig::start(config, 10, false);
        assert_eq!(rig.exchange(1), 4);
        assert_eq!(rig.settled().drops(DropReason::FanoutLimit), 6);
        rig.still_forwards();
    }
}

#[test]
fn handler_rejections_are_counted() {
    let config = EngineConfig { workers: 1, ..EngineConfig::default() };
    let rig = Rig::start(config, 1, false);
    assert_eq!(rig.exchange(9), 0);
    assert_eq!(rig.settled().drops(DropReason::Rejected), 1);
    rig.still_forwards();
}
