//! The media layer's own counters: why datagrams were dropped, by a reason finer than the
//! engine's. Each worker owns one block and is its only writer (relaxed adds, no contention);
//! the control thread sums them for metrics and the API.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why the media layer dropped a datagram, or what it did instead of forwarding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaDrop {
    /// From an address that never passed an authenticated ICE check (RTP, RTCP, DTLS).
    UnknownAddress,
    /// STUN that does not parse, names an unknown ufrag, or fails a guard.
    StunRejected,
    /// STUN that failed MESSAGE-INTEGRITY (answered 401).
    StunUnauthorized,
    /// DTLS before the participant's fingerprint was signaled, or malformed, or after failure.
    DtlsRejected,
    /// SRTP/SRTCP before DTLS finished.
    NotReady,
    /// SRTP/SRTCP that failed authentication or replay checks.
    SrtpRejected,
    /// RTP whose SSRC the participant did not signal.
    UnknownSsrc,
    /// RTCP that does not parse.
    RtcpMalformed,
    /// First byte matches no protocol (RFC 7983).
    UnknownProtocol,
    /// NACK or keyframe-request mailbox full.
    MailboxFull,
    /// A copy not sent: its receiver negotiated no payload type for the packet's codec.
    CodecNotNegotiated,
}

impl MediaDrop {
    pub const ALL: [MediaDrop; 11] = [
        Self::UnknownAddress,
        Self::StunRejected,
        Self::StunUnauthorized,
        Self::DtlsRejected,
        Self::NotReady,
        Self::SrtpRejected,
        Self::UnknownSsrc,
        Self::RtcpMalformed,
        Self::UnknownProtocol,
        Self::MailboxFull,
        Self::CodecNotNegotiated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAddress => "unknown_address",
            Self::StunRejected => "stun_rejected",
            Self::StunUnauthorized => "stun_unauthorized",
            Self::DtlsRejected => "dtls_rejected",
            Self::NotReady => "not_ready",
            Self::SrtpRejected => "srtp_rejected",
            Self::UnknownSsrc => "unknown_ssrc",
            Self::RtcpMalformed => "rtcp_malformed",
            Self::UnknownProtocol => "unknown_protocol",
            Self::MailboxFull => "mailbox_full",
            Self::CodecNotNegotiated => "codec_not_negotiated",
        }
    }
}

/// Things the media layer did, besides forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaEvent {
    RtpForwarded,
    KeyframeRequestsSent,
    NacksAnswered,
    NacksMissed,
    ReportsSent,
    DtlsCompleted,
}

impl MediaEvent {
    pub const ALL: [MediaEvent; 6] = [
        Self::RtpForwarded,
        Self::KeyframeRequestsSent,
        Self::NacksAnswered,
        Self::NacksMissed,
        Self::ReportsSent,
        Self::DtlsCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RtpForwarded => "rtp_forwarded",
            Self::KeyframeRequestsSent => "keyframe_requests_sent",
            Self::NacksAnswered => "nacks_answered",
            Self::NacksMissed => "nacks_missed",
            Self::ReportsSent => "reports_sent",
            Self::DtlsCompleted => "dtls_completed",
        }
    }
}

#[derive(Debug, Default)]
pub struct MediaCounters {
    drops: [AtomicU64; MediaDrop::ALL.len()],
    events: [AtomicU64; MediaEvent::ALL.len()],
}

impl MediaCounters {
    #[inline]
    pub fn count(&self, reason: MediaDrop) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(&self, event: MediaEvent, n: u64) {
        self.events[event as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn drops(&self, reason: MediaDrop) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    pub fn events(&self, event: MediaEvent) -> u64 {
        self.events[event as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let counters = MediaCounters::default();
        for (i, reason) in MediaDrop::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i);
            counters.count(reason);
        }
        for (i, event) in MediaEvent::ALL.into_iter().enumerate() {
            assert_eq!(event as usize, i);
            counters.add(event, 2);
        }
        assert!(MediaDrop::ALL.iter().all(|&r| counters.drops(r) == 1));
        assert!(MediaEvent::ALL.iter().all(|&e| counters.events(e) == 2));
    }
}
