//! The TURN server (RFC 8656).
//!
//! This first part holds the pieces every listener shares and that are worth getting right
//! before any packet moves: the coturn-compatible configuration ([`config`]), long-term
//! credentials and nonces ([`auth`]), and the peer address policy that keeps the relay out of
//! the operator's own network ([`policy`]).

pub mod auth;
pub mod config;
pub mod policy;
