//! SDP in bridge mode (PROTOCOL.md, "Media topology"): what the daemon reads from a member's
//! offer for the bridge's `PATCH /v1/conferences/{c}/endpoints/{e}`, and the answer it writes
//! back (bridge/API.md, "Writing the answer").
//!
//! The offer is parsed with `webrtc-sdp` (Firefox's SDP parser); the answer is written line by
//! line, and is the same text for the same inputs. This is the Rust form of
//! bridge/tests/clients/sfu.py (`parse_offer`, `patch_body`, `compose_answer` with
//! `codecs=("opus", "VP8")`), which was proven against Chromium and aiortc through the bridge;
//! the tests check that both give the same answers.
//!
//! Where it goes beyond sfu.py:
//! - Work is bounded before the parser runs: [`MAX_OFFER_BYTES`], [`MAX_OFFER_LINES`],
//!   [`MAX_MEDIA_SECTIONS`], then [`MAX_SSRCS`]. Control characters are refused, and every value
//!   copied into an answer (mids, msids, ids, ICE credentials) must be a plain token, so no input
//!   can add a line to an answer.
//! - An m-section with port 0 and `a=bundle-only` (how Firefox offers with
//!   `bundlePolicy: "max-bundle"`) is in use, not rejected.
//! - The answer's `o=` line has a session id fixed by the bridge endpoint and a version given by
//!   the caller (the offer's epoch), so it grows with every renegotiation as RFC 3264 wants.
//! - `webrtc-sdp` skips, with a warning, lines it does not support. An `m=` line it would skip
//!   (an unknown media type or transport) would silently merge that section's attributes into
//!   the previous one, so every m= line is checked with its m-line parser first, and an offer
//!   with one it does not support is refused.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use webrtc_sdp::SdpSession;
use webrtc_sdp::attribute_type::{
    SdpAttribute, SdpAttributeFingerprintHashType, SdpAttributeFmtpParameters, SdpAttributePayloadType,
    SdpAttributeRtcpFb, SdpAttributeSetup, SdpSsrcGroupSemantic,
};
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::{SdpFormatList, SdpMedia, SdpMediaValue};

/// The largest offer accepted, in bytes: the protocol's frame limit, so any offer that can
/// arrive fits.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// The most lines an offer may have. `webrtc-sdp` takes time quadratic in the number of lines
/// (it removes them one by one from the front of a `Vec`): Chromium's 551-line offer with 6
/// m-lines takes about 1.5 ms in a release build, a 64 KiB offer of 3000 to 4096 short lines 25
/// to 70 ms. A real 64 KiB offer has about 2000 lines.
pub const MAX_OFFER_LINES: usize = 4096;
/// The most m-lines an offer may have.
pub const MAX_MEDIA_SECTIONS: usize = 64;
/// The most distinct SSRCs (`a=ssrc`, `a=ssrc-group`) an offer may name.
pub const MAX_SSRCS: usize = 256;

/// Header extensions left out of the answer and of the PATCH body (API.md): receivers
/// demultiplex by SSRC, and the bridge does no congestion control yet.
pub const DROPPED_EXTENSIONS: [&str; 5] = [
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "http://www.webrtc.org/experiments/rtp-hdrext/transport-wide-cc-02",
];

/// The `a=rtcp-fb` types the answer keeps (API.md): no `transport-cc`, no `goog-remb`.
pub const KEPT_FEEDBACK: [&str; 3] = ["nack", "nack pli", "ccm fir"];

/// What the offer lacks or gets wrong, in words a client developer can act on. Messages never
/// quote more than a bounded piece of the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpError(String);

