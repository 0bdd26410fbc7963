//! Conferences and endpoints: the authoritative state the control API changes, and the
//! immutable [`Snapshot`] of it that workers route by.
//!
//! Workers never take the registry's lock for a media packet. Each change (an API call, an ICE
//! nomination, a finished DTLS handshake) rebuilds the snapshot and bumps a generation counter;
//! a worker compares that counter once per datagram (one atomic load) and picks up the new
//! snapshot when it moved. Changes are rare next to packets, so rebuilding the whole snapshot
//! is cheaper overall than any finer-grained sharing.
//!
//! Lock order: `state`, then an endpoint's control lock. Workers hold an endpoint's control lock
//! only while handling a STUN or DTLS datagram and release it before calling [`Registry::publish`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::counters::{MediaCounters, MediaDrop, MediaEvent};
use super::endpoint::{
    DtlsStatus, Endpoint, HeaderExtension, IceState, MAX_SOURCES, MediaKind, PayloadType, Source,
};
use super::ids::{ConferenceId, EndpointId};
use super::speaker::SpeakerSelector;
use super::vocabulary::Vocabulary;
use crate::media::dtls::{Certificate, Fingerprint, SrtpKeys};
use crate::media::rtp::renumber::Numbering;
use crate::media::srtp::Profile;

/// Limits the control API enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_conferences: usize,
    pub max_endpoints: usize,
    pub max_endpoints_per_conference: usize,
    /// A conference nobody joined goes after this long.
    pub empty_conference_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_conferences: 10_000,
            max_endpoints: 50_000,
            max_endpoints_per_conference: 100,
            empty_conference_timeout: Duration::from_secs(60),
        }
    }
}

/// The bridge's load, for placing conferences (`Registry::load`).
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub conferences: usize,
    pub endpoints: usize,
    pub draining: bool,
    /// RTP packets forwarded since start (once per received packet, whatever the fan-out).
    pub forwarded: u64,
    /// Their rate over the last second or more; `None` until two samples a second apart.
    pub forwarded_per_second: Option<f64>,
    pub drops: Vec<(MediaDrop, u64)>,
    /// Each engine worker's share of time spent busy rather than waiting, 0 to 1, over the last
    /// second or more (empty until the engine is watched, zeros for its first second).
    pub worker_busy: Vec<f64>,
    /// The busiest worker's share. The largest, not the mean: a conference lives on the
    /// workers its endpoints' addresses hash to, and one saturated core drops that
    /// conference's packets while the others idle.
    pub cpu_busy: f64,
    /// How close the bridge is to what it can carry, 0 to 1: the largest of its shares of
    /// `max_conferences` and `max_endpoints` and `cpu_busy`.
    pub stress: f64,
}

/// A count at an instant, and the rate measured up to it.
#[derive(Debug, Default)]
struct RateSample {
    at: Option<(Instant, u64)>,
    rate: Option<f64>,
}

impl RateSample {
    /// Whoever asks, the rate covers at least a second: a new sample replaces the old one only
    /// once a second has passed, so frequent callers see a stable figure, not noise.
    fn update(&mut self, now: Instant, count: u64) -> Option<f64> {
        match self.at {
            Some((at, then)) if now.saturating_duration_since(at) >= Duration::from_secs(1) => {
                let seconds = now.saturating_duration_since(at).as_secs_f64();
                self.rate = Some(count.saturating_sub(then) as f64 / seconds);
                self.at = Some((now, count));
            }
            Some(_) => {}
            None => self.at = Some((now, count)),
        }
        self.rate
    }
}

/// Why a control request failed; the API maps each to an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    NotFound(&'static str),
    Conflict(String),
    Unavailable(String),
}

/// What the bridge routes by, as one worker sees it for a while.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub endpoints: Vec<EndpointView>,
    /// Authenticated addresses (ICE) to the endpoint they belong to.
    pub by_address: HashMap<SocketAddr, usize>,
    pub by_ufrag: HashMap<String, usize>,
    pub by_id: HashMap<EndpointId, usize>,
}

