//! The load generator: paced sources and counting sinks, all on 127.0.0.1.
//!
//! Sources send [`PACKET_LEN`]-byte datagrams at a fixed total rate, in `sendmmsg` bursts once
//! per [`TICK`], round robin over several sockets so that the kernel's SO_REUSEPORT hash
//! spreads them over the engine's workers. One sink thread drains every sink socket with
//! `recvmmsg` once per millisecond and counts what arrived.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PACKET_LEN;
use crate::mmsg::{self, RecvBatch};

/// Pacing period. At 50,000 packets/s that is 50 datagrams per tick, a burst of 3 or 4 per
/// source with 16 sources: about the packets of one video frame of a stream. Both forwarders
/// see the same bursts, and batch what arrives together.
pub const TICK: Duration = Duration::from_millis(1);
/// Most datagrams one `sendmmsg` of a source carries.
const SEND_BATCH: usize = 64;
/// Kernel buffers of sources and sinks: large, so a burst is never lost in the load
/// generator's own sockets and every loss is the forwarder's.
const BUFFER: usize = 8 << 20;
/// How long the sink thread sleeps between draining its sockets. At 200,000 copies/s that is
/// about 50 datagrams per sink socket, far below what its buffer holds (about 3,000).
const SINK_NAP: Duration = Duration::from_millis(1);

/// The sending sockets.
#[derive(Debug)]
pub struct Sources {
    sockets: Vec<UdpSocket>,
}

impl Sources {
    /// Binds `count` sockets on 127.0.0.1, each on its own port.
    pub fn bind(count: usize) -> io::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let sockets = (0..count).map(|_| mmsg::udp_socket(any_port, BUFFER)).collect::<io::Result<_>>()?;
        Ok(Self { sockets })
    }

    pub fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.sockets.iter().map(UdpSocket::local_addr).collect()
    }

    /// Sends `rate` datagrams per second in total to `to` for `duration`; returns how many the
    /// kernel accepted. A sender that falls behind (the machine is shared) catches up by at
    /// most 10 ms worth per tick, so a stall never turns into one huge burst; the achieved
    /// rate is what the caller computes from the count.
    pub fn send_paced(&self, to: SocketAddr, rate: u64, duration: Duration) -> io::Result<u64> {
        let mut blast = Blast::new(to)?;
        let max_burst = (rate / 100).max(1);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut next_source = 0;
        for tick in 1.. {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            let due = (rate as f64 * elapsed.as_secs_f64()) as u64;
            let mut burst = due.saturating_sub(sent).min(max_burst) as usize;
            // Share the burst over the sources, starting where the last burst stopped.
            let share = burst.div_ceil(self.sockets.len()).min(SEND_BATCH);
            while burst > 0 {
                let count = share.min(burst);
                let socket = &self.sockets[next_source];
                next_source = (next_source + 1) % self.sockets.len();
                sent += blast.send(socket.as_raw_fd(), count) as u64;
                burst -= count;
            }
            let next = start + TICK * tick;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(sent)
    }
}

/// `sendmmsg` headers that all send the same payload to the same address: the forwarders
/// never look at the bytes, so one buffer serves every datagram.
struct Blast {
    headers: Box<[libc::mmsghdr]>,
    /// The iovec, address and bytes every header points at: read only by the kernel, through
    /// those pointers, and boxed so that their addresses are stable.
    #[allow(dead_code)]
    target: (Box<libc::iovec>, Box<libc::sockaddr_in>, Box<[u8]>),
}

