//! The offer parser and the answer writer, on the real offers of Chromium 156 and aiortc 1.16
//! (bridge/tests/clients/fixtures: own audio and video sendonly, two recvonly audio, two recvonly
//! video) and against what bridge/tests/clients/sfu.py makes of them.
//!
//! testdata/*_answer.sdp and testdata/*_patch.json are sfu.py's answers and PATCH bodies for the
//! three-participant meeting of test_sfu.py (this participant, then `00000000000000b0` and
//! `00000000000000c0`), made in bridge/tests/clients with:
//!
//! ```python
//! import json, sfu, test_sfu
//! for name in ("chromium", "aiortc"):
//!     text = test_sfu.fixture(f"{name}_offer.sdp")
//!     sources = sfu.other_sources(test_sfu.CONFERENCE, test_sfu.ENDPOINT["id"])
//!     answer = sfu.compose_answer(text, test_sfu.ENDPOINT, sources, codecs=("opus", "VP8"))
//!     open(f"{name}_answer.sdp", "w", newline="").write(answer.sdp)
//!     body = sfu.patch_body(sfu.parse_offer(text), codecs=("opus", "VP8"))
//!     open(f"{name}_patch.json", "w").write(json.dumps(body, indent=1) + "\n")
//! ```

use proptest::prelude::*;
use webrtc_sdp::attribute_type::SdpAttribute;

use super::*;

const CHROMIUM: &str = include_str!("../../../bridge/tests/clients/fixtures/chromium_offer.sdp");
const AIORTC: &str = include_str!("../../../bridge/tests/clients/fixtures/aiortc_offer.sdp");
const CHROMIUM_ANSWER: &str = include_str!("testdata/chromium_answer.sdp");
const AIORTC_ANSWER: &str = include_str!("testdata/aiortc_answer.sdp");
const CHROMIUM_PATCH: &str = include_str!("testdata/chromium_patch.json");
const AIORTC_PATCH: &str = include_str!("testdata/aiortc_patch.json");

const FP: &str =
    "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
const B: &str = "00000000000000b0";
const C: &str = "00000000000000c0";

fn bridge() -> BridgeEndpoint {
    BridgeEndpoint {
        ufrag: "k3XrV2c9".into(),
        pwd: "Zq0m6b1yJ4tW8pV3sN7cA2dE".into(),
        candidates: vec![Candidate {
            foundation: "1".into(),
            priority: 2130706431,
            ip: "127.0.0.1".parse().unwrap(),
            port: 10000,
        }],
        fingerprint: FP.into(),
    }
}

fn remote(participant: &str, kind: MediaKind, ssrc: u32, msid: &str, rtx_ssrc: Option<u32>) -> RemoteSource {
    RemoteSource { participant: participant.into(), kind, ssrc, msid: msid.into(), rtx_ssrc }
}

/// The other two participants' sources, in the conference's endpoint order (sfu.other_sources).
fn others() -> Vec<RemoteSource> {
    vec![
        remote(B, MediaKind::Audio, 1001, "stream-b track-b1", None),
        remote(B, MediaKind::Video, 1002, "stream-b track-b2", Some(1003)),
        remote(C, MediaKind::Audio, 2001, "stream-c track-c1", None),
        remote(C, MediaKind::Video, 2002, "stream-c track-c2", Some(2003)),
    ]
}

fn answer_for(offer_text: &str) -> Answer {
    compose_answer(&parse_offer(offer_text).unwrap(), &bridge(), &others(), 7).unwrap()
}

/// An SDP split into its session lines and its m-sections (each starting with its m= line).
struct Parsed<'a> {
    session: Vec<&'a str>,
    media: Vec<Vec<&'a str>>,
}

fn split(sdp: &str) -> Parsed<'_> {
    let mut parsed = Parsed { session: Vec::new(), media: Vec::new() };
    for line in sdp.lines() {
        if line.starts_with("m=") {
            parsed.media.push(vec![line]);
        } else if let Some(m) = parsed.media.last_mut() {
            m.push(line);
        } else {
            parsed.session.push(line);
        }
    }
    parsed
}

/// The values of `a=<name>:<value>` (`""` for a flag `a=<name>`) among `lines`.
fn attrs<'a>(lines: &[&'a str], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("a="))
        .filter_map(|a| match a.split_once(':') {
            Some((n, v)) if n == name => Some(v),
            None if a == name => Some(""),
            _ => None,
        })
        .collect()
}

fn direction_of<'a>(m: &[&'a str]) -> Vec<&'a str> {
    m.iter()
        .filter_map(|l| l.strip_prefix("a="))
        .filter(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
        .collect()
}

// --------------------------------------------------------------------------------------------
// Offers

