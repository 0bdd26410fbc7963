//! One simulated participant: its socket, its SRTP state (and SFrame keys with `--e2ee`), what
//! it sends when, and what it has received from each other member of its conference.

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};

use bridge::media::srtp::{Context, SrtpError};

use super::batch::{SendBatch, Sent};
use super::connect::Secured;
use super::e2ee::{Opener, RunKeys, Sealer, Unreadable};
use super::histogram::Latencies;
use super::ice::{CONSENT_INTERVAL_NS, Checks};
use super::layout::Layout;
use super::schedule::{AUDIO_INTERVAL_NS, MAX_LAG_NS, Phases, VideoPattern};
use super::stats::{Arrival, StreamStats};
use super::wire::{self, RtpFields, Stamp, StreamKind};

/// Timing shared by every participant of a run, in CLOCK_MONOTONIC nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub start_ns: u64,
    /// Nothing is sent from here on.
    pub send_end_ns: u64,
    /// Latency is measured for packets sent from here on (`start_ns` plus the warm-up).
    pub measure_from_ns: u64,
    /// Receiving stops here: `send_end_ns` plus the drain.
    pub stop_ns: u64,
}

/// One outgoing stream's counters.
#[derive(Clone, Copy, Debug, Default)]
struct Outgoing {
    /// Packets (audio) or frames (video) scheduled so far, sent or skipped.
    next: u64,
    /// The payload sequence number of the next packet = packets sent so far.
    seq: u32,
    rtp_seq: u16,
}

/// Datagrams a participant received that are not media from its conference.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unexpected {
    /// Media from a participant outside this one's conference, or from itself. (With
    /// `--e2ee` such media has no key here and counts as `sframe_failed` instead.)
    pub misrouted: u64,
    /// RTP without a valid loadgen stamp.
    pub malformed: u64,
    /// SRTP or SRTCP that did not authenticate (replays are counted as duplicates instead).
    pub srtp_failed: u64,
    /// With `--e2ee`: RTP whose payload is no SFrame frame this participant can open (no key
    /// for its KID, as for a frame from another conference, or altered on the way).
    pub sframe_failed: u64,
    /// RTCP (the bridge's reports; not measured).
    pub rtcp: u64,
    /// STUN (answers to our consent checks).
    pub stun: u64,
    /// DTLS and anything else.
    pub other: u64,
}

#[derive(Debug)]
pub struct Participant {
    pub index: u32,
    conference: usize,
    socket: UdpSocket,
    /// `None` in relay mode: plain RTP.
    srtp: Option<Secured>,
    /// With `--e2ee`: this participant's SFrame encryption, and decryption of its conference.
    sealer: Option<Sealer>,
    opener: Option<Opener>,
    /// Consent checks (SFU mode only).
    checks: Option<Checks>,
    next_consent_ns: u64,
    audio_level_id: u8,
    audio_level: u8,
    /// Offsets into the audio and frame periods and the group of pictures, so participants do
    /// not send in lockstep.
    phases: Phases,
    pacer: Pacer,
    outgoing: [Outgoing; 2],
    /// Per member of the conference (by slot), per kind: `[slot * 2 + kind]`.
    incoming: Box<[StreamStats]>,
    pub unexpected: Unexpected,
}

