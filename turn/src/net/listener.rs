//! Listening sockets for TURN over TCP and TLS.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::server::Transport;

/// Connections waiting to be accepted; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;

/// One bound, listening, non-blocking socket. Every worker polls its own duplicate of it and
/// accepts from the shared queue, so a worker that is busy leaves connections to the others.
#[derive(Debug)]
pub struct StreamListener {
    pub listener: TcpListener,
    pub local: SocketAddr,
    pub transport: Transport,
}

impl StreamListener {
    pub fn bind(addr: SocketAddr, transport: Transport) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // A restarted daemon must get its port back while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            // `::` and `0.0.0.0` are bound side by side; without V6ONLY the first takes both.
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        socket.set_nonblocking(true)?;
        let listener: TcpListener = socket.into();
        let local = listener.local_addr()?;
        Ok(Self { listener, local, transport })
    }

    pub fn try_clone(&self) -> io::Result<TcpListener> {
        self.listener.try_clone()
    }
}

/// `listening-ip`s, or when there are none, every address of both families (coturn's
/// default).
pub fn listening_ips(configured: &[IpAddr]) -> Vec<IpAddr> {
    if configured.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
    } else {
        configured.to_vec()
    }
}
