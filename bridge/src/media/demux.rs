//! Which protocol a datagram on the shared media port speaks, from its first bytes
//! (RFC 7983 §7, RFC 5761 §4 for RTP and RTCP on one port).

/// A datagram's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
    Unknown,
}

/// Classifies by the first byte; RTP and RTCP by the second (RTCP packet types 192-223 have
/// the values RTP would need for marker + payload type 64-95, which WebRTC never assigns).
pub fn classify(datagram: &[u8]) -> Protocol {
    match datagram {
        [0..=3, ..] => Protocol::Stun,
        [20..=63, ..] => Protocol::Dtls,
        [128..=191, 192..=223, ..] => Protocol::Rtcp,
        [128..=191, _, ..] => Protocol::Rtp,
        _ => Protocol::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7983_ranges() {
        assert_eq!(classify(&[0x00, 0x01]), Protocol::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), Protocol::Dtls);
        assert_eq!(classify(&[0x80, 111]), Protocol::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), Protocol::Rtp);
        assert_eq!(classify(&[0x81, 200]), Protocol::Rtcp);
        assert_eq!(classify(&[0x81, 206]), Protocol::Rtcp);
        assert_eq!(classify(&[0x80]), Protocol::Unknown, "RTP needs a second byte");
        for unknown in [4u8, 19, 64, 127, 192, 255] {
            assert_eq!(classify(&[unknown, 0]), Protocol::Unknown, "{unknown}");
        }
        assert_eq!(classify(&[]), Protocol::Unknown);
    }
}
