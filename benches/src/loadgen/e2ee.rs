//! `--e2ee`: loadgen's media end-to-end encrypted with SFrame (RFC 9605), keyed and framed as
//! the web client does it (signaling/web/e2ee-worker.js), so that a benchmark shows what the
//! bridge's work per packet is when it forwards frames it cannot read (DESIGN.md privacy
//! invariant 9).
//!
//! A sender encrypts each packet's payload with SFrame before SRTP; a receiver decrypts after
//! SRTP and only then reads loadgen's stamp ([`wire`](super::wire)). Cipher suite
//! AES_128_GCM_SHA256_128, the one the web client uses.
//!
//! ```text
//!  audio: | RTP header, audio level extension | SFrame header | ciphertext: stamp, filler | tag |
//!         |<------------ clear -------------->|<--------------- one SFrame frame ------------>|
//!
//!  video: | RTP header | VP8 tag (3) | SFrame header | ciphertext: stamp, filler | tag |
//!         |<------- clear ---------->|<--------------- one SFrame frame ------------>|
//!                      (SFrame metadata: authenticated, not encrypted)
//! ```
//!
//! - Same lengths on the wire: a packet is [`AUDIO_PACKET_LEN`](super::wire::AUDIO_PACKET_LEN)
//!   or [`VIDEO_PACKET_LEN`](super::wire::VIDEO_PACKET_LEN) bytes with or without `--e2ee`. The
//!   SFrame header (1 to 17 bytes, growing with the CTR) and the 16-byte tag take the place of
//!   filler at the end of the plaintext, so the bridge receives, decrypts (SRTP), copies and
//!   re-encrypts exactly as many bytes either way, and the two runs compare the bridge's work.
//! - The RTP header and its RFC 6464 audio level extension stay in clear, as browsers send
//!   them: the bridge's speaker detection reads the level, never the payload.
//! - Video keeps [`VIDEO_CLEAR_LEN`] bytes in clear in front of the SFrame header, passed to
//!   SFrame as metadata so they are authenticated (AAD) and cannot be altered. The web client
//!   keeps the VP8 frame tag of a delta frame (3 bytes; 10 of a keyframe) in clear because
//!   the receiving browser's depacketizer and the bridge's layer switching read the keyframe
//!   flag there; loadgen writes the tag of a shown delta frame ([`VP8_DELTA_FRAME_TAG`]) in
//!   every video packet. Audio (Opus) is encrypted whole, as the web client does.
//! - One SFrame frame per packet. A browser encrypts a whole encoded frame and packetizes the
//!   result, so only a frame's first packet carries the clear bytes and the SFrame header;
//!   loadgen has no encoder, and its "frames" are bursts of independent packets. The bridge
//!   cannot tell the difference: it forwards opaque payloads of the same lengths either way.
//!   A frame per packet lets every receiver authenticate, decrypt and count every packet as it
//!   arrives (a frame split over packets could only be checked once all of them arrived, and
//!   loss would make its packets uncountable), and costs the load generator, not the bridge.
//!
//! Keys, as [`sframe::sender_keys`] derives them in the product:
//! - One `passphrase_key` per run ([`RunKeys`]), from a random passphrase and the room name
//!   [`ROOM`]. PBKDF2 with 600,000 iterations is slow on purpose (about a quarter second), so
//!   it runs once per run, not once per participant; every conference of the run shares it,
//!   where the product has one passphrase per room. Each sender's keys are still its own.
//! - One `sender_base_key` per stream, under a KID of its own ([`kid`]): video under an even
//!   KID, audio under the next odd one, as the web client keys video under its sender id and
//!   audio under the id XOR 1, so each stream has its own nonce space.
//! - A fresh passphrase every run: the KIDs repeat from run to run and every CTR starts at 0,
//!   so only fresh keys keep a (key, KID, CTR) from ever being used twice (the contract of
//!   [`sframe::sender_keys`]).
//! - A sender holds the encryption keys of its two streams ([`Sealer`]); a receiver the
//!   decryption keys of the other members of its own conference only ([`Opener`]). A frame
//!   from another conference finds no key and is counted as an SFrame failure: a check that
//!   the bridge never forwards across conferences, on top of the stamp's.
//!
//! Not mimicked: SFrame replay checks (RFC 9605 §7.3, which the web client does). SRTP
//! already refuses replays hop by hop, and loadgen counts duplicates by its own sequence
//! numbers.
//!
//! Nothing here allocates per packet: each [`Sealer`] and [`Opener`] owns the one plaintext
//! buffer it needs, allocated with it.

