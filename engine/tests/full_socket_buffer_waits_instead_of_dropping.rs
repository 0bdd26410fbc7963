//! When the socket's send buffer is full (EAGAIN), the io_uring backend hands the rest of the
//! turn's sends to io_uring, which waits for room: nothing is dropped, and nothing overtakes
//! (datagrams leave in the order they were queued). The fallback backend does not wait; it
//! drops and counts `send_failed`.
//!
//! Loopback never fills a send buffer (it delivers synchronously), so the test runs in a
//! private network namespace whose loopback has a slow token-bucket qdisc: queued datagrams
//! hold send-buffer memory until the qdisc releases them. Needs root (unshare, tc).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Counts, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output,
};

/// Forwards each datagram `COPIES` times to the sink.
#[derive(Clone, Copy)]
struct Multiply {
    sink: SocketAddr,
}

const COPIES: usize = 16;
const DATAGRAMS: usize = 20;

impl Handler for Multiply {
    fn handle(&mut self, _now: Instant, _from: SocketAddr, packet: &mut Datagram<'_>, _out: &mut Output<'_>) {
        for _ in 0..COPIES {
            packet.forward(Destination::here(self.sink));
        }
    }
}

fn run(command: &str, args: &[&str]) {
    let status = Command::new(command).args(args).status().unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(status.success(), "{command} {args:?} failed");
}

/// Runs a burst through an engine and returns (the first byte of each datagram at the sink, in
/// arrival order, and the engine's counters).
fn burst(backend: BackendChoice) -> (Vec<u8>, Counts) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    // 320 copies of 1200 bytes take about 80 ms at 40 Mbit/s; 1.5 s of silence means done.
    sink.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let config = EngineConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        lock_memory: MemoryLock::Off,
        // A small send buffer (the kernel doubles it): a few dozen datagrams in the qdisc fill it.
        socket_buffer: 16 << 10,
        backend,
        ..EngineConfig::default()
    };
    let engine = Engine::start(&config, |_| Multiply { sink: sink.local_addr().unwrap() }).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..DATAGRAMS {
        client.send_to(&[i as u8; 1200], engine.local_addr()).unwrap();
    }
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match sink.recv_from(&mut buf) {
            Ok(_) => received.push(buf[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // quiet for the read timeout: the burst is over
        }
    }
    let counts = engine.totals();
    assert!(engine.stop());
    (received, counts)
}

#[test]
fn io_uring_waits_for_room_and_mmsg_counts_its_drops() {
    let result = std::thread::spawn(|| {
        // SAFETY: moves only this thread into a new network namespace; the engine, its
        // workers and the test sockets are all created from it, and `ip`/`tc` inherit it.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET) needs root");
        run("ip", &["link", "set", "lo", "up"]);
        run(
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "tbf", "rate", "40mbit", "burst", "16kb", "latency", "2s"],
        );
        (burst(BackendChoice::IoUring), burst(BackendChoice::Mmsg))
    })
    .join()
    .expect("namespace thread");

    let ((uring_received, uring), (mmsg_received, mmsg)) = result;
    let expected = DATAGRAMS * COPIES;
    assert!(uring.syscalls > 0 && uring.tx_packets as usize == expected, "{uring:?}");
    assert_eq!(uring.total_drops(), 0, "io_uring waited instead of dropping: {uring:?}");
    assert_eq!(uring_received.len(), expected, "every copy arrived");
    assert!(uring_received.is_sorted(), "in the order they were sent: {uring_received:?}");

    let failed = mmsg.drops(engine::DropReason::SendFailed);
    assert!(failed > 0, "the send buffer did fill: {mmsg:?}");
    // The tiny socket buffer is also the receive buffer: the client's burst may lose a few
    // datagrams on the way in. Every copy of each one that arrived is sent or counted.
    assert_eq!(mmsg.tx_packets + failed, mmsg.rx_packets * COPIES as u64, "{mmsg:?}");
    assert_eq!(mmsg_received.len() as u64, mmsg.tx_packets);
    assert!(mmsg_received.is_sorted(), "in the order they were sent: {mmsg_received:?}");
}