/// One endpoint in a snapshot.
#[derive(Debug)]
pub struct EndpointView {
    pub shared: Arc<Endpoint>,
    /// Where media to this endpoint goes: the nominated address, while consent lasts.
    pub address: Option<SocketAddr>,
    pub keys: Option<Arc<SrtpKeys>>,
    pub sources: Vec<Source>,
    pub audio_level_id: Option<u8>,
    /// How the endpoint numbers codecs and extensions; equal numberings are one `Arc`.
    pub numbering: Arc<Numbering>,
    /// Other endpoints of the same conference that can receive media now.
    pub peers: Vec<usize>,
}

impl EndpointView {
    /// Address and keys: media can flow to it.
    pub fn is_ready(&self) -> bool {
        self.address.is_some() && self.keys.is_some()
    }

    pub fn source(&self, ssrc: u32) -> Option<&Source> {
        self.sources.iter().find(|s| s.ssrc == ssrc || s.rtx_ssrc == Some(ssrc))
    }
}

#[derive(Debug)]
struct Conference {
    endpoints: Vec<EndpointId>,
    created: Instant,
    speakers: SpeakerSelector,
}

#[derive(Debug, Default)]
struct State {
    conferences: HashMap<ConferenceId, Conference>,
    endpoints: HashMap<EndpointId, Arc<Endpoint>>,
    vocabulary: Vocabulary,
}

/// The endpoint as the API reports it.
#[derive(Debug, serde::Serialize)]
pub struct EndpointStatus {
    pub id: String,
    pub ice: IceState,
    pub dtls: DtlsStatus,
    pub srtp_profile: Option<&'static str>,
    pub sources: Vec<Source>,
}

#[derive(Debug, serde::Serialize)]
pub struct ConferenceStatus {
    pub id: String,
    pub dominant_speaker: Option<String>,
    pub endpoints: Vec<EndpointStatus>,
}

/// What a new endpoint needs to know about the bridge (the API adds candidates).
#[derive(Debug)]
pub struct NewEndpoint {
    pub id: EndpointId,
    pub ufrag: String,
    pub password: String,
    pub fingerprint: String,
}

/// A PATCH: every field optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    pub ice: Option<IceCredentials>,
    pub dtls: Option<DtlsParameters>,
    pub sources: Option<Vec<Source>>,
    pub payload_types: Option<Vec<PayloadType>>,
    pub header_extensions: Option<Vec<HeaderExtension>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DtlsParameters {
    #[serde(default)]
    pub setup: Option<String>,
    pub fingerprint: FingerprintParameter,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintParameter {
    pub hash: String,
    pub value: String,
}

/// Shared by the control API and every worker.
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
    certificate: Certificate,
    limits: Limits,
    epoch: Instant,
    draining: AtomicBool,
    /// The last sample of the forwarded-packet count, for `load()`'s rate.
    rate: Mutex<RateSample>,
    /// The engine workers' busy time, once the engine runs ([`Registry::watch_workers`]).
    workers_load: Mutex<Option<engine::Load>>,
    /// One block per worker.
    counters: Vec<Arc<MediaCounters>>,
    /// Test builds only: what the workers forwarded.
    #[cfg(feature = "test-tap")]
    tap: Option<super::tap::Tap>,
}

