//! Renumbering forwarded RTP for a receiver that numbers codecs and header extensions
//! differently from the sender.
//!
//! Payload types and extension ids are chosen by each participant's offer: Chromium sends VP8
//! as 96 and Opus as 111, aiortc sends VP8 as 97 (Chromium's RTX of VP8) and Opus as 96;
//! Chromium and Firefox give the MID extension different ids. An SFU that forwards packets
//! unchanged between them makes receivers decode one codec as another. So every participant's
//! numbers are translated into a shared vocabulary ("word" = index of a codec or of an
//! extension URI) and back into the receiver's numbers.
//!
//! A [`Numbering`] is one participant's dictionary. Participants of one browser family have
//! equal numberings, and the caller skips the rewrite for them (it compares two pointers); for
//! the others the rewrite touches the header only: one byte for the payload type, one byte per
//! extension element.

use super::header_len;

/// A payload type, extension id or word with no counterpart.
const NONE: u8 = u8::MAX;

/// The most codecs and the most extension URIs a vocabulary holds. A participant has at most
/// 128 payload types, and real ones negotiate far fewer than 127 distinct codecs or extensions.
pub const MAX_WORDS: usize = 127;

/// One participant's numbers for the words of a shared vocabulary.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Numbering {
    word_of_pt: [u8; 128],
    pt_of_word: [u8; MAX_WORDS],
    /// The RTX payload type (RFC 4588) repairing each codec word.
    rtx_pt_of_word: [u8; MAX_WORDS],
    word_of_extension: [u8; 256],
    extension_of_word: [u8; MAX_WORDS],
    has_codecs: bool,
    has_extensions: bool,
}

impl Default for Numbering {
    fn default() -> Self {
        Self {
            word_of_pt: [NONE; 128],
            pt_of_word: [NONE; MAX_WORDS],
            rtx_pt_of_word: [NONE; MAX_WORDS],
            word_of_extension: [NONE; 256],
            extension_of_word: [NONE; MAX_WORDS],
            has_codecs: false,
            has_extensions: false,
        }
    }
}

impl std::fmt::Debug for Numbering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs = |table: &[u8]| -> Vec<(usize, u8)> {
            table.iter().enumerate().filter(|(_, w)| **w != NONE).map(|(i, w)| (i, *w)).collect()
        };
        f.debug_struct("Numbering")
            .field("payload_types", &pairs(&self.word_of_pt))
            .field("extensions", &pairs(&self.word_of_extension))
            .finish()
    }
}

impl Numbering {
    /// Payload type `pt` (0-127) carries codec `word`. Out-of-range values are ignored.
    pub fn set_payload_type(&mut self, pt: u8, word: usize) {
        if let (Some(slot), Some(w)) = (self.word_of_pt.get_mut(usize::from(pt)), word_byte(word)) {
            *slot = w;
            self.pt_of_word[word] = pt;
            self.has_codecs = true;
        }
    }

    /// Payload type `rtx_pt` (0-127) retransmits codec `word` (RFC 4588 `apt`).
    pub fn set_rtx_payload_type(&mut self, rtx_pt: u8, word: usize) {
        if rtx_pt < 128 && word_byte(word).is_some() {
            self.rtx_pt_of_word[word] = rtx_pt;
        }
    }

    /// Extension id `id` (1-255) carries extension `word`.
    pub fn set_extension(&mut self, id: u8, word: usize) {
        if let (true, Some(w)) = (id != 0, word_byte(word)) {
            self.word_of_extension[usize::from(id)] = w;
            self.extension_of_word[word] = id;
            self.has_extensions = true;
        }
    }

    fn word_of_pt(&self, pt: u8) -> Option<usize> {
        let word = self.word_of_pt[usize::from(pt & 0x7f)];
        (word != NONE).then_some(usize::from(word))
    }
}

