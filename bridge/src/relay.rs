//! Relay mode: a static forwarding table and no crypto. This is the raw engine as a data plane,
//! the baseline every later layer is measured against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use engine::{Datagram, Destination, DropReason, Handler, Output, Via, WorkerId};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub routes: Vec<Route>,
    pub send_from: SendFrom,
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

/// Source address to destinations, shared read-only by all workers.
pub type Table = Arc<HashMap<SocketAddr, Box<[Destination]>>>;

/// Builds the table for `workers` workers.
pub fn table(config: &RelayConfig, workers: usize) -> Table {
    let via = |i: usize| match config.send_from {
        SendFrom::Receiver => Via::Here,
        SendFrom::Spread => Via::Worker(WorkerId((i % workers) as u16)),
    };
    let table = config
        .routes
        .iter()
        .map(|route| {
            let dests =
                route.to.iter().enumerate().map(|(i, &addr)| Destination { addr, via: via(i) }).collect();
            (route.from, dests)
        })
        .collect();
    Arc::new(table)
}

/// The relay data plane of one worker.
#[derive(Debug)]
pub struct Relay {
    table: Table,
}

impl Relay {
    pub fn new(table: Table) -> Self {
        Self { table }
    }
}

impl Handler for Relay {
    #[inline]
    fn handle(&mut self, _now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        match self.table.get(&from) {
            Some(dests) => dests.iter().for_each(|&to| {
                packet.forward(to);
            }),
            None => out.drop_packet(DropReason::NoRoute),
        }
    }
}
