//! A thread-per-core UDP packet engine for media data planes.
//!
//! The engine owns the sockets, the threads and the packet memory; a data plane (the bridge's
//! media layer, the TURN relay, the benchmark relay) owns the meaning of packets. Each worker
//! thread is pinned to a core, receives on its share of each listen address (SO_REUSEPORT:
//! `listen`, and any `extra_listen`) and on any socket its handler opened, and runs this loop:
//!
//! ```text
//! loop {
//!     wait for datagrams (on any of the worker's sockets), send completions, hand-offs from
//!         other cores, or the next deadline
//!     for each datagram:   handler.handle(now, from, &mut packet, &mut out)
//!                           // packet.socket(): the socket it came to (a listener,
//!                           //                  is_listener(), or one the handler opened)
//!                           // packet.local_addr(): the address that socket is bound to
//!                           // packet.forward(dest): share this slot with a send
//!                           // out.send(dest, |buf| ...): write a new packet into a fresh slot
//!                           // out.open_udp(addr) / out.close_socket(id): sockets of its own
//!                           //                  (control path: a few syscalls, not per packet)
//!     if the deadline passed: handler.handle_timeout(now, &mut out)
//!     queue every send of this turn (to this core's sockets, grouped by socket, or over a
//!         cross-core queue; only the listeners' sends cross cores)
//!     submit them all at once, release slots whose last send completed
//!     close the descriptors of closed sockets the kernel is done with
//! }
//! ```
//!
//! Contract: the handler is sans-IO; it never blocks, never sleeps and gets the time passed in.
//! Packets live only in the preallocated, locked pool: nothing in the receive, handle, send path
//! allocates, locks or makes a syscall per packet, however many sockets are open. A full queue
//! or an exhausted pool drops the packet and counts it under a [`DropReason`]; nothing waits
//! and nothing grows. The sockets a handler opens are bounded by `max_sockets_per_worker`;
//! [`Output::close_socket`] says what closing one guarantees.
//!
//! The kernel spreads each listener's datagrams over the workers by a hash of the 4-tuple, or,
//! with `steer_by_source_ip`, by source address alone ([`worker_for_source_ip`]; the same
//! worker whichever listen address a client reaches).
//!
//! Two backends implement the loop: io_uring (a multishot recvmsg per socket into one provided
//! buffer ring made of pool slots) and, where io_uring is refused, recvmmsg/sendmmsg driven by
//! epoll.

pub mod affinity;
mod config;
mod counters;
mod engine;
mod export;
mod handler;
mod liveness;
mod load;
mod mesh;
mod pool;
mod socket;
pub mod spsc;
mod steer;
mod wake;
mod worker;

pub use config::{BackendChoice, ConfigError, EngineConfig, MemoryLock};
pub use counters::{Counts, DropReason, WorkerCounters};
pub use engine::{Backend, Engine, StartError, StopHandle};
pub use export::MetricsPump;
pub use handler::{
    CapacityExceeded, Datagram, Destination, Handler, Output, PacketBuf, SocketId, SocketLimitReached, Via,
    WorkerId,
};
pub use liveness::Liveness;
pub use load::{LOAD_WINDOW, Load};
pub use pool::{FreeList, PacketPool, PoolError, SLOT_SIZE, SlotId};
/// For data planes' own sockets outside the engine (TURN's TCP relays) too.
pub use socket::{MAX_RECV_BATCH, Received, recv_batch, set_dont_fragment};
pub use steer::worker_for_source_ip;
