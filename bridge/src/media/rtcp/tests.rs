use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

fn packets(datagram: &[u8]) -> Vec<Result<Packet<'_>, RtcpError>> {
    Compound::new(datagram).collect()
}

fn only(datagram: &[u8]) -> Packet<'_> {
    let mut all = packets(datagram);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0).unwrap()
}

/// Walks everything a datagram offers: every packet, every item, every NACK expansion.
/// Returns the number of items seen, so nothing is optimised away.
fn walk(datagram: &[u8]) -> usize {
    let mut seen = 0;
    let mut compound = Compound::new(datagram);
    let mut packets = 0;
    for packet in compound.by_ref() {
        packets += 1;
        let Ok(packet) = packet else { break };
        seen += match packet {
            Packet::SenderReport { reports, .. } | Packet::ReceiverReport { reports, .. } => reports.count(),
            Packet::Sdes { chunks } => {
                chunks.map(|c| c.items().count() + usize::from(c.cname().is_some())).sum()
            }
            Packet::Bye { ssrcs, reason } => ssrcs.count() + reason.map_or(0, <[u8]>::len),
            Packet::Nack { items, .. } => {
                let lost = items.lost().count();
                assert!(lost >= items.len() && lost <= 17 * items.len());
                lost
            }
            Packet::Pli { .. } => 1,
            Packet::Fir { entries, .. } => entries.count(),
            Packet::Remb { ssrcs, .. } => ssrcs.count(),
            Packet::Other { body, .. } => body.len(),
        };
    }
    assert!(compound.next().is_none(), "the walk ended");
    assert!(packets <= datagram.len() / 4 + 1);
    seen
}

// --- Real traffic ------------------------------------------------------------------------

/// A compound as Chrome sends it from a sending endpoint: SR with one report block, then
/// SDES with a 16-character CNAME closed by END and one null octet. Values are ours; the
/// layout is libwebrtc's.
#[test]
fn chrome_sender_report_and_sdes() {
    let datagram = hex(concat!(
        "81c8000c 2f3c6a19 e9a1b2c3 4d5e6f70 7a1b2c3d 00000426 000d2f00",
        "         11d4a3f0 0500002a 0001f3a1 0000001e b2c34d5e 00008000",
        "81ca0006 2f3c6a19 0110 5971334c775a386e307046733254624b 0000",
    ));
    let mut compound = Compound::new(&datagram);
    let Some(Ok(Packet::SenderReport { ssrc, ntp, rtp_ts, packet_count, octet_count, reports })) =
        compound.next()
    else {
        panic!("not an SR");
    };
    assert_eq!((ssrc, ntp, rtp_ts), (0x2f3c6a19, 0xe9a1b2c3_4d5e6f70, 0x7a1b2c3d));
    assert_eq!((packet_count, octet_count), (1062, 864_000));
    let blocks: Vec<_> = reports.collect();
    assert_eq!(
        blocks,
        [ReportBlock {
            ssrc: 0x11d4a3f0,
            fraction_lost: 5,
            cumulative_lost: 42,
            highest_seq: 0x0001_f3a1,
            jitter: 30,
            last_sr: 0xb2c34d5e,
            delay_since_last_sr: 0x8000,
        }]
    );
    let Some(Ok(Packet::Sdes { mut chunks })) = compound.next() else { panic!("not an SDES") };
    let chunk = chunks.next().unwrap();
    assert_eq!(chunk.ssrc, 0x2f3c6a19);
    assert_eq!(chunk.cname(), Some(&b"Yq3LwZ8n0pFs2TbK"[..]));
    assert!(chunks.next().is_none());
    assert!(compound.next().is_none());
}