#[test]
fn chromium_offer() {
    let o = parse_offer(CHROMIUM).unwrap();
    assert_eq!((o.ice_ufrag.as_str(), o.ice_pwd.as_str()), ("hbXO", "e+ZaYx4WZMo6yl6e2y5xzLS3"));
    assert_eq!(
        o.fingerprint,
        "AE:99:C4:A9:67:C6:3B:06:F3:BC:2F:75:39:C4:74:0A:E5:14:33:B3:42:E9:AA:AD:39:7F:2B:DC:86:8C:41:A0"
    );
    let stream = "efdfe4d0-1611-4f65-82b7-8cf70eecee6f";
    assert_eq!(
        o.sources,
        vec![
            Source {
                ssrc: 3907202182,
                kind: MediaKind::Audio,
                msid: format!("{stream} 6288aa11-7bdb-40d8-abe2-f6cd09f39d94"),
                rtx_ssrc: None
            },
            Source {
                ssrc: 2991698661,
                kind: MediaKind::Video,
                msid: format!("{stream} 7599b09d-2185-40bb-bbd3-9349b7daa75a"),
                rtx_ssrc: Some(4058958742)
            },
        ]
    );
    // As sfu.parse_offer counts them: every (kind, pt) with an rtpmap, every (id, uri).
    assert_eq!(o.payload_types.len(), 42);
    assert_eq!(o.header_extensions.len(), 12);
    let pt = |kind, pt| o.payload_types.iter().find(|p| p.kind == kind && p.pt == pt).unwrap();
    assert_eq!(
        *pt(MediaKind::Audio, 111),
        PayloadType {
            pt: 111,
            kind: MediaKind::Audio,
            name: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
            apt: None
        }
    );
    assert_eq!(pt(MediaKind::Video, 97).apt, Some(96));
    assert_eq!(pt(MediaKind::Video, 35).name, "VP9", "the recvonly m-lines offer more than the sending one");
    assert!(
        o.header_extensions
            .contains(&HeaderExtension { id: 1, uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into() })
    );

    let layout: Vec<_> = o.media.iter().map(|m| (m.mid.as_str(), m.kind, m.direction, m.rejected)).collect();
    use Direction::*;
    use MediaKind::*;
    assert_eq!(
        layout,
        [
            ("0", Some(Audio), SendOnly, false),
            ("1", Some(Video), SendOnly, false),
            ("2", Some(Audio), RecvOnly, false),
            ("3", Some(Audio), RecvOnly, false),
            ("4", Some(Video), RecvOnly, false),
            ("5", Some(Video), RecvOnly, false),
        ]
    );
    let ssrcs: Vec<_> = o.media.iter().map(|m| m.ssrcs.clone()).collect();
    assert_eq!(ssrcs, [vec![3907202182], vec![2991698661], vec![], vec![], vec![], vec![]]);
    let opus = &o.media[0].codecs[0];
    assert_eq!(opus.fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
    assert_eq!(opus.feedback, ["transport-cc"]);
    let vp8 = &o.media[1].codecs[0];
    assert_eq!(vp8.feedback, ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]);
    assert_eq!(o.media[1].protocol, "UDP/TLS/RTP/SAVPF");
}

#[test]
fn aiortc_offer() {
    let o = parse_offer(AIORTC).unwrap();
    assert_eq!((o.ice_ufrag.as_str(), o.ice_pwd.as_str()), ("bThW", "oOz1w1HO3Jm0EUmXkgZ1C6"));
    // aiortc lists sha-256, sha-384 and sha-512: the sha-256 one is taken.
    assert_eq!(
        o.fingerprint,
        "0E:F5:D8:6B:24:6F:61:C9:5F:1B:6D:44:85:F4:6F:94:79:E8:DE:06:C2:AB:F4:59:D1:76:BA:69:63:3F:9F:19"
    );
    // aiortc also puts a=ssrc lines on its recvonly m-lines: those are not sources.
    let stream = "e2c824c7-84bc-491b-95a0-d3a1c310af64";
    assert_eq!(
        o.sources,
        vec![
            Source {
                ssrc: 69382287,
                kind: MediaKind::Audio,
                msid: format!("{stream} 40bd2f7f-ff27-4ce7-b046-d009c22436ee"),
                rtx_ssrc: None
            },
            Source {
                ssrc: 1239941976,
                kind: MediaKind::Video,
                msid: format!("{stream} 1a8f41f5-d14c-469d-889a-9e018f3ebf99"),
                rtx_ssrc: Some(2406208245)
            },
        ]
    );
    assert_eq!(o.payload_types.len(), 10);
    assert_eq!(o.header_extensions.len(), 3);
    assert!(o.media[2].ssrcs.is_empty());
}

