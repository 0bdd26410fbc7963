//! The bridges the daemon places meetings on (DESIGN.md "Scaling past one machine"): each new
//! bridge conference goes to the least stressed bridge that is not draining, by the figures
//! of its `GET /v1/stats`; a meeting stays on the bridge it started on until it ends.
//!
//! Loads are asked for when a conference is placed and kept for `LOAD_MAX_AGE`, so a burst of
//! new meetings costs one round of stats calls. A bridge that does not answer, or says it is
//! draining, gets no new conference; one that refuses a conference anyway (it began to drain
//! since its load was read) is marked draining and the next one is tried.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bridge::{BridgeClient, BridgeError, BridgeLoad};

/// How long a bridge's load is trusted.
const LOAD_MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Bridges {
    bridges: Vec<Bridge>,
}

#[derive(Debug)]
struct Bridge {
    client: BridgeClient,
    /// The last load read, and when; `None` in it: the bridge did not answer.
    load: Mutex<Option<(Instant, Option<BridgeLoad>)>>,
}

impl Bridges {
    pub fn new(clients: Vec<BridgeClient>) -> Self {
        Self {
            bridges: clients.into_iter().map(|client| Bridge { client, load: Mutex::new(None) }).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.bridges.len()
    }

    /// Bridge `index`'s client (an index `place` returned).
    pub fn client(&self, index: usize) -> &BridgeClient {
        &self.bridges[index].client
    }

    /// Creates a conference on the best bridge: `(bridge index, conference id)`.
    pub async fn place(&self) -> Result<(usize, String), BridgeError> {
        let mut last = BridgeError("no bridge takes new conferences (all draining or unreachable)".into());
        for index in self.preference().await {
            match self.bridges[index].client.create_conference().await {
                Ok(conference) => return Ok((index, conference)),
                Err(e) => {
                    tracing::warn!(bridge = index, "{e}; trying the next bridge");
                    self.remember(index, None);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Bridges that take conferences, the least stressed first (then the fewest endpoints,
    /// then configuration order).
    async fn preference(&self) -> Vec<usize> {
        let mut open = Vec::new();
        for index in 0..self.bridges.len() {
            if let Some(load) = self.load(index).await.filter(|load| !load.draining) {
                open.push((index, load));
            }
        }
        open.sort_by(|(a, x), (b, y)| {
            x.stress.total_cmp(&y.stress).then(x.endpoints.cmp(&y.endpoints)).then(a.cmp(b))
        });
        open.into_iter().map(|(index, _)| index).collect()
    }

    async fn load(&self, index: usize) -> Option<BridgeLoad> {
        let fresh = self.loaded(index).filter(|(at, _)| at.elapsed() < LOAD_MAX_AGE);
        if let Some((_, load)) = fresh {
            return load;
        }
        let load = match self.bridges[index].client.load().await {
            Ok(load) => Some(load),
            Err(e) => {
                tracing::warn!(bridge = index, "{e}");
                None
            }
        };
        self.remember(index, load.clone());
        load
    }

    fn loaded(&self, index: usize) -> Option<(Instant, Option<BridgeLoad>)> {
        self.bridges[index].load.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn remember(&self, index: usize, load: Option<BridgeLoad>) {
        *self.bridges[index].load.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), load));
    }
}
