//! The bridge's media layer, sans-IO: no sockets, no threads, no clock of its own.
//! So far: ICE-lite, RTP header parsing and the SRTP transform.

pub mod ice;
pub mod rtp;
pub mod srtp;
pub mod srtp_relay;