impl Registry {
    pub fn new(certificate: Certificate, limits: Limits, workers: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            generation: AtomicU64::new(0),
            certificate,
            limits,
            epoch: Instant::now(),
            draining: AtomicBool::new(false),
            rate: Mutex::new(RateSample::default()),
            workers_load: Mutex::new(None),
            counters: (0..workers).map(|_| Arc::default()).collect(),
            #[cfg(feature = "test-tap")]
            tap: None,
        }
    }

    /// Test builds only: record the first `records` packets the workers forward (0: no tap).
    #[cfg(feature = "test-tap")]
    pub fn with_tap(mut self, records: usize) -> Self {
        self.tap = (records > 0).then(|| super::tap::Tap::new(records));
        self
    }

    #[cfg(feature = "test-tap")]
    pub fn tap(&self) -> Option<&super::tap::Tap> {
        self.tap.as_ref()
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    pub fn counters(&self, worker: usize) -> Arc<MediaCounters> {
        self.counters[worker].clone()
    }

    pub fn drops(&self, reason: MediaDrop) -> u64 {
        self.counters.iter().map(|c| c.drops(reason)).sum()
    }

    pub fn events(&self, event: MediaEvent) -> u64 {
        self.counters.iter().map(|c| c.events(event)).sum()
    }

    /// Microseconds since the registry started: a clock workers can store in an atomic.
    pub fn micros_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// The current snapshot's generation (one atomic load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// What the bridge carries and how close it is to its limits: the figures a signaling
    /// daemon places conferences by (`GET /v1/stats`).
    pub fn load(&self, now: Instant) -> Load {
        let (conferences, endpoints) = self.sizes();
        let forwarded = self.events(MediaEvent::RtpForwarded);
        let forwarded_per_second = self.rate.lock().unwrap_or_else(|p| p.into_inner()).update(now, forwarded);
        let share = |used: usize, limit: usize| used as f64 / limit.max(1) as f64;
        let worker_busy = self.worker_busy(now);
        let cpu_busy = worker_busy.iter().copied().fold(0.0, f64::max);
        Load {
            conferences,
            endpoints,
            draining: self.is_draining(),
            forwarded,
            forwarded_per_second,
            drops: MediaDrop::ALL.iter().map(|&reason| (reason, self.drops(reason))).collect(),
            stress: share(conferences, self.limits.max_conferences)
                .max(share(endpoints, self.limits.max_endpoints))
                .max(cpu_busy)
                .min(1.0),
            worker_busy,
            cpu_busy,
        }
    }

    /// Counts the engine workers' busy time in [`load`](Self::load). The registry exists before
    /// the engine (its workers are built on it), so the engine's figures join it later.
    pub fn watch_workers(&self, load: engine::Load) {
        *self.workers_load.lock().unwrap_or_else(|p| p.into_inner()) = Some(load);
    }

    /// Each engine worker's busy share over the last second or more (see [`engine::Load`]);
    /// empty before [`watch_workers`](Self::watch_workers).
    pub fn worker_busy(&self, now: Instant) -> Vec<f64> {
        let mut load = self.workers_load.lock().unwrap_or_else(|p| p.into_inner());
        load.as_mut().map(|load| load.busy(now).to_vec()).unwrap_or_default()
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rebuilds the snapshot from the current state and makes workers pick it up.
    pub fn publish(&self) {
        let state = self.state();
        self.publish_locked(&state);
    }

    fn publish_locked(&self, state: &State) {
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        let mut snapshot = Snapshot { generation, ..Snapshot::default() };
        let mut conference_of = Vec::new();
        for (conference_id, conference) in &state.conferences {
            for endpoint_id in &conference.endpoints {
                let Some(endpoint) = state.endpoints.get(endpoint_id) else { continue };
                let control = endpoint.control();
                let index = snapshot.endpoints.len();
                for &addr in &control.addresses {
                    snapshot.by_address.insert(addr, index);
                }
                snapshot.by_ufrag.insert(endpoint.local_ufrag.clone(), index);
                snapshot.by_id.insert(endpoint.id, index);
                let signaled = &control.signaled;
                snapshot.endpoints.push(EndpointView {
                    shared: endpoint.clone(),
                    address: if control.ice.is_expired() { None } else { control.ice.selected() },
                    keys: control.keys.clone(),
                    sources: signaled.sources.clone(),
                    audio_level_id: signaled.audio_level_id(),
                    numbering: control.numbering.clone(),
                    peers: Vec::new(),
                });
                conference_of.push(*conference_id);
            }
        }
        for i in 0..snapshot.endpoints.len() {
            let peers = (0..snapshot.endpoints.len())
                .filter(|&j| {
                    j != i && conference_of[j] == conference_of[i] && snapshot.endpoints[j].is_ready()
                })
                .collect();
            snapshot.endpoints[i].peers = peers;
        }
        self.snapshot.store(Arc::new(snapshot));
        self.generation.store(generation, Ordering::Release);
    }

    pub fn create_conference(&self, now: Instant) -> Result<ConferenceId, ApiError> {
        if self.is_draining() {
            return Err(ApiError::Unavailable("the bridge is draining".into()));
        }
        let mut state = self.state();
        if state.conferences.len() >= self.limits.max_conferences {
            return Err(ApiError::Unavailable("conference limit reached".into()));
        }
        let id = loop {
            let id = ConferenceId::random();
            if !state.conferences.contains_key(&id) {
                break id;
            }
        };
        state.conferences.insert(
            id,
            Conference { endpoints: Vec::new(), created: now, speakers: SpeakerSelector::default() },
        );
        Ok(id)
    }

    pub fn delete_conference(&self, id: ConferenceId) -> Result<(), ApiError> {
        let mut state = self.state();
        let conference = state.conferences.remove(&id).ok_or(ApiError::NotFound("conference"))?;
        for endpoint in conference.endpoints {
            state.endpoints.remove(&endpoint);
        }
        self.publish_locked(&state);
        Ok(())
    }

    pub fn conference_status(&self, id: ConferenceId) -> Result<ConferenceStatus, ApiError> {
        let state = self.state();
        let conference = state.conferences.get(&id).ok_or(ApiError::NotFound("conference"))?;
        let endpoints = conference
            .endpoints
            .iter()
            .filter_map(|e| state.endpoints.get(e))
            .map(|endpoint| endpoint_status(endpoint))
            .collect();
        Ok(ConferenceStatus {
            id: id.to_string(),
            dominant_speaker: conference.speakers.dominant().map(|d| d.to_string()),
            endpoints,
        })
    }

    pub fn create_endpoint(&self, conference: ConferenceId, now: Instant) -> Result<NewEndpoint, ApiError> {
        let mut state = self.state();
        if state.endpoints.len() >= self.limits.max_endpoints {
            return Err(ApiError::Unavailable("endpoint limit reached".into()));
        }
        let members = state.conferences.get(&conference).ok_or(ApiError::NotFound("conference"))?;
        if members.endpoints.len() >= self.limits.max_endpoints_per_conference {
            return Err(ApiError::Unavailable("this conference is full".into()));
        }
        let id = loop {
            let id = EndpointId::random();
            if !state.endpoints.contains_key(&id) {
                break id;
            }
        };
        let endpoint = Arc::new(Endpoint::new(id, conference, now));
        let created = NewEndpoint {
            id,
            ufrag: endpoint.local_ufrag.clone(),
            password: endpoint.local_password.clone(),
            fingerprint: self.certificate.fingerprint().to_owned(),
        };
        state.endpoints.insert(id, endpoint);
        state.conferences.get_mut(&conference).expect("checked above").endpoints.push(id);
        self.publish_locked(&state);
        Ok(created)
    }

    pub fn update_endpoint(
        &self,
        conference: ConferenceId,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<EndpointStatus, ApiError> {
        let mut state = self.state();
        let endpoint = find_endpoint(&state, conference, id)?.clone();
        let fingerprint = match &update.dtls {
            Some(dtls) => Some(parse_dtls(dtls)?),
            None => None,
        };
        if let Some(sources) = &update.sources {
            check_sources(&state, conference, id, sources)?;
        }
        if let Some(ice) = &update.ice {
            check_ice_credentials(ice)?;
        }
        {
            let mut control = endpoint.control();
            if let Some(fingerprint) = fingerprint {
                let same = control.signaled.remote_fingerprint.as_ref() == Some(&fingerprint);
                if control.dtls.is_some() && !same {
                    return Err(ApiError::Conflict(
                        "dtls.fingerprint cannot change once DTLS has started".into(),
                    ));
                }
                control.signaled.remote_fingerprint = Some(fingerprint);
            }
            if let Some(ice) = update.ice {
                control.ice.set_remote_ufrag(&ice.ufrag);
                control.signaled.remote_ufrag = Some(ice.ufrag);
            }
            if let Some(sources) = update.sources {
                control.signaled.sources = sources;
            }
            let renumbered = update.payload_types.is_some() || update.header_extensions.is_some();
            if let Some(payload_types) = update.payload_types {
                control.signaled.payload_types = payload_types;
            }
            if let Some(extensions) = update.header_extensions {
                if extensions.iter().any(|e| e.id == 0) {
                    return Err(ApiError::BadRequest("header_extensions: ids are 1 to 255".into()));
                }
                control.signaled.header_extensions = extensions;
            }
            if renumbered {
                let signaled = &control.signaled;
                let numbering =
                    state.vocabulary.numbering(&signaled.payload_types, &signaled.header_extensions);
                control.numbering = numbering;
            }
        }
        self.publish_locked(&state);
        Ok(endpoint_status(&endpoint))
    }

    pub fn delete_endpoint(&self, conference: ConferenceId, id: EndpointId) -> Result<(), ApiError> {
        let mut state = self.state();
        find_endpoint(&state, conference, id)?;
        state.endpoints.remove(&id);
        let members = state.conferences.get_mut(&conference).expect("find_endpoint checked it");
        members.endpoints.retain(|e| *e != id);
        if members.endpoints.is_empty() {
            state.conferences.remove(&conference);
        }
        self.publish_locked(&state);
        Ok(())
    }

    /// (conferences, endpoints)
    pub fn sizes(&self) -> (usize, usize) {
        let state = self.state();
        (state.conferences.len(), state.endpoints.len())
    }

    /// Housekeeping, a few times a second while anything exists: speaker selection, consent
    /// expiry, and conferences nobody joined.
    pub fn tick(&self, now: Instant) {
        let mut state = self.state();
        let mut changed = false;
        let State { conferences, endpoints, .. } = &mut *state;
        conferences.retain(|_, c| {
            !c.endpoints.is_empty()
                || now.saturating_duration_since(c.created) < self.limits.empty_conference_timeout
        });
        for conference in conferences.values_mut() {
            let mut samples = Vec::with_capacity(conference.endpoints.len());
            for id in &conference.endpoints {
                let Some(endpoint) = endpoints.get(id) else { continue };
                let (sum, count) = endpoint.media.take_loudness();
                samples.push((*id, sum, count));
                let mut control = endpoint.control();
                let was_connected = control.ice_state() == IceState::Connected;
                control.ice.handle_timeout(now);
                if was_connected && control.ice_state() == IceState::Expired {
                    control.addresses.clear();
                    changed = true;
                }
            }
            conference.speakers.update(&samples);
        }
        if changed {
            self.publish_locked(&state);
        }
    }

    /// How long until the next tick is useful; `None` when there is nothing to look after.
    pub fn tick_interval(&self) -> Option<Duration> {
        let empty = self.state().conferences.is_empty();
        if empty { None } else { Some(Duration::from_millis(250)) }
    }
}

fn find_endpoint(
    state: &State,
    conference: ConferenceId,
    id: EndpointId,
) -> Result<&Arc<Endpoint>, ApiError> {
    let members = state.conferences.get(&conference).ok_or(ApiError::NotFound("conference"))?;
    if !members.endpoints.contains(&id) {
        return Err(ApiError::NotFound("endpoint"));
    }
    state.endpoints.get(&id).ok_or(ApiError::NotFound("endpoint"))
}

fn endpoint_status(endpoint: &Endpoint) -> EndpointStatus {
    let control = endpoint.control();
    EndpointStatus {
        id: endpoint.id.to_string(),
        ice: control.ice_state(),
        dtls: control.dtls_status,
        srtp_profile: control.keys.as_ref().map(|k| profile_name(k.profile)),
        sources: control.signaled.sources.clone(),
    }
}

/// The profile's name as RFC 5764 and RFC 7714 spell it (and Chromium's getStats reports it).
pub fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
        Profile::AeadAes256Gcm => "AEAD_AES_256_GCM",
        Profile::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
        Profile::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
    }
}

