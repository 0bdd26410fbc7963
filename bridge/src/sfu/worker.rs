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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::{Datagram, Destination, DropReason, Handler, Output, WorkerId};

use super::counters::{MediaCounters, MediaDrop, MediaEvent};
use super::endpoint::{DtlsStatus, Endpoint, MediaKind, NackRequest};
use super::ids::{EndpointId, random_bytes};
use super::registry::{Registry, Snapshot};
use crate::media::demux::{Protocol, classify};
use crate::media::dtls::{DtlsServer, DtlsState, SrtpKeys};
use crate::media::history::{PacketHistory, write_rtx};
use crate::media::rtcp::{Compound, Packet, ReportBlock, SenderInfo, Writer};
use crate::media::rtp::renumber::{self, Numbering, Unrenumberable};
use crate::media::rtp::{RtpHeader, audio_level};
use crate::media::srtp::Context;
use crate::media::stats::ReceiveStats;

/// Room for any STUN response the ICE agent writes.
const STUN_RESPONSE_MAX: usize = 512;
/// Room for one DTLS datagram (the handshake's MTU is 1200).
const DTLS_DATAGRAM_MAX: usize = 1500;
/// SSRCs one receiver can be sent over its session (streams are never forgotten: forgetting a
/// sending stream's rollover counter would reuse SRTP indexes).
const OUTBOUND_STREAMS: usize = 1024;
/// Packets kept per video stream for NACKs: about 2 s of 720p video.
const HISTORY_PACKETS: usize = 512;
/// Video streams with a history per endpoint (camera, screen, simulcast layers).
const MAX_HISTORIES: usize = 6;
/// Room for one RTCP compound the bridge writes, before SRTCP's overhead.
const RTCP_MAX: usize = 1200;
/// How often the bridge reports to each endpoint (RFC 3550 §6.2 allows a fixed interval for
/// a bridge's small report load).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Keyframe requests to one sender closer together than this are merged: a keyframe takes a
/// while to arrive, and every new receiver asks at once.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);
/// NACKed packets one sender's packet may trigger the resending of: bounded work per packet.
const NACKS_PER_PACKET: usize = 32;
/// Difference between the NTP epoch (1900) and the Unix epoch, in seconds.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

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
    /// The bridge's SSRC in RTCP this worker sends to the endpoint (one per worker, so no two
    /// workers ever share an SRTCP index space).
    rtcp_ssrc: u32,
    /// Reception statistics of the endpoint's streams that arrive here, for receiver reports.
    received: Vec<ReceiveStats>,
    /// Recent packets of the endpoint's video streams, to answer NACKs.
    histories: Vec<(u32, PacketHistory)>,
    /// Next RTX sequence number per RTX SSRC this worker sends to the endpoint.
    rtx_sequences: Vec<(u32, u16)>,
    next_report: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

impl Local {
    fn new(id: EndpointId) -> Self {
        Self {
            id,
            keys: None,
            inbound: None,
            outbound: None,
            rtcp_ssrc: random_ssrc(),
            received: Vec::new(),
            histories: Vec::new(),
            rtx_sequences: Vec::new(),
            next_report: None,
            last_keyframe_request: None,
        }
    }

    /// Statistics of `ssrc`, created on its first packet (the only allocation of a stream).
    fn stats(&mut self, ssrc: u32, clock_rate: u32) -> &mut ReceiveStats {
        let at = match self.received.iter().position(|s| s.ssrc() == ssrc) {
            Some(at) => at,
            None => {
                self.received.push(ReceiveStats::new(ssrc, clock_rate));
                self.received.len() - 1
            }
        };
        &mut self.received[at]
    }

    /// The history of video stream `ssrc`, created on its first packet. `None` if the memory
    /// for it cannot be had; NACKs for that stream then go unanswered.
    fn history(&mut self, ssrc: u32) -> Option<&mut PacketHistory> {
        let at = match self.histories.iter().position(|(s, _)| *s == ssrc) {
            Some(at) => at,
            None => {
                if self.histories.len() >= MAX_HISTORIES {
                    return None;
                }
                let history = PacketHistory::new(HISTORY_PACKETS).ok()?;
                self.histories.push((ssrc, history));
                self.histories.len() - 1
            }
        };
        Some(&mut self.histories[at].1)
    }