fn word_byte(word: usize) -> Option<u8> {
    u8::try_from(word).ok().filter(|&w| usize::from(w) < MAX_WORDS)
}

/// Why a packet cannot be given to a receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrenumberable {
    /// The receiver negotiated no payload type for the packet's codec.
    CodecNotNegotiated,
    /// Not an RTP header we can read.
    NotRtp,
}

/// Rewrites `packet` (plain RTP) from the sender's numbering `from` into the receiver's `to`.
///
/// - Payload type: the receiver's number for the sender's codec. A payload type the sender
///   never signaled, or a receiver that signaled none, leaves it as it is (the bridge knows no
///   better); a codec the receiver did not negotiate is an error, and the packet must not go
///   to that receiver.
/// - Extensions: each element gets the receiver's id for its URI. Elements the receiver did not
///   negotiate (or that do not fit the packet's one-byte form) become padding, which receivers
///   skip. A receiver that signaled no extensions gets them as they are.
pub fn renumber(packet: &mut [u8], from: &Numbering, to: &Numbering) -> Result<(), Unrenumberable> {
    if packet.len() < 12 {
        return Err(Unrenumberable::NotRtp);
    }
    if to.has_codecs {
        if let Some(word) = from.word_of_pt(packet[1]) {
            let pt = to.pt_of_word[word];
            if pt == NONE {
                return Err(Unrenumberable::CodecNotNegotiated);
            }
            packet[1] = (packet[1] & 0x80) | pt;
        }
    }
    renumber_extensions(packet, from, to)
}

/// The receiver's RTX payload type for a retransmission of a packet the sender sent with
/// payload type `pt`. A receiver that signaled no payload types gets the sender's (as it gets
/// the sender's numbers in everything else).
pub fn rtx_payload_type(pt: u8, from: &Numbering, to: &Numbering) -> Option<u8> {
    let numbering = if to.has_codecs { to } else { from };
    let rtx = numbering.rtx_pt_of_word[from.word_of_pt(pt)?];
    (rtx != NONE).then_some(rtx)
}

/// The extension half of [`renumber`], for packets whose payload type is already the
/// receiver's (an RTX packet written with [`rtx_payload_type`]).
pub fn renumber_extensions(
    packet: &mut [u8],
    from: &Numbering,
    to: &Numbering,
) -> Result<(), Unrenumberable> {
    let Some(header_end) = header_len(packet) else { return Err(Unrenumberable::NotRtp) };
    if packet[0] & 0x10 == 0 || !to.has_extensions {
        return Ok(());
    }
    // header_len checked that the 4-byte extension header and its data fit.
    let start = 12 + 4 * usize::from(packet[0] & 0x0f);
    let profile = u16::from_be_bytes([packet[start], packet[start + 1]]);
    let elements = &mut packet[start + 4..header_end];
    let receiver_id = |id: u8| match from.word_of_extension[usize::from(id)] {
        NONE => NONE,
        word => to.extension_of_word[usize::from(word)],
    };
    if profile == 0xBEDE {
        renumber_one_byte(elements, receiver_id);
    } else if profile & 0xFFF0 == 0x1000 {
        renumber_two_byte(elements, receiver_id);
    }
    Ok(())
}

/// RFC 8285 §4.2: `ID (4) | L (4) | L + 1 bytes`. ID 0 is a padding byte, 15 ends the block.
fn renumber_one_byte(elements: &mut [u8], receiver_id: impl Fn(u8) -> u8) {
    let mut at = 0;
    while at < elements.len() {
        let id = elements[at] >> 4;
        if id == 0 {
            at += 1;
            continue;
        }
        if id == 15 {
            return;
        }
        let end = at + 2 + usize::from(elements[at] & 0x0f);
        let Some(element) = elements.get_mut(at..end) else { return };
        match receiver_id(id) {
            new @ 1..=14 => element[0] = (new << 4) | (element[0] & 0x0f),
            _ => element.fill(0),
        }
        at = end;
    }
}

