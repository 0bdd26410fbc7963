//! The SDP a loadgen participant offers through the signaling daemon, and what it reads from
//! the daemon's answer (PROTOCOL.md, "Media topology").
//!
//! The offer is what Chromium offers for the bridge, cut down to what signaling/src/sdp.rs
//! reads: one BUNDLE group with `rtcp-mux`, our ICE credentials and sha-256 fingerprint with
//! `setup:actpass` on every m-line, then
//!
//! ```text
//! mid 0        audio sendonly   opus/48000/2, audio-level extmap, a=ssrc + msid
//! mid 1        video sendonly   VP8/90000 + rtx (apt), FID ssrc-group, a=ssrc + msid
//! mid 2k+2     audio recvonly   \  one pair per other member, in the order the daemon
//! mid 2k+3     video recvonly   /  assigns them (k = 0, 1, ...)
//! ```
//!
//! The SSRCs, payload types and extension id are the ones loadgen puts on the wire ([`wire`]),
//! so the bridge sees the same streams as through the control API. A renegotiation offers the
//! same credentials and mids with more `recvonly` pairs appended (RFC 3264 §8: m-lines are
//! never removed), and a higher `o=` version.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::join::Offer;
use super::wire::{self, StreamKind};

/// The RTX payload type of VP8 in the offer, as Chromium numbers it.
pub const VIDEO_RTX_PT: u8 = 97;
/// The most other members one offer can receive: signaling refuses offers of more than 64
/// m-lines (signaling/src/sdp.rs, `MAX_MEDIA_SECTIONS`), and we send on two.
pub const MAX_OTHERS: usize = 31;

/// The RFC 4588 retransmission SSRC announced for a participant's video. loadgen never sends
/// on it (it sends no NACKs, so nobody retransmits to it either); it is there because a
/// browser announces one and the daemon passes it to the bridge. Outside the range of
/// [`wire::ssrc`], so it can never be mistaken for a stream.
pub fn rtx_ssrc(participant: u32) -> u32 {
    0x4D00_0000 + participant
}

fn msid(participant: u32, kind: StreamKind) -> String {
    format!("loadgen-{participant} {}", kind.name())
}

/// The offer of `offer.participant` receiving `others` other members, with `o=` version
/// `version` (grows with every offer of the same session).
pub fn offer(offer: &Offer<'_>, others: usize, version: u64) -> String {
    let p = offer.participant;
    let cname = format!("loadgen-{p}");
    let sections = 2 + 2 * others;
    let mids: Vec<String> = (0..sections).map(|m| m.to_string()).collect();
    let mut sdp = String::with_capacity(600 * sections);
    let mut line = |args: std::fmt::Arguments<'_>| {
        let _ = sdp.write_fmt(args);
        sdp.push_str("\r\n");
    };
    line(format_args!("v=0"));
    // The session id stays the same for every offer of the run; the version grows.
    line(format_args!("o=- {} {version} IN IP4 127.0.0.1", 0x4C47_0000_0000_u64 + u64::from(p)));
    line(format_args!("s=-"));
    line(format_args!("t=0 0"));
    line(format_args!("a=group:BUNDLE {}", mids.join(" ")));
    line(format_args!("a=msid-semantic: WMS {cname}"));
    for (m, mid) in mids.iter().enumerate() {
        let kind = if m % 2 == 0 { StreamKind::Audio } else { StreamKind::Video };
        let sends = m < 2;
        match kind {
            StreamKind::Audio => {
                line(format_args!("m=audio 9 UDP/TLS/RTP/SAVPF {}", wire::AUDIO_PT));
            }
            StreamKind::Video => {
                line(format_args!("m=video 9 UDP/TLS/RTP/SAVPF {} {VIDEO_RTX_PT}", wire::VIDEO_PT));
            }
        }
        line(format_args!("c=IN IP4 0.0.0.0"));
        line(format_args!("a=rtcp:9 IN IP4 0.0.0.0"));
        line(format_args!("a=ice-ufrag:{}", offer.ice_ufrag));
        line(format_args!("a=ice-pwd:{}", offer.ice_pwd));
        line(format_args!("a=fingerprint:sha-256 {}", offer.fingerprint));
        // We open DTLS as the client (connect.rs); actpass lets the bridge be the server.
        line(format_args!("a=setup:actpass"));
        line(format_args!("a=mid:{mid}"));
        if kind == StreamKind::Audio {
            line(format_args!("a=extmap:{} {}", offer.audio_level_id, wire::AUDIO_LEVEL_URI));
        }
        line(format_args!("a={}", if sends { "sendonly" } else { "recvonly" }));
        if sends {
            line(format_args!("a=msid:{}", msid(p, kind)));
        }
        line(format_args!("a=rtcp-mux"));
        match kind {
            StreamKind::Audio => {
                line(format_args!("a=rtpmap:{} opus/{}/2", wire::AUDIO_PT, wire::AUDIO_CLOCK));
                line(format_args!("a=fmtp:{} minptime=10;useinbandfec=1", wire::AUDIO_PT));
            }
            StreamKind::Video => {
                let (pt, clock) = (wire::VIDEO_PT, wire::VIDEO_CLOCK);
                line(format_args!("a=rtpmap:{pt} VP8/{clock}"));
                for feedback in ["nack", "nack pli", "ccm fir"] {
                    line(format_args!("a=rtcp-fb:{pt} {feedback}"));
                }
                line(format_args!("a=rtpmap:{VIDEO_RTX_PT} rtx/{clock}"));
                line(format_args!("a=fmtp:{VIDEO_RTX_PT} apt={pt}"));
            }
        }
        if sends {
            let ssrc = wire::ssrc(p, kind);
            let mut ssrcs = vec![ssrc];
            if kind == StreamKind::Video {
                line(format_args!("a=ssrc-group:FID {ssrc} {}", rtx_ssrc(p)));
                ssrcs.push(rtx_ssrc(p));
            }
            for s in ssrcs {
                line(format_args!("a=ssrc:{s} cname:{cname}"));
                line(format_args!("a=ssrc:{s} msid:{}", msid(p, kind)));
            }
        }
    }
    sdp
}