/// A Firefox compound from a packet dump published with pion/rtcp's tests (retyped from its
/// field values): RR, SDES with a `{uuid}` CNAME, BYE, PLI, a rapid resynchronisation request
/// (RTPFB FMT 5) and an APP packet, which both pass through.
#[test]
fn firefox_compound_rr_sdes_bye_pli_rrr_app() {
    let datagram = hex(concat!(
        "81c90007 902f9e2e bc5e9a40 00000000 000046e1 00000111 09f36432 00024a79",
        "81ca000c 902f9e2e 0126",
        "         7b39633030656239322d316166622d396434392d613437642d3931663634656565363966357d",
        "         00000000",
        "81cb0001 902f9e2e",
        "81ce0002 902f9e2e 902f9e2e",
        "85cd0002 902f9e2e 902f9e2e",
        "80cc0003 4baae1ab 4e414d45 41424344",
    ));
    let all: Vec<_> = packets(&datagram).into_iter().map(Result::unwrap).collect();
    assert_eq!(all.len(), 6);
    let Packet::ReceiverReport { ssrc: 0x902f9e2e, reports } = &all[0] else { panic!("{:?}", all[0]) };
    let block = reports.clone().next().unwrap();
    assert_eq!((block.ssrc, block.highest_seq, block.jitter), (0xbc5e9a40, 0x46e1, 273));
    assert_eq!((block.last_sr, block.delay_since_last_sr), (0x09f36432, 150_137));
    let Packet::Sdes { chunks } = &all[1] else { panic!() };
    let cname = chunks.clone().next().unwrap().cname().unwrap();
    assert_eq!(cname, b"{9c00eb92-1afb-9d49-a47d-91f64eee69f5}");
    let Packet::Bye { ssrcs, reason: None } = &all[2] else { panic!() };
    assert_eq!(ssrcs.clone().collect::<Vec<_>>(), [0x902f9e2e]);
    assert_eq!(all[3], Packet::Pli { sender_ssrc: 0x902f9e2e, media_ssrc: 0x902f9e2e });
    assert!(matches!(all[4], Packet::Other { packet_type: PT_RTPFB, fmt: 5, body } if body.len() == 8));
    assert!(
        matches!(all[5], Packet::Other { packet_type: PT_APP, fmt: 0, body } if body == hex("4baae1ab4e414d4541424344"))
    );
}

/// A REMB Chrome sent while receiving a 6 Mb/s stream (published with pion/rtcp's tests):
/// exponent 6, mantissa 139487. Our writer produces the same bytes.
#[test]
fn chrome_remb() {
    let datagram = hex("8fce0005 00000001 00000000 52454d42 011a20df 4874ed16");
    let Packet::Remb { sender_ssrc, bitrate_bps, ssrcs } = only(&datagram) else { panic!() };
    assert_eq!((sender_ssrc, bitrate_bps), (1, 8_927_168));
    assert_eq!(ssrcs.collect::<Vec<_>>(), [0x4874ed16]);

    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.remb(1, 8_927_168, &[0x4874ed16]).unwrap();
    let len = w.finish();
    assert_eq!(buf[..len], datagram[..]);
}

/// A transport-cc packet from a capture published with olivermichel/webrtc-analysis (sender
/// SSRC 1, as libwebrtc uses on a stream it only receives): padded with a single byte whose
/// count is 1, not a multiple of 4 as RFC 3550 §6.4.1 says. We follow the browsers: it parses,
/// and passes through as `Other` with the padding removed.
#[test]
fn captured_transport_cc_with_one_byte_of_padding() {
    let datagram = hex("afcd0007 00000001 dd586eb6 00010009 5e911000 2009 1c0c2c38 00040008 18 01");
    let packet = only(&datagram);
    let Packet::Other { packet_type: PT_RTPFB, fmt: FMT_TRANSPORT_CC, body } = packet else { panic!() };
    assert_eq!(body, &datagram[4..31]);
}

// --- RFC 3550 A.2 framing ----------------------------------------------------------------

#[test]
fn empty_and_short_datagrams_are_truncated() {
    assert_eq!(packets(&[]), [Err(RtcpError::Truncated)]);
    assert_eq!(packets(&[0x80, 0xc9, 0x00]), [Err(RtcpError::Truncated)]);
}

#[test]
fn length_field_past_the_end_is_truncated() {
    assert_eq!(packets(&hex("81c90007 00000001 00000002")), [Err(RtcpError::Truncated)]);
}

