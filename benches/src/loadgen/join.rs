//! How a participant gets into a conference: it tells the appliance what it sends and learns
//! where and how to reach the bridge. Behind a trait so that joining through the signaling
//! daemon (the full path, [`Signaling`](super::signaling::Signaling)) stands beside joining
//! through the bridge's control API (the data plane alone, [`ControlApi`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use super::http::Client;
use super::wire::{self, StreamKind};

/// What a participant signals about itself: the content of its SDP offer.
#[derive(Clone, Debug)]
pub struct Offer<'a> {
    pub participant: u32,
    /// Conference index of this run (0..conferences); the join maps it to a real conference.
    pub conference: usize,
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// SHA-256 certificate fingerprint, `AB:CD:...`.
    pub fingerprint: &'a str,
    pub audio_level_id: u8,
}

/// What the participant learns: the content of the SDP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Where to send media (the bridge's ICE candidate).
    pub media: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
}

pub trait Join {
    /// Signals `offer`; the participant's media can start once this returns.
    fn join(&mut self, offer: &Offer<'_>) -> Result<Answer, String>;
    /// Removes everything this join created (best effort, at the end of a run).
    fn leave_all(&mut self) -> Result<(), String>;
}

/// Joining directly through the bridge's control API (bridge/API.md): one conference per
/// conference index, created on its first participant; then per participant POST an
/// endpoint and PATCH it with our ICE credentials, fingerprint and sources.
#[derive(Debug)]
pub struct ControlApi {
    http: Client,
    /// Overrides the candidate address the bridge announces (`--media`).
    media: Option<SocketAddr>,
    conferences: HashMap<usize, String>,
}

impl ControlApi {
    pub fn new(api: SocketAddr, secret: String, media: Option<SocketAddr>) -> Self {
        Self { http: Client::new(api, secret, Duration::from_secs(5)), media, conferences: HashMap::new() }
    }

    fn conference(&mut self, index: usize) -> Result<String, String> {
        if let Some(id) = self.conferences.get(&index) {
            return Ok(id.clone());
        }
        let created = self.http.expect(201, "POST", "/v1/conferences", Some(&json!({})))?;
        let id = text(&created, "id")?;
        self.conferences.insert(index, id.clone());
        Ok(id)
    }
}

fn text(value: &Value, field: &str) -> Result<String, String> {
    value[field].as_str().map(str::to_owned).ok_or_else(|| format!("no {field:?} in {value}"))
}

/// The first IPv4 host candidate of an endpoint (loadgen speaks IPv4).
fn candidate(endpoint: &Value) -> Result<SocketAddr, String> {
    let candidates = endpoint["ice"]["candidates"].as_array().ok_or("the endpoint has no ICE candidates")?;
    candidates
        .iter()
        .filter_map(|c| {
            Some(SocketAddr::new(c["ip"].as_str()?.parse::<IpAddr>().ok()?, c["port"].as_u64()? as u16))
        })
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| "no IPv4 candidate (set media.announce on the bridge, or pass --media)".into())
}

/// The PATCH body: what a browser's offer says, for one audio and one video source.
fn patch_body(offer: &Offer<'_>) -> Value {
    let source = |kind: StreamKind| {
        json!({
            "ssrc": wire::ssrc(offer.participant, kind),
            "kind": kind.name(),
            "msid": format!("loadgen-{} {}", offer.participant, kind.name()),
        })
    };
    json!({
        "ice": {"ufrag": offer.ice_ufrag, "pwd": offer.ice_pwd},
        "dtls": {"setup": "active", "fingerprint": {"hash": "sha-256", "value": offer.fingerprint}},
        "sources": [source(StreamKind::Audio), source(StreamKind::Video)],
        "payload_types": [
            {"pt": wire::AUDIO_PT, "kind": "audio", "name": "opus", "clock_rate": wire::AUDIO_CLOCK, "channels": 2},
            {"pt": wire::VIDEO_PT, "kind": "video", "name": "VP8", "clock_rate": wire::VIDEO_CLOCK},
        ],
        "header_extensions": [{"id": offer.audio_level_id, "uri": wire::AUDIO_LEVEL_URI}],
    })
}

impl Join for ControlApi {
    fn join(&mut self, offer: &Offer<'_>) -> Result<Answer, String> {
        let conference = self.conference(offer.conference)?;
        let path = format!("/v1/conferences/{conference}/endpoints");
        let endpoint = self.http.expect(201, "POST", &path, None)?;
        let id = text(&endpoint, "id")?;
        let media = match self.media {
            Some(media) => media,
            None => candidate(&endpoint)?,
        };
        let answer = Answer {
            media,
            ice_ufrag: text(&endpoint["ice"], "ufrag")?,
            ice_pwd: text(&endpoint["ice"], "pwd")?,
        };
        self.http.expect(200, "PATCH", &format!("{path}/{id}"), Some(&patch_body(offer)))?;
        Ok(answer)
    }

    fn leave_all(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        for (_, id) in self.conferences.drain() {
            if let Err(e) = self.http.expect(204, "DELETE", &format!("/v1/conferences/{id}"), None) {
                failed.push(e);
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }
}
