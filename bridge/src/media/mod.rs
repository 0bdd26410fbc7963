//! The bridge's media layer, sans-IO: no sockets, no threads, no clock of its own.
//! So far: the SRTP transform.

pub mod srtp;