impl SdpError {
    fn new(message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > 200 {
            let mut end = 200;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        SdpError(message)
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SdpError {}

/// Audio or video; serialized `"audio"` / `"video"` as the bridge's API and PROTOCOL.md spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    /// The one codec the answer keeps for this kind (RTX of it aside).
    fn codec(self) -> &'static str {
        match self {
            MediaKind::Audio => "opus",
            MediaKind::Video => "VP8",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction attribute of an m-section (`sendrecv` when it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the offerer sends media on a section with this direction.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream the participant sends, as the PATCH body's `sources` lists it:
/// `{"ssrc", "kind", "msid", "rtx_ssrc"?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub ssrc: u32,
    pub kind: MediaKind,
    /// `"<stream id> <track id>"`, from `a=msid` or `a=ssrc:<ssrc> msid:`; empty if neither.
    pub msid: String,
    /// The RFC 4588 retransmission SSRC (`a=ssrc-group:FID <ssrc> <rtx_ssrc>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx_ssrc: Option<u32>,
}

/// A payload type, as the PATCH body's `payload_types` lists it:
/// `{"pt", "kind", "name", "clock_rate", "channels"?, "apt"?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadType {
    pub pt: u8,
    pub kind: MediaKind,
    /// As the `a=rtpmap` spells it (`opus`, `VP8`, `rtx`).
    pub name: String,
    pub clock_rate: u32,
    /// Audio only: the `a=rtpmap` channel count, 1 when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// The payload type an `rtx` one repairs (`a=fmtp:<pt> apt=<apt>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<u8>,
}

/// A header extension, as the PATCH body's `header_extensions` lists it: `{"id", "uri"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderExtension {
    pub id: u16,
    pub uri: String,
}

/// A payload type of one m-section with what the answer repeats of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    pub payload_type: PayloadType,
    /// The `a=fmtp` parameters as `webrtc-sdp` writes them back: the same parameters, the known
    /// ones in its canonical order and without those at their default value.
    pub fmtp: Option<String>,
    /// The `a=rtcp-fb` values for this payload type (or `*`) without the payload type:
    /// `"nack"`, `"nack pli"`, `"ccm fir"`, `"transport-cc"`, ...
    pub feedback: Vec<String>,
}

/// An `a=extmap` line of one m-section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extmap {
    pub id: u16,
    pub uri: String,
    /// The whole value after `a=extmap:`, as the answer repeats it.
    pub value: String,
}

/// One m-section of the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSection {
    pub mid: String,
    /// `None` for `m=application` (data channels), which the bridge does not carry.
    pub kind: Option<MediaKind>,
    pub direction: Direction,
    /// Not in use: `m=application`, or port 0 without `a=bundle-only`. Answered with port 0 and
    /// left out of BUNDLE.
    pub rejected: bool,
    /// The m-line's transport (`UDP/TLS/RTP/SAVPF`) and formats, for a rejected section's answer.
    pub protocol: String,
    pub formats: Vec<String>,
    /// The primary SSRCs the participant sends on this section (see [`Offer::sources`]); empty
    /// unless it sends.
    pub ssrcs: Vec<u32>,
    /// The payload types of the m-line that have an `a=rtpmap`, in m-line order.
    pub codecs: Vec<Codec>,
    pub extmaps: Vec<Extmap>,
}

/// What the bridge and the answer need from a participant's offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// The sha-256 DTLS fingerprint, `"AB:CD:..."` (32 upper-case hex bytes).
    pub fingerprint: String,
    /// What the participant sends, in offer order.
    pub sources: Vec<Source>,
    /// Every payload type of the sections in use, one per (kind, pt), in offer order.
    pub payload_types: Vec<PayloadType>,
    /// Every header extension of the sections in use, one per (id, uri), in offer order.
    pub header_extensions: Vec<HeaderExtension>,
    pub media: Vec<MediaSection>,
}

/// A candidate of the bridge (`POST .../endpoints` gives them: `ice.candidates`). The answer
/// writes `a=candidate:<foundation> 1 udp <priority> <ip> <port> typ host`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub foundation: String,
    pub priority: u32,
    pub ip: IpAddr,
    pub port: u16,
}

/// The bridge's side of one participant's connection, from `POST .../endpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeEndpoint {
    pub ufrag: String,
    pub pwd: String,
    /// At least one; the first gives the answer's `c=` address and m-line port.
    pub candidates: Vec<Candidate>,
    /// The bridge's sha-256 certificate fingerprint, `"AB:CD:..."`.
    pub fingerprint: String,
}

/// A source another participant sends (from `GET /v1/conferences/{c}`), to be received by the
/// participant the answer is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSource {
    /// The participant's id (PROTOCOL.md); also the answer's `cname` for its sources.
    pub participant: String,
    pub kind: MediaKind,
    pub ssrc: u32,
    /// `"<stream id> <track id>"`; empty to let the answer make one up from the participant id.
    pub msid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx_ssrc: Option<u32>,
}

/// Which m-line carries whose media: PROTOCOL.md's `answer.tracks` entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Track {
    pub mid: String,
    /// The participant id.
    pub id: String,
    pub kind: MediaKind,
}

/// The answer for one participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// CRLF line endings.
    pub sdp: String,
    /// One per `sendonly` m-line of the answer, in m-line order.
    pub tracks: Vec<Track>,
    /// Sources that found no free `recvonly` m-line of their kind: the participant needs to
    /// offer more transceivers (renegotiate) to receive them.
    pub unassigned: Vec<RemoteSource>,
}

// ------------------------------------------------------------------------------------------------
// The offer

