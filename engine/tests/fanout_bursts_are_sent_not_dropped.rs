//! A burst of datagrams handled in one turn, each sent out as many fresh copies (what an SFU
//! does: every receiver's copy is encrypted on its own), needs more slots than the turn has
//! (io_uring: the share kept off the receive ring; mmsg: what the receive batch left). Both
//! backends then send what they have queued before handling the next datagram, instead of
//! dropping copies for want of a slot (`pool_empty`) or of a queue entry (`send_queue_full`).
//!
//! The burst is made the way it happens in production: the worker is held up (here the
//! handler sleeps on the first datagram, as if descheduled) while the rest arrive, and the
//! next turn finds them all at once.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, DropReason, Engine, EngineConfig, Handler, MemoryLock, Output,
};

const COPIES: usize = 9;
const DATAGRAMS: usize = 100;

/// Writes `COPIES` fresh copies of each datagram to the sink; sleeps on the first one.
struct Copier {
    sink: SocketAddr,
    first: bool,
}

impl Handler for Copier {
    fn handle(&mut self, _now: Instant, _from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        if std::mem::take(&mut self.first) {
            std::thread::sleep(Duration::from_millis(200));
        }
        for _ in 0..COPIES {
            out.send(Destination::here(self.sink), |buf| {
                if buf.extend_from_slice(&packet[..]).is_err() {
                    buf.truncate(0);
                }
            });
        }
    }
}

#[test]
fn a_burst_of_fanned_out_datagrams_is_sent_whole_with_io_uring() {
    burst(BackendChoice::IoUring);
}

#[test]
fn a_burst_of_fanned_out_datagrams_is_sent_whole_with_mmsg() {
    burst(BackendChoice::Mmsg);
}

fn burst(backend: BackendChoice) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        lock_memory: MemoryLock::Off,
        backend,
        // 256 slots: io_uring keeps 224 on its receive ring, 32 for copies; mmsg receives 32
        // at a time into free slots. The burst needs 891.
        pool_slots_per_worker: 256,
        max_fanout: 16,
        send_queue: 128,
        ..EngineConfig::default()
    };
    let sink_addr = sink.local_addr().unwrap();
    let engine = Engine::start(&config, |_| Copier { sink: sink_addr, first: true }).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..DATAGRAMS {
        client.send_to(&[i as u8; 64], engine.local_addr()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected = (DATAGRAMS * COPIES) as u64;
    while engine.totals().tx_packets < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let totals = engine.totals();
    assert_eq!(totals.rx_packets, DATAGRAMS as u64, "{totals:?}");
    assert_eq!(totals.drops(DropReason::PoolEmpty), 0, "copies dropped for want of a slot: {totals:?}");
    assert_eq!(
        totals.drops(DropReason::SendQueueFull),
        0,
        "copies dropped for want of a queue entry: {totals:?}"
    );
    assert_eq!(totals.tx_packets, expected, "every copy sent: {totals:?}");
    engine.stop();
}
