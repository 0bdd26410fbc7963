//! Shared pieces of the relay tests: sockets, deterministic packets, a paced sender.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A UDP socket on `addr` with a large receive buffer, so bursts are not lost in the kernel.
pub fn udp(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).expect("bind test socket");
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt with a live c_int; failure (no CAP_NET_ADMIN) only means the
        // default buffer, which the paced sender tolerates.
        unsafe {
            libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, option, (&raw const size).cast(), 4);
        }
    }
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    socket
}

/// Sources whose id has this bit send 1000-byte packets only (runs that UDP GSO can batch).
pub const FIXED_LEN_SOURCE: u16 = 0x8000;

/// Writes packet `seq` of source `source` into `buf`: varied length (60..1200 bytes) and
/// content, so a lost, duplicated, cut or corrupted packet is detected. Returns its length.
pub fn packet(source: u16, seq: u32, buf: &mut [u8]) -> usize {
    let len = if source & FIXED_LEN_SOURCE != 0 {
        1000
    } else {
        60 + (seq as usize * 7919 + source as usize * 131) % 1141
    };
    buf[..2].copy_from_slice(&source.to_be_bytes());
    buf[2..6].copy_from_slice(&seq.to_be_bytes());
    let mut x = (u32::from(source) << 24) ^ seq ^ 0x9E37_79B9;
    for byte in &mut buf[6..len] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    len
}

/// Checks a received datagram; returns (source, seq) when it is a packet `packet` made.
pub fn verify(datagram: &[u8]) -> Option<(u16, u32)> {
    if datagram.len() < 6 {
        return None;
    }
    let source = u16::from_be_bytes([datagram[0], datagram[1]]);
    let seq = u32::from_be_bytes(datagram[2..6].try_into().unwrap());
    let mut expected = [0u8; 2048];
    let len = packet(source, seq, &mut expected);
    (datagram == &expected[..len]).then_some((source, seq))
}

/// A sink counting how often it received each packet of each source.
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<(Vec<Vec<u8>>, u64)>,
}

impl Sink {
    /// Receives until `expected` packets arrived or nothing came for `idle`.
    pub fn spawn(addr: &str, sources: usize, per_source: u32, expected: u64) -> Self {
        let socket = udp(addr);
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = vec![vec![0u8; per_source as usize]; sources];
            let mut invalid = 0u64;
            let mut buf = [0u8; 2048];
            let mut last = Instant::now();
            let mut total = 0;
            while total < expected && last.elapsed() < Duration::from_secs(5) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                last = Instant::now();
                total += 1;
                match verify(&buf[..n]).map(|(s, q)| ((s & !FIXED_LEN_SOURCE) as usize, q)) {
                    Some((s, q)) if s < sources && q < per_source => {
                        let c = &mut seen[s][q as usize];
                        *c = c.saturating_add(1);
                    }
                    _ => invalid += 1,
                }
                counter.store(total, Ordering::Release);
            }
            (seen, invalid)
        });
        Self { addr, received, thread }
    }

    pub fn join(self) -> (Vec<Vec<u8>>, u64) {
        self.thread.join().expect("sink thread")
    }
}

/// Sends `per_source` packets from each source (ids `i | id_flag`), round robin, never letting more than `window`
/// forwarded copies be in flight (`copies` = total fan-out of one round, `delivered` = how many
/// arrived so far), so the test measures the relay, not kernel buffer overflow.
#[allow(clippy::too_many_arguments)]
pub fn send_paced(
    sources: &[UdpSocket],
    id_flag: u16,
    to: SocketAddr,
    per_source: u32,
    fanout: &[u64],
    delivered: &dyn Fn() -> u64,
    window: u64,
) {
    let mut buf = [0u8; 2048];
    let mut forwarded = 0u64;
    for seq in 0..per_source {
        for (i, socket) in sources.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while forwarded.saturating_sub(delivered()) > window {
                assert!(
                    Instant::now() < deadline,
                    "relay stalled: {forwarded} forwarded, {} delivered",
                    delivered()
                );
                std::hint::spin_loop();
                std::thread::yield_now();
            }
            let len = packet(i as u16 | id_flag, seq, &mut buf);
            socket.send_to(&buf[..len], to).expect("send to relay");
            forwarded += fanout[i];
        }
    }
}

/// The counting allocator of the "nothing allocates per packet" tests; each test binary
/// installs it with `#[global_allocator]`.
#[path = "../../../scripts/counting_allocator.rs"]
mod counting_allocator;
// Not every test binary that includes this module counts allocations.
#[allow(unused_imports)]
pub use counting_allocator::{ALLOCATIONS, Counting};

pub mod peer;
pub mod sfu;
