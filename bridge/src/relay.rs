//! Relay mode: a static forwarding table and no crypto. This is the raw engine as a data plane,
//! the baseline every later layer is measured against.
//!
//! For tests and benchmarks only, the relay can drop every N-th datagram it receives
//! (`[relay] drop_every`), a known loss pattern that proves a load generator's loss figures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use engine::{Datagram, Destination, DropReason, Handler, Output, Via, WorkerId};
use serde::Deserialize;

/// The `[relay]` table of the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub routes: Vec<Route>,
    pub send_from: SendFrom,
    /// Drop every N-th datagram a worker receives (each worker counts its own); 0 = off.
    /// For tests and benchmarks only.
    pub drop_every: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub from: SocketAddr,
    pub to: Vec<SocketAddr>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendFrom {
    #[default]
    Receiver,
    Spread,
}

impl RelayConfig {
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            if route.to.is_empty() {
                return Err(format!("relay.routes[{i}].to: a route needs at least one destination"));
            }
            if let Some(first) = seen.insert(route.from, i) {
                return Err(format!(
                    "relay.routes[{i}].from: {} is already routed by relay.routes[{first}]",
                    route.from
                ));
            }
        }
        Ok(())
    }
}

/// Source address to destinations, and the fault injection, shared read-only by all workers.
#[derive(Debug)]
pub struct Routes {
    by_source: HashMap<SocketAddr, Box<[Destination]>>,
    drop_every: u32,
}

pub type Table = Arc<Routes>;

impl Routes {
    /// The destinations of datagrams from `source`.
    pub fn get(&self, source: &SocketAddr) -> Option<&[Destination]> {
        self.by_source.get(source).map(|dests| &dests[..])
    }
}

/// `table[&source]`, for callers that know the source is routed.
impl std::ops::Index<&SocketAddr> for Routes {
    type Output = [Destination];

    fn index(&self, source: &SocketAddr) -> &[Destination] {
        &self.by_source[source]
    }
}

/// Builds the table for `workers` workers.
pub fn table(config: &RelayConfig, workers: usize) -> Table {
    let via = |i: usize| match config.send_from {
        SendFrom::Receiver => Via::Here,
        SendFrom::Spread => Via::Worker(WorkerId((i % workers) as u16)),
    };
    let by_source = config
        .routes
        .iter()
        .map(|route| {
            let dests = route
                .to
                .iter()
                .enumerate()
                .map(|(i, &addr)| Destination { via: via(i), ..Destination::here(addr) })
                .collect();
            (route.from, dests)
        })
        .collect();
    Arc::new(Routes { by_source, drop_every: config.drop_every })
}

/// The relay data plane of one worker.
#[derive(Debug)]
pub struct Relay {
    table: Table,
    /// Copied out of the table: read for every datagram.
    drop_every: u32,
    /// Datagrams received since the last injected drop.
    since_drop: u32,
}

impl Relay {
    pub fn new(table: Table) -> Self {
        let drop_every = table.drop_every;
        Self { table, drop_every, since_drop: 0 }
    }

    /// Fault injection: whether this datagram is the N-th since the last one dropped.
    #[cold]
    fn inject_drop(&mut self) -> bool {
        self.since_drop += 1;
        if self.since_drop < self.drop_every {
            return false;
        }
        self.since_drop = 0;
        true
    }
}

impl Handler for Relay {
    #[inline]
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        // Off (0) in production: one branch, always the same way.
        if self.drop_every != 0 && self.inject_drop() {
            return out.drop_packet(DropReason::Rejected);
        }
        match self.table.by_source.get(&from) {
            Some(dests) => dests.iter().for_each(|&to| {
                packet.forward(to);
            }),
            None => out.drop_packet(DropReason::NoRoute),
        }
    }
}