/// Reads a participant's offer: ICE credentials, sha-256 fingerprint, what it sends, its payload
/// types and header extensions, and the layout of its m-sections.
///
/// Refuses, naming the problem, an offer that the bridge could not serve: past the limits
/// above, without ICE credentials or sha-256 fingerprint, with `a=setup:passive`, an m-line
/// without a mid, no audio or video m-line in use, or one in use without opus (audio) or VP8
/// (video). Any [`Offer`] it returns can be answered by [`compose_answer`] (given a valid
/// bridge endpoint and sources).
pub fn parse_offer(sdp: &str) -> Result<Offer, SdpError> {
    let m_lines = check_text(sdp)?;
    let session = webrtc_sdp::parse_sdp(sdp, false).map_err(|e| parser_error(&e))?;
    if session.media.len() != m_lines {
        // check_text has parsed every m= line already; this is a safety net.
        return Err(SdpError::new("an m= line is not supported"));
    }
    check_ssrc_count(&session)?;

    let ice_ufrag = first_media_then_session(&session, |a| match a {
        SdpAttribute::IceUfrag(v) => Some(v.clone()),
        _ => None,
    })
    .ok_or_else(|| SdpError::new("the offer has no a=ice-ufrag"))?;
    let ice_pwd = first_media_then_session(&session, |a| match a {
        SdpAttribute::IcePwd(v) => Some(v.clone()),
        _ => None,
    })
    .ok_or_else(|| SdpError::new("the offer has no a=ice-pwd"))?;
    check_ice("a=ice-ufrag", &ice_ufrag, 4)?;
    check_ice("a=ice-pwd", &ice_pwd, 22)?;

    let sha256 = |a: &SdpAttribute| match a {
        SdpAttribute::Fingerprint(f) if f.hash_algorithm == SdpAttributeFingerprintHashType::Sha256 => {
            Some(hex_colons(&f.fingerprint))
        }
        _ => None,
    };
    let fingerprint = session
        .attribute
        .iter()
        .find_map(sha256)
        .or_else(|| session.media.iter().find_map(|m| m.get_attributes().iter().find_map(sha256)))
        .ok_or_else(|| SdpError::new("the offer has no a=fingerprint:sha-256"))?;

    let setup = first_media_then_session(&session, |a| match a {
        SdpAttribute::Setup(s) => Some(s.clone()),
        _ => None,
    });
    match setup {
        None | Some(SdpAttributeSetup::Actpass) | Some(SdpAttributeSetup::Active) => {}
        Some(other) => {
            return Err(SdpError::new(format!(
                "a=setup:{other}: the bridge is the DTLS server, so the offer must be actpass or active"
            )));
        }
    }

    let mut media = Vec::with_capacity(session.media.len());
    let mut sources: Vec<Source> = Vec::new();
    let mut payload_types: Vec<PayloadType> = Vec::new();
    let mut header_extensions: Vec<HeaderExtension> = Vec::new();
    let mut mids: HashSet<String> = HashSet::new();
    for (index, m) in session.media.iter().enumerate() {
        let mut section = media_section(index, m)?;
        if !mids.insert(section.mid.clone()) {
            return Err(SdpError::new(format!("a=mid:{} is on more than one m-line", section.mid)));
        }
        if let (Some(kind), false) = (section.kind, section.rejected) {
            if !section.codecs.iter().any(|c| c.payload_type.name.eq_ignore_ascii_case(kind.codec())) {
                return Err(SdpError::new(format!(
                    "m-line {} ({kind}) offers no {}: the bridge forwards opus audio and VP8 video",
                    section.mid,
                    kind.codec()
                )));
            }
            if section.direction.sends() {
                for source in section_sources(&section.mid, kind, m)? {
                    if sources.iter().any(|s| s.ssrc == source.ssrc) {
                        return Err(SdpError::new(format!(
                            "m-line {}: ssrc {} is sent on another m-line too",
                            section.mid, source.ssrc
                        )));
                    }
                    section.ssrcs.push(source.ssrc);
                    sources.push(source);
                }
            }
            for codec in &section.codecs {
                let pt = &codec.payload_type;
                if !payload_types.iter().any(|p| p.kind == pt.kind && p.pt == pt.pt) {
                    payload_types.push(pt.clone());
                }
            }
            for ext in &section.extmaps {
                if !header_extensions.iter().any(|h| h.id == ext.id && h.uri == ext.uri) {
                    header_extensions.push(HeaderExtension { id: ext.id, uri: ext.uri.clone() });
                }
            }
        }
        media.push(section);
    }
    if !media.iter().any(|m| m.kind.is_some() && !m.rejected) {
        return Err(SdpError::new("the offer has no audio or video m-line in use"));
    }
    Ok(Offer { ice_ufrag, ice_pwd, fingerprint, sources, payload_types, header_extensions, media })
}

