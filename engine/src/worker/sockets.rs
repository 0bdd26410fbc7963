//! The sockets of one worker: the listeners it shares with the other workers (SO_REUSEPORT,
//! one per listen address) and the extra sockets its handler opens and closes at run time (a
//! TURN server's relay sockets).
//!
//! A socket is an entry of a table, indexed by the low half of its [`SocketId`]. The first
//! entries are the listeners, in listen address order, with generation 0; they never close,
//! so every worker has listener `i` at index `i` and a hand-off can name one by index. An
//! extra socket's entry goes Free → Open (`open`) → Closing (`close`) → Free
//! (`finish_close`): Closing means the handler is done with it (nothing received is handled,
//! nothing new is sent from it) but the kernel may still hold an operation on it (io_uring: the
//! multishot receive until its last completion, sends waiting for room), so the descriptor
//! stays open and the index is not reused until the backend says the kernel is done. The
//! generation makes every opening a new id, so a stale id never names a later socket.
//!
//! The lists the backends keep (io_uring: sockets to (re)arm; mmsg: sockets known readable;
//! both: sockets closing) hold each index at most once and are reserved to hold every entry
//! when an entry is added, so the packet path pushes to them without ever allocating.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use crate::handler::{SocketId, SocketLimitReached};
use crate::socket;

/// Table entries at most: `SocketId::index` is 16 bits.
const MAX_ENTRIES: usize = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    Open,
    Closing,
}

/// One socket and what the backends track about it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Owns the descriptor; `None` once closed.
    socket: Option<UdpSocket>,
    pub(crate) fd: RawFd,
    pub(crate) family: libc::c_int,
    pub(crate) local: SocketAddr,
    pub(crate) generation: u32,
    pub(crate) state: State,
    /// io_uring: a multishot receive is in the kernel for this socket.
    pub(crate) recv_armed: bool,
    /// io_uring: the cancellation of that receive is queued.
    pub(crate) cancel_queued: bool,
    /// io_uring: sends from this socket waiting for room (in the backlog or in the kernel).
    pub(crate) sends_waiting: u32,
    /// mmsg: in the ready list.
    pub(crate) ready: bool,
}

impl Entry {
    fn new(socket: UdpSocket, local: SocketAddr, generation: u32) -> Self {
        Self {
            fd: socket.as_raw_fd(),
            family: if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 },
            socket: Some(socket),
            local,
            generation,
            state: State::Open,
            recv_armed: false,
            cancel_queued: false,
            sends_waiting: 0,
            ready: false,
        }
    }
}

/// A worker's sockets.
#[derive(Debug)]
pub(crate) struct SocketTable {
    pub(crate) entries: Vec<Entry>,
    /// Entries `0..listeners` are the listeners.
    listeners: u16,
    /// Indexes free for reuse, oldest first, so one index is reused as rarely as possible.
    free: VecDeque<u16>,
    /// Extra sockets the handler holds (Open), the number the limit applies to.
    open: usize,
    /// Extra sockets whose descriptor is open (Open or Closing): the `sockets_open` gauge.
    held: usize,
    limit: usize,
    buffer: usize,
    /// Sockets in the Closing state, for the backend to finish.
    pub(crate) closing: Vec<u16>,
    /// io_uring: sockets without a multishot receive that should have one.
    pub(crate) unarmed: Vec<u16>,
    /// mmsg: sockets that may have datagrams waiting.
    pub(crate) ready: Vec<u16>,
    /// mmsg: the epoll instance new sockets join (data = their index).
    pub(crate) epoll: Option<RawFd>,
}

