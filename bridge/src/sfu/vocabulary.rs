//! The bridge's vocabulary of codecs and header extensions, and each endpoint's [`Numbering`]
//! of it (see `media::rtp::renumber` for why packets are renumbered at all).
//!
//! The vocabulary only grows, so a numbering stays valid once made and is computed when an
//! endpoint's payload types or extensions change, never per packet or per snapshot. Equal
//! numberings are one shared `Arc`: participants of one browser family compare equal by
//! pointer, and the worker skips the rewrite for them.

use std::collections::HashSet;
use std::sync::Arc;

use super::endpoint::{HeaderExtension, MediaKind, PayloadType};
use crate::media::rtp::renumber::{MAX_WORDS, Numbering};

/// What makes two payload types the same codec: kind, name (any case), clock rate and, for
/// audio, channels. Format parameters are not compared; the signaling daemon keeps only codecs
/// (Opus, VP8) whose parameters every WebRTC client can decode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Codec {
    kind: MediaKind,
    name: String,
    clock_rate: u32,
    channels: u8,
}

impl Codec {
    fn of(pt: &PayloadType) -> Self {
        Self {
            kind: pt.kind,
            name: pt.name.to_ascii_lowercase(),
            clock_rate: pt.clock_rate,
            channels: pt.channels.unwrap_or(1),
        }
    }
}

#[derive(Debug, Default)]
pub struct Vocabulary {
    codecs: Vec<Codec>,
    extensions: Vec<String>,
    /// Every numbering in use, so that equal ones are one `Arc`.
    numberings: HashSet<Arc<Numbering>>,
}

impl Vocabulary {
    /// The numbering of what an endpoint signaled. Codecs or extensions beyond the vocabulary's
    /// capacity ([`MAX_WORDS`] each, bridge-wide) get no word: packets in them reach only
    /// receivers that number them the same way.
    pub fn numbering(
        &mut self,
        payload_types: &[PayloadType],
        extensions: &[HeaderExtension],
    ) -> Arc<Numbering> {
        let mut numbering = Numbering::default();
        for pt in payload_types.iter().filter(|p| !is_rtx(p)) {
            if let Some(word) = word(&mut self.codecs, Codec::of(pt)) {
                numbering.set_payload_type(pt.pt, word);
            }
        }
        for rtx in payload_types.iter().filter(|p| is_rtx(p)) {
            let repaired = payload_types.iter().find(|p| Some(p.pt) == rtx.apt && !is_rtx(p));
            if let Some(word) = repaired.and_then(|p| self.codecs.iter().position(|c| *c == Codec::of(p))) {
                numbering.set_rtx_payload_type(rtx.pt, word);
            }
        }
        for extension in extensions {
            if let Some(word) = word(&mut self.extensions, extension.uri.clone()) {
                numbering.set_extension(extension.id, word);
            }
        }
        // Numberings no endpoint holds any more go first, so the set stays as small as the
        // number of distinct ones in use.
        self.numberings.retain(|n| Arc::strong_count(n) > 1);
        if let Some(shared) = self.numberings.get(&numbering) {
            return shared.clone();
        }
        let shared = Arc::new(numbering);
        self.numberings.insert(shared.clone());
        shared
    }
}

fn is_rtx(pt: &PayloadType) -> bool {
    pt.name.eq_ignore_ascii_case("rtx")
}

/// The index of `entry` in `words`, added if new and there is room.
fn word<T: PartialEq>(words: &mut Vec<T>, entry: T) -> Option<usize> {
    if let Some(index) = words.iter().position(|w| *w == entry) {
        return Some(index);
    }
    (words.len() < MAX_WORDS).then(|| {
        words.push(entry);
        words.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::renumber::{renumber, rtx_payload_type};

    fn pt(pt: u8, kind: MediaKind, name: &str, clock_rate: u32, apt: Option<u8>) -> PayloadType {
        let channels = (kind == MediaKind::Audio).then_some(2);
        PayloadType { pt, kind, name: name.into(), clock_rate, channels, apt }
    }

    fn ext(id: u8, uri: &str) -> HeaderExtension {
        HeaderExtension { id, uri: uri.into() }
    }

    fn chromium() -> (Vec<PayloadType>, Vec<HeaderExtension>) {
        (
            vec![
                pt(111, MediaKind::Audio, "opus", 48000, None),
                pt(96, MediaKind::Video, "VP8", 90000, None),
                pt(97, MediaKind::Video, "rtx", 90000, Some(96)),
            ],
            vec![ext(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level")],
        )
    }

    fn aiortc() -> (Vec<PayloadType>, Vec<HeaderExtension>) {
        (
            vec![
                pt(96, MediaKind::Audio, "opus", 48000, None),
                pt(97, MediaKind::Video, "vp8", 90000, None),
                pt(98, MediaKind::Video, "rtx", 90000, Some(97)),
            ],
            vec![ext(5, "urn:ietf:params:rtp-hdrext:ssrc-audio-level")],
        )
    }

    #[test]
    fn equal_signaling_shares_one_numbering_and_different_signaling_translates() {
        let mut vocabulary = Vocabulary::default();
        let (p, e) = chromium();
        let a = vocabulary.numbering(&p, &e);
        let b = vocabulary.numbering(&p, &e);
        assert!(Arc::ptr_eq(&a, &b), "one browser family: one numbering, no rewrite");
        let (p, e) = aiortc();
        let c = vocabulary.numbering(&p, &e);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(rtx_payload_type(96, &a, &c), Some(98));
        // Chromium's VP8 (96) with audio level id 1 reaches aiortc as 97 with id 5.
        let mut packet = vec![0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0x85, 0, 0];
        renumber(&mut packet, &a, &c).unwrap();
        assert_eq!((packet[1], packet[16]), (97, 0x50));
    }

    #[test]
    fn numberings_nobody_holds_are_forgotten() {
        let mut vocabulary = Vocabulary::default();
        let (p, e) = chromium();
        drop(vocabulary.numbering(&p, &e));
        let (p, e) = aiortc();
        let kept = vocabulary.numbering(&p, &e);
        assert_eq!(vocabulary.numberings.len(), 1);
        assert!(vocabulary.numberings.contains(&kept));
    }

    #[test]
    fn the_vocabulary_is_bounded() {
        let mut vocabulary = Vocabulary::default();
        let mut held = Vec::new();
        for i in 0..300u32 {
            let name = format!("codec{i}");
            let p = [pt(100, MediaKind::Video, &name, 90000, None)];
            let e = [ext(3, &format!("urn:example:{i}"))];
            held.push(vocabulary.numbering(&p, &e));
        }
        assert_eq!(vocabulary.codecs.len(), MAX_WORDS);
        assert_eq!(vocabulary.extensions.len(), MAX_WORDS);
    }
}