use std::fmt;

use sframe::sender_keys::{self, KEY_LEN};
use sframe::{CipherSuite, Context, Ctr, Error, Header, Kid, Usage};

use super::layout::Layout;
use super::wire::{self, NotOurs, Stamp, StreamKind};

/// The web client's cipher suite.
pub const SUITE: CipherSuite = CipherSuite::Aes128GcmSha256_128;
/// The room name every `passphrase_key` of loadgen is salted with.
pub const ROOM: &str = "loadgen";
/// Bytes of a video payload left in clear, in front of the SFrame header.
pub const VIDEO_CLEAR_LEN: usize = 3;
/// The clear bytes of a video payload: a VP8 frame tag (RFC 6386 §9.1, little-endian bits
/// from the lowest) of an inter frame (bit 0 = 1), version 0, shown (bit 4), first
/// partition size 0.
pub const VP8_DELTA_FRAME_TAG: [u8; VIDEO_CLEAR_LEN] = [0x11, 0x00, 0x00];
/// Longest payload sealed or opened: a datagram of the send batch's or receive batch's size.
const MAX_PAYLOAD_LEN: usize = 2048;

/// The bytes of a payload of stream `kind` that stay in clear (and are authenticated).
pub fn clear_prefix(kind: StreamKind) -> &'static [u8] {
    match kind {
        StreamKind::Audio => &[],
        StreamKind::Video => &VP8_DELTA_FRAME_TAG,
    }
}

/// The KID of a participant's stream: `2 * participant`, plus 1 for audio.
pub fn kid(participant: u32, kind: StreamKind) -> Kid {
    let audio = match kind {
        StreamKind::Video => 0,
        StreamKind::Audio => 1,
    };
    Kid(2 * u64::from(participant) + audio)
}

/// The participant and stream a KID belongs to ([`kid`] backwards); `None` for a KID beyond
/// any participant index.
pub fn stream_of_kid(kid: Kid) -> Option<(u32, StreamKind)> {
    let participant = u32::try_from(kid.0 / 2).ok()?;
    let kind = if kid.0.is_multiple_of(2) { StreamKind::Video } else { StreamKind::Audio };
    Some((participant, kind))
}

/// The run's keying: one `passphrase_key`, from which every stream's `base_key` derives.
/// A throwaway key of a test run, so it is not wiped on drop.
pub struct RunKeys {
    passphrase_key: [u8; KEY_LEN],
}

impl fmt::Debug for RunKeys {
    // Keys stay out of logs, even a load generator's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunKeys").finish_non_exhaustive()
    }
}

impl RunKeys {
    /// Keys from a random passphrase, fresh for this run. Runs PBKDF2: about a quarter second.
    pub fn random() -> Result<Self, String> {
        let mut raw = [0u8; 16];
        openssl::rand::rand_bytes(&mut raw).map_err(|e| format!("random passphrase: {e}"))?;
        let passphrase: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self::from_passphrase(&passphrase))
    }

    /// Keys from `passphrase` in [`ROOM`], as every participant of the product derives them.
    pub fn from_passphrase(passphrase: &str) -> Self {
        Self::from_passphrase_key(sender_keys::passphrase_key(passphrase, ROOM))
    }

    /// Keys from an already derived `passphrase_key` (tests: PBKDF2 is slow unoptimised).
    pub fn from_passphrase_key(passphrase_key: [u8; KEY_LEN]) -> Self {
        Self { passphrase_key }
    }

    /// The `sender_base_key` of the stream keyed under `kid`.
    fn base_key(&self, kid: Kid) -> [u8; KEY_LEN] {
        sender_keys::sender_base_key(&self.passphrase_key, ROOM, kid.0)
    }
}

/// A sender's SFrame state: its two streams' encryption keys and counters.
pub struct Sealer {
    participant: u32,
    keys: Context<2>,
    /// The next CTR of each stream's KID, by [`StreamKind::index`]. Counts up from 0, one per
    /// frame sealed, even one whose packet is then not sent: a CTR is never used twice.
    next_ctr: [u64; 2],
    /// Where the plaintext is copied before it is encrypted back into the packet:
    /// [`Context::encrypt`] reads and writes different buffers.
    plaintext: Box<[u8]>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("participant", &self.participant)
            .field("next_ctr", &self.next_ctr)
            .finish()
    }
}