#[test]
fn patch_bodies_are_those_of_sfu_py() {
    for (offer, expected) in [(CHROMIUM, CHROMIUM_PATCH), (AIORTC, AIORTC_PATCH)] {
        let body = patch_body(&parse_offer(offer).unwrap());
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(body, expected);
    }
}

// --------------------------------------------------------------------------------------------
// Answers

#[test]
fn answers_are_those_of_sfu_py_but_the_origin() {
    for (offer, expected) in [(CHROMIUM, CHROMIUM_ANSWER), (AIORTC, AIORTC_ANSWER)] {
        let answer = answer_for(offer);
        let got: Vec<&str> = answer.sdp.split("\r\n").collect();
        let want: Vec<&str> = expected.split("\r\n").collect();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if i == 1 {
                // sfu.py writes "o=- 1 2 ..."; here the id is fixed by the bridge endpoint and the
                // version is the one given.
                assert!(g.starts_with("o=- ") && g.ends_with(" 7 IN IP4 127.0.0.1"), "{g}");
            } else {
                assert_eq!(g, w, "line {}", i + 1);
            }
        }
    }
}

/// The rules of API.md's "Writing the answer", checked one by one (as test_sfu.py does).
fn check_answer(offer_text: &str, answer: &Answer, (audio_pt, video_pt, rtx_pt): (u8, u8, u8)) {
    let text = &answer.sdp;
    assert!(text.starts_with("v=0\r\no=- "));
    assert!(text.ends_with("\r\n"));
    for l in text.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(l.len() > 2 && l.as_bytes()[1] == b'=' && l.as_bytes()[0].is_ascii_lowercase(), "{l:?}");
        assert!(!l.contains('\n') && !l.contains('\r'));
    }
    let a = split(text);
    assert_eq!(attrs(&a.session, "ice-lite"), [""]);
    assert_eq!(attrs(&a.session, "group"), ["BUNDLE 0 1 2 3 4 5"]);
    assert_eq!(attrs(&a.session, "ice-ufrag"), ["k3XrV2c9"]);
    assert_eq!(attrs(&a.session, "ice-pwd"), ["Zq0m6b1yJ4tW8pV3sN7cA2dE"]);
    assert_eq!(attrs(&a.session, "fingerprint"), [format!("sha-256 {FP}")]);
    assert_eq!(attrs(&a.session, "setup"), ["passive"]);
    assert!(!text.contains("a=setup:act"));

    let o = split(offer_text);
    assert_eq!(a.media.len(), o.media.len());
    let mids: Vec<_> = a.media.iter().map(|m| attrs(m, "mid")).collect();
    assert_eq!(mids, o.media.iter().map(|m| attrs(m, "mid")).collect::<Vec<_>>());
    for m in &a.media {
        let fields: Vec<&str> = m[0].split(' ').collect();
        assert_eq!(fields[1], "10000");
        assert_eq!(fields[2], "UDP/TLS/RTP/SAVPF");
        assert!(m.contains(&"c=IN IP4 127.0.0.1"));
        assert_eq!(attrs(m, "rtcp-mux"), [""]);
        assert_eq!(attrs(m, "candidate"), ["1 1 udp 2130706431 127.0.0.1 10000 typ host"]);
        assert_eq!(attrs(m, "end-of-candidates"), [""]);
        assert_eq!(direction_of(m).len(), 1, "{m:?}");
        let pts = &fields[3..];
        if fields[0] == "m=audio" {
            assert_eq!(pts, [audio_pt.to_string()]);
            assert_eq!(attrs(m, "rtpmap"), [format!("{audio_pt} opus/48000/2")]);
            assert!(attrs(m, "rtcp-fb").is_empty());
        } else {
            assert_eq!(pts, [video_pt.to_string(), rtx_pt.to_string()]);
            assert_eq!(attrs(m, "rtpmap"), [format!("{video_pt} VP8/90000"), format!("{rtx_pt} rtx/90000")]);
            assert_eq!(attrs(m, "fmtp"), [format!("{rtx_pt} apt={video_pt}")]);
            let feedback: Vec<&str> =
                attrs(m, "rtcp-fb").iter().map(|v| v.split_once(' ').unwrap().1).collect();
            assert!(feedback.contains(&"nack") && feedback.contains(&"nack pli"));
            assert!(feedback.iter().all(|f| KEPT_FEEDBACK.contains(f)));
        }
    }
    // The own sending m-lines.
    for m in &a.media[..2] {
        assert_eq!(direction_of(m), ["recvonly"]);
        assert!(attrs(m, "ssrc").is_empty() && attrs(m, "msid").is_empty());
    }
    // The recvonly ones, each with one other participant's source.
    let expected = [
        ("audio", 1001, None, "stream-b track-b1", B),
        ("audio", 2001, None, "stream-c track-c1", C),
        ("video", 1002, Some(1003), "stream-b track-b2", B),
        ("video", 2002, Some(2003), "stream-c track-c2", C),
    ];
    for (m, (kind, ssrc, rtx, msid, cname)) in a.media[2..].iter().zip(expected) {
        assert!(m[0].starts_with(&format!("m={kind} ")));
        assert_eq!(direction_of(m), ["sendonly"]);
        assert_eq!(attrs(m, "msid"), [msid]);
        match rtx {
            None => {
                assert_eq!(attrs(m, "ssrc"), [format!("{ssrc} cname:{cname}")]);
                assert!(attrs(m, "ssrc-group").is_empty());
            }
            Some(rtx) => {
                assert_eq!(attrs(m, "ssrc-group"), [format!("FID {ssrc} {rtx}")]);
                assert_eq!(
                    attrs(m, "ssrc"),
                    [format!("{ssrc} cname:{cname}"), format!("{rtx} cname:{cname}")]
                );
            }
        }
    }
    let tracks: Vec<_> = answer.tracks.iter().map(|t| (t.mid.as_str(), t.id.as_str(), t.kind)).collect();
    assert_eq!(
        tracks,
        [
            ("2", B, MediaKind::Audio),
            ("3", C, MediaKind::Audio),
            ("4", B, MediaKind::Video),
            ("5", C, MediaKind::Video)
        ]
    );
    assert!(answer.unassigned.is_empty());

    for dropped in [
        "sdes:mid",
        "rtp-stream-id",
        "transport-wide-cc",
        "transport-cc",
        "goog-remb",
        "a=rtcp-rsize",
        "a=rtcp:",
        "a=rtcp-xr",
        "a=ice-options",
        "a=extmap-allow-mixed",
        "generation",
        "tcptype",
    ] {
        assert!(!text.contains(dropped), "{dropped}");
    }
    // The audio level extension stays, with the offer's id.
    for (om, am) in o.media.iter().zip(&a.media) {
        let level = |m: &[&str]| -> Vec<String> {
            attrs(m, "extmap")
                .into_iter()
                .filter(|v| v.contains("ssrc-audio-level"))
                .map(String::from)
                .collect()
        };
        assert_eq!(level(om), level(am));
    }
}