fn parse_dtls(dtls: &DtlsParameters) -> Result<Fingerprint, ApiError> {
    match dtls.setup.as_deref() {
        None | Some("active") | Some("actpass") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dtls.setup: {other:?}; the bridge is the DTLS server, so the participant must be active"
            )));
        }
    }
    if !dtls.fingerprint.hash.eq_ignore_ascii_case("sha-256") {
        return Err(ApiError::BadRequest("dtls.fingerprint.hash: only sha-256 is supported".into()));
    }
    let text = format!("sha-256 {}", dtls.fingerprint.value);
    text.parse::<Fingerprint>()
        .or_else(|_| dtls.fingerprint.value.parse::<Fingerprint>())
        .map_err(|e| ApiError::BadRequest(format!("dtls.fingerprint.value: {e}")))
}

fn check_ice_credentials(ice: &IceCredentials) -> Result<(), ApiError> {
    // RFC 8839 §5.4: ice-char is ALPHA / DIGIT / "+" / "/"; ufrag 4-256, pwd 22-256 characters.
    let ice_chars = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !(4..=256).contains(&ice.ufrag.len()) || !ice_chars(&ice.ufrag) {
        return Err(ApiError::BadRequest("ice.ufrag: 4 to 256 ICE characters".into()));
    }
    if !(22..=256).contains(&ice.pwd.len()) || !ice_chars(&ice.pwd) {
        return Err(ApiError::BadRequest("ice.pwd: 22 to 256 ICE characters".into()));
    }
    Ok(())
}

