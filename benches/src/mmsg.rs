//! The socket plumbing the load generator and the kernel baselines share: UDP sockets with
//! large kernel buffers (optionally sharing a port through SO_REUSEPORT), preallocated
//! `recvmmsg` batches and a `sendmmsg` loop.
//!
//! IPv4 only: every benchmark packet travels on 127.0.0.1.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// Room for one datagram in a receive batch: any 1500-byte-MTU packet fits.
pub const BUFFER_LEN: usize = 2048;

/// Binds a UDP socket with `buffer` bytes of kernel send and receive buffer.
///
/// The FORCE options pass `net.core.[rw]mem_max` (we run as root); without CAP_NET_ADMIN the
/// plain options apply and the kernel clamps them, which only makes loss under bursts likelier.
pub fn udp_socket(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    set_buffers(socket.as_raw_fd(), buffer)?;
    Ok(socket)
}

/// Binds a blocking IPv4 UDP socket with SO_REUSEPORT set before the bind, so that several
/// sockets share one port and the kernel spreads datagrams over them by a hash of the source
/// address, as it does over the engine's workers. Bind the first to port 0 and the rest to
/// the port it got. Buffers as [`udp_socket`].
pub fn udp_socket_reuseport(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    let name = sockaddr_v4(addr)?;
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns; the UdpSocket closes it.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    setsockopt(fd, libc::SO_REUSEPORT, 1)?;
    set_buffers(fd, buffer)?;
    // SAFETY: `name` is a live sockaddr_in and its size is passed with it.
    let rc = unsafe {
        libc::bind(fd, (&raw const name).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn set_buffers(fd: RawFd, buffer: usize) -> io::Result<()> {
    let size = buffer.min(i32::MAX as usize) as libc::c_int;
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        if setsockopt(fd, force, size).is_err() {
            setsockopt(fd, plain, size)?;
        }
    }
    Ok(())
}

/// Asks the kernel to stamp every datagram `fd` receives with the time it arrived
/// (SO_TIMESTAMPNS, CLOCK_REALTIME, nanoseconds), read back by [`RecvBatch::arrival_ns`].
pub fn timestamp_arrivals(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::SO_TIMESTAMPNS, 1)
}

fn setsockopt(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, name, (&raw const value).cast(), size_of::<libc::c_int>() as _)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The C form of an IPv4 socket address; IPv6 is refused (the benchmark is IPv4 only).
pub fn sockaddr_v4(addr: SocketAddr) -> io::Result<libc::sockaddr_in> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: only IPv4 is supported")));
    };
    Ok(libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    })
}

/// Reads back an address the kernel wrote for an IPv4 socket.
fn from_sockaddr_v4(name: &libc::sockaddr_in) -> SocketAddr {
    let ip = Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr));
    SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(name.sin_port)))
}

/// Errors a forwarding or counting loop shrugs off: an interrupted call, a non-blocking
/// socket with nothing to read, and ICMP errors the kernel queues on a UDP socket after a
/// peer closed (a sink that already stopped).
pub fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
}

/// A zeroed `mmsghdr`.
pub fn zeroed_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain C data (pointers, lengths, flags); all zero bytes is a valid
    // value, meaning "no name, no iovec, no control data".
    unsafe { std::mem::zeroed() }
}

/// Control data room per datagram: one `SCM_TIMESTAMPNS` message (a 16-byte header and a
/// 16-byte timespec) with room to spare, in u64 words for the alignment cmsghdr needs.
const CONTROL_WORDS: usize = 8;

/// A preallocated `recvmmsg` batch: datagram buffers, their iovecs, source addresses, control
/// buffers (for arrival timestamps) and the headers pointing at them. The pointers go into boxed slices, which keep their heap address
/// when the batch moves, so they are set once in [`RecvBatch::new`].
pub struct RecvBatch {
    headers: Box<[libc::mmsghdr]>,
    /// Read only by the kernel, through the headers' pointers; owned here to keep them valid.
    #[allow(dead_code)]
    iovecs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_in]>,
    /// Read through the headers' pointers too (by the kernel and by `arrival_ns`).
    #[allow(dead_code)]
    controls: Box<[[u64; CONTROL_WORDS]]>,
    buffers: Box<[[u8; BUFFER_LEN]]>,
    /// Datagrams the last `recv` returned.
    received: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("received", &self.received)
            .finish()
    }
}