#[test]
fn bytes_after_the_last_packet_are_truncated() {
    let datagram = hex("80c90001 00000001 80c9");
    let all = packets(&datagram);
    assert_eq!(all.len(), 2);
    assert!(all[0].is_ok());
    assert_eq!(all[1], Err(RtcpError::Truncated));
}

#[test]
fn version_and_packet_type_are_checked() {
    assert_eq!(packets(&hex("40c90001 00000001")), [Err(RtcpError::BadVersion)]);
    assert_eq!(packets(&hex("80600001 00000001")), [Err(RtcpError::NotRtcp)]);
    assert_eq!(packets(&hex("80e00001 00000001")), [Err(RtcpError::NotRtcp)]);
    assert!(is_rtcp(&hex("80c9")) && is_rtcp(&hex("8fce")));
    assert!(!is_rtcp(&hex("8060")) && !is_rtcp(&hex("00c9")) && !is_rtcp(&[0x80]));
}

#[test]
fn body_too_short_for_its_count_is_bad_length() {
    // RR announcing one report block but holding only the sender's SSRC.
    assert_eq!(packets(&hex("81c90001 00000001")), [Err(RtcpError::BadLength)]);
    // SR without its sender info.
    assert_eq!(packets(&hex("80c80001 00000001")), [Err(RtcpError::BadLength)]);
    // BYE announcing two sources, holding one.
    assert_eq!(packets(&hex("82cb0001 00000001")), [Err(RtcpError::BadLength)]);
    // BYE whose reason runs past the packet.
    assert_eq!(packets(&hex("81cb0002 00000001 05616263")), [Err(RtcpError::BadLength)]);
    // SDES chunk without its END octet.
    assert_eq!(packets(&hex("81ca0002 00000001 01026162")), [Err(RtcpError::BadLength)]);
    // NACK and FIR without entries, PLI without the media SSRC.
    assert_eq!(packets(&hex("81cd0002 00000001 00000002")), [Err(RtcpError::BadLength)]);
    assert_eq!(packets(&hex("84ce0002 00000001 00000000")), [Err(RtcpError::BadLength)]);
    assert_eq!(packets(&hex("81ce0001 00000001")), [Err(RtcpError::BadLength)]);
    // REMB announcing two SSRCs, holding one.
    assert_eq!(
        packets(&hex("8fce0005 00000001 00000000 52454d42 021a20df 4874ed16")),
        [Err(RtcpError::BadLength)]
    );
}

#[test]
fn padding_is_removed_from_the_last_packet() {
    // RR with no blocks, padded by 4 bytes (count 4).
    let datagram = hex("a0c90002 00000001 00000004");
    let Packet::ReceiverReport { ssrc: 1, reports } = only(&datagram) else { panic!() };
    assert_eq!(reports.len(), 0);
}

#[test]
fn padding_only_on_the_last_packet() {
    let datagram = hex("a0c90002 00000001 00000004 81ce0002 00000001 00000002");
    assert_eq!(packets(&datagram), [Err(RtcpError::PaddingNotLast)]);
}

#[test]
fn padding_count_must_be_sane() {
    assert_eq!(packets(&hex("a0c90001 00000000")), [Err(RtcpError::BadPadding)]);
    assert_eq!(packets(&hex("a0c90001 00000005")), [Err(RtcpError::BadPadding)]);
    // Padding that takes the whole body leaves an RR without its SSRC.
    assert_eq!(packets(&hex("a0c90001 00000004")), [Err(RtcpError::BadLength)]);
}

#[test]
fn the_walk_stops_at_the_first_malformed_packet() {
    let datagram = hex("81ce0002 00000001 00000002 41ce0002 00000001 00000002 81ce0002 00000001 00000002");
    let all = packets(&datagram);
    assert_eq!(all.len(), 2);
    assert!(all[0].is_ok());
    assert_eq!(all[1], Err(RtcpError::BadVersion));
}