/// What loadgen needs from the daemon's answer: the bridge's side of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSide {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// The bridge's sha-256 certificate fingerprint, `AB:CD:...`.
    pub fingerprint: String,
    /// The UDP host candidates, in answer order, each once.
    pub candidates: Vec<SocketAddr>,
}

impl BridgeSide {
    /// The first IPv4 candidate (loadgen speaks IPv4).
    pub fn ipv4_candidate(&self) -> Option<SocketAddr> {
        self.candidates.iter().copied().find(SocketAddr::is_ipv4)
    }
}

/// Reads the bridge's ICE credentials, fingerprint and candidates from an answer, and checks
/// that it makes the bridge the DTLS server (loadgen is always the client).
pub fn read_answer(sdp: &str) -> Result<BridgeSide, String> {
    let (mut ufrag, mut pwd, mut fingerprint, mut setup) = (None, None, None, None);
    let mut candidates: Vec<SocketAddr> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        let Some(attribute) = line.strip_prefix("a=") else { continue };
        let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
        match name {
            "ice-ufrag" => _ = ufrag.get_or_insert(value),
            "ice-pwd" => _ = pwd.get_or_insert(value),
            "fingerprint" => {
                if let Some(hex) = value.strip_prefix("sha-256 ") {
                    fingerprint.get_or_insert(hex.trim());
                }
            }
            "setup" => _ = setup.get_or_insert(value),
            "candidate" => {
                if let Some(addr) = udp_candidate(value)
                    && !candidates.contains(&addr)
                {
                    candidates.push(addr);
                }
            }
            _ => {}
        }
    }
    if setup.is_some_and(|s| s != "passive") {
        return Err(format!(
            "the answer has a=setup:{}; loadgen is the DTLS client only",
            setup.unwrap_or("")
        ));
    }
    let missing = |what: &str| format!("the answer has no {what}");
    if candidates.is_empty() {
        return Err(missing("UDP candidate"));
    }
    Ok(BridgeSide {
        ice_ufrag: ufrag.ok_or_else(|| missing("a=ice-ufrag"))?.to_owned(),
        ice_pwd: pwd.ok_or_else(|| missing("a=ice-pwd"))?.to_owned(),
        fingerprint: fingerprint.ok_or_else(|| missing("a=fingerprint:sha-256"))?.to_owned(),
        candidates,
    })
}

