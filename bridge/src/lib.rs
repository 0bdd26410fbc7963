//! The media bridge (SFU): the WebRTC media layer (`media/`, sans-IO), the SFU that runs it on
//! the packet engine (`sfu/`), the control API (`control/`), and relay mode (static forwarding
//! without crypto, the benchmark baseline).

pub mod client;
pub mod config;
pub mod control;
pub mod host;
pub mod media;
pub mod relay;
pub mod run;
pub mod service;
pub mod sfu;