impl SocketTable {
    /// A table holding the listeners (at least one), allowing `limit` extra sockets with
    /// `buffer`-byte kernel buffers.
    pub(crate) fn new(listeners: Vec<UdpSocket>, limit: usize, buffer: usize) -> io::Result<Self> {
        debug_assert!(!listeners.is_empty() && listeners.len() < MAX_ENTRIES);
        let mut entries = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let local = listener.local_addr()?;
            entries.push(Entry::new(listener, local, SocketId::LISTENER.generation));
        }
        let mut table = Self {
            listeners: entries.len() as u16,
            entries,
            free: VecDeque::new(),
            open: 0,
            held: 0,
            limit,
            buffer,
            closing: Vec::new(),
            unarmed: Vec::new(),
            ready: Vec::new(),
            epoll: None,
        };
        table.reserve_lists();
        Ok(table)
    }

    /// The listeners, in listen address order.
    pub(crate) fn listeners(&self) -> impl Iterator<Item = &UdpSocket> {
        let entries = &self.entries[..usize::from(self.listeners)];
        entries.iter().map(|e| e.socket.as_ref().expect("a listener is never closed"))
    }

    /// Indexes of the listeners.
    pub(crate) fn listener_indexes(&self) -> std::ops::Range<u16> {
        0..self.listeners
    }

    /// Whether table index `index` is a listener.
    #[inline]
    pub(crate) fn is_listener(&self, index: u16) -> bool {
        index < self.listeners
    }

    /// The listener bound to `local`.
    #[inline]
    pub(crate) fn listener_at(&self, local: SocketAddr) -> Option<SocketId> {
        let entries = &self.entries[..usize::from(self.listeners)];
        let index = entries.iter().position(|e| e.local == local)?;
        Some(self.id(index as u16))
    }

    /// Extra sockets whose descriptor is open.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Extra sockets the handler holds.
    #[cfg(test)]
    pub(crate) fn extra_open(&self) -> usize {
        self.open
    }

    /// Whether the worker receives on more than one socket (several listen addresses, or
    /// sockets the handler opened), so one busy socket could keep others waiting.
    #[inline]
    pub(crate) fn several(&self) -> bool {
        self.listeners > 1 || self.open > 0
    }

    /// The id of the socket at `index` as the handler knows it.
    #[inline]
    pub(crate) fn id(&self, index: u16) -> SocketId {
        SocketId { index, generation: self.entries[usize::from(index)].generation }
    }

    /// Whether datagrams arriving on `index` go to the handler.
    #[inline]
    pub(crate) fn delivers(&self, index: u16) -> bool {
        self.entries[usize::from(index)].state == State::Open
    }

    /// The index of `id` when it names a socket that is open, for a send.
    #[inline]
    pub(crate) fn sending_index(&self, id: SocketId) -> Option<u16> {
        let entry = self.entries.get(usize::from(id.index))?;
        (entry.state == State::Open && entry.generation == id.generation).then_some(id.index)
    }

    /// Whether datagrams sent from open socket `id` may be fragmented (IPv4: the DF bit; IPv6:
    /// fragmenting at this host). `NotFound` for the listeners (shared with other workers) and
    /// for ids that are not open.
    pub(crate) fn set_dont_fragment(&self, id: SocketId, on: bool, syscalls: &mut u64) -> io::Result<()> {
        let index =
            self.sending_index(id).filter(|&i| !self.is_listener(i)).ok_or(io::ErrorKind::NotFound)?;
        let entry = &self.entries[usize::from(index)];
        let socket = entry.socket.as_ref().ok_or(io::ErrorKind::NotFound)?;
        *syscalls += 1;
        socket::set_dont_fragment(socket, entry.family == libc::AF_INET6, on)
    }

    pub(crate) fn local_addr(&self, id: SocketId) -> Option<SocketAddr> {
        self.sending_index(id).map(|index| self.entries[usize::from(index)].local)
    }

    /// Binds a new socket and enters it as Open. With an epoll instance set (mmsg) it joins it
    /// at once; otherwise (io_uring) it waits in `unarmed` for the backend's next turn.
    pub(crate) fn open(
        &mut self,
        local: SocketAddr,
        syscalls: &mut u64,
    ) -> io::Result<(SocketId, SocketAddr)> {
        let limit_reached = || io::Error::other(SocketLimitReached { limit: self.limit });
        if self.open >= self.limit {
            return Err(limit_reached());
        }
        // A free index, or a new one; all in use means sockets are still closing.
        let index = match self.free.front() {
            Some(&index) => index,
            None if self.entries.len() < MAX_ENTRIES => self.entries.len() as u16,
            None => return Err(limit_reached()),
        };
        let socket = socket::bind_plain(local, self.buffer, syscalls)?;
        *syscalls += 1;
        let local = socket.local_addr()?;
        if let Some(epoll) = self.epoll {
            *syscalls += 1;
            epoll_ctl(epoll, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), u64::from(index))?;
        }
        let i = usize::from(index);
        if i == self.entries.len() {
            // First generation 1: the listeners' 0 is never an extra socket's id.
            self.entries.push(Entry::new(socket, local, 1));
            self.reserve_lists();
        } else {
            self.free.pop_front();
            // Skips 0 when it wraps, for the same reason (`SocketId::is_listener`).
            let generation = self.entries[i].generation.wrapping_add(1).max(1);
            self.entries[i] = Entry::new(socket, local, generation);
        }
        if self.epoll.is_none() {
            self.unarmed.push(index);
        }
        self.open += 1;
        self.held += 1;
        Ok((self.id(index), local))
    }

    /// Moves an open extra socket to Closing. False for the listeners and unknown ids.
    pub(crate) fn close(&mut self, id: SocketId) -> bool {
        if id.is_listener() || self.sending_index(id).is_none() {
            return false;
        }
        self.entries[usize::from(id.index)].state = State::Closing;
        self.closing.push(id.index);
        self.open -= 1;
        true
    }

    /// Closes the descriptor of a Closing socket the kernel is done with, and frees its index.
    /// The caller removed it from `closing`.
    pub(crate) fn finish_close(&mut self, index: u16, syscalls: &mut u64) {
        let entry = &mut self.entries[usize::from(index)];
        debug_assert_eq!(entry.state, State::Closing);
        if let (Some(epoll), Some(socket)) = (self.epoll, &entry.socket) {
            *syscalls += 1;
            // Closing the descriptor would remove it as well; saying so keeps the epoll set
            // right even if the descriptor were ever duplicated.
            let _ = epoll_ctl(epoll, libc::EPOLL_CTL_DEL, socket.as_raw_fd(), 0);
        }
        *syscalls += 1;
        entry.socket = None;
        entry.fd = -1;
        entry.state = State::Free;
        entry.recv_armed = false;
        entry.cancel_queued = false;
        entry.sends_waiting = 0;
        entry.ready = false;
        self.unarmed.retain(|&i| i != index);
        self.ready.retain(|&i| i != index);
        self.free.push_back(index);
        self.held -= 1;
    }

    /// Room in every list for every entry, so pushes on the packet path never allocate.
    fn reserve_lists(&mut self) {
        let n = self.entries.capacity().max(self.entries.len());
        for list in [&mut self.closing, &mut self.unarmed, &mut self.ready] {
            list.reserve(n.saturating_sub(list.len()));
        }
        self.free.reserve(n.saturating_sub(self.free.len()));
    }
}

