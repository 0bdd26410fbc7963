//! The bridge's data plane on one engine worker: demultiplex, ICE, DTLS, SRTP, route.
//!
//! Ownership rule that keeps SRTP safe without locks: every RTP stream a receiver gets from
//! sender S is protected on the worker that receives S's packets (all of S's datagrams come from
//! one address, so SO_REUSEPORT delivers them to one worker), and every RTCP packet the bridge
//! sends to an endpoint is protected on the worker that receives that endpoint's packets, with
//! an RTCP sender SSRC of its own per worker. No (key, SSRC, index) triple is ever used twice.
//! What crosses workers (a receiver's keyframe request or NACK for S) goes through S's
//! lock-free mailboxes and is served on S's worker when S's next packet arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Datagram, Destination, DropReason, Handler, Output, WorkerId};

use super::counters::{MediaCounters, MediaDrop, MediaEvent};
use super::endpoint::{DtlsStatus, Endpoint, MediaKind};
use super::ids::{EndpointId, random_bytes};
use super::registry::{Registry, Snapshot};
use crate::media::demux::{Protocol, classify};
use crate::media::dtls::{DtlsServer, DtlsState, SrtpKeys};
use crate::media::rtp::{RtpHeader, audio_level};
use crate::media::srtp::Context;

/// Room for any STUN response the ICE agent writes.
const STUN_RESPONSE_MAX: usize = 512;
/// Room for one DTLS datagram (the handshake's MTU is 1200).
const DTLS_DATAGRAM_MAX: usize = 1500;
/// How often a worker holding endpoint state looks at the registry while no packet arrives, so
/// the keys of endpoints that left are wiped even on an idle core.
const IDLE_REFRESH: Duration = Duration::from_secs(1);

/// Per-worker state of one endpoint.
struct Local {
    id: EndpointId,
    keys: Option<Arc<SrtpKeys>>,
    /// Decrypts what the endpoint sends.
    inbound: Option<Context>,
    /// Encrypts what this worker sends to the endpoint.
    outbound: Option<Context>,
}

impl Local {
    fn new(id: EndpointId) -> Self {
        Self { id, keys: None, inbound: None, outbound: None }
    }

    /// Builds SRTP contexts when the endpoint's keys appear (or change).
    fn set_keys(&mut self, keys: Option<&Arc<SrtpKeys>>) {
        let same = match (&self.keys, keys) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.keys = keys.cloned();
        self.inbound = keys.and_then(|k| Context::new(k.profile, k.remote.key(), k.remote.salt()).ok());
        self.outbound = keys.and_then(|k| Context::new(k.profile, k.local.key(), k.local.salt()).ok());
    }
}

/// An endpoint whose DTLS handshake this worker drives (its retransmission timer lives here).
struct Handshake {
    endpoint: Arc<Endpoint>,
    peer: SocketAddr,
    deadline: Option<Instant>,
}

/// The engine handler of the SFU.
pub struct MediaWorker {
    registry: Arc<Registry>,
    counters: Arc<MediaCounters>,
    snapshot: Arc<Snapshot>,
    locals: Vec<Local>,
    handshakes: Vec<Handshake>,
    idle_refresh: Option<Instant>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker")
            .field("generation", &self.snapshot.generation)
            .field("endpoints", &self.locals.len())
            .field("handshakes", &self.handshakes.len())
            .finish()
    }
}

impl MediaWorker {
    pub fn new(registry: Arc<Registry>, worker: WorkerId) -> Self {
        let counters = registry.counters(usize::from(worker.0));
        Self {
            registry,
            counters,
            snapshot: Arc::new(Snapshot::default()),
            locals: Vec::new(),
            handshakes: Vec::new(),
            idle_refresh: None,
        }
    }

    /// Picks up a new snapshot if the registry published one: one atomic load when nothing
    /// changed. Per-endpoint state carries over by id; endpoints that left drop theirs (and
    /// their contexts wipe the keys).
    fn refresh(&mut self, now: Instant) {
        if self.registry.generation() == self.snapshot.generation {
            return;
        }
        let snapshot = self.registry.snapshot();
        let mut previous: HashMap<EndpointId, Local> = self.locals.drain(..).map(|l| (l.id, l)).collect();
        self.locals = snapshot
            .endpoints
            .iter()
            .map(|view| {
                let mut local =
                    previous.remove(&view.shared.id).unwrap_or_else(|| Local::new(view.shared.id));
                local.set_keys(view.keys.as_ref());
                local
            })
            .collect();
        self.snapshot = snapshot;
        self.idle_refresh = (!self.locals.is_empty()).then(|| now + IDLE_REFRESH);
    }

    fn reject(&self, reason: MediaDrop, engine_reason: DropReason, out: &mut Output<'_>) {
        self.counters.count(reason);
        out.drop_packet(engine_reason);
    }