impl Sealer {
    pub fn new(keys: &RunKeys, participant: u32) -> Self {
        let mut context = Context::new(SUITE);
        for kind in StreamKind::BOTH {
            let kid = kid(participant, kind);
            context
                .insert(kid, Usage::Encrypt, &keys.base_key(kid))
                .expect("a participant's two KIDs differ and fit a context of two");
        }
        Self { participant, keys: context, next_ctr: [0; 2], plaintext: vec![0; MAX_PAYLOAD_LEN].into() }
    }

    /// Encrypts the RTP payload of a packet of stream `kind` in place, keeping its length:
    /// `payload` (stamp and filler) becomes clear prefix || SFrame header || ciphertext || tag,
    /// the plaintext being as much of the payload's start as fits (the stamp always does).
    pub fn seal(&mut self, kind: StreamKind, payload: &mut [u8]) -> Result<(), Error> {
        let kid = kid(self.participant, kind);
        let counter = &mut self.next_ctr[kind.index()];
        let ctr = Ctr(*counter);
        *counter = counter.checked_add(1).ok_or(Error::FrameTooLong)?;
        let clear = clear_prefix(kind);
        let overhead = clear.len() + Header::new(kid, ctr).encoded_len() + SUITE.nt();
        let plaintext_len = payload.len().checked_sub(overhead).ok_or(Error::BufferTooSmall)?;
        let plaintext = self.plaintext.get_mut(..plaintext_len).ok_or(Error::FrameTooLong)?;
        plaintext.copy_from_slice(&payload[..plaintext_len]);
        let (metadata, frame) = payload.split_at_mut(clear.len());
        metadata.copy_from_slice(clear);
        let written = self.keys.encrypt(kid, ctr, metadata, plaintext, frame)?;
        debug_assert_eq!(written, frame.len(), "the frame fills the payload exactly");
        Ok(())
    }
}

/// Why a received packet's stamp could not be read with `--e2ee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// The packet is no loadgen packet (see [`NotOurs`]).
    NotOurs(NotOurs),
    /// Its payload is no SFrame frame this receiver can open: malformed, keyed for someone
    /// else (another conference, or nobody), or altered on the way.
    SFrame(Error),
}

/// A receiver's SFrame state: the decryption keys of the other members of its conference.
pub struct Opener {
    conference: usize,
    /// One context per member and stream, at `slot * 2 + kind` as the receiver's statistics
    /// are, so finding a frame's key is an index, not a search. The receiver's own slot
    /// holds no key: it never hears itself.
    keys: Box<[Context<1>]>,
    /// Where frames are decrypted to (the SRTP plaintext they come from is the caller's).
    plaintext: Box<[u8]>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("conference", &self.conference)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Opener {
    pub fn new(keys: &RunKeys, layout: &Layout, receiver: u32) -> Self {
        let conference = layout.conference(receiver as usize);
        let members = layout.members(conference);
        let mut contexts: Box<[Context<1>]> = (0..2 * members.len()).map(|_| Context::new(SUITE)).collect();
        for &member in members.iter().filter(|&&m| m != receiver) {
            for kind in StreamKind::BOTH {
                let kid = kid(member, kind);
                contexts[layout.slot(member as usize) * 2 + kind.index()]
                    .insert(kid, Usage::Decrypt, &keys.base_key(kid))
                    .expect("each context is new and holds one key");
            }
        }
        Self { conference, keys: contexts, plaintext: vec![0; MAX_PAYLOAD_LEN].into() }
    }

    /// Decrypts a received (SRTP-decrypted) RTP packet's payload and reads its stamp. The
    /// clear prefix goes by the stream the SSRC names; the key by the KID; and the stamp must
    /// name the sender and stream of the key that opened it.
    pub fn read(&mut self, layout: &Layout, packet: &[u8]) -> Result<Stamp, Unreadable> {
        let (ssrc, payload) = wire::rtp_payload(packet).map_err(Unreadable::NotOurs)?;
        let (_, kind) = wire::sender_of_ssrc(ssrc).ok_or(Unreadable::NotOurs(NotOurs::ForeignSsrc))?;
        let (opened_by, plaintext) = self.open(layout, kind, payload).map_err(Unreadable::SFrame)?;
        let stamp = wire::read_stamp(ssrc, plaintext).map_err(Unreadable::NotOurs)?;
        if kid(stamp.sender, stamp.kind) != opened_by {
            return Err(Unreadable::NotOurs(NotOurs::KidMismatch));
        }
        Ok(stamp)
    }

    /// Decrypts the payload of a packet of stream `kind`: the KID that opened it and the
    /// plaintext.
    pub fn open(&mut self, layout: &Layout, kind: StreamKind, payload: &[u8]) -> Result<(Kid, &[u8]), Error> {
        let (metadata, frame) = payload.split_at_checked(clear_prefix(kind).len()).ok_or(Error::TooShort)?;
        let (header, _) = Header::parse(frame)?;
        let at = self.key_index(layout, header.kid).ok_or(Error::UnknownKid(header.kid))?;
        let opened = self.keys[at].decrypt(metadata, frame, &mut self.plaintext)?;
        Ok((opened.kid, &self.plaintext[..opened.len]))
    }

    /// Where in `keys` the context for `kid` is, if its sender is in this receiver's
    /// conference.
    fn key_index(&self, layout: &Layout, kid: Kid) -> Option<usize> {
        let (sender, kind) = stream_of_kid(kid)?;
        let sender = sender as usize;
        let member = sender < layout.participants() && layout.conference(sender) == self.conference;
        member.then(|| layout.slot(sender) * 2 + kind.index())
    }
}

#[cfg(test)]
mod tests {
    use bridge::media::rtp::RtpHeader;