fn check_sources(
    state: &State,
    conference: ConferenceId,
    id: EndpointId,
    sources: &[Source],
) -> Result<(), ApiError> {
    let ssrcs: Vec<u32> = sources.iter().flat_map(|s| std::iter::once(s.ssrc).chain(s.rtx_ssrc)).collect();
    if ssrcs.len() > MAX_SOURCES {
        return Err(ApiError::BadRequest(format!("sources: at most {MAX_SOURCES} SSRCs (RTX included)")));
    }
    for (i, ssrc) in ssrcs.iter().enumerate() {
        if ssrcs[..i].contains(ssrc) {
            return Err(ApiError::BadRequest(format!("sources: SSRC {ssrc} appears twice")));
        }
    }
    if let Some(source) = sources.iter().find(|s| s.rtx_ssrc.is_some() && s.kind != MediaKind::Video) {
        return Err(ApiError::BadRequest(format!("sources: rtx_ssrc on audio source {}", source.ssrc)));
    }
    let members = &state.conferences[&conference].endpoints;
    for other in members.iter().filter(|e| **e != id).filter_map(|e| state.endpoints.get(e)) {
        let control = other.control();
        let taken = control.signaled.sources.iter().flat_map(|s| std::iter::once(s.ssrc).chain(s.rtx_ssrc));
        for ssrc in taken {
            if ssrcs.contains(&ssrc) {
                return Err(ApiError::Conflict(format!("sources: SSRC {ssrc} is another endpoint's")));
            }
        }
    }
    Ok(())
}
