//! The bridge's media layer, sans-IO: no sockets, no threads, no clock of its own.

pub mod demux;
pub mod dtls;
pub mod history;
pub mod ice;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod srtp_relay;
pub mod stats;
