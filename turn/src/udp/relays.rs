//! A worker's relay sockets: engine sockets it opened, named to the server by [`RelayId`].
//!
//! Both directions of the lookup are an index, never a hash: a relay's entry sits at its engine
//! socket's [`SocketId::index`] (small and unique among the worker's open sockets), and the
//! `RelayId` carries that index in its low 16 bits, with a serial of the entry in the high 16.
//! Each lookup then compares the whole id stored in the entry, so a stale id (a socket closed
//! and its index reused) misses instead of reaching another allocation's socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use engine::{Output, SocketId, SocketLimitReached};

use super::ports::{PortSpace, Rng};
use crate::server::{PortRequest, RelayError, RelayId};

/// Binds refused by the kernel (EADDRINUSE: a port held outside this server's workers) before
/// an open gives up with [`RelayError::PortsExhausted`]. Ports the workers hold are skipped
/// without a bind and do not count. The bound keeps a nearly full range from costing one
/// Allocate request thousands of system calls; it may answer 508 while a port is still free.
pub const MAX_BIND_FAILURES: u32 = 64;

#[derive(Clone, Copy, Debug)]
struct Open {
    socket: SocketId,
    relay: RelayId,
    local: SocketAddr,
    /// What the socket's DONT-FRAGMENT setting is (the kernel's default until first changed).
    dont_fragment: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Bumped at every open of this entry: the high half of its `RelayId`.
    serial: u16,
    open: Option<Open>,
}

#[derive(Debug)]
pub(crate) struct RelaySockets {
    entries: Vec<Entry>,
    ports: Arc<PortSpace>,
    rng: Rng,
}

impl RelaySockets {
    pub fn new(ports: Arc<PortSpace>) -> Self {
        Self { entries: Vec::new(), ports, rng: Rng::new() }
    }

    /// The relay a datagram on `socket` belongs to.
    #[inline]
    pub fn relay(&self, socket: SocketId) -> Option<RelayId> {
        let open = self.entries.get(socket.index())?.open?;
        (open.socket == socket).then_some(open.relay)
    }

    /// The socket of `relay`, its DONT-FRAGMENT setting made `on` first if it is not: one
    /// system call when a client changes its mind, none otherwise. A setting the kernel refuses
    /// leaves the socket as it was; the datagram still goes.
    #[inline]
    pub fn socket_for_send(&mut self, relay: RelayId, on: bool, out: &mut Output<'_>) -> Option<SocketId> {
        let open = self.entries.get_mut((relay.0 & 0xffff) as usize)?.open.as_mut()?;
        if open.relay != relay {
            return None;
        }
        if open.dont_fragment != Some(on)
            && (on || open.dont_fragment.is_some())
            && out.set_dont_fragment(open.socket, on).is_ok()
        {
            open.dont_fragment = Some(on);
        }
        Some(open.socket)
    }

    /// Binds a relay socket on `ip` with a port `request` allows. Control path: may allocate
    /// (the first time an index is used) and makes a few system calls per port tried.
    pub fn open(
        &mut self,
        ip: IpAddr,
        request: PortRequest,
        out: &mut Output<'_>,
    ) -> Result<(RelayId, SocketAddr), RelayError> {
        let mut failures = 0;
        for port in self.ports.candidates(request, &mut self.rng) {
            if !self.ports.claim(ip, port) {
                continue;
            }
            match out.open_udp(SocketAddr::new(ip, port)) {
                Ok((socket, local)) => return Ok(self.insert(socket, local)),
                Err(e) => {
                    self.ports.release(ip, port);
                    if is_limit(&e) {
                        // The worker's `max_sockets_per_worker`: no port would do better.
                        return Err(RelayError::PortsExhausted);
                    }
                    if e.kind() != io::ErrorKind::AddrInUse {
                        // The address is gone, descriptors ran out, ...: another port won't help.
                        return Err(RelayError::Unavailable);
                    }
                    failures += 1;
                    if failures == MAX_BIND_FAILURES {
                        break;
                    }
                }
            }
        }
        Err(RelayError::PortsExhausted)
    }

    fn insert(&mut self, socket: SocketId, local: SocketAddr) -> (RelayId, SocketAddr) {
        let index = socket.index();
        if self.entries.len() <= index {
            self.entries.resize(index + 1, Entry::default());
        }
        let entry = &mut self.entries[index];
        debug_assert!(entry.open.is_none(), "the engine gives an index to one open socket at a time");
        entry.serial = entry.serial.wrapping_add(1);
        let relay = RelayId(u32::from(entry.serial) << 16 | index as u32);
        entry.open = Some(Open { socket, relay, local, dont_fragment: None });
        (relay, local)
    }

    /// Closes the socket of `relay` and gives its port back; nothing for an unknown relay.
    pub fn close(&mut self, relay: RelayId, out: &mut Output<'_>) {
        if let Some(socket) = self.forget(relay) {
            out.close_socket(socket);
        }
    }

    /// Removes `relay` and gives its port back, leaving its socket to whoever closes it (the
    /// engine, when the worker has stopped); returns that socket.
    pub fn forget(&mut self, relay: RelayId) -> Option<SocketId> {
        let entry = self.entries.get_mut((relay.0 & 0xffff) as usize)?;
        let open = entry.open.filter(|o| o.relay == relay)?;
        entry.open = None;
        self.ports.release(open.local.ip(), open.local.port());
        Some(open.socket)
    }
}

fn is_limit(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SocketLimitReached>())
}
