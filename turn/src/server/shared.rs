//! What the workers share: quota counts and metrics, all atomics, and the credentials a
//! reload replaces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::Credentials;
use crate::config::TurnConfig;
use crate::offload::KernelRelay;

use super::metrics::Metrics;
use super::quota::Quota;

/// Held in an `Arc` by every worker's [`Server`](super::Server).
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    pub quota: Quota,
    pub credentials: SharedCredentials,
    /// The in-kernel relay, when `kernel-relay-interface` is configured.
    pub kernel_relay: Option<KernelRelay>,
}

impl Shared {
    pub fn new(config: &TurnConfig) -> Self {
        Self {
            metrics: Metrics::default(),
            quota: Quota::new(config),
            credentials: SharedCredentials::new(Credentials::new(config)),
            kernel_relay: None,
        }
    }

    /// The metrics in Prometheus text format, every name prefixed `turn_`.
    pub fn render_prometheus(&self, out: &mut String) {
        let kernel = self.kernel_relay.as_ref().map(KernelRelay::totals);
        self.metrics.render_prometheus(self.quota.current(), kernel, out);
    }
}

/// The credentials of the latest (re)load. Each worker keeps its own `Arc` of them and compares
/// the generation, one relaxed load per request that authenticates (never per relayed packet),
/// to learn that there are new ones; only then does it take the lock.
#[derive(Debug)]
pub struct SharedCredentials {
    current: Mutex<Arc<Credentials>>,
    generation: AtomicU64,
}

impl SharedCredentials {
    fn new(credentials: Credentials) -> Self {
        Self { current: Mutex::new(Arc::new(credentials)), generation: AtomicU64::new(0) }
    }

    /// Replaces the credentials: from its next authentication on, every worker checks against
    /// the new ones. Allocations keep the key they were made with until they are refreshed.
    pub fn replace(&self, credentials: Credentials) {
        *self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(credentials);
        // Release: a worker that sees the new generation sees the new credentials under the lock.
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Credentials> {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