#[test]
fn cumulative_lost_is_24_bit_signed() {
    let rr =
        |lost: &str| hex(&format!("81c90007 00000001 00000002 00{lost} 00000000 00000000 00000000 00000000"));
    for (wire, value) in [("ffffff", -1), ("800000", -(1 << 23)), ("7fffff", (1 << 23) - 1), ("000000", 0)] {
        let datagram = rr(wire);
        let Packet::ReceiverReport { mut reports, .. } = only(&datagram) else { panic!() };
        assert_eq!(reports.next().unwrap().cumulative_lost, value);
    }
    // Writing clamps to the 24-bit range (RFC 3550 A.3).
    for (value, clamped) in [(10_000_000, (1 << 23) - 1), (-10_000_000, -(1 << 23)), (-5, -5)] {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.receiver_report(1, &[ReportBlock { cumulative_lost: value, ..Default::default() }]).unwrap();
        let len = w.finish();
        let Packet::ReceiverReport { mut reports, .. } = only(&buf[..len]) else { panic!() };
        assert_eq!(reports.next().unwrap().cumulative_lost, clamped);
    }
}

// --- NACK --------------------------------------------------------------------------------

fn nack_lost(items: &str) -> Vec<u16> {
    let datagram = hex(&format!("81cd{:04x} 00000001 00000002 {items}", 2 + hex(items).len() / 4));
    let Packet::Nack { items, .. } = only(&datagram) else { panic!() };
    items.lost().collect()
}

#[test]
fn nack_pid_and_blp_expand_to_lost_numbers() {
    // PID 100; BLP bits 0, 2 and 15: 101, 103, 116.
    assert_eq!(nack_lost("0064 8005"), [100, 101, 103, 116]);
    assert_eq!(nack_lost("0064 0000 00c8 0001"), [100, 200, 201]);
}

#[test]
fn nack_expansion_wraps_at_65535() {
    let lost = nack_lost("fffa ffff");
    let expected: Vec<u16> = (65530..=65535).chain(0..=10).collect();
    assert_eq!(lost, expected);
}

#[test]
fn nack_packing_across_the_wrap() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.nack(1, 2, &[65534, 65535, 0, 1, 20, 20, 3]).unwrap();
    let len = w.finish();
    // (65534, bits 0..=2), (20, none), (3, none): a smaller number starts a new item.
    assert_eq!(buf[..len], hex("81cd0005 00000001 00000002 fffe0007 00140000 00030000")[..]);
    let Packet::Nack { items, .. } = only(&buf[..len]) else { panic!() };
    assert_eq!(items.lost().collect::<Vec<_>>(), [65534, 65535, 0, 1, 20, 3]);
}

// --- Builders ----------------------------------------------------------------------------

fn block(n: u32) -> ReportBlock {
    ReportBlock {
        ssrc: 0x1000 + n,
        fraction_lost: n as u8,
        cumulative_lost: n as i32 - 3,
        highest_seq: 0x0002_0000 + n,
        jitter: 7 * n,
        last_sr: 0xabcd_0000 + n,
        delay_since_last_sr: 65536 + n,
    }
}

#[test]
fn receiver_report_round_trip() {
    let blocks: Vec<_> = (0..2).map(block).collect();
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    w.receiver_report(0x5eed, &blocks).unwrap();
    let len = w.finish();
    assert_eq!(len, 8 + 2 * 24);
    let Packet::ReceiverReport { ssrc, reports } = only(&buf[..len]) else { panic!() };
    assert_eq!(ssrc, 0x5eed);
    assert_eq!(reports.collect::<Vec<_>>(), blocks);
}

#[test]
fn receiver_report_holds_31_blocks_and_no_more() {
    let blocks: Vec<_> = (0..32).map(block).collect();
    let mut buf = [0u8; 1024];
    let mut w = Writer::new(&mut buf);
    assert_eq!(w.receiver_report(1, &blocks).unwrap_err(), RtcpError::TooMany);
    assert!(w.is_empty());
    w.receiver_report(1, &blocks[..MAX_REPORT_BLOCKS]).unwrap();
    let len = w.finish();
    let Packet::ReceiverReport { reports, .. } = only(&buf[..len]) else { panic!() };
    assert_eq!(reports.collect::<Vec<_>>(), blocks[..31]);
}