impl Participant {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: u32,
        layout: &Layout,
        socket: UdpSocket,
        srtp: Option<Secured>,
        checks: Option<Checks>,
        audio_level_id: u8,
        phases: Phases,
    ) -> Self {
        let conference = layout.conference(index as usize);
        let members = layout.members(conference).len();
        Self {
            index,
            conference,
            socket,
            srtp,
            sealer: None,
            opener: None,
            checks,
            next_consent_ns: 0,
            audio_level_id,
            // Different levels per participant (RFC 6464: -dBov, 0 loudest), so the bridge's
            // dominant-speaker logic has something to decide.
            audio_level: 20 + (index % 50) as u8,
            phases,
            pacer: Pacer::default(),
            outgoing: [Outgoing::default(); 2],
            incoming: vec![StreamStats::default(); 2 * members].into_boxed_slice(),
            unexpected: Unexpected::default(),
        }
    }

    /// Turns on end-to-end encryption: SFrame on every media payload sent, with this
    /// participant's keys from `keys`, and on every one received.
    pub fn encrypting(mut self, keys: &RunKeys, layout: &Layout) -> Self {
        self.sealer = Some(Sealer::new(keys, self.index));
        self.opener = Some(Opener::new(keys, layout, self.index));
        self
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    pub fn profile(&self) -> Option<bridge::media::srtp::Profile> {
        self.srtp.as_ref().map(|s| s.profile)
    }

    /// Packets this participant sent on stream `kind`.
    pub fn sent(&self, kind: StreamKind) -> u64 {
        u64::from(self.outgoing[kind.index()].seq)
    }

    /// What this participant received from the member in `slot` on stream `kind`.
    pub fn incoming(&self, slot: usize, kind: StreamKind) -> &StreamStats {
        &self.incoming[slot * 2 + kind.index()]
    }

    /// Missing packets so far, over every stream it receives (the live loss estimate).
    pub fn gaps(&self) -> u64 {
        self.incoming.iter().map(|s| s.seq.gaps()).sum()
    }

    /// Queues everything due by `now_ns` into `batch`: audio packets, video frames, a
    /// consent check.
    pub fn send_due(
        &mut self,
        now_ns: u64,
        plan: &Plan,
        video: &VideoPattern,
        batch: &mut SendBatch,
        sent: &mut Sent,
    ) {
        if now_ns >= plan.send_end_ns || now_ns < plan.start_ns {
            return;
        }
        let elapsed = now_ns - plan.start_ns;
        let fd = self.socket.as_raw_fd();
        let mut outbound =
            Outbound { sframe: self.sealer.as_mut(), srtp: self.srtp.as_mut().map(|s| &mut s.outbound) };

        if let Some(checks) = self.checks.as_mut().filter(|_| now_ns >= self.next_consent_ns) {
            self.next_consent_ns = now_ns + CONSENT_INTERVAL_NS;
            batch.push(fd, sent, |buf| checks.write(buf).ok());
        }

        let audio = &mut self.outgoing[StreamKind::Audio.index()];
        if let Some(since) = elapsed.checked_sub(self.phases.audio_ns) {
            let due = since / AUDIO_INTERVAL_NS + 1;
            if (due - audio.next) * AUDIO_INTERVAL_NS > MAX_LAG_NS {
                audio.next = due - 1;
            }
            while audio.next < due {
                let rtp = RtpFields {
                    ssrc: wire::ssrc(self.index, StreamKind::Audio),
                    sequence: audio.rtp_seq,
                    timestamp: (audio.next * 960) as u32,
                    marker: false,
                };
                let stamp =
                    Stamp { kind: StreamKind::Audio, sender: self.index, seq: audio.seq, sent_ns: now_ns };
                let (id, level) = (self.audio_level_id, self.audio_level);
                push_rtp(batch, fd, &mut outbound, StreamKind::Audio, sent, |buf| {
                    wire::write_audio(buf, rtp, id, level, &stamp)
                });
                audio.next += 1;
                audio.seq += 1;
                audio.rtp_seq = audio.rtp_seq.wrapping_add(1);
            }
        }

        let stream = &mut self.outgoing[StreamKind::Video.index()];
        let Some(since) = elapsed.checked_sub(self.phases.video_ns) else {
            return;
        };
        // Encode: every frame due by now joins the pacer's queue.
        if since.saturating_sub(video.frame_time_ns(stream.next)) > MAX_LAG_NS {
            // Skip to the frame due now.
            while video.frame_time_ns(stream.next + 1) <= since {
                stream.next += 1;
            }
        }
        while video.frame_time_ns(stream.next) <= since {
            stream.next += 1;
        }
        // Send what the pacer lets go: packets leave in order, stamped as they leave.
        let pacer = &mut self.pacer;
        let mut budget = pacer.budget(now_ns, video);
        pacer.skip_stale(stream.next, video);
        while budget > 0 && pacer.frame < stream.next {
            let frame = pacer.frame;
            let packets = video.packets_in_frame(frame + self.phases.first_frame);
            if pacer.packet >= packets {
                pacer.frame += 1;
                pacer.packet = 0;
                continue;
            }
            let rtp = RtpFields {
                ssrc: wire::ssrc(self.index, StreamKind::Video),
                sequence: stream.rtp_seq,
                timestamp: video.rtp_timestamp(frame),
                marker: pacer.packet + 1 == packets,
            };
            let stamp =
                Stamp { kind: StreamKind::Video, sender: self.index, seq: stream.seq, sent_ns: now_ns };
            push_rtp(batch, fd, &mut outbound, StreamKind::Video, sent, |buf| {
                wire::write_video(buf, rtp, &stamp)
            });
            stream.seq += 1;
            stream.rtp_seq = stream.rtp_seq.wrapping_add(1);
            pacer.packet += 1;
            budget -= 1;
        }
        pacer.spend(budget);
    }

    /// Handles one datagram that arrived at `arrived_ns`. `scratch` is where SRTP decrypts.
    pub fn receive(
        &mut self,
        datagram: &[u8],
        arrived_ns: u64,
        layout: &Layout,
        scratch: &mut [u8],
        latency: &mut Latencies,
    ) {
        let (Some(&first), Some(&second)) = (datagram.first(), datagram.get(1)) else {
            self.unexpected.other += 1;
            return;
        };
        // RFC 7983 demultiplexing by the first byte; RTCP by the second (RFC 5761).
        match first {
            0..=3 => self.unexpected.stun += 1,
            128..=191 if (192..=223).contains(&second) => match &mut self.srtp {
                Some(srtp) => {
                    let packet = &mut scratch[..datagram.len()];
                    packet.copy_from_slice(datagram);
                    match srtp.inbound.unprotect_rtcp(packet) {
                        Ok(_) => self.unexpected.rtcp += 1,
                        Err(_) => self.unexpected.srtp_failed += 1,
                    }
                }
                None => self.unexpected.rtcp += 1,
            },
            128..=191 => match &mut self.srtp {
                Some(srtp) => {
                    let packet = &mut scratch[..datagram.len()];
                    packet.copy_from_slice(datagram);
                    match srtp.inbound.unprotect_rtp(packet) {
                        Ok(len) => self.record(&scratch[..len], arrived_ns, layout, latency),
                        Err(SrtpError::Replayed) => self.record_replay(datagram, layout),
                        Err(_) => self.unexpected.srtp_failed += 1,
                    }
                }
                None => self.record(datagram, arrived_ns, layout, latency),
            },
            _ => self.unexpected.other += 1,
        }
    }

    fn record(&mut self, packet: &[u8], arrived_ns: u64, layout: &Layout, latency: &mut Latencies) {
        // With --e2ee the stamp is inside the SFrame frame: a frame from outside the
        // conference finds no key here, and is counted as an SFrame failure, not misrouted.
        let stamp = match &mut self.opener {
            Some(opener) => opener.read(layout, packet),
            None => wire::read(packet).map_err(Unreadable::NotOurs),
        };
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(Unreadable::SFrame(_)) => {
                self.unexpected.sframe_failed += 1;
                return;
            }
            Err(Unreadable::NotOurs(_)) => {
                self.unexpected.malformed += 1;
                return;
            }
        };
        let sender = stamp.sender as usize;
        if !layout.forwards(sender, self.index as usize) {
            self.unexpected.misrouted += 1;
            return;
        }
        let one_way = arrived_ns.saturating_sub(stamp.sent_ns);
        let stream = &mut self.incoming[layout.slot(sender) * 2 + stamp.kind.index()];
        if stream.record(stamp.seq, one_way) != Arrival::Duplicate {
            latency.record(stamp.kind.index(), stamp.sent_ns, one_way);
        }
    }

    /// A packet SRTP refused as already received: a duplicate, attributed by its SSRC (the
    /// RTP header is in the clear).
    fn record_replay(&mut self, datagram: &[u8], layout: &Layout) {
        let ssrc = datagram.get(8..12).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match ssrc.and_then(wire::sender_of_ssrc) {
            Some((sender, kind)) if layout.forwards(sender as usize, self.index as usize) => {
                self.incoming[layout.slot(sender as usize) * 2 + kind.index()].replays += 1;
            }
            _ => self.unexpected.srtp_failed += 1,
        }
    }

    pub fn conference(&self) -> usize {
        self.conference
    }
}