/// RFC 8285 §4.3: `ID (8) | L (8) | L bytes`. A zero byte is padding.
fn renumber_two_byte(elements: &mut [u8], receiver_id: impl Fn(u8) -> u8) {
    let mut at = 0;
    while at < elements.len() {
        let id = elements[at];
        if id == 0 {
            at += 1;
            continue;
        }
        let Some(&len) = elements.get(at + 1) else { return };
        let end = at + 2 + usize::from(len);
        let Some(element) = elements.get_mut(at..end) else { return };
        match receiver_id(id) {
            NONE => element.fill(0),
            new => element[0] = new,
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::media::rtp::RtpHeader;

    const OPUS: usize = 0;
    const VP8: usize = 1;
    const AUDIO_LEVEL: usize = 0;
    const ABS_SEND_TIME: usize = 1;
    const MID: usize = 2;

    /// Chromium's numbers: Opus 111, VP8 96 with RTX 97; audio level 1, abs-send-time 2, mid 4.
    fn chromium() -> Numbering {
        let mut n = Numbering::default();
        n.set_payload_type(111, OPUS);
        n.set_payload_type(96, VP8);
        n.set_rtx_payload_type(97, VP8);
        n.set_extension(1, AUDIO_LEVEL);
        n.set_extension(2, ABS_SEND_TIME);
        n.set_extension(4, MID);
        n
    }

    /// aiortc's numbers: Opus 96, VP8 97 with RTX 98; audio level 10, mid 9, no abs-send-time.
    fn other() -> Numbering {
        let mut n = Numbering::default();
        n.set_payload_type(96, OPUS);
        n.set_payload_type(97, VP8);
        n.set_rtx_payload_type(98, VP8);
        n.set_extension(10, AUDIO_LEVEL);
        n.set_extension(9, MID);
        n
    }

    /// A packet with marker set, payload type `pt` and the one-byte extension block `ext`.
    fn packet(pt: u8, profile: u16, ext: &[u8]) -> Vec<u8> {
        assert_eq!(ext.len() % 4, 0);
        let mut p = vec![0x90, 0x80 | pt, 0, 7, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(&profile.to_be_bytes());
        p.extend_from_slice(&u16::try_from(ext.len() / 4).unwrap().to_be_bytes());
        p.extend_from_slice(ext);
        p.extend_from_slice(b"payload");
        p
    }

    fn elements(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
        RtpHeader::parse(p).unwrap().extensions().map(|(id, v)| (id, v.to_vec())).collect()
    }

    #[test]
    fn payload_type_and_one_byte_extensions_take_the_receivers_numbers() {
        // audio level (id 1, 1 byte), abs-send-time (id 2, 3 bytes), mid (id 4, 1 byte), pad.
        let mut p = packet(96, 0xBEDE, &[0x10, 0x85, 0x22, 1, 2, 3, 0x40, b'0', 0, 0, 0, 0]);
        renumber(&mut p, &chromium(), &other()).unwrap();
        assert_eq!(p[1], 0x80 | 97, "VP8 is 97 for the receiver, the marker stays");
        // abs-send-time is not the receiver's: padding; the others move to ids 10 and 9.
        assert_eq!(elements(&p), vec![(10, vec![0x85]), (9, vec![b'0'])]);
        assert!(p.ends_with(b"payload"));
        let mut back = p.clone();
        renumber(&mut back, &other(), &chromium()).unwrap();
        assert_eq!(back[1], 0x80 | 96);
        assert_eq!(elements(&back), vec![(1, vec![0x85]), (4, vec![b'0'])]);
    }

    #[test]
    fn two_byte_extensions_are_renumbered_too() {
        let mut to = other();
        to.set_extension(200, ABS_SEND_TIME);
        // audio level (id 1, 1 byte), padding byte, abs-send-time (id 2, 3 bytes), unknown 77.
        let mut p = packet(111, 0x1000, &[1, 1, 0x85, 0, 2, 3, 1, 2, 3, 77, 0, 0]);
        renumber(&mut p, &chromium(), &to).unwrap();
        assert_eq!(p[1], 0x80 | 96, "Opus is 96 for the receiver");
        assert_eq!(elements(&p), vec![(10, vec![0x85]), (200, vec![1, 2, 3])]);
    }

    #[test]
    fn a_two_byte_id_does_not_fit_a_one_byte_packet_and_becomes_padding() {
        let mut to = other();
        to.set_extension(200, ABS_SEND_TIME);
        let mut p = packet(96, 0xBEDE, &[0x22, 1, 2, 3]);
        renumber(&mut p, &chromium(), &to).unwrap();
        assert_eq!(elements(&p), vec![]);
    }

    #[test]
    fn a_codec_the_receiver_lacks_is_refused_and_unknown_numbers_pass() {
        let mut audio_only = Numbering::default();
        audio_only.set_payload_type(96, OPUS);
        let mut p = packet(96, 0xBEDE, &[0x10, 0x85, 0, 0]);
        assert_eq!(renumber(&mut p, &chromium(), &audio_only), Err(Unrenumberable::CodecNotNegotiated));
        // A payload type the sender never signaled: the bridge cannot know what it is.
        let mut p = packet(35, 0xBEDE, &[0x10, 0x85, 0, 0]);
        renumber(&mut p, &chromium(), &other()).unwrap();
        assert_eq!(p[1], 0x80 | 35);
        // A receiver that signaled nothing gets the packet as it is.
        let original = packet(96, 0xBEDE, &[0x10, 0x85, 0, 0]);
        let mut p = original.clone();
        renumber(&mut p, &chromium(), &Numbering::default()).unwrap();
        assert_eq!(p, original);
    }

    #[test]
    fn rtx_goes_out_with_the_receivers_rtx_payload_type() {
        assert_eq!(rtx_payload_type(96, &chromium(), &other()), Some(98));
        assert_eq!(rtx_payload_type(111, &chromium(), &other()), None, "no RTX for Opus");
        assert_eq!(rtx_payload_type(50, &chromium(), &other()), None);
        assert_eq!(rtx_payload_type(96, &chromium(), &Numbering::default()), Some(97), "the sender's own");
    }

    #[test]
    fn malformed_packets_are_refused_or_left_alone() {
        assert_eq!(renumber(&mut [0x80; 11], &chromium(), &other()), Err(Unrenumberable::NotRtp));
        // The extension length says 2 words, 1 is there.
        let mut p = packet(96, 0xBEDE, &[0x10, 0x85, 0, 0]);
        p[15] = 2;
        p.truncate(20);
        assert_eq!(renumber(&mut p, &chromium(), &other()), Err(Unrenumberable::NotRtp));
        // An element running past the block stops the walk; what precedes it is renumbered.
        let mut p = packet(96, 0xBEDE, &[0x10, 0x85, 0x4f, 0]);
        renumber(&mut p, &chromium(), &other()).unwrap();
        assert_eq!(&p[16..20], &[0xa0, 0x85, 0x4f, 0]);
    }

    proptest! {
        /// Renumbering never panics, never changes the length, and never touches the payload.
        #[test]
        fn renumbering_arbitrary_packets_is_safe(
            mut p in proptest::collection::vec(any::<u8>(), 0..96),
            x in any::<bool>(),
        ) {
            if x && !p.is_empty() {
                p[0] = 0x90 | (p[0] & 0x2f);
            }
            let before = p.clone();
            let header = super::header_len(&p);
            let _ = renumber(&mut p, &chromium(), &other());
            prop_assert_eq!(p.len(), before.len());
            if let Some(end) = header {
                prop_assert_eq!(&p[end..], &before[end..]);
            }
        }
    }
}
