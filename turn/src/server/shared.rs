//! What the workers share: quota counts and metrics, all atomics.

use crate::config::TurnConfig;

use super::metrics::Metrics;
use super::quota::Quota;

/// Held in an `Arc` by every worker's [`Server`](super::Server).
#[derive(Debug)]
pub struct Shared {
    pub metrics: Metrics,
    pub quota: Quota,
}

impl Shared {
    pub fn new(config: &TurnConfig) -> Self {
        Self { metrics: Metrics::default(), quota: Quota::new(config) }
    }

    /// The metrics in Prometheus text format, every name prefixed `turn_`.
    pub fn render_prometheus(&self, out: &mut String) {
        self.metrics.render_prometheus(self.quota.current(), out);
    }
}