/// What happens to an RTP packet between being written and being sent, in a browser's
/// order: end-to-end encryption of the payload (SFrame, with `--e2ee`), then hop-by-hop
/// protection of the whole packet (SRTP, in SFU mode).
struct Outbound<'a> {
    sframe: Option<&'a mut Sealer>,
    srtp: Option<&'a mut Context>,
}

impl Outbound<'_> {
    /// Protects the packet of stream `kind` in `buf[..len]`; returns its length on the wire,
    /// or `None` if it cannot be sent.
    fn protect(&mut self, kind: StreamKind, buf: &mut [u8], len: usize) -> Option<usize> {
        if let Some(sealer) = self.sframe.as_deref_mut() {
            sealer.seal(kind, &mut buf[wire::rtp_header_len(kind)..len]).ok()?;
        }
        match self.srtp.as_deref_mut() {
            Some(context) => context.protect_rtp(buf, len).ok(),
            None => Some(len),
        }
    }
}

/// Queues one RTP packet of stream `kind` written by `write`, protected by `outbound`. A
/// packet that cannot be protected counts as a failed send.
fn push_rtp(
    batch: &mut SendBatch,
    fd: RawFd,
    outbound: &mut Outbound<'_>,
    kind: StreamKind,
    sent: &mut Sent,
    write: impl FnOnce(&mut [u8]) -> usize,
) {
    batch.push(fd, sent, |buf| {
        let len = write(buf);
        outbound.protect(kind, buf, len)
    });
}

