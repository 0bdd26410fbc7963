//! One participant's connection, as the control plane and every worker share it.
//!
//! Three kinds of state, by who writes them and how often:
//! - fixed at creation: ids and the bridge's ICE credentials;
//! - [`EndpointControl`], behind a mutex: what signaling told us, the ICE agent and the DTLS
//!   handshake. Only the control API and STUN/DTLS datagrams take it, never an RTP packet;
//! - [`MediaCells`]: atomics and bounded lock-free queues that workers use to tell the worker
//!   serving this endpoint's packets about keyframe requests and NACKs from other endpoints,
//!   and to report audio levels to the speaker selection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::ids::{ConferenceId, EndpointId, random_token};
use crate::media::dtls::{DtlsServer, Fingerprint, SrtpKeys};
use crate::media::ice::IceLite;
use crate::media::rtp::renumber::Numbering;

/// Most SSRCs one endpoint may send (audio, video, RTX, simulcast layers).
pub const MAX_SOURCES: usize = 32;
/// Authenticated addresses remembered per endpoint: ICE may validate a few pairs before one is
/// nominated, and DTLS can start on any of them.
pub const MAX_ADDRESSES: usize = 4;
const NACK_QUEUE: usize = 256;
const KEYFRAME_QUEUE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    /// The RTP clock of WebRTC's codecs of this kind (opus 48 kHz, video 90 kHz).
    pub fn clock_rate(self) -> u32 {
        match self {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        }
    }
}

/// An SSRC the participant sends.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub ssrc: u32,
    pub kind: MediaKind,
    #[serde(default)]
    pub msid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx_ssrc: Option<u32>,
}

/// A payload type from the participant's SDP.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadType {
    pub pt: u8,
    pub kind: MediaKind,
    pub name: String,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// For `rtx`: the payload type it retransmits (RFC 4588 `apt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<u8>,
}

/// A negotiated RTP header extension.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderExtension {
    pub id: u8,
    pub uri: String,
}

pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What signaling told the bridge about the participant.
#[derive(Clone, Debug, Default)]
pub struct Signaled {
    pub remote_ufrag: Option<String>,
    pub remote_fingerprint: Option<Fingerprint>,
    pub sources: Vec<Source>,
    pub payload_types: Vec<PayloadType>,
    pub header_extensions: Vec<HeaderExtension>,
}

impl Signaled {
    pub fn audio_level_id(&self) -> Option<u8> {
        self.header_extensions.iter().find(|e| e.uri == AUDIO_LEVEL_URI).map(|e| e.id)
    }