    use super::*;
    use crate::loadgen::wire::{AUDIO_PACKET_LEN, RtpFields, VIDEO_PACKET_LEN};

    /// Participants 0 and 2 in conference 0, 1 and 3 in conference 1.
    fn layout() -> Layout {
        Layout::round_robin(4, 2)
    }

    fn keys() -> RunKeys {
        RunKeys::from_passphrase_key([0x5a; KEY_LEN])
    }

    fn audio_packet(buf: &mut [u8], sender: u32, seq: u32) -> (usize, Stamp) {
        let rtp = RtpFields {
            ssrc: wire::ssrc(sender, StreamKind::Audio),
            sequence: 7,
            timestamp: 960,
            marker: false,
        };
        let stamp = Stamp { kind: StreamKind::Audio, sender, seq, sent_ns: 0x0123_4567_89ab_cdef };
        (wire::write_audio(buf, rtp, 1, 30, &stamp), stamp)
    }

    fn video_packet(buf: &mut [u8], sender: u32, seq: u32) -> (usize, Stamp) {
        let rtp = RtpFields {
            ssrc: wire::ssrc(sender, StreamKind::Video),
            sequence: 9,
            timestamp: 3000,
            marker: true,
        };
        let stamp = Stamp { kind: StreamKind::Video, sender, seq, sent_ns: 0x0fed_cba9_8765_4321 };
        (wire::write_video(buf, rtp, &stamp), stamp)
    }

