//! The workers' UDP sockets and the conversions between `SocketAddr` and C socket addresses.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Room for any address a worker socket receives from: `sockaddr_in6` is the largest.
pub const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();

/// Opens one worker's socket: non-blocking, SO_REUSEPORT on `addr`, dual-stack when `addr` is
/// the IPv6 wildcard.
pub fn bind_reuseport(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    bind(addr, buffer, true, &mut 0)
}

/// Opens a socket a handler asked for: non-blocking, bound to `addr` alone (no SO_REUSEPORT),
/// IPv6-only when `addr` is IPv6. Adds the system calls it made to `syscalls`.
pub fn bind_plain(addr: SocketAddr, buffer: usize, syscalls: &mut u64) -> io::Result<UdpSocket> {
    bind(addr, buffer, false, syscalls)
}

fn bind(addr: SocketAddr, buffer: usize, shared: bool, syscalls: &mut u64) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    *syscalls += 1;
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if shared {
        *syscalls += 1;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if addr.is_ipv6() {
        // The shared media port takes both families; a handler's socket is exactly what it
        // asked for, so an IPv6 relay address never receives IPv4 traffic.
        *syscalls += 1;
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, i32::from(!shared))?;
    }
    if buffer > 0 {
        let size = buffer.min(i32::MAX as usize) as libc::c_int;
        // The FORCE variants pass net.core.[rw]mem_max when we have CAP_NET_ADMIN; without it
        // fall back to the plain options, which the kernel clamps.
        for (force, plain) in
            [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)]
        {
            *syscalls += 1;
            if setsockopt(&fd, libc::SOL_SOCKET, force, size).is_err() {
                *syscalls += 1;
                setsockopt(&fd, libc::SOL_SOCKET, plain, size)?;
            }
        }
    }
    let mut storage: libc::sockaddr_in6 = unsafe_zeroed();
    let len =
        encode(addr, domain, &mut storage).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    *syscalls += 1;
    // SAFETY: storage holds a valid sockaddr of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from(fd))
}

/// IPv4: IP_MTU_DISCOVER "do" sets the DF bit, "dont" clears it. IPv6 has no DF bit but a host
/// may fragment what it sends; IPV6_DONTFRAG forbids that (RFC 3542 §11.2).
pub fn set_dont_fragment(socket: &impl AsRawFd, v6: bool, on: bool) -> io::Result<()> {
    let (level, name, value) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, libc::c_int::from(on))
    } else {
        let mode = if on { libc::IP_PMTUDISC_DO } else { libc::IP_PMTUDISC_DONT };
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)
    };
    // SAFETY: the descriptor is open while `socket` is borrowed; `value` is a live c_int and
    // its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as _,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value is a live c_int and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as _,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Datagrams the kernel dropped on `socket` (receive buffer full), from SO_MEMINFO.
pub fn kernel_drops(socket: &UdpSocket) -> Option<u64> {
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_DROPS: usize = 8;
    let mut info = [0u32; 9];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
    };
    (rc == 0 && len as usize > SK_MEMINFO_DROPS * 4).then(|| u64::from(info[SK_MEMINFO_DROPS]))
}

/// Most datagrams one [`recv_batch`] call takes.
pub const MAX_RECV_BATCH: usize = 16;

/// One datagram taken by [`recv_batch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into its chunk of the slab.
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// It was longer than its chunk, and the rest is lost.
    pub truncated: bool,
}

/// Takes the datagrams queued on a non-blocking socket with one `recvmmsg`: the i-th into the
/// i-th `chunk`-byte piece of `slab`, described by `out[i]`, at most `out.len()`,
/// [`MAX_RECV_BATCH`] or as many chunks as `slab` has. Returns how many; fewer than asked means
/// the queue is empty, so an edge-triggered reader need not ask again until the next edge,
/// which saves the `EAGAIN` call that `recv` in a loop ends with.
pub fn recv_batch(
    socket: &impl AsRawFd,
    slab: &mut [u8],
    chunk: usize,
    out: &mut [Received],
) -> io::Result<usize> {
    let want = out.len().min(MAX_RECV_BATCH).min(slab.len() / chunk.max(1));
    if want == 0 {
        return Ok(0);
    }
    let mut names = [unsafe_zeroed::<libc::sockaddr_in6>(); MAX_RECV_BATCH];
    let mut iovecs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_RECV_BATCH];
    let mut headers = [unsafe_zeroed::<libc::mmsghdr>(); MAX_RECV_BATCH];
    for (i, piece) in slab.chunks_exact_mut(chunk).take(want).enumerate() {
        iovecs[i] = libc::iovec { iov_base: piece.as_mut_ptr().cast(), iov_len: piece.len() };
        point_header(
            &mut headers[i].msg_hdr,
            &raw mut names[i],
            NAME_LEN as libc::socklen_t,
            &raw mut iovecs[i],
        );
    }
    // SAFETY: the first `want` headers point at live addresses, iovecs and pieces of `slab`,
    // all borrowed mutably for the duration of the call.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            want as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (datagram, header) in out.iter_mut().zip(&headers[..n]) {
        // SAFETY: the kernel wrote `msg_namelen` bytes (at most NAME_LEN) of the address.
        let name = unsafe {
            std::slice::from_raw_parts(
                header.msg_hdr.msg_name.cast::<u8>(),
                (header.msg_hdr.msg_namelen as usize).min(NAME_LEN),
            )
        };
        *datagram = Received {
            len: (header.msg_len as usize).min(chunk),
            from: decode(name),
            truncated: header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(n)
}