    /// The RTX payload type retransmitting `pt`, if the participant negotiated one.
    pub fn rtx_payload_type(&self, pt: u8) -> Option<u8> {
        self.payload_types
            .iter()
            .find(|p| p.apt == Some(pt) && p.name.eq_ignore_ascii_case("rtx"))
            .map(|p| p.pt)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IceState {
    New,
    Connected,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsStatus {
    New,
    Handshaking,
    Connected,
    Failed,
    Closed,
}

/// Control-path state of one endpoint.
#[derive(Debug)]
pub struct EndpointControl {
    pub ice: IceLite,
    pub signaled: Signaled,
    /// Addresses that sent an authenticated check, most recent last.
    pub addresses: Vec<SocketAddr>,
    pub dtls: Option<DtlsServer>,
    pub dtls_status: DtlsStatus,
    /// Set once DTLS completes; shared with every worker through the snapshot.
    pub keys: Option<Arc<SrtpKeys>>,
    /// How the participant numbers codecs and extensions (from `signaled`), to renumber what
    /// others send it.
    pub numbering: Arc<Numbering>,
}

impl EndpointControl {
    pub fn ice_state(&self) -> IceState {
        if self.ice.is_expired() {
            IceState::Expired
        } else if self.ice.selected().is_some() {
            IceState::Connected
        } else {
            IceState::New
        }
    }

    /// Records an address that passed an authenticated check. Returns whether it is new.
    pub fn remember_address(&mut self, addr: SocketAddr) -> bool {
        if self.addresses.contains(&addr) {
            return false;
        }
        if self.addresses.len() == MAX_ADDRESSES {
            self.addresses.remove(0);
        }
        self.addresses.push(addr);
        true
    }
}

/// A NACK from `receiver` for packet `seq` of `ssrc`, waiting for the sender's worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NackRequest {
    pub receiver: EndpointId,
    pub ssrc: u32,
    pub seq: u16,
}

/// The last sender report of one of the endpoint's SSRCs, for the sender reports the bridge
/// writes to receivers. Fields are written together by one worker and read by others; a read
/// that mixes two reports is harmless (the next report corrects it).
#[derive(Debug, Default)]
pub struct SenderReportCell {
    pub ssrc: AtomicU32,
    pub ntp: AtomicU64,
    pub rtp_timestamp: AtomicU32,
    pub packet_count: AtomicU32,
    pub octet_count: AtomicU32,
    /// When it arrived, in microseconds since the registry's epoch.
    pub arrived_us: AtomicU64,
}

/// Cross-worker mailboxes of one endpoint (see the module docs).
#[derive(Debug)]
pub struct MediaCells {
    /// Sum and count of audio loudness samples (127 - dBov level) since the speaker selection
    /// last read them.
    pub loudness_sum: AtomicU32,
    pub loudness_samples: AtomicU32,
    /// Video SSRCs of this endpoint that a receiver wants a keyframe of.
    pub keyframe_requests: ArrayQueue<u32>,
    /// Lost packets receivers asked for, answered from this endpoint's history.
    pub nacks: ArrayQueue<NackRequest>,
    pub sender_reports: [SenderReportCell; 4],
}

impl Default for MediaCells {
    fn default() -> Self {
        Self {
            loudness_sum: AtomicU32::new(0),
            loudness_samples: AtomicU32::new(0),
            keyframe_requests: ArrayQueue::new(KEYFRAME_QUEUE),
            nacks: ArrayQueue::new(NACK_QUEUE),
            sender_reports: Default::default(),
        }
    }
}

impl MediaCells {
    /// Loudness samples since the last call: (sum, count), both reset.
    pub fn take_loudness(&self) -> (u32, u32) {
        (self.loudness_sum.swap(0, Ordering::Relaxed), self.loudness_samples.swap(0, Ordering::Relaxed))
    }

    pub fn add_loudness(&self, loudness: u8) {
        self.loudness_sum.fetch_add(u32::from(loudness), Ordering::Relaxed);
        self.loudness_samples.fetch_add(1, Ordering::Relaxed);
    }

    /// The cell for `ssrc`'s sender report: its own, or a free one, or the oldest.
    pub fn sender_report_cell(&self, ssrc: u32) -> &SenderReportCell {
        let cells = &self.sender_reports;
        if let Some(cell) = cells.iter().find(|c| c.ssrc.load(Ordering::Relaxed) == ssrc) {
            return cell;
        }
        cells.iter().min_by_key(|c| c.arrived_us.load(Ordering::Relaxed)).expect("four cells")
    }
}

/// One participant's connection.
#[derive(Debug)]
pub struct Endpoint {
    pub id: EndpointId,
    pub conference: ConferenceId,
    pub local_ufrag: String,
    pub local_password: String,
    /// When the endpoint was made, for the handshake deadline of an endpoint never connected.
    pub created: Instant,
    control: Mutex<EndpointControl>,
    pub media: MediaCells,
}

impl Endpoint {
    pub fn new(id: EndpointId, conference: ConferenceId, now: Instant) -> Self {
        // 8 characters of ufrag and 24 of password: 47 and 142 bits, above RFC 8839's minimums.
        let local_ufrag = random_token(8);
        let local_password = random_token(24);
        let ice = IceLite::new(&local_ufrag, &local_password);
        Self {
            id,
            conference,
            local_ufrag,
            local_password,
            created: now,
            control: Mutex::new(EndpointControl {
                ice,
                signaled: Signaled::default(),
                addresses: Vec::with_capacity(MAX_ADDRESSES),
                dtls: None,
                dtls_status: DtlsStatus::New,
                keys: None,
                numbering: Arc::default(),
            }),
            media: MediaCells::default(),
        }
    }

    /// Locks the control state. A poisoned lock means a panic elsewhere, which aborts the
    /// process in release builds; taking the data as it is keeps tests meaningful.
    pub fn control(&self) -> MutexGuard<'_, EndpointControl> {
        self.control.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