    fn next_rtx_sequence(&mut self, rtx_ssrc: u32) -> u16 {
        let at = match self.rtx_sequences.iter().position(|(s, _)| *s == rtx_ssrc) {
            Some(at) => at,
            None => {
                let mut start = [0u8; 2];
                random_bytes(&mut start);
                self.rtx_sequences.push((rtx_ssrc, u16::from_be_bytes(start)));
                self.rtx_sequences.len() - 1
            }
        };
        let entry = &mut self.rtx_sequences[at].1;
        let seq = *entry;
        *entry = entry.wrapping_add(1);
        seq
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
        // One outbound context carries every stream forwarded to the endpoint over its session.
        self.outbound = keys.and_then(|k| {
            Context::with_streams(k.profile, k.local.key(), k.local.salt(), OUTBOUND_STREAMS).ok()
        });
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
    /// Stands in for `snapshot` while a packet borrows it; never shared with another worker.
    placeholder: Arc<Snapshot>,
    /// A datagram changed the registry (nomination, keys): publish once it is handled.
    changed: bool,
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
            placeholder: Arc::new(Snapshot::default()),
            changed: false,
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

    fn on_stun(
        &mut self,
        now: Instant,
        snapshot: &Snapshot,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Output<'_>,
    ) {
        let Ok(message) = stun::Message::parse(packet) else {
            return self.reject(MediaDrop::StunRejected, DropReason::Rejected, out);
        };
        let Ok(username) = message.username() else {
            return self.reject(MediaDrop::StunRejected, DropReason::Rejected, out);
        };
        let ufrag = username.split(':').next().unwrap_or_default();
        let Some(&index) = snapshot.by_ufrag.get(ufrag) else {
            return self.reject(MediaDrop::StunRejected, DropReason::NoRoute, out);
        };
        let endpoint = snapshot.endpoints[index].shared.clone();
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
            self.changed = true;
        }
    }

