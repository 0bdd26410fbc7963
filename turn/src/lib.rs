//! The TURN server (RFC 8656).
//!
//! The pieces every listener shares: the coturn-compatible configuration ([`config`]),
//! long-term credentials and nonces ([`auth`]), and the peer address policy that keeps the
//! relay out of the operator's own network ([`policy`]). On them, the sans-IO protocol core
//! ([`server`]): one [`server::Server`] per worker of the packet engine, fed datagrams and
//! timeouts, answering through the [`server::TurnIo`] the I/O layer implements. [`client`] is
//! our own sans-IO TURN client, for tests and load generation.
//!
//! The daemon around it: [`net`] serves TURN over TCP and TLS (epoll workers, each with its
//! own `Server`, relay sockets, certificate reload) and the metrics endpoint; [`run`] starts
//! the listeners and workers for a configuration and handles signals; `src/main.rs` is the
//! `turn` binary. TURN over UDP runs on the packet engine, started from [`run`].
//! [`udp`] is that listener: one `Server` per engine worker, relay sockets on the engine.

pub mod auth;
pub mod client;
pub mod config;
pub mod health;
pub mod net;
pub mod offload;
pub mod policy;
pub mod run;
pub mod server;
pub mod service;
pub mod udp;