/// `<foundation> <component> udp <priority> <ip> <port> typ <type> ...` (RFC 8839 §5.1), RTP
/// component only.
fn udp_candidate(value: &str) -> Option<SocketAddr> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [_, component, transport, _, ip, port, ..] = fields[..] else { return None };
    if component != "1" || !transport.eq_ignore_ascii_case("udp") {
        return None;
    }
    Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use signaling::sdp::{
        BridgeEndpoint, Candidate, Direction, MediaKind, RemoteSource, compose_answer, parse_offer,
    };

    use super::*;

    /// 32 bytes, as a SHA-256 fingerprint has.
    const FINGERPRINT: &str =
        "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    fn ours(participant: u32) -> Offer<'static> {
        Offer {
            participant,
            conference: 0,
            ice_ufrag: "a1b2c3d4",
            ice_pwd: "0123456789abcdef01234567",
            fingerprint: FINGERPRINT,
            audio_level_id: 3,
        }
    }

    /// The daemon reads our offer as what we send on the wire: our two SSRCs (video with its
    /// RTX), opus 111 and VP8 96 with RTX 97, the audio level under our id, and two receiving
    /// m-lines per other member.
    #[test]
    fn the_daemon_reads_our_offer_as_our_streams() {
        let sdp = offer(&ours(5), 2, 7);
        let parsed = parse_offer(&sdp).expect("the daemon accepts the offer");
        assert_eq!(parsed.ice_ufrag, "a1b2c3d4");
        assert_eq!(parsed.fingerprint, ours(5).fingerprint);
        let sources: Vec<(u32, MediaKind, Option<u32>)> =
            parsed.sources.iter().map(|s| (s.ssrc, s.kind, s.rtx_ssrc)).collect();
        assert_eq!(
            sources,
            [
                (wire::ssrc(5, StreamKind::Audio), MediaKind::Audio, None),
                (wire::ssrc(5, StreamKind::Video), MediaKind::Video, Some(rtx_ssrc(5))),
            ]
        );
        assert_eq!(parsed.sources[0].msid, "loadgen-5 audio");
        let pts: Vec<(u8, &str)> = parsed.payload_types.iter().map(|p| (p.pt, p.name.as_str())).collect();
        assert_eq!(pts, [(111, "opus"), (96, "VP8"), (97, "rtx")]);
        assert_eq!(parsed.payload_types[0].channels, Some(2));
        assert_eq!(parsed.payload_types[2].apt, Some(96));
        assert_eq!(parsed.header_extensions.len(), 1);
        assert_eq!(
            (parsed.header_extensions[0].id, parsed.header_extensions[0].uri.as_str()),
            (3, wire::AUDIO_LEVEL_URI)
        );
        let directions: Vec<Direction> = parsed.media.iter().map(|m| m.direction).collect();
        assert_eq!(directions[..2], [Direction::SendOnly, Direction::SendOnly]);
        assert_eq!(directions[2..], [Direction::RecvOnly; 4]);
        assert!(parse_offer(&offer(&ours(0), MAX_OTHERS, 1)).is_ok(), "the largest offer fits");
        assert!(parse_offer(&offer(&ours(0), MAX_OTHERS + 1, 1)).is_err());
    }

    /// Through the daemon's own answer writer: the bridge's credentials, fingerprint and
    /// candidates come back out, and each other member gets an m-line pair.
    #[test]
    fn the_daemons_answer_gives_the_bridge_side() {
        let parsed = parse_offer(&offer(&ours(0), 2, 1)).unwrap();
        let bridge = BridgeEndpoint {
            ufrag: "brdg".into(),
            pwd: "bridgepassword0123456789".into(),
            candidates: vec![
                Candidate { foundation: "1".into(), priority: 100, ip: "::1".parse().unwrap(), port: 9 },
                Candidate {
                    foundation: "2".into(),
                    priority: 90,
                    ip: "127.0.0.1".parse().unwrap(),
                    port: 10000,
                },
            ],
            fingerprint: ours(0).fingerprint.replace("AB", "CD"),
        };
        let others: Vec<RemoteSource> = [1, 2]
            .into_iter()
            .flat_map(|p| {
                StreamKind::BOTH.map(|kind| RemoteSource {
                    participant: format!("member{p}"),
                    kind: if kind == StreamKind::Audio { MediaKind::Audio } else { MediaKind::Video },
                    ssrc: wire::ssrc(p, kind),
                    msid: msid(p, kind),
                    rtx_ssrc: (kind == StreamKind::Video).then(|| rtx_ssrc(p)),
                })
            })
            .collect();
        let answer = compose_answer(&parsed, &bridge, &others, 1).unwrap();
        assert_eq!(answer.tracks.len(), 4);
        assert!(answer.unassigned.is_empty());
        let side = read_answer(&answer.sdp).unwrap();
        assert_eq!((side.ice_ufrag.as_str(), side.ice_pwd.as_str()), ("brdg", "bridgepassword0123456789"));
        assert_eq!(side.fingerprint, bridge.fingerprint);
        assert_eq!(side.candidates.len(), 2, "each candidate once, though every m-line repeats it");
        assert_eq!(side.ipv4_candidate(), Some("127.0.0.1:10000".parse().unwrap()));
    }

    #[test]
    fn answers_we_cannot_use_are_refused() {
        let good = "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AA\r\na=setup:passive\r\n\
                    a=candidate:1 1 udp 1 127.0.0.1 5 typ host\r\n";
        assert!(read_answer(good).is_ok());
        assert!(read_answer(&good.replace("passive", "active")).unwrap_err().contains("setup"));
        assert!(read_answer(&good.replace(" udp ", " tcp ")).unwrap_err().contains("candidate"));
        assert!(read_answer(&good.replace("sha-256", "sha-1")).unwrap_err().contains("fingerprint"));
    }
}