    fn on_dtls(
        &mut self,
        now: Instant,
        snapshot: &Snapshot,
        from: SocketAddr,
        packet: &[u8],
        out: &mut Output<'_>,
    ) {
        let Some(&index) = snapshot.by_address.get(&from) else {
            return self.reject(MediaDrop::UnknownAddress, DropReason::NoRoute, out);
        };
        let endpoint = snapshot.endpoints[index].shared.clone();
        let mut control = endpoint.control();
        if control.dtls.is_none() {
            let Some(fingerprint) = control.signaled.remote_fingerprint else {
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
            self.changed = true;
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

    /// The first steps of SRTP and SRTCP alike: the sender must be a known address with keys,
    /// and the packet must authenticate. Decrypts in place and returns the sender's index; a
    /// failure is counted and dropped.
    fn decrypt(
        &mut self,
        snapshot: &Snapshot,
        from: SocketAddr,
        packet: &mut Datagram<'_>,
        unprotect: fn(&mut Context, &mut [u8]) -> Result<usize, crate::media::srtp::SrtpError>,
        out: &mut Output<'_>,
    ) -> Option<usize> {
        let Some(&index) = snapshot.by_address.get(&from) else {
            self.reject(MediaDrop::UnknownAddress, DropReason::NoRoute, out);
            return None;
        };
        let Some(inbound) = self.locals[index].inbound.as_mut() else {
            self.reject(MediaDrop::NotReady, DropReason::Rejected, out);
            return None;
        };
        let Ok(plain) = unprotect(inbound, &mut packet[..]) else {
            self.reject(MediaDrop::SrtpRejected, DropReason::Rejected, out);
            return None;
        };
        packet.truncate(plain);
        Some(index)
    }

    fn on_rtp(
        &mut self,
        now: Instant,
        snapshot: &Snapshot,
        from: SocketAddr,
        packet: &mut Datagram<'_>,
        out: &mut Output<'_>,
    ) {
        let Some(index) = self.decrypt(snapshot, from, packet, Context::unprotect_rtp, out) else { return };
        let Ok(header) = RtpHeader::parse(&packet[..]) else {
            return self.reject(MediaDrop::SrtpRejected, DropReason::Rejected, out);
        };
        let view = &snapshot.endpoints[index];
        let Some(source) = view.source(header.ssrc) else {
            return self.reject(MediaDrop::UnknownSsrc, DropReason::Rejected, out);
        };
        if source.rtx_ssrc == Some(header.ssrc) {
            // The sender's own retransmissions: the bridge answers receivers' NACKs itself.
            out.drop_packet(DropReason::NoRoute);
            return;
        }
        let arrival_us = self.registry.micros_since_epoch(now);
        let local = &mut self.locals[index];
        local.stats(header.ssrc, source.kind.clock_rate()).record(
            header.sequence,
            header.timestamp,
            arrival_us,
        );
        match source.kind {
            MediaKind::Audio => {
                let level = view.audio_level_id.and_then(|id| header.extension(id)).and_then(audio_level);
                if let Some((_, level)) = level {
                    view.shared.media.add_loudness(127 - level.min(127));
                }
            }
            MediaKind::Video => {
                if let Some(history) = local.history(header.ssrc) {
                    history.insert(header.sequence, &packet[..]);
                }
            }
        }
        let mut forwarded = 0;
        for &peer in &view.peers {
            let receiver = &snapshot.endpoints[peer];
            let Some(to) = receiver.address else { continue };
            let Some(context) = self.locals[peer].outbound.as_mut() else { continue };
            // One browser family numbers alike: the same `Arc`, nothing to rewrite.
            let renumber = (!Arc::ptr_eq(&view.numbering, &receiver.numbering))
                .then(|| (&*view.numbering, &*receiver.numbering));
            match send_rtp(context, to, &packet[..], renumber, out) {
                Ok(()) => forwarded += 1,
                Err(Unrenumberable::CodecNotNegotiated) => self.counters.count(MediaDrop::CodecNotNegotiated),
                Err(Unrenumberable::NotRtp) => out.drop_packet(DropReason::Rejected),
            }
        }
        self.counters.add(MediaEvent::RtpForwarded, forwarded);
        #[cfg(feature = "test-tap")]
        if forwarded > 0
            && let Some(tap) = self.registry.tap()
        {
            tap.record(&header, &packet[..]);
        }
        // This worker owns the sender's streams: serve what receivers asked of it.
        self.serve_keyframe_requests(now, snapshot, index, out);
        self.serve_nacks(snapshot, index, out);
        self.report_if_due(now, snapshot, index, out);
    }

    fn on_rtcp(
        &mut self,
        now: Instant,
        snapshot: &Snapshot,
        from: SocketAddr,
        packet: &mut Datagram<'_>,
        out: &mut Output<'_>,
    ) {
        let Some(index) = self.decrypt(snapshot, from, packet, Context::unprotect_rtcp, out) else { return };
        let view = &snapshot.endpoints[index];
        let arrived_us = self.registry.micros_since_epoch(now);
        // Terminated here: nothing of it is forwarded as it is.
        for item in Compound::new(&packet[..]) {
            let Ok(item) = item else {
                self.counters.count(MediaDrop::RtcpMalformed);
                break;
            };
            match item {
                Packet::SenderReport { ssrc, ntp, rtp_ts, packet_count, octet_count, .. }
                    if view.source(ssrc).is_some() =>
                {
                    let cell = view.shared.media.sender_report_cell(ssrc);
                    cell.ssrc.store(ssrc, Ordering::Relaxed);
                    cell.ntp.store(ntp, Ordering::Relaxed);
                    cell.rtp_timestamp.store(rtp_ts, Ordering::Relaxed);
                    cell.packet_count.store(packet_count, Ordering::Relaxed);
                    cell.octet_count.store(octet_count, Ordering::Relaxed);
                    cell.arrived_us.store(arrived_us, Ordering::Relaxed);
                }
                Packet::Pli { media_ssrc, .. } => self.request_keyframe(snapshot, index, media_ssrc),
                Packet::Fir { entries, .. } => {
                    for (ssrc, _) in entries {
                        self.request_keyframe(snapshot, index, ssrc);
                    }
                }
                Packet::Nack { media_ssrc, items, .. } => {
                    let Some(owner) = sender_of(snapshot, index, media_ssrc) else { continue };
                    let mailbox = &snapshot.endpoints[owner].shared.media.nacks;
                    for seq in items.lost() {
                        let request = NackRequest { receiver: view.shared.id, ssrc: media_ssrc, seq };
                        if mailbox.push(request).is_err() {
                            self.counters.count(MediaDrop::MailboxFull);
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        self.report_if_due(now, snapshot, index, out);
    }

    /// Asks the sender of `ssrc` (in `receiver`'s conference) for a keyframe.
    fn request_keyframe(&self, snapshot: &Snapshot, receiver: usize, ssrc: u32) {
        let Some(owner) = sender_of(snapshot, receiver, ssrc) else { return };
        if snapshot.endpoints[owner].shared.media.keyframe_requests.push(ssrc).is_err() {
            self.counters.count(MediaDrop::MailboxFull);
        }
    }

    /// Sends the sender at `index` the PLIs its receivers asked for, merged.
    fn serve_keyframe_requests(
        &mut self,
        now: Instant,
        snapshot: &Snapshot,
        index: usize,
        out: &mut Output<'_>,
    ) {
        let view = &snapshot.endpoints[index];
        let mailbox = &view.shared.media.keyframe_requests;
        if mailbox.is_empty() {
            return;
        }
        let local = &mut self.locals[index];
        let recent = local
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_GAP);
        let (Some(to), Some(context)) = (view.address, local.outbound.as_mut()) else { return };
        let mut ssrcs = [0u32; 4];
        let mut count = 0;
        while let Some(ssrc) = mailbox.pop() {
            if count < ssrcs.len() && !ssrcs[..count].contains(&ssrc) {
                ssrcs[count] = ssrc;
                count += 1;
            }
        }
        if recent {
            return;
        }
        let bridge_ssrc = local.rtcp_ssrc;
        let sent = send_rtcp(context, to, out, |w| {
            w.receiver_report(bridge_ssrc, &[])?;
            ssrcs[..count].iter().try_for_each(|&ssrc| w.pli(bridge_ssrc, ssrc).map(|_| ()))
        });
        if sent {
            local.last_keyframe_request = Some(now);
            self.counters.add(MediaEvent::KeyframeRequestsSent, count as u64);
        }
    }

    /// Resends, from the history of the sender at `index`, the packets receivers NACKed: as
    /// RTX when the sender negotiated it, as the original packet otherwise.
    fn serve_nacks(&mut self, snapshot: &Snapshot, index: usize, out: &mut Output<'_>) {
        let view = &snapshot.endpoints[index];
        let mailbox = &view.shared.media.nacks;
        for _ in 0..NACKS_PER_PACKET {
            let Some(request) = mailbox.pop() else { return };
            let Some(&receiver) = snapshot.by_id.get(&request.receiver) else { continue };
            let Some(to) = snapshot.endpoints[receiver].address else { continue };
            let (sender, receiver_local) = pair_mut(&mut self.locals, index, receiver);
            let original = sender
                .histories
                .iter()
                .find(|(ssrc, _)| *ssrc == request.ssrc)
                .and_then(|(_, history)| history.get(request.seq));
            let Some(original) = original else {
                self.counters.add(MediaEvent::NacksMissed, 1);
                continue;
            };
            let (from, to_numbering) = (&*view.numbering, &*snapshot.endpoints[receiver].numbering);
            let rtx = view.source(request.ssrc).and_then(|s| s.rtx_ssrc).and_then(|rtx_ssrc| {
                let pt = original.get(1).map(|b| b & 0x7f)?;
                Some((renumber::rtx_payload_type(pt, from, to_numbering)?, rtx_ssrc))
            });
            let rtx = rtx.map(|(pt, ssrc)| (pt, ssrc, receiver_local.next_rtx_sequence(ssrc)));
            let Some(context) = receiver_local.outbound.as_mut() else { continue };
            let mut ok = false;
            out.send(Destination::here(to), |buf| {
                let overhead = context.profile().overhead();
                let room = original.len() + 2 + overhead;
                if buf.extend_zeroed(room).is_err() {
                    buf.truncate(0);
                    return;
                }
                // The history holds the sender's numbering; the receiver gets its own.
                let len = match rtx {
                    Some((pt, ssrc, seq)) => {
                        write_rtx(original, pt, ssrc, seq, &mut buf[..]).ok().filter(|&len| {
                            renumber::renumber_extensions(&mut buf[..len], from, to_numbering).is_ok()
                        })
                    }
                    None => {
                        buf[..original.len()].copy_from_slice(original);
                        let len = original.len();
                        renumber::renumber(&mut buf[..len], from, to_numbering).is_ok().then_some(len)
                    }
                };
                match len.and_then(|len| context.protect_rtp(&mut buf[..], len).ok()) {
                    Some(protected) => {
                        buf.truncate(protected);
                        ok = true;
                    }
                    None => buf.truncate(0),
                }
            });
            if ok {
                self.counters.add(MediaEvent::NacksAnswered, 1);
            }
        }
    }

    /// Once per interval, the bridge's own reports to the endpoint at `index`: a receiver
    /// report on the streams it sends (as they reached the bridge), and a sender report for
    /// each stream the bridge forwards to it (timestamps carried over from that stream's
    /// sender, so receivers keep audio and video in sync).
    fn report_if_due(&mut self, now: Instant, snapshot: &Snapshot, index: usize, out: &mut Output<'_>) {
        let local = &mut self.locals[index];
        if local.next_report.is_some_and(|t| now < t) {
            return;
        }
        local.next_report = Some(now + REPORT_INTERVAL);
        let view = &snapshot.endpoints[index];
        let (Some(to), Some(context)) = (view.address, local.outbound.as_mut()) else { return };
        let mut blocks = [ReportBlock::default(); 8];
        let mut count = 0;
        for stats in local.received.iter_mut().take(blocks.len()) {
            let Some(report) = stats.report() else { continue };
            let sender_report = view.shared.media.sender_report_cell(report.ssrc);
            let (last_sr, delay) = if sender_report.ssrc.load(Ordering::Relaxed) == report.ssrc {
                let ntp = sender_report.ntp.load(Ordering::Relaxed);
                let arrived = sender_report.arrived_us.load(Ordering::Relaxed);
                let since_us = self.registry.micros_since_epoch(now).saturating_sub(arrived);
                ((ntp >> 16) as u32, ((since_us << 16) / 1_000_000) as u32)
            } else {
                (0, 0)
            };
            blocks[count] = ReportBlock {
                ssrc: report.ssrc,
                fraction_lost: report.fraction_lost,
                cumulative_lost: report.cumulative_lost,
                highest_seq: report.extended_highest,
                jitter: report.jitter,
                last_sr,
                delay_since_last_sr: delay,
            };
            count += 1;
        }
        let now_us = self.registry.micros_since_epoch(now);
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let bridge_ssrc = local.rtcp_ssrc;
        let peers = &view.peers;
        let sent = send_rtcp(context, to, out, |w| {
            w.receiver_report(bridge_ssrc, &blocks[..count])?;
            for &peer in peers.iter() {
                for cell in &snapshot.endpoints[peer].shared.media.sender_reports {
                    let Some(info) = forwarded_sender_info(cell, now_us, wall, &snapshot.endpoints[peer])
                    else {
                        continue;
                    };
                    if w.sender_report(&info, &[]).is_err() {
                        return Ok(()); // full: the rest goes in the next report
                    }
                }
            }
            Ok(())
        });
        if sent {
            self.counters.add(MediaEvent::ReportsSent, 1);
        }
    }
}

/// The sender report the bridge writes for a stream it forwards: the sender's last report,
/// moved forward to now on both clocks.
fn forwarded_sender_info(
    cell: &super::endpoint::SenderReportCell,
    now_us: u64,
    wall: Duration,
    sender: &super::registry::EndpointView,
) -> Option<SenderInfo> {
    let ssrc = cell.ssrc.load(Ordering::Relaxed);
    let arrived_us = cell.arrived_us.load(Ordering::Relaxed);
    let source = sender.source(ssrc).filter(|_| arrived_us != 0)?;
    let elapsed_us = now_us.saturating_sub(arrived_us);
    let clock_rate = u64::from(source.kind.clock_rate());
    let rtp_ts =
        cell.rtp_timestamp.load(Ordering::Relaxed).wrapping_add((elapsed_us * clock_rate / 1_000_000) as u32);
    let ntp =
        ((wall.as_secs() + NTP_UNIX_OFFSET) << 32) | ((u64::from(wall.subsec_nanos()) << 32) / 1_000_000_000);
    Some(SenderInfo {
        ssrc,
        ntp,
        rtp_ts,
        packet_count: cell.packet_count.load(Ordering::Relaxed),
        octet_count: cell.octet_count.load(Ordering::Relaxed),
    })
}

/// The endpoint (other than `receiver`, in its conference) that sends `ssrc`.
fn sender_of(snapshot: &Snapshot, receiver: usize, ssrc: u32) -> Option<usize> {
    snapshot.endpoints[receiver].peers.iter().copied().find(|&p| snapshot.endpoints[p].source(ssrc).is_some())
}

/// Two distinct elements of a slice, one shared and one mutable.
fn pair_mut<T>(items: &mut [T], shared: usize, mutable: usize) -> (&T, &mut T) {
    assert_ne!(shared, mutable, "an endpoint is not its own peer");
    if shared < mutable {
        let (head, tail) = items.split_at_mut(mutable);
        (&head[shared], &mut tail[0])
    } else {
        let (head, tail) = items.split_at_mut(shared);
        (&tail[0], &mut head[mutable])
    }
}

/// Encrypts a copy of the RTP packet `plain` for one receiver, renumbered from the sender's
/// numbering into the receiver's when they differ, and queues it. An error if the receiver
/// cannot take it, or it could not be protected (no room, too many streams: `NotRtp`).
fn send_rtp(
    context: &mut Context,
    to: SocketAddr,
    plain: &[u8],
    renumber: Option<(&Numbering, &Numbering)>,
    out: &mut Output<'_>,
) -> Result<(), Unrenumberable> {
    let mut result = Err(Unrenumberable::NotRtp);
    out.send(Destination::here(to), |buf| {
        let overhead = context.profile().overhead();
        let fits = buf.extend_from_slice(plain).is_ok() && buf.extend_zeroed(overhead).is_ok();
        let renumbered = match renumber {
            Some((from, to)) if fits => renumber::renumber(&mut buf[..plain.len()], from, to),
            _ => Ok(()),
        };
        result = match renumbered {
            Ok(()) if fits && context.protect_rtp(&mut buf[..], plain.len()).is_ok() => Ok(()),
            Ok(()) => Err(Unrenumberable::NotRtp),
            Err(e) => Err(e),
        };
        if result.is_err() {
            buf.truncate(0); // an empty packet is not sent
        }
    });
    result
}

/// Writes an RTCP compound with `write`, protects it and queues it to `to`.
fn send_rtcp(
    context: &mut Context,
    to: SocketAddr,
    out: &mut Output<'_>,
    write: impl FnOnce(&mut Writer<'_>) -> Result<(), crate::media::rtcp::RtcpError>,
) -> bool {
    let mut ok = false;
    out.send(Destination::here(to), |buf| {
        let overhead = context.rtcp_overhead();
        if buf.extend_zeroed(RTCP_MAX + overhead).is_err() {
            buf.truncate(0);
            return;
        }
        let mut writer = Writer::new(&mut buf[..RTCP_MAX]);
        if write(&mut writer).is_err() || writer.is_empty() {
            buf.truncate(0);
            return;
        }
        let len = writer.finish();
        match context.protect_rtcp(&mut buf[..], len) {
            Ok(protected) => {
                buf.truncate(protected);
                ok = true;
            }
            Err(_) => buf.truncate(0),
        }
    });
    ok
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
        // Borrowed out of `self` for the packet: cloning the Arc instead would bounce its
        // shared reference count between cores on every packet.
        let snapshot = std::mem::replace(&mut self.snapshot, self.placeholder.clone());
        match classify(&packet[..]) {
            Protocol::Stun => {
                // The message borrows the packet; the response goes into a fresh slot.
                let bytes: &[u8] = &packet[..];
                self.on_stun(now, &snapshot, from, bytes, out);
            }
            Protocol::Dtls => {
                let bytes: &[u8] = &packet[..];
                self.on_dtls(now, &snapshot, from, bytes, out);
            }
            Protocol::Rtp => self.on_rtp(now, &snapshot, from, packet, out),
            Protocol::Rtcp => self.on_rtcp(now, &snapshot, from, packet, out),
            Protocol::Unknown => self.reject(MediaDrop::UnknownProtocol, DropReason::Rejected, out),
        }
        self.snapshot = snapshot;
        if std::mem::take(&mut self.changed) {
            self.registry.publish();
            self.refresh(now);
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
