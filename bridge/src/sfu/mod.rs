//! The SFU on the engine: conferences and endpoints shared with the control API
//! ([`registry`]), and the engine handler that moves media between them ([`worker`]).

pub mod counters;
pub mod endpoint;
pub mod ids;
pub mod registry;
pub mod speaker;
#[cfg(feature = "test-tap")]
pub mod tap;
pub mod vocabulary;
pub mod worker;

pub use registry::{ApiError, Registry};
pub use worker::MediaWorker;