    fn on_stun(&mut self, now: Instant, from: SocketAddr, packet: &[u8], out: &mut Output<'_>) {
        let Ok(message) = stun::Message::parse(packet) else {
            return self.reject(MediaDrop::StunRejected, DropReason::Rejected, out);
        };
        let Ok(username) = message.username() else {
            return self.reject(MediaDrop::StunRejected, DropReason::Rejected, out);
        };
        let ufrag = username.split(':').next().unwrap_or_default();
        let Some(&index) = self.snapshot.by_ufrag.get(ufrag) else {
            return self.reject(MediaDrop::StunRejected, DropReason::NoRoute, out);
        };
        let endpoint = self.snapshot.endpoints[index].shared.clone();
        let mut outcome = None;
        let mut changed = false;
        out.send(Destination::here(from), |buf| {
            if buf.extend_zeroed(STUN_RESPONSE_MAX).is_err() {
                buf.truncate(0);
                return;
            }
            let mut control = endpoint.control();
            let selected = control.ice.selected();
            let result = control.ice.handle_request(now, from, &message, &mut buf[..]);
            let len = match result {
                crate::media::ice::Outcome::Respond { len } => {
                    changed = control.remember_address(from) | (control.ice.selected() != selected);
                    len
                }
                crate::media::ice::Outcome::Reject { len, .. } => len,
                crate::media::ice::Outcome::Drop(_) => 0,
            };
            buf.truncate(len);
            outcome = Some(result);
        });
        match outcome {
            Some(crate::media::ice::Outcome::Reject { code: 401, .. }) => {
                self.counters.count(MediaDrop::StunUnauthorized)
            }
            Some(crate::media::ice::Outcome::Drop(_)) => self.counters.count(MediaDrop::StunRejected),
            _ => {}
        }
        if changed {
            self.registry.publish();
            self.refresh(now);
        }
    }

    fn on_dtls(&mut self, now: Instant, from: SocketAddr, packet: &[u8], out: &mut Output<'_>) {
        let Some(&index) = self.snapshot.by_address.get(&from) else {
            return self.reject(MediaDrop::UnknownAddress, DropReason::NoRoute, out);
        };
        let endpoint = self.snapshot.endpoints[index].shared.clone();
        let mut control = endpoint.control();
        if control.dtls.is_none() {
            let Some(fingerprint) = control.signaled.remote_fingerprint.clone() else {
                // The browser retransmits its ClientHello; by then signaling has caught up.
                drop(control);
                return self.reject(MediaDrop::DtlsRejected, DropReason::Rejected, out);
            };
            match DtlsServer::new(self.registry.certificate(), fingerprint, now) {
                Ok(server) => {
                    control.dtls = Some(server);
                    control.dtls_status = DtlsStatus::Handshaking;
                }
                Err(e) => {
                    tracing::warn!("endpoint {}: cannot start DTLS: {e}", endpoint.id);
                    drop(control);
                    return self.reject(MediaDrop::DtlsRejected, DropReason::Rejected, out);
                }
            }
        }
        let dtls = control.dtls.as_mut().expect("set above");
        if dtls.handle_datagram(now, packet).is_err() {
            self.counters.count(MediaDrop::DtlsRejected);
        }
        flush_dtls(dtls, from, out);
        let deadline = dtls.poll_timeout();
        let finished = self.settle_dtls(&mut control, &endpoint);
        drop(control);
        match self.handshakes.iter_mut().find(|h| Arc::ptr_eq(&h.endpoint, &endpoint)) {
            Some(handshake) => {
                handshake.peer = from;
                handshake.deadline = deadline;
            }
            None => self.handshakes.push(Handshake { endpoint, peer: from, deadline }),
        }
        if finished {
            self.handshakes.retain(|h| h.deadline.is_some());
            self.registry.publish();
            self.refresh(now);
        }
    }

    /// Moves a DTLS state change into the endpoint's control state. Returns whether the
    /// snapshot must change (keys appeared).
    fn settle_dtls(&self, control: &mut super::endpoint::EndpointControl, endpoint: &Endpoint) -> bool {
        let Some(dtls) = control.dtls.as_mut() else { return false };
        match dtls.state() {
            DtlsState::Connected if control.keys.is_none() => {
                let Some(keys) = dtls.take_srtp_keys() else { return false };
                control.keys = Some(Arc::new(keys));
                control.dtls_status = DtlsStatus::Connected;
                self.counters.add(MediaEvent::DtlsCompleted, 1);
                true
            }
            DtlsState::Failed(e) if control.dtls_status != DtlsStatus::Failed => {
                tracing::info!("endpoint {}: DTLS failed: {e}", endpoint.id);
                control.dtls_status = DtlsStatus::Failed;
                false
            }
            DtlsState::Closed => {
                control.dtls_status = DtlsStatus::Closed;
                false
            }
            _ => false,
        }
    }

