//! The kernel baselines: about the least CPU a user-space UDP forwarder can spend per packet
//! without io_uring, GSO or kernel bypass.
//!
//! The forwarder ([`run`]) is one thread on one socket. A blocking `recvmmsg` with
//! `MSG_WAITFORONE` sleeps until a datagram arrives and then takes whatever else is queued, up
//! to [`BATCH`]; each datagram is looked up by source address (a `SocketAddr` hash map, as the
//! relay does) and one `sendmmsg` sends the whole batch to every destination of its route,
//! straight from the receive buffers. Nothing is copied, nothing allocates, and a datagram
//! from an unrouted source is dropped.
//!
//! `bench-report` runs it in two layouts:
//!
//! - **same topology** (`kernel-per-core`): N such forwarders, one per engine worker, each a
//!   thread with its own SO_REUSEPORT socket on the shared port and pinned to core i of the
//!   allowed CPUs ([`engine::affinity`]), exactly as the engine lays out
//!   its workers. The kernel spreads the sources over the sockets as it does over the
//!   engine's, so each thread sleeps and wakes per burst as a worker does. This is the
//!   yardstick for the engine in relay mode: it pays the same thread layout, so the gap is
//!   what the engine's per-packet machinery (pool slots, reference counts, wiping, counters)
//!   costs on top of the kernel's work.
//! - **one thread** (`kernel`): a single unpinned forwarder on a single socket. It takes
//!   bigger batches and fewer wake-ups per packet, so the gap between it and the same-topology
//!   baseline shows what the per-core thread layout itself costs at this load.

use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use bridge::relay::Route;

use crate::mmsg::{self, RecvBatch};

/// Datagrams per `recvmmsg`, as the engine's `mmsg_batch` default.
pub const BATCH: usize = 32;

/// Source address to the C addresses of its destinations.
type Table = HashMap<SocketAddr, Box<[libc::sockaddr_in]>>;

fn table(routes: &[Route]) -> io::Result<Table> {
    routes
        .iter()
        .map(|route| {
            let dests = route.to.iter().map(|&to| mmsg::sockaddr_v4(to)).collect::<io::Result<_>>()?;
            Ok((route.from, dests))
        })
        .collect()
}

/// Forwards on `socket` according to `routes` until an error that is not transient; a
/// benchmark child runs this on a thread of its own (one per socket in the same-topology
/// layout) and exits the process to stop it.
pub fn run(socket: &UdpSocket, routes: &[Route]) -> io::Error {
    let mut forwarder = match Forwarder::new(routes) {
        Ok(forwarder) => forwarder,
        Err(e) => return e,
    };
    loop {
        if let Err(e) = forwarder.turn(socket.as_raw_fd()) {
            return e;
        }
    }
}

/// The receive batch, the table and the send headers that point into both.
struct Forwarder {
    rx: RecvBatch,
    table: Table,
    /// One per received datagram: its bytes as they go out (the receive iovecs span the buffer).
    send_iovecs: Box<[libc::iovec]>,
    /// One per copy sent: `BATCH` datagrams times the largest fan-out.
    tx: Box<[libc::mmsghdr]>,
}

impl Forwarder {
    fn new(routes: &[Route]) -> io::Result<Self> {
        let table = table(routes)?;
        let max_fanout = table.values().map(|dests| dests.len()).max().unwrap_or(1);
        let send_iovecs = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        let tx = (0..BATCH * max_fanout).map(|_| mmsg::zeroed_header()).collect();
        Ok(Self { rx: RecvBatch::new(BATCH), table, send_iovecs: send_iovecs.into_boxed_slice(), tx })
    }

    /// One receive (sleeping until at least one datagram is there) and one send batch.
    fn turn(&mut self, fd: RawFd) -> io::Result<()> {
        match self.rx.recv(fd, libc::MSG_WAITFORONE) {
            Ok(_) => {}
            Err(e) if mmsg::is_transient(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        let queued = self.queue_sends();
        // SAFETY: the first `queued` headers point at names in `table` and iovecs in
        // `send_iovecs` over bytes in `rx`'s buffers; all are owned by `self`, which is
        // borrowed mutably for the call, so nothing moves or changes until it returns.
        // Failed sends are lost packets, which the sinks' count reports.
        unsafe { mmsg::send_all(fd, &mut self.tx[..queued]) };
        Ok(())
    }

    /// Points one send header at each (datagram, destination) pair. Returns how many.
    fn queue_sends(&mut self) -> usize {
        let mut queued = 0;
        for i in 0..self.rx.received() {
            if self.rx.truncated(i) {
                continue;
            }
            let Some(dests) = self.rx.source(i).and_then(|from| self.table.get(&from)) else {
                continue;
            };
            let payload = self.rx.payload(i);
            self.send_iovecs[i] =
                libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
            for dest in dests.iter() {
                let header = &mut self.tx[queued].msg_hdr;
                // The kernel only reads the name and the iovec of a send.
                header.msg_name = (dest as *const libc::sockaddr_in).cast_mut().cast();
                header.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                header.msg_iov = &raw mut self.send_iovecs[i];
                header.msg_iovlen = 1;
                queued += 1;
            }
        }
        queued
    }
}
