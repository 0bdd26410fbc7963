//! The signaling daemon: the meeting page, the rooms, and the bridge's driver.
//!
//! - [`protocol`]: the WebSocket protocol (PROTOCOL.md) and its validation.
//! - [`room`]: rooms as sans-IO state machines (members, lobby, password, chat, topology).
//! - [`hub`]: connections and rooms behind one lock; rate limits.
//! - [`server`]: HTTPS, WebSocket, the embedded page ([`web`]).

pub mod bridge;
pub mod bridged;
pub mod bridges;
pub mod config;
pub mod daemon;
pub mod hub;
pub mod metrics;
pub mod names;
pub mod protocol;
pub mod ratelimit;
pub mod room;
pub mod sdp;
pub mod secret;
pub mod server;
pub mod service;
pub mod tls;
pub mod turn;
pub mod web;