    /// Seals the payload of the packet in `buf[..len]` as the send path does.
    fn seal(sealer: &mut Sealer, kind: StreamKind, buf: &mut [u8], len: usize) {
        sealer.seal(kind, &mut buf[wire::rtp_header_len(kind)..len]).unwrap();
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn sealed_packets_keep_their_length_and_clear_headers_and_hide_the_stamp() {
        let (layout, keys) = (layout(), keys());
        let mut sealer = Sealer::new(&keys, 2);
        let mut opener = Opener::new(&keys, &layout, 0);
        let mut buf = [0u8; 1500];
        let mut plain = [0u8; 1500];

        let (len, stamp) = audio_packet(&mut buf, 2, 41);
        plain[..len].copy_from_slice(&buf[..len]);
        seal(&mut sealer, StreamKind::Audio, &mut buf, len);
        assert_eq!(len, AUDIO_PACKET_LEN);
        assert_eq!(buf[..20], plain[..20], "the RTP header and audio level stay in clear");
        assert_eq!(RtpHeader::parse(&buf[..len]).unwrap().extension(1), Some(&[0x80 | 30][..]));
        let payload = &buf[20..len];
        assert!(!contains(payload, &plain[20..20 + wire::HEADER_LEN]), "the stamp is not in clear");
        assert!(!contains(payload, &wire::MAGIC.to_be_bytes()));
        let (header, _) = Header::parse(payload).unwrap();
        assert_eq!((header.kid, header.ctr), (kid(2, StreamKind::Audio), Ctr(0)));
        assert_eq!(wire::read(&buf[..len]), Err(NotOurs::NoStamp), "unreadable without the key");
        assert_eq!(opener.read(&layout, &buf[..len]), Ok(stamp));

        let (len, stamp) = video_packet(&mut buf, 2, 42);
        plain[..len].copy_from_slice(&buf[..len]);
        seal(&mut sealer, StreamKind::Video, &mut buf, len);
        assert_eq!(len, VIDEO_PACKET_LEN);
        assert_eq!(buf[..12], plain[..12], "the RTP header stays in clear");
        assert_eq!(buf[12..15], VP8_DELTA_FRAME_TAG, "then the VP8 frame tag");
        let (header, _) = Header::parse(&buf[15..len]).unwrap();
        assert_eq!((header.kid, header.ctr), (kid(2, StreamKind::Video), Ctr(0)), "its own KID and CTR");
        assert!(!contains(&buf[12..len], &plain[12..12 + wire::HEADER_LEN]));
        assert_eq!(opener.read(&layout, &buf[..len]), Ok(stamp));
    }

    #[test]
    fn the_counter_counts_up_per_stream_so_equal_payloads_differ() {
        let mut sealer = Sealer::new(&keys(), 1);
        let mut frames = Vec::new();
        for _ in 0..10 {
            let mut buf = [0u8; 1500];
            let (len, _) = video_packet(&mut buf, 1, 5);
            seal(&mut sealer, StreamKind::Video, &mut buf, len);
            let (header, _) = Header::parse(&buf[15..len]).unwrap();
            assert_eq!(header.ctr, Ctr(frames.len() as u64));
            frames.push(buf[..len].to_vec());
        }
        frames.dedup();
        assert_eq!(frames.len(), 10, "no two frames alike");
        assert_eq!(sealer.next_ctr, [0, 10], "audio has its own counter");
    }

    #[test]
    fn a_flipped_byte_anywhere_in_the_frame_or_clear_prefix_fails_authentication() {
        let (layout, keys) = (layout(), keys());
        let mut sealer = Sealer::new(&keys, 0);
        let mut opener = Opener::new(&keys, &layout, 2);
        let mut buf = [0u8; 1500];
        let (len, stamp) = video_packet(&mut buf, 0, 0);
        seal(&mut sealer, StreamKind::Video, &mut buf, len);
        // The clear VP8 tag (metadata), the ciphertext, the tag: each is authenticated.
        for at in [12, 14, 40, len - 1] {
            let mut tampered = buf;
            tampered[at] ^= 0x01;
            assert_eq!(
                opener.read(&layout, &tampered[..len]),
                Err(Unreadable::SFrame(Error::Authentication)),
                "byte {at}"
            );
        }
        assert_eq!(opener.read(&layout, &buf[..len]), Ok(stamp), "the original still opens");
    }

    #[test]
    fn receivers_hold_keys_for_their_own_conference_only() {
        let (layout, keys) = (layout(), keys());
        let mut buf = [0u8; 1500];
        let (len, _) = audio_packet(&mut buf, 1, 0);
        seal(&mut Sealer::new(&keys, 1), StreamKind::Audio, &mut buf, len);
        let unknown = Err(Unreadable::SFrame(Error::UnknownKid(kid(1, StreamKind::Audio))));
        assert_eq!(Opener::new(&keys, &layout, 0).read(&layout, &buf[..len]), unknown, "other conference");
        assert_eq!(Opener::new(&keys, &layout, 1).read(&layout, &buf[..len]), unknown, "its own sender");
        assert!(Opener::new(&keys, &layout, 3).read(&layout, &buf[..len]).is_ok(), "same conference");

        let other_run = RunKeys::from_passphrase_key([0xa5; KEY_LEN]);
        let mut opener = Opener::new(&other_run, &layout, 3);
        assert_eq!(opener.read(&layout, &buf[..len]), Err(Unreadable::SFrame(Error::Authentication)));
    }

    #[test]
    fn kids_name_their_participant_and_stream() {
        for (participant, kind) in
            [(0, StreamKind::Audio), (0, StreamKind::Video), (u32::MAX, StreamKind::Audio)]
        {
            assert_eq!(stream_of_kid(kid(participant, kind)), Some((participant, kind)));
        }
        assert_ne!(kid(3, StreamKind::Audio), kid(3, StreamKind::Video));
        assert_eq!(stream_of_kid(Kid(u64::MAX)), None);
    }
}