#[test]
fn chromium_answer() {
    let answer = answer_for(CHROMIUM);
    check_answer(CHROMIUM, &answer, (111, 96, 97));
    // toffset 14, abs-send-time 2, video-orientation 13, playout-delay 5, content-type 6,
    // video-timing 7, color-space 8; not transport-cc 3, mid 4, rid 10, repaired rid 11.
    let video = &split(&answer.sdp).media[1];
    let mut ids: Vec<u16> =
        attrs(video, "extmap").iter().map(|v| v.split(' ').next().unwrap().parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [2, 5, 6, 7, 8, 13, 14]);
}

#[test]
fn aiortc_answer() {
    let answer = answer_for(AIORTC);
    check_answer(AIORTC, &answer, (96, 97, 98));
    for ssrc in ["3376935779", "1776010665", "670897713", "1174488443"] {
        assert!(!answer.sdp.contains(ssrc), "the offer's recvonly ssrcs are not echoed");
    }
}

#[test]
fn answers_parse_back_with_webrtc_sdp() {
    for offer in [CHROMIUM, AIORTC] {
        let answer = answer_for(offer);
        let parsed = webrtc_sdp::parse_sdp(&answer.sdp, true).expect("the answer parses, without warnings");
        assert!(parsed.attribute.iter().any(|a| matches!(a, SdpAttribute::IceLite)));
        assert!(
            parsed.attribute.iter().any(|a| matches!(a, SdpAttribute::Setup(SdpAttributeSetup::Passive)))
        );
        assert_eq!(parsed.media.len(), 6);
        let directions: Vec<_> = parsed
            .media
            .iter()
            .map(|m| {
                m.get_attributes()
                    .iter()
                    .find_map(|a| match a {
                        SdpAttribute::Recvonly => Some("recvonly"),
                        SdpAttribute::Sendonly => Some("sendonly"),
                        _ => None,
                    })
                    .unwrap()
            })
            .collect();
        assert_eq!(directions, ["recvonly", "recvonly", "sendonly", "sendonly", "sendonly", "sendonly"]);
        let ssrcs =
            parsed.media[4].get_attributes().iter().filter(|a| matches!(a, SdpAttribute::Ssrc(_))).count();
        assert_eq!(ssrcs, 2);
    }
}