#[test]
fn sender_report_round_trip() {
    let info = SenderInfo {
        ssrc: 9,
        ntp: 0xe9a1_b2c3_4d5e_6f70,
        rtp_ts: 90_000,
        packet_count: 3,
        octet_count: 3600,
    };
    let blocks = [block(1)];
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    w.sender_report(&info, &blocks).unwrap();
    let len = w.finish();
    let Packet::SenderReport { ssrc, ntp, rtp_ts, packet_count, octet_count, reports } = only(&buf[..len])
    else {
        panic!()
    };
    assert_eq!(SenderInfo { ssrc, ntp, rtp_ts, packet_count, octet_count }, info);
    assert_eq!(reports.collect::<Vec<_>>(), blocks);
}

#[test]
fn pli_round_trip() {
    let mut buf = [0u8; 16];
    let mut w = Writer::new(&mut buf);
    w.pli(0x11, 0x22).unwrap();
    let len = w.finish();
    assert_eq!(buf[..len], hex("81ce0002 00000011 00000022")[..]);
    assert_eq!(only(&buf[..len]), Packet::Pli { sender_ssrc: 0x11, media_ssrc: 0x22 });
}

#[test]
fn fir_round_trip() {
    let entries = [(0x1234, 7), (0xdead_beef, 255)];
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    assert_eq!(w.fir(1, &[]).unwrap_err(), RtcpError::Empty);
    w.fir(1, &entries).unwrap();
    let len = w.finish();
    assert_eq!(buf[..len], hex("84ce0006 00000001 00000000 00001234 07000000 deadbeef ff000000")[..]);
    let Packet::Fir { sender_ssrc: 1, entries: parsed } = only(&buf[..len]) else { panic!() };
    assert_eq!(parsed.collect::<Vec<_>>(), entries);
}

#[test]
fn nack_round_trip() {
    let lost = [10, 11, 26, 27, 300];
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    assert_eq!(w.nack(1, 2, &[]).unwrap_err(), RtcpError::Empty);
    w.nack(1, 2, &lost).unwrap();
    let len = w.finish();
    let Packet::Nack { sender_ssrc: 1, media_ssrc: 2, items } = only(&buf[..len]) else { panic!() };
    // 27 is 17 after 10: one past the bitmask, so it starts the second item.
    assert_eq!(items.clone().collect::<Vec<_>>(), [(10, 0x8001), (27, 0), (300, 0)]);
    assert_eq!(items.lost().collect::<Vec<_>>(), lost);
}

#[test]
fn remb_round_trip_and_saturation() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.remb(3, 300_000, &[5, 6]).unwrap();
    assert_eq!(w.remb(3, 1, &[0; 256]).unwrap_err(), RtcpError::TooMany);
    let len = w.finish();
    let Packet::Remb { sender_ssrc: 3, bitrate_bps, ssrcs } = only(&buf[..len]) else { panic!() };
    assert_eq!(bitrate_bps, 300_000); // 19 bits: 150000 << 1, exact
    assert_eq!(ssrcs.collect::<Vec<_>>(), [5, 6]);

    // Exponent 63 with a full mantissa does not fit 64 bits: saturate.
    let huge = hex("8fce0004 00000000 00000000 52454d42 00ffffff");
    assert!(matches!(only(&huge), Packet::Remb { bitrate_bps: u64::MAX, .. }));
    let top = hex("8fce0004 00000000 00000000 52454d42 00fc0001");
    assert!(matches!(only(&top), Packet::Remb { bitrate_bps: 0x8000_0000_0000_0000, .. }));
}

#[test]
fn other_application_feedback_is_not_remb() {
    let datagram = hex("8fce0004 00000001 00000000 41424344 00000000");
    assert!(matches!(only(&datagram), Packet::Other { packet_type: PT_PSFB, fmt: 15, .. }));
}

