//! The media bridge. For now it runs the packet engine in relay mode (static forwarding, no
//! crypto); the WebRTC media layer (`media/`) and the control API (`control/`) plug into the
//! same engine next.

pub mod config;
pub mod media;
pub mod relay;
pub mod run;
