//! A thread-per-core UDP packet engine for media data planes.
//!
//! The engine owns the sockets, the threads and the packet memory; a data plane (the bridge's
//! media layer, the TURN relay, the benchmark relay) owns the meaning of packets. Each worker
//! thread is pinned to a core and runs this loop:
//!
//! ```text
//! loop {
//!     wait for datagrams, send completions, hand-offs from other cores, or the next deadline
//!     for each datagram:   handler.handle(now, from, &mut packet, &mut out)
//!                           // packet.forward(dest): share this slot with a send
//!                           // out.send(dest, |buf| ...): write a new packet into a fresh slot
//!     if the deadline passed: handler.handle_timeout(now, &mut out)
//!     queue every send of this turn (to this core's socket, or over a cross-core queue)
//!     submit them all at once, release slots whose last send completed
//! }
//! ```
//!
//! Contract: the handler is sans-IO; it never blocks, never sleeps and gets the time passed in.
//! Packets live only in the preallocated, locked pool: nothing in the receive, handle, send path
//! allocates, locks or makes a syscall per packet. A full queue or an exhausted pool drops the
//! packet and counts it under a [`DropReason`]; nothing waits and nothing grows.
//!
//! Two backends implement the loop: io_uring (multishot recvmsg into a provided buffer ring
//! made of pool slots) and, where io_uring is refused, recvmmsg/sendmmsg.

pub mod affinity;
mod config;
mod counters;
mod engine;
mod export;
mod handler;
mod mesh;
mod pool;
mod socket;
pub mod spsc;
mod wake;
mod worker;

pub use config::{BackendChoice, ConfigError, EngineConfig, MemoryLock};
pub use counters::{Counts, DropReason, WorkerCounters};
pub use engine::{Backend, Engine, StartError, StopHandle};
pub use export::MetricsPump;
pub use handler::{CapacityExceeded, Datagram, Destination, Handler, Output, PacketBuf, Via, WorkerId};
pub use pool::{FreeList, PacketPool, PoolError, SLOT_SIZE, SlotId};
