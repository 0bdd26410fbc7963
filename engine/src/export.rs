//! Publishing the per-worker counters through the `metrics` facade.
//!
//! The workers never call into `metrics` (its registry lookups may lock or allocate); a pump
//! thread copies their published counters into `metrics` handles registered once at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::{Counter, Gauge, counter, gauge};

use crate::counters::{DropReason, WorkerCounters};

struct WorkerHandles {
    source: Arc<WorkerCounters>,
    rx_packets: Counter,
    rx_bytes: Counter,
    tx_packets: Counter,
    tx_bytes: Counter,
    handoffs: Counter,
    rx_stalls: Counter,
    kernel_rx_drops: Counter,
    syscalls: Counter,
    sockets_open: Gauge,
    socket_open_failures: Counter,
    drops: Vec<Counter>,
}

/// Copies counters into the installed `metrics` recorder every `interval` until dropped.
#[derive(Debug)]
pub struct MetricsPump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsPump {
    /// Registers `engine_*` metrics for each worker and starts the pump thread.
    pub fn start(
        workers: Vec<Arc<WorkerCounters>>,
        pool_locked: bool,
        interval: Duration,
    ) -> std::io::Result<Self> {
        gauge!("engine_workers").set(workers.len() as f64);
        gauge!("engine_pool_locked").set(if pool_locked { 1.0 } else { 0.0 });
        let handles: Vec<WorkerHandles> = workers
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                let worker = i.to_string();
                WorkerHandles {
                    source,
                    rx_packets: counter!("engine_rx_packets_total", "worker" => worker.clone()),
                    rx_bytes: counter!("engine_rx_bytes_total", "worker" => worker.clone()),
                    tx_packets: counter!("engine_tx_packets_total", "worker" => worker.clone()),
                    tx_bytes: counter!("engine_tx_bytes_total", "worker" => worker.clone()),
                    handoffs: counter!("engine_handoffs_total", "worker" => worker.clone()),
                    rx_stalls: counter!("engine_rx_stalls_total", "worker" => worker.clone()),
                    kernel_rx_drops: counter!("engine_kernel_rx_drops_total", "worker" => worker.clone()),
                    syscalls: counter!("engine_syscalls_total", "worker" => worker.clone()),
                    sockets_open: gauge!("engine_sockets_open", "worker" => worker.clone()),
                    socket_open_failures: counter!(
                        "engine_socket_open_failures_total",
                        "worker" => worker.clone()
                    ),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| counter!("engine_drops_total", "worker" => worker.clone(), "reason" => r.as_str()))
                        .collect(),
                }
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("metrics-pump".into()).spawn(move || {
            loop {
                for h in &handles {
                    let c = h.source.load();
                    h.rx_packets.absolute(c.rx_packets);
                    h.rx_bytes.absolute(c.rx_bytes);
                    h.tx_packets.absolute(c.tx_packets);
                    h.tx_bytes.absolute(c.tx_bytes);
                    h.handoffs.absolute(c.handoffs);
                    h.rx_stalls.absolute(c.rx_stalls);
                    h.kernel_rx_drops.absolute(c.kernel_rx_drops);
                    h.syscalls.absolute(c.syscalls);
                    h.sockets_open.set(c.sockets_open as f64);
                    h.socket_open_failures.absolute(c.socket_open_failures);
                    for (counter, value) in h.drops.iter().zip(c.drops) {
                        counter.absolute(value);
                    }
                }
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::park_timeout(interval);
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for MetricsPump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