/// The `PATCH /v1/conferences/{c}/endpoints/{e}` body (API.md) for `offer`: its ICE
/// credentials, `dtls.setup` `active` (the bridge is passive), its fingerprint, its sources,
/// the payload types the answer keeps (opus, VP8 and the RTX of VP8) and the header extensions
/// other than [`DROPPED_EXTENSIONS`].
pub fn patch_body(offer: &Offer) -> Value {
    let payload_types: Vec<&PayloadType> =
        offer.payload_types.iter().filter(|p| kept_payload_type(p, &offer.payload_types)).collect();
    let header_extensions: Vec<&HeaderExtension> =
        offer.header_extensions.iter().filter(|h| !DROPPED_EXTENSIONS.contains(&h.uri.as_str())).collect();
    json!({
        "ice": {"ufrag": offer.ice_ufrag, "pwd": offer.ice_pwd},
        "dtls": {"setup": "active", "fingerprint": {"hash": "sha-256", "value": offer.fingerprint}},
        "sources": offer.sources,
        "payload_types": payload_types,
        "header_extensions": header_extensions,
    })
}

/// Size, line count, characters and m-line count, before the parser sees the text. Returns the
/// number of m= lines.
fn check_text(sdp: &str) -> Result<usize, SdpError> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(SdpError::new(format!("the offer has {} bytes; at most {MAX_OFFER_BYTES}", sdp.len())));
    }
    if !sdp.starts_with("v=0") {
        return Err(SdpError::new("an SDP starts with v=0"));
    }
    let mut lines = 0;
    let mut m_lines = 0;
    for (number, line) in sdp.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.chars().any(char::is_control) {
            return Err(SdpError::new(format!("line {}: control character", number + 1)));
        }
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        if lines > MAX_OFFER_LINES {
            return Err(SdpError::new(format!("the offer has more than {MAX_OFFER_LINES} lines")));
        }
        if line_type(line) == Some('m') {
            m_lines += 1;
            if m_lines > MAX_MEDIA_SECTIONS {
                return Err(SdpError::new(format!("the offer has more than {MAX_MEDIA_SECTIONS} m-lines")));
            }
            // webrtc-sdp would skip an m= line it does not support and add the section's
            // attributes to the one before: refuse it here.
            let value = line.split_once('=').map_or("", |(_, v)| v.trim());
            if let Err(e) = webrtc_sdp::media_type::parse_media(value) {
                return Err(SdpError::new(format!("line {}: m= line not supported: {e}", number + 1)));
            }
        }
    }
    Ok(m_lines)
}

/// The type letter of an SDP line as `webrtc-sdp` reads it (`" m =..."` is an m= line too).
fn line_type(line: &str) -> Option<char> {
    let (kind, _) = line.split_once('=')?;
    let mut chars = kind.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c.to_ascii_lowercase()),
        _ => None,
    }
}

fn parser_error(error: &SdpParserError) -> SdpError {
    // Not the error's Display: it quotes the whole line.
    SdpError::new(match error {
        SdpParserError::Line { error, line_number, .. }
        | SdpParserError::Unsupported { error, line_number, .. } => {
            format!("line {}: {error}", line_number + 1)
        }
        SdpParserError::Sequence { message, line_number } if *line_number > 0 => {
            format!("line {}: {message}", line_number + 1)
        }
        SdpParserError::Sequence { message, .. } => message.clone(),
    })
}

fn check_ssrc_count(session: &SdpSession) -> Result<(), SdpError> {
    let mut ssrcs: HashSet<u32> = HashSet::new();
    for m in &session.media {
        for a in m.get_attributes() {
            match a {
                SdpAttribute::Ssrc(s) => {
                    ssrcs.insert(s.id);
                }
                SdpAttribute::SsrcGroup(_, group) => ssrcs.extend(group.iter().map(|s| s.id)),
                _ => {}
            }
            if ssrcs.len() > MAX_SSRCS {
                return Err(SdpError::new(format!("the offer names more than {MAX_SSRCS} SSRCs")));
            }
        }
    }
    Ok(())
}

/// The first value `pick` finds in the m-sections, in order, else at session level.
fn first_media_then_session<T>(session: &SdpSession, pick: impl Fn(&SdpAttribute) -> Option<T>) -> Option<T> {
    session
        .media
        .iter()
        .find_map(|m| m.get_attributes().iter().find_map(&pick))
        .or_else(|| session.attribute.iter().find_map(&pick))
}

/// RFC 8839: `ice-char` is ALPHA / DIGIT / "+" / "/"; ufrag 4 to 256 of them, pwd 22 to 256.
fn check_ice(what: &str, value: &str, min: usize) -> Result<(), SdpError> {
    let ok = (min..=256).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok { Ok(()) } else { Err(SdpError::new(format!("{what}: {min} to 256 of A-Z a-z 0-9 + /"))) }
}

