//! The load generator: paced sources and counting sinks, all on 127.0.0.1.
//!
//! Sources send [`PACKET_LEN`]-byte datagrams at a fixed total rate, in `sendmmsg` bursts once
//! per [`TICK`], round robin over several sockets so that the kernel's SO_REUSEPORT hash
//! spreads them over the engine's workers. For the SRTP forwarders each source sends real
//! SRTP instead: an RTP stream of its own (SSRC, increasing sequence numbers), every packet
//! protected with the source's context from [`crate::srtp`] just before it is sent, so that a
//! datagram is [`PACKET_LEN`] bytes of RTP plus the profile's overhead. One sink thread drains every sink socket with
//! `recvmmsg` once per millisecond and counts what arrived.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bridge::media::srtp::Profile;

use crate::PACKET_LEN;
use crate::mmsg::{self, RecvBatch};
use crate::srtp::SrtpSource;

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
    /// Per socket, in the same order, its SRTP stream when the sources send SRTP.
    srtp: Option<Vec<SrtpSource>>,
}

impl Sources {
    /// Binds `count` sockets on 127.0.0.1, each on its own port. With `srtp`, socket i sends
    /// the SRTP stream of source i ([`crate::srtp`]).
    pub fn bind(count: usize, srtp: Option<Profile>) -> io::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let sockets = (0..count).map(|_| mmsg::udp_socket(any_port, BUFFER)).collect::<io::Result<_>>()?;
        let srtp = srtp.map(|profile| (0..count).map(|i| SrtpSource::new(profile, i)).collect());
        Ok(Self { sockets, srtp })
    }

    /// Bytes of every datagram the sources send.
    pub fn datagram_len(&self) -> usize {
        PACKET_LEN + self.srtp.as_ref().and_then(|s| s.first()).map_or(0, SrtpSource::overhead)
    }

    pub fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.sockets.iter().map(UdpSocket::local_addr).collect()
    }

    /// Sends `rate` datagrams per second in total to `to` for `duration`; returns how many the
    /// kernel accepted. A sender that falls behind (the machine is shared) catches up by at
    /// most 10 ms worth per tick, so a stall never turns into one huge burst; the achieved
    /// rate is what the caller computes from the count.
    pub fn send_paced(&mut self, to: SocketAddr, rate: u64, duration: Duration) -> io::Result<u64> {
        let mut blast = Blast::new(to, self.datagram_len())?;
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
                let srtp = self.srtp.as_mut().map(|streams| &mut streams[next_source]);
                next_source = (next_source + 1) % self.sockets.len();
                sent += blast.send(socket.as_raw_fd(), count, srtp)? as u64;
                burst -= count;
            }
            let next = start + TICK * tick;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(sent)
    }
}

/// `sendmmsg` headers and buffers for up to [`SEND_BATCH`] datagrams to one address. Plain
/// datagrams are all alike (the forwarders never look at the bytes); SRTP ones are written and
/// protected one by one just before each send.
struct Blast {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    /// The destination every header names.
    name: Box<libc::sockaddr_in>,
    /// [`SEND_BATCH`] buffers of `stride` bytes, one per datagram.
    payloads: Box<[u8]>,
    stride: usize,
}

impl Blast {
    /// Room for datagrams of `datagram_len` bytes (at least [`PACKET_LEN`]).
    fn new(to: SocketAddr, datagram_len: usize) -> io::Result<Self> {
        let stride = datagram_len.max(PACKET_LEN);
        let mut payloads = vec![0u8; stride * SEND_BATCH].into_boxed_slice();
        for payload in payloads.chunks_mut(stride) {
            // Something RTP-looking (version 2), in case a future forwarder classifies packets.
            payload[0] = 0x80;
        }
        let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Ok(Self {
            headers: (0..SEND_BATCH).map(|_| mmsg::zeroed_header()).collect(),
            iovecs: vec![empty; SEND_BATCH].into_boxed_slice(),
            name: Box::new(mmsg::sockaddr_v4(to)?),
            payloads,
            stride,
        })
    }

    /// Sends `count` (at most [`SEND_BATCH`]) datagrams from `fd`, the next packets of `srtp`
    /// if given; returns how many went out.
    fn send(&mut self, fd: RawFd, count: usize, mut srtp: Option<&mut SrtpSource>) -> io::Result<usize> {
        let count = count.min(SEND_BATCH);
        let name = (&raw mut *self.name).cast();
        // The pointers are set afresh on every call, after the bytes are written, from `self`
        // borrowed for the whole call.
        let rows = self.headers[..count]
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.payloads.chunks_mut(self.stride));
        for ((header, iov), payload) in rows {
            let len = match srtp.as_deref_mut() {
                Some(source) => source.protect_next(payload, PACKET_LEN).map_err(io::Error::other)?,
                None => PACKET_LEN,
            };
            *iov = libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: len };
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = name;
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        // SAFETY: every header points at its iovec, over its own buffer in `payloads`, and at
        // the address in `name`, all owned by `self`, which is borrowed for the call.
        Ok(unsafe { mmsg::send_all(fd, &mut self.headers[..count]) }.sent)
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
    /// Binds `count` sink sockets on 127.0.0.1 and starts counting the datagrams of
    /// `datagram_len` bytes that reach them.
    pub fn spawn(count: usize, datagram_len: usize) -> io::Result<Self> {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let sockets: Vec<UdpSocket> =
            (0..count).map(|_| mmsg::udp_socket(any_port, BUFFER)).collect::<io::Result<_>>()?;
        let addrs = sockets.iter().map(UdpSocket::local_addr).collect::<io::Result<_>>()?;
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (delivered.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sinks".to_owned())
            .spawn(move || count_until_stopped(&sockets, datagram_len, &counter, &stopped))?;
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
fn count_until_stopped(
    sockets: &[UdpSocket],
    datagram_len: usize,
    delivered: &AtomicU64,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut batch = RecvBatch::new(64);
    let mut total = 0u64;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(SINK_NAP);
        for socket in sockets {
            total += drain(&mut batch, socket.as_raw_fd(), datagram_len)?;
        }
        delivered.store(total, Ordering::Release);
    }
    Ok(())
}

/// Receives everything queued on `fd`; returns how many datagrams were `datagram_len` bytes.
fn drain(batch: &mut RecvBatch, fd: RawFd, datagram_len: usize) -> io::Result<u64> {
    let mut count = 0;
    loop {
        match batch.recv(fd, libc::MSG_DONTWAIT) {
            Ok(n) => {
                count += (0..n).filter(|&i| batch.payload(i).len() == datagram_len).count() as u64;
                if n < batch.capacity() {
                    return Ok(count);
                }
            }
            Err(e) if mmsg::is_transient(&e) => return Ok(count),
            Err(e) => return Err(e),
        }
    }
}