#[test]
fn compound_of_every_builder_round_trips() {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    w.receiver_report(1, &[block(1)]).unwrap().remb(1, 1_000_000, &[7]).unwrap();
    w.nack(1, 7, &[5, 6]).unwrap().pli(1, 7).unwrap().fir(1, &[(7, 1)]).unwrap();
    let len = w.finish();
    let all: Vec<_> = packets(&buf[..len]).into_iter().map(Result::unwrap).collect();
    assert_eq!(all.len(), 5);
    assert!(matches!(all[0], Packet::ReceiverReport { ssrc: 1, .. }));
    assert!(matches!(all[1], Packet::Remb { bitrate_bps: 1_000_000, .. }));
    assert!(matches!(&all[2], Packet::Nack { items, .. } if items.lost().eq([5, 6])));
    assert_eq!(all[3], Packet::Pli { sender_ssrc: 1, media_ssrc: 7 });
    assert!(matches!(&all[4], Packet::Fir { entries, .. } if entries.clone().eq([(7, 1)])));
}

#[test]
fn a_packet_that_does_not_fit_leaves_the_compound_as_it_was() {
    for cap in 0..=40 {
        let mut buf = vec![0u8; cap];
        let mut w = Writer::new(&mut buf);
        let pli = w.pli(1, 2).map(|w| w.len());
        let before = w.len();
        let rr = w.receiver_report(1, &[block(1)]).map(|w| w.len());
        match (cap, pli, rr) {
            (0..12, Err(RtcpError::BufferTooSmall), Err(RtcpError::BufferTooSmall)) => assert_eq!(w.len(), 0),
            (12..44, Ok(12), Err(RtcpError::BufferTooSmall)) => assert_eq!(w.len(), before),
            other => panic!("{other:?}"),
        }
        let len = w.finish();
        assert!(len <= cap);
        assert!(Compound::new(&buf[..len]).all(|p| p.is_ok()) || len == 0);
    }
}

// --- Properties --------------------------------------------------------------------------

/// One RTCP packet of a structured random compound: header fields and a body of whole words.
fn arbitrary_packet() -> impl Strategy<Value = (u8, u8, Vec<u8>)> {
    let packet_type = prop_oneof![4 => 200u8..=207, 1 => 192u8..=223, 1 => any::<u8>()];
    let body = prop::collection::vec(any::<u8>(), 0..24).prop_map(|mut b| {
        b.truncate(b.len() / 4 * 4);
        b
    });
    (0u8..32, packet_type, body)
}

