//! Stopping under load: receiving stops, packets already taken in are sent (or, past the drain
//! time, counted), and the workers exit within the bound. Nothing is lost uncounted.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, Via, WorkerId,
};

/// Forwards every datagram to the sink three times, twice through the other worker.
#[derive(Clone, Copy)]
struct FanOut3 {
    sink: SocketAddr,
}

impl Handler for FanOut3 {
    fn handle(&mut self, _now: Instant, _from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let other = Via::Worker(WorkerId(1 - out.worker().0));
        packet.forward(Destination::here(self.sink));
        packet.forward(Destination { via: other, ..Destination::here(self.sink) });
        packet.forward(Destination { via: other, ..Destination::here(self.sink) });
    }
}

#[test]
fn stop_under_load_accounts_for_every_packet() {
    for backend in [BackendChoice::IoUring, BackendChoice::Mmsg] {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 512,
            backend,
            ..EngineConfig::default()
        };
        let handler = FanOut3 { sink: sink.local_addr().unwrap() };
        let engine = Engine::start(&config, |_| handler).unwrap();
        let target = engine.local_addr();

        // Several sources flood until told to stop, so both workers are busy when stop comes.
        let flooding = Arc::new(AtomicBool::new(true));
        let floods: Vec<_> = (0..4)
            .map(|_| {
                let flooding = flooding.clone();
                std::thread::spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    while flooding.load(Ordering::Relaxed) {
                        let _ = socket.send_to(&[7u8; 1000], target);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));

        let started = Instant::now();
        let stopped_cleanly = {
            let totals_handle = engine.counter_handles();
            let clean = engine.stop();
            let mut totals = engine::Counts::default();
            totals_handle.iter().for_each(|c| totals.add(&c.load()));
            flooding.store(false, Ordering::Relaxed);
            floods.into_iter().for_each(|f| f.join().unwrap());
            assert!(totals.rx_packets > 1000, "{backend:?}: load reached the engine: {totals:?}");
            assert_eq!(
                totals.rx_packets * 3,
                totals.tx_packets + totals.total_drops(),
                "{backend:?}: every copy of every received packet was sent or counted: {totals:?}"
            );
            clean
        };
        assert!(stopped_cleanly, "{backend:?}: workers exited");
        assert!(
            started.elapsed() < config.drain_timeout() + Duration::from_secs(1),
            "{backend:?}: within the bound"
        );
    }
}
