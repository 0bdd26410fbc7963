//! Meetings on the bridge: the bridge conference of a room, an endpoint per member, and the
//! answers to members' offers (PROTOCOL.md "Media topology", bridge/API.md).
//!
//! Bridge calls are slow next to everything else, so they run on tasks, one room at a time
//! (a per-room async mutex), never under the hub's lock. Their results come back through the
//! hub, which checks that the room is still on the bridge at the same epoch before sending
//! anything: an answer to a stale offer is dropped and the member offers again on the next
//! `renegotiate`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::bridge::NewEndpoint;
use crate::bridges::Bridges;
use crate::sdp::{self, BridgeEndpoint, Candidate, RemoteSource, Source};

/// The bridge side of one room.
#[derive(Debug, Default)]
pub struct Bridged {
    /// The bridge (an index into `Bridges`) and its conference: a meeting stays where it began.
    pub conference: Option<(usize, String)>,
    pub members: HashMap<String, BridgedMember>,
}

#[derive(Debug)]
pub struct BridgedMember {
    pub endpoint: NewEndpoint,
    pub sources: Vec<Source>,
}

pub type Shared = Arc<tokio::sync::Mutex<Bridged>>;

/// What an offer turned into.
#[derive(Debug)]
pub struct Answered {
    pub answer: sdp::Answer,
    /// The member's sources are new or changed: the others must renegotiate to receive them.
    pub sources_changed: bool,
}

/// Makes sure the room has a conference and the member an endpoint, tells the bridge what the
/// offer says, and writes the answer. `present` are the ids of the room's members now.
pub async fn answer_offer(
    bridges: &Bridges,
    bridged: &Shared,
    member: &str,
    present: &[String],
    offer: &sdp::Offer,
    epoch: u64,
) -> Result<Answered, String> {
    let mut room = bridged.lock().await;
    let (bridge, conference) = match &room.conference {
        Some(placed) => placed.clone(),
        None => {
            let placed = bridges.place().await.map_err(|e| e.to_string())?;
            room.conference = Some(placed.clone());
            placed
        }
    };
    let client = bridges.client(bridge);
    if !room.members.contains_key(member) {
        let endpoint = client.create_endpoint(&conference).await.map_err(|e| e.to_string())?;
        room.members.insert(member.to_owned(), BridgedMember { endpoint, sources: Vec::new() });
    }
    let entry = room.members.get_mut(member).expect("inserted above");
    client
        .update_endpoint(&conference, &entry.endpoint.id, sdp::patch_body(offer))
        .await
        .map_err(|e| e.to_string())?;
    let sources_changed = entry.sources != offer.sources;
    entry.sources = offer.sources.clone();
    let bridge = bridge_endpoint(&entry.endpoint)?;
    // In join order, so each renegotiation maps the same member to the same m-lines.
    let others: Vec<RemoteSource> = present
        .iter()
        .filter(|id| id.as_str() != member)
        .filter_map(|id| room.members.get(id).map(|m| (id, m)))
        .flat_map(|(id, m)| {
            m.sources.iter().map(move |s| RemoteSource {
                participant: id.clone(),
                kind: s.kind,
                ssrc: s.ssrc,
                msid: s.msid.clone(),
                rtx_ssrc: s.rtx_ssrc,
            })
        })
        .collect();
    let answer = sdp::compose_answer(offer, &bridge, &others, epoch).map_err(|e| e.to_string())?;
    Ok(Answered { answer, sources_changed })
}

fn bridge_endpoint(endpoint: &NewEndpoint) -> Result<BridgeEndpoint, String> {
    let candidates = endpoint
        .ice
        .candidates
        .iter()
        .map(|c| {
            let ip = c.ip.parse().map_err(|e| format!("bridge candidate {:?}: {e}", c.ip))?;
            Ok(Candidate { foundation: c.foundation.clone(), priority: c.priority, ip, port: c.port })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if candidates.is_empty() {
        return Err("the bridge announced no candidates (set media.announce)".into());
    }
    Ok(BridgeEndpoint {
        ufrag: endpoint.ice.ufrag.clone(),
        pwd: endpoint.ice.pwd.clone(),
        candidates,
        fingerprint: endpoint.dtls.fingerprint.value.clone(),
    })
}

/// Removes the endpoints of members no longer in `present` (all of them when the room left
/// the bridge); the bridge drops the conference with its last endpoint.
pub async fn prune(bridges: &Bridges, bridged: &Shared, present: &[String]) {
    let mut room = bridged.lock().await;
    let Some((bridge, conference)) = room.conference.clone() else { return };
    let client = bridges.client(bridge);
    let gone: Vec<String> = room.members.keys().filter(|id| !present.contains(id)).cloned().collect();
    for id in gone {
        if let Some(member) = room.members.remove(&id)
            && let Err(e) = client.delete_endpoint(&conference, &member.endpoint.id).await
        {
            tracing::warn!("{e}");
        }
    }
    if room.members.is_empty() {
        room.conference = None;
    }
}

/// The member whose bridge endpoint is the conference's dominant speaker.
pub async fn dominant_member(bridges: &Bridges, bridged: &Shared) -> Option<String> {
    let ((bridge, conference), endpoints): ((usize, String), Vec<(String, String)>) = {
        let room = bridged.lock().await;
        let placed = room.conference.clone()?;
        (placed, room.members.iter().map(|(id, m)| (m.endpoint.id.clone(), id.clone())).collect())
    };
    let dominant = bridges.client(bridge).dominant_speaker(&conference).await.ok()??;
    let endpoint = dominant?;
    endpoints.into_iter().find(|(e, _)| *e == endpoint).map(|(_, member)| member)
}