impl Blast {
    fn new(to: SocketAddr) -> io::Result<Self> {
        let mut payload = vec![0u8; PACKET_LEN].into_boxed_slice();
        // Something RTP-looking (version 2), in case a future forwarder classifies packets.
        payload[0] = 0x80;
        let mut iov = Box::new(libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: PACKET_LEN });
        let mut name = Box::new(mmsg::sockaddr_v4(to)?);
        let headers = (0..SEND_BATCH)
            .map(|_| {
                let mut header = mmsg::zeroed_header();
                header.msg_hdr.msg_iov = &raw mut *iov;
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_name = (&raw mut *name).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                header
            })
            .collect();
        Ok(Self { headers, target: (iov, name, payload) })
    }

    /// Sends `count` (at most [`SEND_BATCH`]) datagrams from `fd`; returns how many went out.
    fn send(&mut self, fd: RawFd, count: usize) -> usize {
        // SAFETY: every header points at the iovec (over the payload) and the address in
        // `target`, boxed in `self` and unchanged since `new`; `self` is borrowed for the call.
        unsafe { mmsg::send_all(fd, &mut self.headers[..count.min(SEND_BATCH)]) }.sent
    }
}

/// The receiving sockets and the thread that counts what reaches them.
#[derive(Debug)]
pub struct Sinks {
    addrs: Vec<SocketAddr>,
    delivered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Sinks {
    /// Binds `count` sink sockets on 127.0.0.1 and starts counting.
    pub fn spawn(count: usize) -> io::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let sockets: Vec<UdpSocket> =
            (0..count).map(|_| mmsg::udp_socket(any_port, BUFFER)).collect::<io::Result<_>>()?;
        let addrs = sockets.iter().map(UdpSocket::local_addr).collect::<io::Result<_>>()?;
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (delivered.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sinks".to_owned())
            .spawn(move || count_until_stopped(&sockets, &counter, &stopped))?;
        Ok(Self { addrs, delivered, stop, thread: Some(thread) })
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Datagrams of the expected size received so far, over all sinks.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Waits until `expected` datagrams arrived in total, or none arrived for `idle` (the rest
    /// is lost), or `limit` passed. Returns the count then. Either way the forwarder is idle
    /// afterwards, which is when its CPU time can be read exactly.
    pub fn settle(&self, expected: u64, idle: Duration, limit: Duration) -> u64 {
        let start = Instant::now();
        let mut last = (self.delivered(), Instant::now());
        while self.delivered() < expected && last.1.elapsed() < idle && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(2));
            let now = self.delivered();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        self.delivered()
    }

    /// Stops the sink thread and reports an error it met.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("sink thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sink thread: every [`SINK_NAP`], drain every sink socket with non-blocking `recvmmsg`
/// and publish the running count.
///
/// It never waits on the sockets themselves. A reader blocked in `poll` or `recv` must be woken
/// by every delivery that finds it asleep, and on loopback that wake-up (an inter-processor
/// interrupt, a VM exit on a virtual machine) runs inside the forwarder's `sendmmsg` and is
/// charged to the forwarder: a third of its CPU in a profile. A forwarder sending to a NIC
/// never pays it, so the sinks nap on a timer instead, and a socket with no sleeper costs the
/// sender nothing to deliver to.
fn count_until_stopped(sockets: &[UdpSocket], delivered: &AtomicU64, stop: &AtomicBool) -> io::Result<()> {
    let mut batch = RecvBatch::new(64);
    let mut total = 0u64;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(SINK_NAP);
        for socket in sockets {
            total += drain(&mut batch, socket.as_raw_fd())?;
        }
        delivered.store(total, Ordering::Release);
    }
    Ok(())
}

/// Receives everything queued on `fd`; returns how many datagrams were of the size sent.
fn drain(batch: &mut RecvBatch, fd: RawFd) -> io::Result<u64> {
    let mut count = 0;
    loop {
        match batch.recv(fd, libc::MSG_DONTWAIT) {
            Ok(n) => {
                count += (0..n).filter(|&i| batch.payload(i).len() == PACKET_LEN).count() as u64;
                if n < batch.capacity() {
                    return Ok(count);
                }
            }
            Err(e) if mmsg::is_transient(&e) => return Ok(count),
            Err(e) => return Err(e),
        }
    }
}