fn assemble(packets: &[(u8, u8, Vec<u8>)], padded: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (count, packet_type, body)) in packets.iter().enumerate() {
        let pad = padded && i + 1 == packets.len();
        let words = (body.len() / 4) as u16;
        out.push(0x80 | if pad { 0x20 } else { 0 } | count);
        out.push(*packet_type);
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Arbitrary bytes never panic the walk, and it always ends.
    #[test]
    fn arbitrary_datagrams_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..400), version2 in any::<bool>()) {
        if version2 && bytes.len() >= 2 {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            bytes[1] = 192 + bytes[1] % 32;
        }
        walk(&bytes);
    }

    /// Compounds with correct framing and random bodies reach every parser; cut anywhere,
    /// they still never panic.
    #[test]
    fn structured_compounds_never_panic(
        packets in prop::collection::vec(arbitrary_packet(), 1..6),
        padded in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let datagram = assemble(&packets, padded);
        walk(&datagram);
        walk(&datagram[..cut.index(datagram.len() + 1)]);
    }

    /// Builders never panic or overrun with any input and any (small) buffer; what they write
    /// parses back to what they were given.
    #[test]
    fn builders_never_panic(
        cap in 0usize..600,
        ssrc in any::<u32>(),
        blocks in prop::collection::vec(any::<(u32, u8, i32, u32, u32, u32, u32)>(), 0..40),
        lost in prop::collection::vec(any::<u16>(), 0..120),
        entries in prop::collection::vec(any::<(u32, u8)>(), 0..70),
        bitrate in any::<u64>(),
        ssrcs in prop::collection::vec(any::<u32>(), 0..300),
    ) {
        let blocks: Vec<_> = blocks
            .into_iter()
            .map(|(ssrc, fraction_lost, cumulative_lost, highest_seq, jitter, last_sr, delay_since_last_sr)| {
                let cumulative_lost = cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1);
                ReportBlock { ssrc, fraction_lost, cumulative_lost, highest_seq, jitter, last_sr, delay_since_last_sr }
            })
            .collect();
        let info = SenderInfo { ssrc, ntp: bitrate, rtp_ts: ssrc, packet_count: 1, octet_count: 2 };
        let mut buf = vec![0u8; cap];
        let mut w = Writer::new(&mut buf);
        let mut written = 0;
        for step in 0..6 {
            let before = w.len();
            let result = match step {
                0 => w.receiver_report(ssrc, &blocks).map(|_| ()),
                1 => w.sender_report(&info, &blocks).map(|_| ()),
                2 => w.pli(ssrc, !ssrc).map(|_| ()),
                3 => w.fir(ssrc, &entries).map(|_| ()),
                4 => w.nack(ssrc, !ssrc, &lost).map(|_| ()),
                _ => w.remb(ssrc, bitrate, &ssrcs).map(|_| ()),
            };
            match result {
                Ok(()) => written += 1,
                Err(_) => prop_assert_eq!(w.len(), before),
            }
            prop_assert!(w.len() <= cap);
        }
        let len = w.finish();
        let parsed: Vec<_> = Compound::new(&buf[..len]).collect();
        prop_assert_eq!(parsed.len(), if len == 0 { 1 } else { written });
        for packet in parsed {
            match packet {
                Err(e) => prop_assert!(len == 0 && e == RtcpError::Truncated),
                Ok(Packet::ReceiverReport { reports, .. } | Packet::SenderReport { reports, .. }) => {
                    prop_assert!(reports.eq(blocks.iter().copied()));
                }
                Ok(Packet::Fir { entries: parsed, .. }) => prop_assert!(parsed.eq(entries.iter().copied())),
                Ok(Packet::Nack { items, .. }) => {
                    let named: std::collections::BTreeSet<u16> = items.lost().collect();
                    prop_assert_eq!(named, lost.iter().copied().collect());
                }
                Ok(Packet::Remb { ssrcs: parsed, .. }) => prop_assert!(parsed.eq(ssrcs.iter().copied())),
                Ok(Packet::Pli { sender_ssrc, media_ssrc }) => prop_assert_eq!((sender_ssrc, media_ssrc), (ssrc, !ssrc)),
                Ok(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    /// Every number given to the NACK writer comes back, and nothing else.
    #[test]
    fn nack_names_exactly_the_lost_numbers(lost in prop::collection::vec(any::<u16>(), 1..300), start in any::<u16>(), ascending in any::<bool>()) {
        let lost: Vec<u16> = if ascending {
            let mut seq = start;
            lost.iter().map(|step| { seq = seq.wrapping_add(1 + step % 20); seq }).collect()
        } else {
            lost
        };
        let mut buf = vec![0u8; 12 + 4 * lost.len()];
        let mut w = Writer::new(&mut buf);
        w.nack(1, 2, &lost).unwrap();
        let len = w.finish();
        let Some(Ok(Packet::Nack { items, .. })) = Compound::new(&buf[..len]).next() else { panic!() };
        let named: std::collections::BTreeSet<u16> = items.lost().collect();
        prop_assert_eq!(named, lost.iter().copied().collect());
    }

    /// REMB rounds down, by less than one step of the 18-bit mantissa.
    #[test]
    fn remb_bitrate_rounds_down_by_less_than_a_mantissa_step(bitrate in any::<u64>()) {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.remb(1, bitrate, &[]).unwrap();
        let len = w.finish();
        let Some(Ok(Packet::Remb { bitrate_bps, .. })) = Compound::new(&buf[..len]).next() else { panic!() };
        prop_assert!(bitrate_bps <= bitrate);
        prop_assert!(bitrate - bitrate_bps <= bitrate >> 17);
    }
}