/// The video pacer: which packet of which encoded frame leaves next, and how many may leave.
/// Unpaced, everything encoded leaves at once. Paced, a token bucket fills at
/// [`VideoPattern::pace_pps`] and holds at most [`PACER_BURST_NS`] worth, so the packets of a
/// big frame trickle out over the following ticks.
#[derive(Clone, Copy, Debug, Default)]
struct Pacer {
    /// The frame being sent (frames before it are out).
    frame: u64,
    /// Its next packet.
    packet: u32,
    /// Tokens in millionths of a packet, and when they were last topped up.
    tokens_micro: u64,
    refilled_ns: u64,
}

/// The most a paced sender sends at once: 5 ms at its pacing rate.
const PACER_BURST_NS: u64 = 5_000_000;
/// Frames waiting longer than this are dropped from the pacer's queue unsent (never numbered,
/// so never counted lost), as an encoder drops frames its pacer cannot keep up with.
const PACER_MAX_QUEUE_NS: u64 = 1_000_000_000;

impl Pacer {
    /// Packets that may leave now.
    fn budget(&mut self, now_ns: u64, video: &VideoPattern) -> u64 {
        if video.pace_pps == 0 {
            return u64::MAX;
        }
        let rate = u64::from(video.pace_pps);
        let elapsed = now_ns.saturating_sub(self.refilled_ns).min(PACER_BURST_NS);
        self.refilled_ns = now_ns;
        let cap = (rate * PACER_BURST_NS / 1000).max(1_000_000);
        self.tokens_micro = (self.tokens_micro + rate * elapsed / 1000).min(cap);
        self.tokens_micro / 1_000_000
    }

    /// Gives back the packets of the budget that did not leave.
    fn spend(&mut self, unused: u64) {
        if unused != u64::MAX {
            self.tokens_micro =
                self.tokens_micro % 1_000_000 + unused.min(self.tokens_micro / 1_000_000) * 1_000_000;
        }
    }

