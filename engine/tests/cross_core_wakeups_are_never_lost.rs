//! Cross-core hand-off to a sleeping worker: thousands of single-packet round trips, each
//! handed to the other worker while it sleeps, must every one come back promptly. A lost
//! wake-up (the sleep/wake handshake racing) leaves a packet stuck in the queue and fails this.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, Via, WorkerId,
};

/// Echoes every datagram to its sender, sent by the other worker.
#[derive(Clone, Copy)]
struct EchoViaOtherCore;

impl Handler for EchoViaOtherCore {
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let other = WorkerId(1 - out.worker().0);
        packet.forward(Destination { via: Via::Worker(other), ..Destination::here(from) });
    }
}

#[test]
fn every_handoff_to_a_sleeping_worker_is_delivered() {
    const ROUNDS: u32 = 3000;
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 256,
            backend,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, |_| EchoViaOtherCore).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        for round in 0..ROUNDS {
            client.send_to(&round.to_be_bytes(), engine.local_addr()).unwrap();
            let started = Instant::now();
            let n = loop {
                match client.recv_from(&mut buf) {
                    Ok((n, _)) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("{backend:?}: round {round} never came back ({e}): a lost wake-up"),
                }
            };
            assert_eq!(&buf[..n], &round.to_be_bytes());
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "{backend:?}: round {round} took {:?}",
                started.elapsed()
            );
        }
        let totals = engine.totals();
        assert!(totals.handoffs >= u64::from(ROUNDS) - 1, "{backend:?}: {totals:?}");
        assert!(engine.stop());
    }
}