/// Adds or removes `fd` in an epoll set, reporting readability with `data`.
pub(crate) fn epoll_ctl(epoll: RawFd, op: libc::c_int, fd: RawFd, data: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: data };
    // SAFETY: plain syscall on descriptors we own; `event` is a live struct for its duration.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut event) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(limit: usize) -> SocketTable {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        SocketTable::new(vec![listener], limit, 0).unwrap()
    }

    #[test]
    fn a_reused_index_is_a_new_id() {
        let mut sockets = table(1);
        let any = "127.0.0.1:0".parse().unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (id, addr) = sockets.open(any, &mut 0).unwrap();
            assert_eq!(sockets.local_addr(id), Some(addr));
            assert!(!seen.contains(&id), "{id:?} issued twice");
            seen.push(id);
            assert!(sockets.close(id));
            assert!(!sockets.close(id), "closed once");
            assert_eq!(sockets.sending_index(id), None, "a closing socket takes no sends");
            let index = sockets.closing.pop().unwrap();
            sockets.finish_close(index, &mut 0);
        }
        assert!(seen.iter().all(|id| id.index == seen[0].index), "the freed index is reused");
        assert_eq!((sockets.extra_open(), sockets.held()), (0, 0));
    }

    #[test]
    fn the_limit_counts_open_sockets_and_the_listener_never_closes() {
        let mut sockets = table(2);
        let any = "127.0.0.1:0".parse().unwrap();
        let (first, _) = sockets.open(any, &mut 0).unwrap();
        sockets.open(any, &mut 0).unwrap();
        let refused = sockets.open(any, &mut 0).unwrap_err();
        let reason = refused.get_ref().and_then(|e| e.downcast_ref::<SocketLimitReached>());
        assert_eq!(reason, Some(&SocketLimitReached { limit: 2 }));
        // A closing socket no longer counts against the limit, though it still holds its fd.
        assert!(sockets.close(first));
        let (third, _) = sockets.open(any, &mut 0).unwrap();
        assert_ne!(third.index, first.index, "the closing socket's index is not reused yet");
        assert_eq!((sockets.extra_open(), sockets.held()), (2, 3));
        assert!(!sockets.close(SocketId::LISTENER));
        assert!(sockets.delivers(0));
    }

    #[test]
    fn every_listener_is_a_listener_and_extra_sockets_come_after_them() {
        let listeners: Vec<_> = ["127.0.0.1:0", "127.0.0.1:0"].map(|a| UdpSocket::bind(a).unwrap()).into();
        let locals: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut sockets = SocketTable::new(listeners, 1, 0).unwrap();
        let second = sockets.listener_at(locals[1]).expect("the second listener");
        assert_eq!((second.index(), second.is_listener()), (1, true));
        assert_eq!(sockets.listener_at(locals[0]), Some(SocketId::LISTENER));
        assert_eq!(sockets.local_addr(second), Some(locals[1]));
        assert!(!sockets.close(second), "a listener never closes");
        assert_eq!(
            sockets.set_dont_fragment(second, true, &mut 0).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );

        let (extra, local) = sockets.open("127.0.0.1:0".parse().unwrap(), &mut 0).unwrap();
        assert_eq!((extra.index(), extra.is_listener()), (2, false));
        assert_eq!(sockets.listener_at(local), None, "an extra socket is no listener");
    }
}