#[test]
fn answers_are_deterministic() {
    let offer = parse_offer(CHROMIUM).unwrap();
    let one = compose_answer(&offer, &bridge(), &others(), 3).unwrap();
    let two = compose_answer(&offer, &bridge(), &others(), 3).unwrap();
    assert_eq!(one, two);
    let later = compose_answer(&offer, &bridge(), &others(), 4).unwrap();
    let origin = |a: &Answer| a.sdp.lines().nth(1).unwrap().to_owned();
    let (o3, o4) = (origin(&one), origin(&later));
    assert_eq!(o3.split(' ').nth(1), o4.split(' ').nth(1), "same session id");
    assert_eq!(
        (o3.split(' ').nth(2), o4.split(' ').nth(2)),
        (Some("3"), Some("4")),
        "the version is the given one"
    );
}

#[test]
fn fewer_sources_than_m_lines_leave_them_inactive() {
    let offer = parse_offer(CHROMIUM).unwrap();
    let only_b: Vec<_> = others().into_iter().filter(|s| s.participant == B).collect();
    let answer = compose_answer(&offer, &bridge(), &only_b, 1).unwrap();
    let directions: Vec<_> = split(&answer.sdp).media.iter().map(|m| direction_of(m)[0]).collect();
    assert_eq!(directions, ["recvonly", "recvonly", "sendonly", "inactive", "sendonly", "inactive"]);
    let mids: Vec<_> = answer.tracks.iter().map(|t| t.mid.as_str()).collect();
    assert_eq!(mids, ["2", "4"]);
    // Still in BUNDLE, with the codecs: only the direction says there is nothing.
    assert!(answer.sdp.contains("a=group:BUNDLE 0 1 2 3 4 5\r\n"));
}

#[test]
fn more_sources_than_m_lines_are_reported() {
    let offer = parse_offer(AIORTC).unwrap();
    let mut more = others();
    more.push(remote("d", MediaKind::Video, 3001, "d v", None));
    let answer = compose_answer(&offer, &bridge(), &more, 1).unwrap();
    assert_eq!(answer.unassigned, [remote("d", MediaKind::Video, 3001, "d v", None)]);
    assert_eq!(answer.tracks.len(), 4);
}

#[test]
fn a_source_without_msid_gets_one_from_its_participant() {
    let offer = parse_offer(CHROMIUM).unwrap();
    let bare = [remote(B, MediaKind::Audio, 1001, "", None)];
    let answer = compose_answer(&offer, &bridge(), &bare, 1).unwrap();
    let m = &split(&answer.sdp).media[2];
    assert_eq!(attrs(m, "msid"), [format!("{B} {B}-1001")]);
    assert_eq!(attrs(m, "ssrc"), [format!("1001 cname:{B}")]);
}

#[test]
fn ipv6_candidates() {
    let offer = parse_offer(AIORTC).unwrap();
    let mut b = bridge();
    b.candidates = vec![
        Candidate {
            foundation: "2".into(),
            priority: 2130706175,
            ip: "2001:db8::1".parse().unwrap(),
            port: 10001,
        },
        Candidate {
            foundation: "1".into(),
            priority: 2130706431,
            ip: "192.0.2.1".parse().unwrap(),
            port: 10000,
        },
    ];
    let answer = compose_answer(&offer, &b, &others(), 1).unwrap();
    let a = split(&answer.sdp);
    assert!(a.session[1].ends_with(" IN IP6 2001:db8::1"));
    for m in &a.media {
        assert!(m[0].starts_with("m=audio 10001 ") || m[0].starts_with("m=video 10001 "));
        assert!(m.contains(&"c=IN IP6 2001:db8::1"));
        assert_eq!(
            attrs(m, "candidate"),
            ["2 1 udp 2130706175 2001:db8::1 10001 typ host", "1 1 udp 2130706431 192.0.2.1 10000 typ host"]
        );
    }
    webrtc_sdp::parse_sdp(&answer.sdp, true).unwrap();
}

/// A Firefox-style offer (`bundlePolicy: "max-bundle"`: port 0 and a=bundle-only after the first
/// m-section, ICE credentials and fingerprint at session level), with a data channel and a
/// section the offerer rejected.
const FIREFOX_LIKE: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-99.0 4291207385044400813 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 5B:0C:09:3D:8E:3B:8D:C2:25:5A:B3:1F:3C:64:61:29:A5:FB:E0:5B:61:71:4B:D8:2A:4F:F3:C8:5D:2A:8E:9B\r\n\
a=group:BUNDLE 0 1 2 3\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendonly\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n\
a=fmtp:101 0-15\r\n\
a=ice-pwd:3e8f1bd2b1b1e2c5c1c0e7a4e4e8c4f0\r\n\
a=ice-ufrag:8a1c2b3d\r\n\
a=mid:0\r\n\
a=msid:{aaaa} {bbbb}\r\n\
a=rtcp-mux\r\n\
a=rtpmap:109 opus/48000/2\r\n\
a=rtpmap:9 G722/8000/1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=setup:actpass\r\n\
a=ssrc:111 cname:{cccc}\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 120 124 121\r\n\
c=IN IP4 0.0.0.0\r\n\
a=bundle-only\r\n\
a=recvonly\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:120 max-fs=12288;max-fr=60\r\n\
a=fmtp:124 apt=120\r\n\
a=fmtp:121 max-fs=12288;max-fr=60\r\n\
a=mid:1\r\n\
a=rtcp-fb:120 nack\r\n\
a=rtcp-fb:120 nack pli\r\n\
a=rtcp-fb:120 ccm fir\r\n\
a=rtcp-fb:120 goog-remb\r\n\
a=rtcp-fb:120 transport-cc\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:120 VP8/90000\r\n\
a=rtpmap:124 rtx/90000\r\n\
a=rtpmap:121 VP9/90000\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 120\r\n\
c=IN IP4 0.0.0.0\r\n\
a=inactive\r\n\
a=mid:2\r\n\
a=rtpmap:120 VP8/90000\r\n\
m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=bundle-only\r\n\
a=mid:3\r\n\
a=sctp-port:5000\r\n";