impl RecvBatch {
    /// A batch of `size` datagrams.
    pub fn new(size: usize) -> Self {
        let mut buffers = vec![[0u8; BUFFER_LEN]; size].into_boxed_slice();
        let mut iovecs: Box<[libc::iovec]> = buffers
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: BUFFER_LEN })
            .collect();
        let unspecified = sockaddr_v4(SocketAddr::from(([0, 0, 0, 0], 0)));
        let unspecified = unspecified.expect("an IPv4 literal converts to sockaddr_in");
        let mut names = vec![unspecified; size].into_boxed_slice();
        let mut controls = vec![[0u64; CONTROL_WORDS]; size].into_boxed_slice();
        let headers = iovecs
            .iter_mut()
            .zip(names.iter_mut())
            .zip(controls.iter_mut())
            .map(|((iov, name), control)| {
                let mut header = zeroed_header();
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
                header.msg_hdr.msg_control = control.as_mut_ptr().cast();
                header
            })
            .collect();
        Self { headers, iovecs, names, controls, buffers, received: 0 }
    }

    /// One `recvmmsg` into the whole batch with `flags`; returns how many datagrams came.
    pub fn recv(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        self.received = 0;
        for header in self.headers.iter_mut() {
            // The kernel overwrites the name length with the address it wrote: reset it.
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // ... and the control length with what it wrote.
            header.msg_hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            header.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at its own live iovec (over a BUFFER_LEN buffer) and
        // sockaddr_in in this batch, all borrowed mutably through `self` for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                self.headers.len() as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// Datagrams the last `recv` returned.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Bytes of datagram `i` of the last `recv`.
    pub fn payload(&self, i: usize) -> &[u8] {
        assert!(i < self.received, "datagram {i} was not received");
        let len = (self.headers[i].msg_len as usize).min(BUFFER_LEN);
        &self.buffers[i][..len]
    }

    /// Source of datagram `i` of the last `recv`; `None` for anything but an IPv4 address.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        assert!(i < self.received, "datagram {i} was not received");
        let header = &self.headers[i].msg_hdr;
        let complete = header.msg_namelen as usize >= size_of::<libc::sockaddr_in>();
        (complete && i32::from(self.names[i].sin_family) == libc::AF_INET)
            .then(|| from_sockaddr_v4(&self.names[i]))
    }

    /// When datagram `i` of the last `recv` arrived at the socket, in CLOCK_REALTIME
    /// nanoseconds, if the socket stamps arrivals ([`timestamp_arrivals`]).
    pub fn arrival_ns(&self, i: usize) -> Option<u64> {
        assert!(i < self.received, "datagram {i} was not received");
        let header = &self.headers[i].msg_hdr;
        // SAFETY: `header` is the kernel's answer for datagram `i`: its control pointer is
        // this batch's own buffer `controls[i]` and its length what the kernel wrote there,
        // so the CMSG macros walk only bytes inside that buffer.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let stamp = libc::CMSG_DATA(cmsg).cast::<libc::timespec>().read_unaligned();
                    return Some(stamp.tv_sec as u64 * 1_000_000_000 + stamp.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }

    /// Whether datagram `i` was longer than its buffer.
    pub fn truncated(&self, i: usize) -> bool {
        self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Datagrams one `recv` can return.
    pub fn capacity(&self) -> usize {
        self.headers.len()
    }
}

/// What a [`send_all`] call achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    pub failed: usize,
}

/// Sends every header with as many `sendmmsg` calls as it takes. A message the kernel refuses
/// (reported as -1 for the first message of a call) is counted as failed and skipped, so one
/// bad destination cannot stall the rest.
///
/// # Safety
/// Every header must point at a live name and live iovecs over live bytes for the whole call.
pub unsafe fn send_all(fd: RawFd, headers: &mut [libc::mmsghdr]) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let mut done = 0;
    while done < headers.len() {
        let rest = &mut headers[done..];
        // SAFETY: the caller guarantees the headers' pointers are live for this call.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n > 0 {
            outcome.sent += n as usize;
            done += n as usize;
        } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            outcome.failed += 1;
            done += 1;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realtime_ns() -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        now.as_nanos() as u64
    }

    #[test]
    fn arrivals_carry_the_kernels_stamp_when_asked_for() {
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
        let (stamped, plain) = (udp_socket(localhost, 0).unwrap(), udp_socket(localhost, 0).unwrap());
        timestamp_arrivals(stamped.as_raw_fd()).unwrap();
        let sender = udp_socket(localhost, 0).unwrap();
        // The kernel turns arrival stamping on from a work queue: the first socket to ask for
        // it waits a moment before datagrams are stamped on arrival rather than when read.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let before = realtime_ns();
        sender.send_to(b"one", stamped.local_addr().unwrap()).unwrap();
        sender.send_to(b"two", stamped.local_addr().unwrap()).unwrap();
        sender.send_to(b"three", plain.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let read = realtime_ns();

        let mut batch = RecvBatch::new(4);
        assert_eq!(batch.recv(stamped.as_raw_fd(), libc::MSG_DONTWAIT).unwrap(), 2);
        for i in 0..2 {
            let at = batch.arrival_ns(i).expect("a stamped socket's datagram has its arrival time");
            // Stamped on arrival, not when read 20 ms later.
            assert!(before <= at && at + 10_000_000 < read, "arrival {at} not in [{before}, {read} - 10 ms)");
        }
        assert_eq!(batch.recv(plain.as_raw_fd(), libc::MSG_DONTWAIT).unwrap(), 1);
        assert_eq!(batch.payload(0), b"three");
        assert_eq!(batch.arrival_ns(0), None);
    }
}
