//! An SFU in the test process: the engine running `MediaWorker`s over a `Registry`, driven
//! directly (the control API's HTTP layer has its own test), and participants that join it.

use std::sync::Arc;
use std::time::Instant;

use bridge::media::dtls::Certificate;
use bridge::sfu::endpoint::{MediaKind, Source};
use bridge::sfu::ids::{ConferenceId, EndpointId};
use bridge::sfu::registry::{DtlsParameters, EndpointUpdate, FingerprintParameter, IceCredentials, Limits};
use bridge::sfu::{MediaWorker, Registry};
use engine::{BackendChoice, Engine, EngineConfig, MemoryLock};

use super::peer::{BridgeEndpoint, Identity, Peer, identity};

pub struct Sfu {
    pub engine: Engine,
    pub registry: Arc<Registry>,
}

impl Sfu {
    pub fn start(workers: u16) -> Self {
        Self::start_with(workers, registry(workers))
    }

    /// With the test tap recording the first `records` forwarded packets.
    #[cfg(feature = "test-tap")]
    pub fn start_tapped(workers: u16, records: usize) -> Self {
        Self::start_with(workers, registry(workers).with_tap(records))
    }

    fn start_with(workers: u16, registry: Registry) -> Self {
        let registry = Arc::new(registry);
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: usize::from(workers),
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 1024,
            backend: BackendChoice::Auto,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, |w| MediaWorker::new(registry.clone(), w)).unwrap();
        Self { engine, registry }
    }

    pub fn conference(&self) -> ConferenceId {
        self.registry.create_conference(Instant::now()).unwrap()
    }

    /// Creates an endpoint, signals `sources` (ssrc, kind) and connects a peer to it.
    pub fn join(
        &self,
        conference: ConferenceId,
        name: &str,
        sources: &[(u32, MediaKind)],
    ) -> (EndpointId, Peer) {
        let us = identity(name);
        let (id, bridge) = self.signal(conference, &us, sources);
        let peer = Peer::connect(self.engine.local_addr(), &bridge, &us, "127.0.0.1:0");
        (id, peer)
    }

    /// Creates and signals an endpoint without connecting to it.
    pub fn signal(
        &self,
        conference: ConferenceId,
        identity: &Identity,
        sources: &[(u32, MediaKind)],
    ) -> (EndpointId, BridgeEndpoint) {
        let created = self.registry.create_endpoint(conference, Instant::now()).unwrap();
        let update = EndpointUpdate {
            ice: Some(IceCredentials { ufrag: identity.ufrag.clone(), pwd: identity.pwd.clone() }),
            dtls: Some(DtlsParameters {
                setup: Some("active".into()),
                fingerprint: FingerprintParameter {
                    hash: "sha-256".into(),
                    value: identity.fingerprint.clone(),
                },
            }),
            sources: Some(
                sources
                    .iter()
                    .map(|&(ssrc, kind)| Source { ssrc, kind, msid: None, rtx_ssrc: None })
                    .collect(),
            ),
            ..EndpointUpdate::default()
        };
        self.registry.update_endpoint(conference, created.id, update).unwrap();
        (created.id, BridgeEndpoint { ufrag: created.ufrag, pwd: created.password })
    }
}

fn registry(workers: u16) -> Registry {
    Registry::new(Certificate::generate().unwrap(), Limits::default(), usize::from(workers))
}