#[test]
fn firefox_style_offer() {
    let offer = parse_offer(FIREFOX_LIKE).unwrap();
    assert_eq!(
        (offer.ice_ufrag.as_str(), offer.ice_pwd.as_str()),
        ("8a1c2b3d", "3e8f1bd2b1b1e2c5c1c0e7a4e4e8c4f0")
    );
    assert!(offer.fingerprint.starts_with("5B:0C:09"));
    assert_eq!(
        offer.sources,
        [Source { ssrc: 111, kind: MediaKind::Audio, msid: "{aaaa} {bbbb}".into(), rtx_ssrc: None }]
    );
    let rejected: Vec<_> = offer.media.iter().map(|m| m.rejected).collect();
    assert_eq!(rejected, [false, false, true, true], "bundle-only with port 0 is in use");

    let answer = compose_answer(&offer, &bridge(), &others(), 1).unwrap();
    let a = split(&answer.sdp);
    assert_eq!(attrs(&a.session, "group"), ["BUNDLE 0 1"]);
    assert_eq!(a.media[0][0], "m=audio 10000 UDP/TLS/RTP/SAVPF 109");
    assert_eq!(
        attrs(&a.media[0], "fmtp"),
        ["109 stereo=1;useinbandfec=1"],
        "maxplaybackrate=48000 is the default"
    );
    assert_eq!(a.media[1][0], "m=video 10000 UDP/TLS/RTP/SAVPF 120 124");
    assert_eq!(attrs(&a.media[1], "fmtp"), ["120 max-fs=12288;max-fr=60", "124 apt=120"]);
    assert_eq!(attrs(&a.media[1], "rtcp-fb"), ["120 nack", "120 nack pli", "120 ccm fir"]);
    assert_eq!(direction_of(&a.media[1]), ["sendonly"]);
    assert_eq!(attrs(&a.media[1], "ssrc-group"), ["FID 1002 1003"]);
    assert_eq!(a.media[2][0], "m=video 0 UDP/TLS/RTP/SAVPF 120");
    assert_eq!(a.media[3][0], "m=application 0 UDP/DTLS/SCTP webrtc-datachannel");
    for m in &a.media[2..] {
        assert_eq!(direction_of(m), ["inactive"]);
        assert!(attrs(m, "candidate").is_empty());
    }
    assert_eq!(answer.tracks, [Track { mid: "1".into(), id: B.into(), kind: MediaKind::Video }]);
    assert_eq!(answer.unassigned.len(), 3);
    webrtc_sdp::parse_sdp(&answer.sdp, true).unwrap();
}

#[test]
fn unknown_fmtp_parameters_stay_separated_by_semicolons() {
    let offer = FIREFOX_LIKE.replace("stereo=1;useinbandfec=1", "stereo=1;useinbandfec=1;x-one=1;x-two=2");
    let offer = parse_offer(&offer).unwrap();
    assert_eq!(offer.media[0].codecs[0].fmtp.as_deref(), Some("stereo=1;useinbandfec=1;x-one=1;x-two=2"));
}

// --------------------------------------------------------------------------------------------
// Errors

fn offer_error(text: &str) -> String {
    parse_offer(text).expect_err("the offer is refused").message().to_owned()
}

fn without_lines(text: &str, prefix: &str) -> String {
    text.split_inclusive("\r\n").filter(|l| !l.starts_with(prefix)).collect()
}