    fn on_rtp(&mut self, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let Some(&index) = self.snapshot.by_address.get(&from) else {
            return self.reject(MediaDrop::UnknownAddress, DropReason::NoRoute, out);
        };
        let Some(inbound) = self.locals[index].inbound.as_mut() else {
            return self.reject(MediaDrop::NotReady, DropReason::Rejected, out);
        };
        let Ok(plain) = inbound.unprotect_rtp(&mut packet[..]) else {
            return self.reject(MediaDrop::SrtpRejected, DropReason::Rejected, out);
        };
        packet.truncate(plain);
        let Ok(header) = RtpHeader::parse(&packet[..]) else {
            return self.reject(MediaDrop::SrtpRejected, DropReason::Rejected, out);
        };
        let snapshot = &*self.snapshot;
        let view = &snapshot.endpoints[index];
        let Some(source) = view.source(header.ssrc) else {
            return self.reject(MediaDrop::UnknownSsrc, DropReason::Rejected, out);
        };
        if source.rtx_ssrc == Some(header.ssrc) {
            // The sender's own retransmissions: the bridge answers receivers' NACKs itself.
            out.drop_packet(DropReason::NoRoute);
            return;
        }
        if source.kind == MediaKind::Audio
            && let Some(level) = view.audio_level_id.and_then(|id| header.extension(id)).and_then(audio_level)
        {
            view.shared.media.add_loudness(127 - level.1.min(127));
        }
        let mut forwarded = 0;
        for &peer in &view.peers {
            let Some(to) = snapshot.endpoints[peer].address else { continue };
            let Some(context) = self.locals[peer].outbound.as_mut() else { continue };
            let mut failed = false;
            out.send(Destination::here(to), |buf| {
                let overhead = context.profile().overhead();
                let fits = buf.extend_from_slice(&packet[..]).is_ok() && buf.extend_zeroed(overhead).is_ok();
                if !fits || context.protect_rtp(&mut buf[..], plain).is_err() {
                    failed = true;
                    buf.truncate(0); // an empty packet is not sent
                }
            });
            if failed {
                out.drop_packet(DropReason::Rejected);
            } else {
                forwarded += 1;
            }
        }
        self.counters.add(MediaEvent::RtpForwarded, forwarded);
    }

    fn on_rtcp(&mut self, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let Some(&index) = self.snapshot.by_address.get(&from) else {
            return self.reject(MediaDrop::UnknownAddress, DropReason::NoRoute, out);
        };
        let Some(inbound) = self.locals[index].inbound.as_mut() else {
            return self.reject(MediaDrop::NotReady, DropReason::Rejected, out);
        };
        let Ok(plain) = inbound.unprotect_rtcp(&mut packet[..]) else {
            return self.reject(MediaDrop::SrtpRejected, DropReason::Rejected, out);
        };
        packet.truncate(plain);
    }
}

/// Sends every datagram the DTLS server has queued.
fn flush_dtls(dtls: &mut DtlsServer, to: SocketAddr, out: &mut Output<'_>) {
    loop {
        let mut sent = false;
        out.send(Destination::here(to), |buf| {
            if buf.extend_zeroed(DTLS_DATAGRAM_MAX).is_err() {
                buf.truncate(0);
                return;
            }
            match dtls.poll_transmit(&mut buf[..]) {
                Some(len) => {
                    buf.truncate(len);
                    sent = true;
                }
                None => buf.truncate(0),
            }
        });
        if !sent {
            return;
        }
    }
}

impl Handler for MediaWorker {
    fn handle(&mut self, now: Instant, from: SocketAddr, packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        self.refresh(now);
        match classify(&packet[..]) {
            Protocol::Stun => {
                // The message borrows the packet; the response goes into a fresh slot.
                let bytes: &[u8] = &packet[..];
                self.on_stun(now, from, bytes, out);
            }
            Protocol::Dtls => {
                let bytes: &[u8] = &packet[..];
                self.on_dtls(now, from, bytes, out);
            }
            Protocol::Rtp => self.on_rtp(from, packet, out),
            Protocol::Rtcp => self.on_rtcp(from, packet, out),
            Protocol::Unknown => self.reject(MediaDrop::UnknownProtocol, DropReason::Rejected, out),
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let handshakes = self.handshakes.iter().filter_map(|h| h.deadline);
        handshakes.chain(self.idle_refresh).min()
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Output<'_>) {
        self.refresh(now);
        if self.idle_refresh.is_some_and(|t| now >= t) {
            self.idle_refresh = (!self.locals.is_empty()).then(|| now + IDLE_REFRESH);
        }
        let mut finished = false;
        let mut handshakes = std::mem::take(&mut self.handshakes);
        for handshake in handshakes.iter_mut().filter(|h| h.deadline.is_some_and(|d| now >= d)) {
            let endpoint = handshake.endpoint.clone();
            let mut control = endpoint.control();
            let Some(dtls) = control.dtls.as_mut() else {
                handshake.deadline = None;
                continue;
            };
            dtls.handle_timeout(now);
            flush_dtls(dtls, handshake.peer, out);
            handshake.deadline = dtls.poll_timeout();
            finished |= self.settle_dtls(&mut control, &endpoint);
        }
        handshakes.retain(|h| h.deadline.is_some());
        self.handshakes = handshakes;
        if finished {
            self.registry.publish();
            self.refresh(now);
        }
    }
}

/// A random SSRC for the bridge's own RTCP from one worker.
pub fn random_ssrc() -> u32 {
    let mut bytes = [0u8; 4];
    random_bytes(&mut bytes);
    u32::from_be_bytes(bytes)
}