    /// Drops frames queued for longer than [`PACER_MAX_QUEUE_NS`] before `encoded` (the first
    /// frame not yet encoded).
    fn skip_stale(&mut self, encoded: u64, video: &VideoPattern) {
        let queued = encoded.saturating_sub(self.frame);
        let max_frames = (PACER_MAX_QUEUE_NS * u64::from(video.fps) / 1_000_000_000).max(1);
        if queued > max_frames {
            self.frame = encoded - max_frames;
            self.packet = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::batch;
    use crate::loadgen::clock;
    use crate::loadgen::wire::{AUDIO_PACKET_LEN, MAGIC, VIDEO_PACKET_LEN};

    /// Participant `index` of `layout` in relay mode (plain RTP, no SRTP), with `--e2ee`.
    fn encrypting(index: u32, layout: &Layout, socket: UdpSocket, keys: &RunKeys) -> Participant {
        Participant::new(index, layout, socket, None, None, 1, Phases::default()).encrypting(keys, layout)
    }

    /// Participant 2 sends through its real send path (SFrame, then `sendmmsg`) straight to
    /// participant 0's socket; returns the datagrams that arrived and how many were sent.
    fn encrypted_datagrams(layout: &Layout, keys: &RunKeys) -> (Vec<Vec<u8>>, u64) {
        let inbox = crate::mmsg::udp_socket(([127, 0, 0, 1], 0).into(), 4 << 20).unwrap();
        let outbox = UdpSocket::bind("127.0.0.1:0").unwrap();
        outbox.connect(inbox.local_addr().unwrap()).unwrap();
        let mut sender = encrypting(2, layout, outbox, keys);
        let now = clock::now_ns();
        // Started 50 ms ago: three audio packets and two video frames are due, well within
        // the lag a sender catches up on (MAX_LAG_NS).
        let start_ns = now - 50_000_000;
        let plan = Plan { start_ns, send_end_ns: now + 1, measure_from_ns: start_ns, stop_ns: now + 1 };
        let (mut queue, mut sent) = (SendBatch::new(64), Sent::default());
        sender.send_due(now, &plan, &VideoPattern::new(200, 30, 1, 4), &mut queue, &mut sent);
        let sent = batch::add(sent, queue.flush());
        assert_eq!(sent.failed, 0);
        inbox.set_nonblocking(true).unwrap();
        let mut datagrams = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(len) = inbox.recv(&mut buf) {
            datagrams.push(buf[..len].to_vec());
        }
        (datagrams, sent.sent)
    }

    #[test]
    fn e2ee_packets_on_the_wire_keep_their_lengths_hide_the_stamp_and_decrypt_in_their_conference() {
        let layout = Layout::round_robin(4, 2);
        let keys = RunKeys::from_passphrase_key([9; 32]);
        let (datagrams, sent) = encrypted_datagrams(&layout, &keys);
        assert_eq!(datagrams.len() as u64, sent, "loopback loses nothing");
        let lengths: Vec<usize> = datagrams.iter().map(Vec::len).collect();
        assert!(lengths.iter().filter(|&&l| l == AUDIO_PACKET_LEN).count() >= 3, "{lengths:?}");
        assert!(lengths.iter().filter(|&&l| l == VIDEO_PACKET_LEN).count() >= 2, "{lengths:?}");
        assert!(lengths.iter().all(|&l| l == AUDIO_PACKET_LEN || l == VIDEO_PACKET_LEN), "{lengths:?}");
        for datagram in &datagrams {
            let magic = MAGIC.to_be_bytes();
            assert!(!datagram.windows(4).any(|w| w == magic), "no stamp in clear");
            assert_eq!(wire::read(datagram), Err(wire::NotOurs::NoStamp));
        }

        let (mut scratch, mut latency) = (vec![0u8; 2048], Latencies::new(0));
        let mut receive = |receiver: &mut Participant| {
            for datagram in &datagrams {
                receiver.receive(datagram, clock::now_ns(), &layout, &mut scratch, &mut latency);
            }
        };
        let mut member = encrypting(0, &layout, UdpSocket::bind("127.0.0.1:0").unwrap(), &keys);
        receive(&mut member);
        let got: u64 =
            StreamKind::BOTH.iter().map(|&k| member.incoming(layout.slot(2), k).seq.unique()).sum();
        assert_eq!(got, sent, "participant 0 decrypts everything participant 2 sends");
        assert_eq!(member.unexpected.sframe_failed + member.unexpected.malformed, 0);

        // Participant 1 is in the other conference: it has no key for participant 2.
        let mut outsider = encrypting(1, &layout, UdpSocket::bind("127.0.0.1:0").unwrap(), &keys);
        receive(&mut outsider);
        assert_eq!(outsider.unexpected.sframe_failed, sent);
        assert_eq!(outsider.unexpected.misrouted + outsider.unexpected.malformed, 0);
    }

    #[test]
    fn e2ee_receiver_counts_a_flipped_payload_byte_as_a_failed_sframe_frame() {
        let layout = Layout::round_robin(4, 2);
        let keys = RunKeys::from_passphrase_key([9; 32]);
        let (datagrams, _) = encrypted_datagrams(&layout, &keys);
        let mut receiver = encrypting(0, &layout, UdpSocket::bind("127.0.0.1:0").unwrap(), &keys);
        let (mut scratch, mut latency) = (vec![0u8; 2048], Latencies::new(0));
        for datagram in &datagrams {
            let mut tampered = datagram.clone();
            // A byte of the payload, which the RTP header (clear, and not authenticated by
            // SFrame) does not reach.
            let at = tampered.len() - 30;
            tampered[at] ^= 0x01;
            receiver.receive(&tampered, clock::now_ns(), &layout, &mut scratch, &mut latency);
        }
        assert_eq!(receiver.unexpected.sframe_failed, datagrams.len() as u64);
        assert_eq!(receiver.gaps() + receiver.incoming(layout.slot(2), StreamKind::Video).seq.unique(), 0);
    }

    /// Runs the pacer tick by tick (1 ms) over `frames` frames encoded at once at time 0;
    /// returns when each packet left, in ms.
    fn departures(video: &VideoPattern, frames: u64, ticks: u64) -> Vec<u64> {
        let mut pacer = Pacer::default();
        let mut out = Vec::new();
        for tick in 0..ticks {
            // Ticks start a second in, as the workers' clock does: a full bucket at first.
            let mut budget = pacer.budget(1_000_000_000 + tick * 1_000_000, video);
            pacer.skip_stale(frames, video);
            while budget > 0 && pacer.frame < frames {
                if pacer.packet >= video.packets_in_frame(pacer.frame) {
                    pacer.frame += 1;
                    pacer.packet = 0;
                    continue;
                }
                out.push(tick);
                pacer.packet += 1;
                budget -= 1;
            }
            pacer.spend(budget);
        }
        out
    }

    #[test]
    fn a_paced_keyframe_leaves_over_tens_of_milliseconds_at_the_pacing_rate() {
        let video = VideoPattern::new(575, 30, 2, 5).paced(2.5);
        assert_eq!(video.pace_pps, 1438);
        let keyframe = video.packets_in_frame(0) as usize;
        let left = departures(&video, 1, 200);
        assert_eq!(left.len(), keyframe, "every packet leaves");
        // The first 5 ms of budget go at once, then 1.438 packets per ms.
        let spread_ms = left[keyframe - 1] - left[0];
        let expected = ((keyframe as f64 - 7.19) / 1.438) as u64;
        assert!(spread_ms.abs_diff(expected) <= 2, "{keyframe} packets over {spread_ms} ms, not {expected}");
    }

    #[test]
    fn unpaced_frames_leave_in_one_burst() {
        let video = VideoPattern::new(575, 30, 2, 5);
        let left = departures(&video, 3, 5);
        assert_eq!(left.len() as u32, (0..3).map(|f| video.packets_in_frame(f)).sum::<u32>());
        assert!(left.iter().all(|&t| t == 0));
    }

    #[test]
    fn a_pacer_that_falls_a_second_behind_drops_the_oldest_frames() {
        let video = VideoPattern::new(300, 30, 0, 1).paced(1.0);
        let mut pacer = Pacer::default();
        pacer.skip_stale(100, &video);
        assert_eq!((pacer.frame, pacer.packet), (70, 0));
        pacer.skip_stale(100, &video);
        assert_eq!(pacer.frame, 70, "a queue within bounds is left alone");
    }
}