#[test]
fn offers_missing_something_are_refused_with_its_name() {
    assert!(offer_error(&without_lines(CHROMIUM, "a=fingerprint:sha-256")).contains("a=fingerprint:sha-256"));
    assert!(offer_error(&without_lines(AIORTC, "a=ice-ufrag")).contains("a=ice-ufrag"));
    assert!(offer_error(&without_lines(AIORTC, "a=ice-pwd")).contains("a=ice-pwd"));
    assert!(offer_error(&without_lines(AIORTC, "a=mid:3")).contains("m-line 4 has no a=mid"));
    assert!(
        offer_error(&AIORTC.replace("a=mid:3", "a=mid:2")).contains("a=mid:2 is on more than one m-line")
    );
    assert!(offer_error(&AIORTC.replace("a=setup:actpass", "a=setup:passive")).contains("a=setup:passive"));
    assert!(offer_error(&AIORTC.replace("a=ice-ufrag:bThW", "a=ice-ufrag:b h")).contains("a=ice-ufrag"));
    assert!(
        offer_error(&AIORTC.replace("a=ice-pwd:oOz1w1HO3Jm0EUmXkgZ1C6", "a=ice-pwd:short"))
            .contains("a=ice-pwd")
    );
    let two_directions = AIORTC.replacen("a=sendonly\r\n", "a=sendonly\r\na=recvonly\r\n", 1);
    assert!(offer_error(&two_directions).contains("direction"));
    assert!(
        offer_error(&without_lines(AIORTC, "a=rtpmap:96 opus")).contains("m-line 0 (audio) offers no opus")
    );
    assert!(
        offer_error(&without_lines(CHROMIUM, "a=rtpmap:96 VP8")).contains("m-line 1 (video) offers no VP8")
    );
    assert!(offer_error("hello").contains("v=0"));
    assert!(offer_error("").contains("v=0"));
}

#[test]
fn parser_errors_name_the_line_without_quoting_it() {
    let text = AIORTC.replacen("a=rtpmap:97 VP8/90000", "a=rtpmap:97 VP8/ninety", 1);
    let message = offer_error(&text);
    let line = text.lines().position(|l| l.contains("ninety")).unwrap() + 1;
    assert!(message.starts_with(&format!("line {line}: ")), "{message}");
    assert!(!message.contains("a=rtpmap"), "{message}");
}

#[test]
fn unsupported_m_lines_are_refused_not_merged() {
    // webrtc-sdp skips an m= line it does not know, which would move its attributes (a=mid:1
    // here) into the section before.
    let text = AIORTC.replacen("m=video 36336 UDP/TLS/RTP/SAVPF", "m=text 36336 UDP/TLS/RTP/SAVPF", 1);
    let message = offer_error(&text);
    assert!(message.contains("m= line not supported"), "{message}");
    let text = AIORTC.replacen("m=video 36336 UDP/TLS/RTP/SAVPF", "m=video 36336 RTP/AVP/TCP", 1);
    assert!(offer_error(&text).contains("m= line not supported"));
}

#[test]
fn offers_are_bounded() {
    let big = format!("{AIORTC}{}", "a=ice-options:trickle\r\n".repeat(MAX_OFFER_BYTES / 20));
    assert!(offer_error(&big).contains("bytes"));

    let many_lines = format!("{AIORTC}{}", "a=x\r\n".repeat(MAX_OFFER_LINES));
    assert!(offer_error(&many_lines).contains("lines"));

    let section = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:m\r\n";
    let many_m = format!("{}{}", AIORTC, section.repeat(MAX_MEDIA_SECTIONS - 5));
    assert!(offer_error(&many_m).contains("more than 64 m-lines"));

    let ssrcs: String = (0..=MAX_SSRCS as u32).map(|i| format!("a=ssrc:{} cname:x\r\n", 10 + i)).collect();
    let many_ssrcs = format!("{AIORTC}{ssrcs}");
    assert!(offer_error(&many_ssrcs).contains("more than 256 SSRCs"));
}

#[test]
fn control_characters_are_refused() {
    for bad in ["a=mid:0\r\n", "a=mid:0\rx=1\r\n", "a=mid:0\u{0}\r\n", "a=mid:0\u{85}\r\n", "a=mid:\t0\r\n"] {
        let text = AIORTC.replacen("a=mid:0\r\n", bad, 1);
        if bad == "a=mid:0\r\n" {
            assert!(parse_offer(&text).is_ok());
        } else {
            assert!(offer_error(&text).contains("control character"), "{bad:?}");
        }
    }
    // LF-only line ends are fine.
    let lf = AIORTC.replace("\r\n", "\n");
    assert_eq!(parse_offer(&lf).unwrap(), parse_offer(AIORTC).unwrap());
}

