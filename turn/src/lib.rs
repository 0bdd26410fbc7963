//! The TURN server (RFC 8656).
//!
//! The pieces every listener shares: the coturn-compatible configuration ([`config`]),
//! long-term credentials and nonces ([`auth`]), and the peer address policy that keeps the
//! relay out of the operator's own network ([`policy`]). On them, the sans-IO protocol core
//! ([`server`]): one [`server::Server`] per worker of the packet engine, fed datagrams and
//! timeouts, answering through the [`server::TurnIo`] the I/O layer implements. [`client`] is
//! our own sans-IO TURN client, for tests and load generation.

pub mod auth;
pub mod client;
pub mod config;
pub mod policy;
pub mod server;
