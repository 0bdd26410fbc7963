//! The bridge's media layer, sans-IO: no sockets, no threads, no clock of its own.
//! So far: RTP header parsing and the SRTP transform.

pub mod rtp;
pub mod srtp;