#[test]
fn answer_errors() {
    let offer = parse_offer(AIORTC).unwrap();
    let error = |b: &BridgeEndpoint, others: &[RemoteSource]| {
        compose_answer(&offer, b, others, 1).unwrap_err().message().to_owned()
    };

    let mut b = bridge();
    b.candidates.clear();
    assert!(error(&b, &others()).contains("no ICE candidates"));
    let mut b = bridge();
    b.fingerprint = "AB:CD".into();
    assert!(error(&b, &others()).contains("fingerprint"));
    let mut b = bridge();
    b.pwd = "a\r\na=evil".into();
    assert!(error(&b, &others()).contains("pwd"));
    let mut b = bridge();
    b.candidates[0].foundation = "1 2".into();
    assert!(error(&b, &others()).contains("foundation"));

    let injected = [remote(B, MediaKind::Audio, 1, "s t\r\na=evil", None)];
    assert!(error(&bridge(), &injected).contains("msid"));
    let three = [remote(B, MediaKind::Audio, 1, "s t u", None)];
    assert!(error(&bridge(), &three).contains("msid"));
    let spaced = [remote("b 0", MediaKind::Audio, 1, "s t", None)];
    assert!(error(&bridge(), &spaced).contains("participant"));
    let twice = [remote(B, MediaKind::Audio, 1, "s t", None), remote(C, MediaKind::Video, 2, "s u", Some(1))];
    assert!(error(&bridge(), &twice).contains("ssrc 1 is in more than one source"));

    let mut no_opus = parse_offer(AIORTC).unwrap();
    no_opus.media[2].codecs.retain(|c| c.payload_type.name != "opus");
    let message = compose_answer(&no_opus, &bridge(), &others(), 1).unwrap_err();
    assert!(message.message().contains("m-line 2 (audio) offers no opus"), "{message}");
}

// --------------------------------------------------------------------------------------------
// Hostile offers: never a panic; what parses gives an answer that parses.

fn survives(text: &str) {
    match parse_offer(text) {
        Ok(offer) => {
            let _ = patch_body(&offer);
            let answer = compose_answer(&offer, &bridge(), &others(), 1).expect("a parsed offer is answered");
            if let Err(e) = webrtc_sdp::parse_sdp(&answer.sdp, true) {
                panic!("the answer to a mutated offer does not parse: {e}\n{}", answer.sdp);
            }
        }
        Err(e) => assert!(!e.message().is_empty() && e.message().len() <= 210, "{e}"),
    }
}

#[test]
fn every_line_deleted_truncated_or_doubled() {
    for (fixture, step) in [(CHROMIUM, 3), (AIORTC, 1), (FIREFOX_LIKE, 1)] {
        let lines: Vec<&str> = fixture.split_inclusive('\n').collect();
        for i in (0..lines.len()).step_by(step) {
            let mut without = lines.clone();
            without.remove(i);
            survives(&without.concat());
            let mut doubled = lines.clone();
            doubled.insert(i, lines[i]);
            survives(&doubled.concat());
            survives(&lines[..i].concat());
            // Cut inside the line.
            let cut = lines[..i].concat().len() + lines[i].len() / 2;
            survives(&fixture[..cut]);
        }
    }
}

#[test]
fn every_line_garbled() {
    let garbles: [fn(&str) -> String; 6] = [
        |l| l.replace(':', ""),
        |l| l.replace(' ', "  "),
        |l| l.replace(|c: char| c.is_ascii_digit(), "9"),
        |l| l.replace(|c: char| c.is_ascii_digit(), "99999999999"),
        |l| l.to_uppercase(),
        |l| l.chars().rev().collect(),
    ];
    // Every line of Chromium's offer would take long in a debug build: every fifth, which has
    // every kind of line.
    for (fixture, step) in [(CHROMIUM, 5), (AIORTC, 1), (FIREFOX_LIKE, 1)] {
        let lines: Vec<&str> = fixture.split("\r\n").collect();
        for i in (0..lines.len()).step_by(step) {
            for garble in &garbles {
                let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                changed[i] = garble(lines[i]);
                survives(&changed.join("\r\n"));
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceByte(usize, u8),
    Insert(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::ReplaceByte(at, b)),
        (any::<usize>(), "(a=|m=|[ -~]|\r\n|\n){0,40}").prop_map(|(at, s)| Mutation::Insert(at, s)),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    let n = lines.len().max(1);
    match *mutation {
        Mutation::Truncate(at) => {
            let mut bytes = text.as_bytes().to_vec();
            bytes.truncate(at % (bytes.len() + 1));
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::ReplaceByte(at, b) => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::Insert(at, ref s) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        _ => {}
    }
    lines.concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_offers_never_panic(
        fixture in prop_oneof![Just(CHROMIUM), Just(AIORTC), Just(FIREFOX_LIKE)],
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut text = fixture.to_owned();
        for m in &mutations {
            text = apply(&text, m);
        }
        survives(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "v=0\r\n(([a-z]=[ -~]{0,60})?\r?\n){0,40}") {
        survives(&text);
    }
}