/// Points a message header at one address and one iovec (more may follow it, counted by
/// `msg_iovlen`), with no control data.
pub fn point_header(
    header: &mut libc::msghdr,
    name: *mut libc::sockaddr_in6,
    name_len: libc::socklen_t,
    iov: *mut libc::iovec,
) {
    header.msg_name = name.cast();
    header.msg_namelen = name_len;
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    header.msg_control = std::ptr::null_mut();
    header.msg_controllen = 0;
    header.msg_flags = 0;
}

/// A zeroed C address structure.
pub fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for libc's plain-old-data sockaddr and msghdr structs, for which all
    // zero bytes is a valid value.
    unsafe { zeroed() }
}

/// Writes `addr` for a socket of `family` into `out`; IPv4 destinations of a dual-stack socket
/// become IPv4-mapped IPv6. Returns the address length, or `None` when an IPv6 destination
/// meets an IPv4 socket.
#[inline]
pub fn encode(
    addr: SocketAddr,
    family: libc::c_int,
    out: &mut libc::sockaddr_in6,
) -> Option<libc::socklen_t> {
    match (addr, family) {
        (SocketAddr::V4(v4), libc::AF_INET) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in (16 bytes) fits in sockaddr_in6 (28 bytes); both are POD.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_in6).cast(), sin) };
            Some(size_of::<libc::sockaddr_in>() as _)
        }
        (SocketAddr::V6(_), libc::AF_INET) => None,
        (addr, _) => {
            let (ip, port, flowinfo, scope) = match addr {
                SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
                SocketAddr::V6(v6) => (*v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id()),
            };
            *out = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: flowinfo,
                sin6_addr: libc::in6_addr { s6_addr: ip.octets() },
                sin6_scope_id: scope,
            };
            Some(size_of::<libc::sockaddr_in6>() as _)
        }
    }
}

/// Reads a source address written by the kernel. IPv4-mapped IPv6 addresses come back as
/// IPv4, so a peer has one identity whichever socket family received it.
#[inline]
pub fn decode(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < 2 {
        return None;
    }
    let family = libc::sa_family_t::from_ne_bytes([name[0], name[1]]) as libc::c_int;
    match family {
        libc::AF_INET if name.len() >= size_of::<libc::sockaddr_in>() => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let ip = Ipv4Addr::new(name[4], name[5], name[6], name[7]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        libc::AF_INET6 if name.len() >= size_of::<libc::sockaddr_in6>() => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let flowinfo = u32::from_ne_bytes(name[4..8].try_into().ok()?);
            let octets: [u8; 16] = name[8..24].try_into().ok()?;
            let scope = u32::from_ne_bytes(name[24..28].try_into().ok()?);
            let ip = Ipv6Addr::from(octets);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope)),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(sin6: &libc::sockaddr_in6) -> &[u8] {
        // SAFETY: viewing a POD struct as its bytes.
        unsafe { std::slice::from_raw_parts((sin6 as *const libc::sockaddr_in6).cast(), NAME_LEN) }
    }

    #[test]
    fn addresses_round_trip_through_both_families() {
        let cases: [(SocketAddr, libc::c_int); 4] = [
            ("127.0.0.1:5000".parse().unwrap(), libc::AF_INET),
            ("127.0.0.1:5000".parse().unwrap(), libc::AF_INET6),
            ("[::1]:6000".parse().unwrap(), libc::AF_INET6),
            ("[fe80::1%3]:7".parse().unwrap(), libc::AF_INET6),
        ];
        for (addr, family) in cases {
            let mut storage = unsafe_zeroed();
            let len = encode(addr, family, &mut storage).unwrap() as usize;
            assert_eq!(decode(&bytes_of(&storage)[..len]), Some(addr), "{addr} via {family}");
        }
        let mut storage = unsafe_zeroed();
        assert_eq!(encode("[::1]:1".parse().unwrap(), libc::AF_INET, &mut storage), None);
    }

    #[test]
    fn short_or_unknown_names_are_rejected() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[2, 0, 1]), None);
        assert_eq!(decode(&[0xff; 28]), None);
    }

    #[test]
    fn a_batch_takes_what_is_queued_and_says_when_the_queue_is_empty() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let mut slab = [0u8; 4 * 32];
        let mut out = [Received::default(); 4];
        let empty = recv_batch(&receiver, &mut slab, 32, &mut out).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);

        for payload in [&b"one"[..], b"two!", &[7u8; 40]] {
            sender.send_to(payload, to).unwrap();
        }
        let n = recv_batch(&receiver, &mut slab, 32, &mut out).unwrap();
        assert_eq!(n, 3, "fewer than the four asked for: the queue is empty");
        let from = Some(sender.local_addr().unwrap());
        assert_eq!(out[0], Received { len: 3, from, truncated: false });
        assert_eq!(&slab[..3], b"one");
        assert_eq!(out[1], Received { len: 4, from, truncated: false });
        assert_eq!(&slab[32..36], b"two!");
        assert_eq!(out[2], Received { len: 32, from, truncated: true }, "longer than its chunk");
        assert_eq!(slab[64..96], [7u8; 32]);

        for _ in 0..6 {
            sender.send_to(b"x", to).unwrap();
        }
        assert_eq!(recv_batch(&receiver, &mut slab, 32, &mut out).unwrap(), 4, "as many as asked");
        assert_eq!(recv_batch(&receiver, &mut slab, 32, &mut out[..1]).unwrap(), 1, "out bounds the batch");
        assert_eq!(recv_batch(&receiver, &mut slab[..40], 32, &mut out).unwrap(), 1, "so does the slab");
    }
}