/// A token that can be copied into an SDP line: 1 to `max` visible ASCII characters.
fn is_token(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// `"<stream id> <track id>"` (or one id): each a token of at most 64 characters (RFC 8830).
fn is_msid(value: &str) -> bool {
    let mut ids = value.split(' ');
    let first = ids.next().is_some_and(|id| is_token(id, 64));
    let second = ids.next().is_none_or(|id| is_token(id, 64));
    first && second && ids.next().is_none()
}

fn hex_colons(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

fn media_section(index: usize, m: &SdpMedia) -> Result<MediaSection, SdpError> {
    let attributes = m.get_attributes();
    let mid = attributes
        .iter()
        .find_map(|a| match a {
            SdpAttribute::Mid(mid) => Some(mid.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            SdpError::new(format!("m-line {} has no a=mid (BUNDLE needs one on every m-line)", index + 1))
        })?;
    if !is_token(&mid, 32) {
        return Err(SdpError::new(format!(
            "m-line {}: a=mid is not a token of 1 to 32 characters",
            index + 1
        )));
    }
    let kind = match m.get_type() {
        SdpMediaValue::Audio => Some(MediaKind::Audio),
        SdpMediaValue::Video => Some(MediaKind::Video),
        SdpMediaValue::Application => None,
    };
    let mut direction = None;
    for a in attributes {
        let d = match a {
            SdpAttribute::Sendrecv => Direction::SendRecv,
            SdpAttribute::Sendonly => Direction::SendOnly,
            SdpAttribute::Recvonly => Direction::RecvOnly,
            SdpAttribute::Inactive => Direction::Inactive,
            _ => continue,
        };
        if direction.is_some_and(|seen| seen != d) {
            return Err(SdpError::new(format!("m-line {mid}: more than one direction attribute")));
        }
        direction = Some(d);
    }
    let bundle_only = attributes.iter().any(|a| matches!(a, SdpAttribute::BundleOnly));
    let formats = match m.get_formats() {
        SdpFormatList::Integers(list) => list.iter().map(u32::to_string).collect(),
        SdpFormatList::Strings(list) => list.clone(),
    };
    let (codecs, extmaps) = match kind {
        Some(kind) => (section_codecs(kind, m), section_extmaps(m)),
        None => (Vec::new(), Vec::new()),
    };
    Ok(MediaSection {
        rejected: kind.is_none() || (m.get_port() == 0 && !bundle_only),
        mid,
        kind,
        direction: direction.unwrap_or(Direction::SendRecv),
        protocol: m.get_proto().to_string(),
        formats,
        ssrcs: Vec::new(),
        codecs,
        extmaps,
    })
}

fn section_codecs(kind: MediaKind, m: &SdpMedia) -> Vec<Codec> {
    let SdpFormatList::Integers(formats) = m.get_formats() else { return Vec::new() };
    let attributes = m.get_attributes();
    let mut codecs: Vec<Codec> = Vec::new();
    for &format in formats {
        let Ok(pt) = u8::try_from(format) else { continue };
        if codecs.iter().any(|c| c.payload_type.pt == pt) {
            continue;
        }
        // Static payload types without a=rtpmap (0 PCMU, 8 PCMA) are not used by WebRTC clients.
        let Some(rtpmap) = attributes.iter().find_map(|a| match a {
            SdpAttribute::Rtpmap(r) if r.payload_type == pt => Some(r),
            _ => None,
        }) else {
            continue;
        };
        let parameters = attributes.iter().find_map(|a| match a {
            SdpAttribute::Fmtp(f) if f.payload_type == pt => Some(&f.parameters),
            _ => None,
        });
        let feedback = attributes
            .iter()
            .filter_map(|a| match a {
                SdpAttribute::Rtcpfb(fb) => match fb.payload_type {
                    SdpAttributePayloadType::PayloadType(p) if p == pt => Some(feedback_text(fb)),
                    SdpAttributePayloadType::Wildcard => Some(feedback_text(fb)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        codecs.push(Codec {
            payload_type: PayloadType {
                pt,
                kind,
                name: rtpmap.codec_name.clone(),
                clock_rate: rtpmap.frequency,
                channels: match kind {
                    MediaKind::Audio => Some(rtpmap.channels.unwrap_or(1)),
                    MediaKind::Video => None,
                },
                apt: parameters.and_then(|p| p.rtx).map(|rtx| rtx.apt),
            },
            fmtp: parameters.map(fmtp_text).filter(|text| !text.is_empty()),
            feedback,
        });
    }
    codecs
}

fn feedback_text(fb: &SdpAttributeRtcpFb) -> String {
    let mut text = fb.feedback_type.to_string();
    if !fb.parameter.is_empty() {
        text.push(' ');
        text.push_str(&fb.parameter);
        if !fb.extra.is_empty() {
            text.push(' ');
            text.push_str(&fb.extra);
        }
    }
    text
}

/// The fmtp parameters as `webrtc-sdp` writes them, except that it joins unknown parameters
/// with "," (`stereo=1;a=1,b=2`): they are joined with ";" here.
fn fmtp_text(parameters: &SdpAttributeFmtpParameters) -> String {
    let mut known = parameters.clone();
    let unknown = std::mem::take(&mut known.unknown_tokens);
    let mut text = known.to_string();
    let plain =
        parameters.rtx.is_none() && parameters.dtmf_tones.is_empty() && parameters.encodings.is_empty();
    if plain {
        for token in unknown {
            if !text.is_empty() {
                text.push(';');
            }
            text.push_str(&token);
        }
    }
    text
}

fn section_extmaps(m: &SdpMedia) -> Vec<Extmap> {
    m.get_attributes()
        .iter()
        .filter_map(|a| match a {
            SdpAttribute::Extmap(e) => Some(Extmap { id: e.id, uri: e.url.clone(), value: e.to_string() }),
            _ => None,
        })
        .collect()
}

/// The sources a sending m-section announces: its primary SSRCs (not the second of an FID or
/// FEC-FR group) with msid and RTX SSRC.
fn section_sources(mid: &str, kind: MediaKind, m: &SdpMedia) -> Result<Vec<Source>, SdpError> {
    let attributes = m.get_attributes();
    let mut fid: Vec<(u32, u32)> = Vec::new();
    let mut secondary: HashSet<u32> = HashSet::new();
    for a in attributes {
        if let SdpAttribute::SsrcGroup(semantic, group) = a {
            let (fid_group, fec) = match semantic {
                SdpSsrcGroupSemantic::FlowIdentification => (true, false),
                SdpSsrcGroupSemantic::ForwardErrorCorrectionFr => (false, true),
                _ => (false, false),
            };
            if (fid_group || fec) && group.len() >= 2 {
                if fid_group && !fid.iter().any(|(primary, _)| *primary == group[0].id) {
                    fid.push((group[0].id, group[1].id));
                }
                secondary.insert(group[1].id);
            }
        }
    }
    let line_msid = attributes.iter().find_map(|a| match a {
        SdpAttribute::Msid(msid) => Some(match &msid.appdata {
            Some(track) => format!("{} {track}", msid.id),
            None => msid.id.clone(),
        }),
        _ => None,
    });
    let mut order: Vec<u32> = Vec::new();
    for a in attributes {
        if let SdpAttribute::Ssrc(s) = a {
            if !order.contains(&s.id) {
                order.push(s.id);
            }
        }
    }
    let mut sources = Vec::new();
    for ssrc in order {
        if secondary.contains(&ssrc) {
            continue;
        }
        let ssrc_msid = attributes.iter().find_map(|a| match a {
            SdpAttribute::Ssrc(s) if s.id == ssrc && s.attribute.as_deref() == Some("msid") => {
                s.value.clone()
            }
            _ => None,
        });
        let raw = line_msid.clone().or(ssrc_msid).unwrap_or_default();
        let msid = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if !msid.is_empty() && !is_msid(&msid) {
            return Err(SdpError::new(format!(
                "m-line {mid}: the msid of ssrc {ssrc} is not \"<stream id> <track id>\" of tokens up to 64 characters"
            )));
        }
        let rtx_ssrc = fid.iter().find(|(primary, _)| *primary == ssrc).map(|(_, rtx)| *rtx);
        sources.push(Source { ssrc, kind, msid, rtx_ssrc });
    }
    Ok(sources)
}

/// Opus and VP8 are kept; an `rtx` payload type when the one it repairs (of the same kind, in
/// `all`) is.
fn kept_payload_type(pt: &PayloadType, all: &[PayloadType]) -> bool {
    if pt.name.eq_ignore_ascii_case("rtx") {
        pt.apt.is_some_and(|apt| {
            all.iter()
                .any(|p| p.kind == pt.kind && p.pt == apt && p.name.eq_ignore_ascii_case(p.kind.codec()))
        })
    } else {
        pt.name.eq_ignore_ascii_case(pt.kind.codec())
    }
}

// ------------------------------------------------------------------------------------------------
// The answer

/// The answer to `offer` for one participant (API.md, "Writing the answer").
///
/// - Session: `a=ice-lite`, `a=group:BUNDLE` of the mids in use, the bridge's ICE credentials and
///   fingerprint, `a=setup:passive`. `o=- <id> <version>`: the id is fixed by the bridge
///   endpoint (its ufrag); pass the offer's epoch as `version`, so that it grows with each
///   renegotiation.
/// - Every m-line in use: the offer's mid, the first candidate's address and port, `a=rtcp-mux`,
///   every candidate, `a=end-of-candidates`. Codecs: opus (audio), VP8 and its RTX (video),
///   with `nack`, `nack pli`, `ccm fir` feedback only; the offer's header extensions but
///   [`DROPPED_EXTENSIONS`].
/// - The participant's sending m-lines: `recvonly`. Each `recvonly` one: `sendonly` with the next
///   of `others` of its kind (in the order given: `a=msid`, `a=ssrc:<ssrc> cname:<participant>`,
///   and for RTX `a=ssrc-group:FID` and the RTX SSRC's `a=ssrc`), or `inactive` when none is
///   left. `inactive` ones stay `inactive`.
/// - Rejected m-lines (data channels, port 0): port 0, `inactive`, outside BUNDLE.
///
/// Errors: no candidate, a malformed bridge value or source; and, for an [`Offer`] not made by
/// [`parse_offer`] (which refuses those), an m-line in use that offers no opus (audio) or no VP8
/// (video), or no m-line in use at all.
pub fn compose_answer(
    offer: &Offer,
    bridge: &BridgeEndpoint,
    others: &[RemoteSource],
    version: u64,
) -> Result<Answer, SdpError> {
    check_bridge(bridge)?;
    check_others(others)?;
    let fingerprint = bridge.fingerprint.to_ascii_uppercase();
    let main = &bridge.candidates[0];
    let (net, ip) = match main.ip {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };

    let mut pending: Vec<Option<&RemoteSource>> = others.iter().map(Some).collect();
    let mut tracks = Vec::new();
    let mut bundle: Vec<&str> = Vec::new();
    let mut body = String::new();
    for section in &offer.media {
        let mid = section.mid.as_str();
        let kind = match (section.kind, section.rejected) {
            (Some(kind), false) => kind,
            _ => {
                let media = section.kind.map_or("application", MediaKind::as_str);
                line(
                    &mut body,
                    format_args!("m={media} 0 {} {}", section.protocol, section.formats.join(" ")),
                );
                line(&mut body, format_args!("c=IN {net} {ip}"));
                line(&mut body, format_args!("a=mid:{mid}"));
                line(&mut body, format_args!("a=inactive"));
                continue;
            }
        };

        let primary: Vec<u8> = section
            .codecs
            .iter()
            .filter(|c| c.payload_type.name.eq_ignore_ascii_case(kind.codec()))
            .map(|c| c.payload_type.pt)
            .collect();
        if primary.is_empty() {
            return Err(SdpError::new(format!("m-line {mid} ({kind}) offers no {}", kind.codec())));
        }
        let kept: Vec<&Codec> = section
            .codecs
            .iter()
            .filter(|c| {
                let p = &c.payload_type;
                primary.contains(&p.pt)
                    || (p.name.eq_ignore_ascii_case("rtx") && p.apt.is_some_and(|a| primary.contains(&a)))
            })
            .collect();

        let mut source = None;
        let direction = match section.direction {
            Direction::SendRecv | Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => {
                let next = pending.iter_mut().find(|s| s.is_some_and(|s| s.kind == kind));
                match next.and_then(Option::take) {
                    Some(s) => {
                        source = Some(s);
                        Direction::SendOnly
                    }
                    None => Direction::Inactive,
                }
            }
            Direction::Inactive => Direction::Inactive,
        };

        bundle.push(mid);
        let pts: Vec<String> = kept.iter().map(|c| c.payload_type.pt.to_string()).collect();
        line(&mut body, format_args!("m={kind} {} {} {}", main.port, section.protocol, pts.join(" ")));
        line(&mut body, format_args!("c=IN {net} {ip}"));
        line(&mut body, format_args!("a=mid:{mid}"));
        line(&mut body, format_args!("a={direction}"));
        line(&mut body, format_args!("a=rtcp-mux"));
        for codec in &kept {
            let p = &codec.payload_type;
            match p.channels {
                Some(channels) if channels != 1 => {
                    line(&mut body, format_args!("a=rtpmap:{} {}/{}/{channels}", p.pt, p.name, p.clock_rate));
                }
                _ => line(&mut body, format_args!("a=rtpmap:{} {}/{}", p.pt, p.name, p.clock_rate)),
            }
            if let Some(fmtp) = &codec.fmtp {
                line(&mut body, format_args!("a=fmtp:{} {fmtp}", p.pt));
            }
            for fb in codec.feedback.iter().filter(|fb| KEPT_FEEDBACK.contains(&fb.as_str())) {
                line(&mut body, format_args!("a=rtcp-fb:{} {fb}", p.pt));
            }
        }
        for ext in section.extmaps.iter().filter(|e| !DROPPED_EXTENSIONS.contains(&e.uri.as_str())) {
            line(&mut body, format_args!("a=extmap:{}", ext.value));
        }
        if let Some(s) = source {
            let cname = &s.participant;
            if s.msid.is_empty() {
                line(&mut body, format_args!("a=msid:{cname} {cname}-{}", s.ssrc));
            } else {
                line(&mut body, format_args!("a=msid:{}", s.msid));
            }
            if let Some(rtx) = s.rtx_ssrc {
                line(&mut body, format_args!("a=ssrc-group:FID {} {rtx}", s.ssrc));
            }
            line(&mut body, format_args!("a=ssrc:{} cname:{cname}", s.ssrc));
            if let Some(rtx) = s.rtx_ssrc {
                line(&mut body, format_args!("a=ssrc:{rtx} cname:{cname}"));
            }
            tracks.push(Track { mid: mid.to_owned(), id: s.participant.clone(), kind });
        }
        for c in &bridge.candidates {
            line(
                &mut body,
                format_args!(
                    "a=candidate:{} 1 udp {} {} {} typ host",
                    c.foundation, c.priority, c.ip, c.port
                ),
            );
        }
        line(&mut body, format_args!("a=end-of-candidates"));
    }
    if bundle.is_empty() {
        return Err(SdpError::new("the offer has no audio or video m-line in use"));
    }

    let mut sdp = String::with_capacity(body.len() + 512);
    line(&mut sdp, format_args!("v=0"));
    line(&mut sdp, format_args!("o=- {} {version} IN {net} {ip}", session_id(&bridge.ufrag)));
    line(&mut sdp, format_args!("s=-"));
    line(&mut sdp, format_args!("t=0 0"));
    line(&mut sdp, format_args!("a=ice-lite"));
    line(&mut sdp, format_args!("a=group:BUNDLE {}", bundle.join(" ")));
    line(&mut sdp, format_args!("a=msid-semantic: WMS *"));
    line(&mut sdp, format_args!("a=ice-ufrag:{}", bridge.ufrag));
    line(&mut sdp, format_args!("a=ice-pwd:{}", bridge.pwd));
    line(&mut sdp, format_args!("a=fingerprint:sha-256 {fingerprint}"));
    line(&mut sdp, format_args!("a=setup:passive"));
    sdp.push_str(&body);
    let unassigned = pending.into_iter().flatten().cloned().collect();
    Ok(Answer { sdp, tracks, unassigned })
}

fn line(out: &mut String, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
    out.push_str("\r\n");
}

/// A stable `o=` session id for one bridge endpoint: FNV-1a of its ufrag, below 2^62.
fn session_id(ufrag: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ufrag.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash >> 2
}

fn check_bridge(bridge: &BridgeEndpoint) -> Result<(), SdpError> {
    let ice = |v: &str| {
        !v.is_empty()
            && v.len() <= 256
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    if !ice(&bridge.ufrag) || !ice(&bridge.pwd) {
        return Err(SdpError::new("the bridge's ICE ufrag or pwd is not 1 to 256 of A-Z a-z 0-9 + /"));
    }
    let bytes: Vec<&str> = bridge.fingerprint.split(':').collect();
    if bytes.len() != 32 || !bytes.iter().all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())) {
        return Err(SdpError::new("the bridge's fingerprint is not 32 hex bytes separated by ':' (sha-256)"));
    }
    if bridge.candidates.is_empty() {
        return Err(SdpError::new("the bridge endpoint has no ICE candidates"));
    }
    for c in &bridge.candidates {
        if !(1..=32).contains(&c.foundation.len())
            || !c.foundation.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(SdpError::new("a bridge candidate's foundation is not 1 to 32 of A-Z a-z 0-9 + /"));
        }
    }
    Ok(())
}

fn check_others(others: &[RemoteSource]) -> Result<(), SdpError> {
    let mut ssrcs: HashSet<u32> = HashSet::new();
    for s in others {
        if !is_token(&s.participant, 64) {
            return Err(SdpError::new(format!("source {}: the participant id is not a token", s.ssrc)));
        }
        if !s.msid.is_empty() && !is_msid(&s.msid) {
            return Err(SdpError::new(format!(
                "source {}: the msid is not \"<stream id> <track id>\" of tokens up to 64 characters",
                s.ssrc
            )));
        }
        for ssrc in std::iter::once(s.ssrc).chain(s.rtx_ssrc) {
            if !ssrcs.insert(ssrc) {
                return Err(SdpError::new(format!("ssrc {ssrc} is in more than one source")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
