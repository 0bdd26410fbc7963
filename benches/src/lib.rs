//! Benchmarks of the packet engine.
//!
//! Two kinds live in this crate:
//!
//! - criterion micro-benchmarks (`benches/`) for the per-packet pieces of the engine: the free
//!   list, slot reference counts and wiping, the cross-core SPSC ring;
//! - `bench-report`, which measures the CPU time per forwarded packet of the whole path: the
//!   engine in relay mode against a minimal recvmmsg/sendmmsg forwarder (the kernel baselines:
//!   one thread per core like the engine's workers, and a single thread), all measured in the
//!   same run on the same offered load.
//!
//! `bench-report` runs each forwarder in a child process ([`child`], [`serve`]) so that its
//! CPU time can be read from `/proc` ([`cpu`]) without the load generator's share in it, and
//! drives it with paced sources and counting sinks ([`load`]). One measured run is
//! [`scenario::measure`]; the kernel's per-socket drop counters ([`drops`]) say where lost
//! packets were lost, and [`perf`] counts syscalls where `perf` is installed.

pub mod child;
pub mod cpu;
pub mod drops;
pub mod kernel;
pub mod load;
pub mod loadgen;
pub mod meeting;
pub mod mmsg;
pub mod perf;
pub mod scenario;
pub mod serve;
pub mod sfu_report;
pub mod srtp;
pub mod svg;

/// Size of every datagram `bench-report` sends: a typical video RTP packet.
pub const PACKET_LEN: usize = 1200;
