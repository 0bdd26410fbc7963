//! DTLS-SRTP (RFC 5764) for one peer, server role only, sans-IO, on OpenSSL.
//!
//! The browser is `a=setup:active` and the bridge the DTLS server (DESIGN.md: as server we
//! pick the SRTP profile, and we prefer AES-GCM). A [`DtlsServer`] is driven like the rest of
//! `media`: datagrams and the time go in, datagrams and a deadline come out, and once the
//! handshake is done the SRTP keys are taken out once.
//!
//! ```text
//! let mut dtls = DtlsServer::new(&certificate, remote_fingerprint, now)?;
//! loop {
//!     // a datagram the demultiplexer classified as DTLS (record::looks_like_dtls):
//!     dtls.handle_datagram(now, &datagram)?;        // Err: dropped, count it by reason
//!     // or the deadline passed:
//!     dtls.handle_timeout(now);
//!     while let Some(len) = dtls.poll_transmit(&mut buf) { send(&buf[..len]) }
//!     if let Some(keys) = dtls.take_srtp_keys() { /* srtp::Context::new for each direction */ }
//!     match dtls.state() { DtlsState::Failed(_) | DtlsState::Closed => break, _ => {} }
//!     wake_at(dtls.poll_timeout());
//! }
//! ```
//!
//! The contract:
//! - The client must present a certificate; any certificate is accepted during the handshake
//!   (WebRTC certificates are self-signed), then its SHA-256 must equal the fingerprint the
//!   peer signaled (RFC 8122 §5), or the association fails and nothing is exported.
//! - SRTP profiles by our preference, whatever the client's order (see [`SRTP_PROFILES`]).
//! - Keys per RFC 5764 §4.2: the exporter's output is client key | server key | client salt |
//!   server salt; we protect with the server half.
//! - Flights fit in [`MTU`] bytes: every datagram [`DtlsServer::poll_transmit`] returns does.
//!   OpenSSL packs a flight's messages into as few datagrams as fit, but retransmits them one
//!   message per datagram.
//! - Retransmission is OpenSSL's own timer (RFC 6347 §4.2.4: 1 s, doubling up to 60 s); the
//!   whole handshake gets [`HANDSHAKE_TIMEOUT`] from [`DtlsServer::new`]. As the server sends
//!   the last flight it runs no timer once connected: a lost last flight is sent again when
//!   the client retransmits its own.
//! - [`DtlsServer::close`] sends a close_notify, as does a fingerprint mismatch.
//! - After the handshake, a close_notify closes; application data is read and discarded:
//!   WebRTC data channels (SCTP over DTLS) are not supported.
//!
//! Time: we never read a clock, but OpenSSL's retransmission timer does (`gettimeofday`, the
//! wall clock, in `ssl/d1_lib.c`); the crate has no way to inject one. We ask OpenSSL how much
//! time is *left* each time we touch the connection and add that to the caller's `now`. So
//! the caller's clock must run at real speed: a simulated clock jumping ahead sees no
//! retransmission until real time has caught up. The handshake timeout is ours and follows
//! the caller's clock alone.

mod cert;
mod keys;
pub mod record;
mod server;
mod timer;
mod transport;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

pub use cert::{Certificate, Fingerprint};
pub use keys::{KeyMaterial, SrtpKeys};
pub use server::DtlsServer;

/// Largest datagram we send (UDP payload). 1200 bytes leave room for IPv6, UDP and a TURN
/// channel header below common path MTUs, as browsers do.
pub const MTU: usize = 1200;

/// How long a handshake may take from [`DtlsServer::new`], retransmissions included.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SRTP protection profiles we offer, in our order of preference: AES-GCM first (cheaper
/// per packet, DESIGN.md), AES-CM last for peers without it. OpenSSL's server picks the first
/// profile of *this* list that the client offers, whatever the client's order
/// (`tls_parse_ctos_use_srtp` in `ssl/statem/extensions_srvr.c`; `SSL_OP_CIPHER_SERVER_PREFERENCE`
/// plays no part).
pub const SRTP_PROFILES: &str =
    "SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32";

/// What went wrong. Small and `Copy`: counted by reason, never allocated per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtlsError {
    /// OpenSSL could not make our key pair or certificate.
    CertificateGeneration,
    /// OpenSSL refused our configuration (a bug or out of memory; never the peer's doing).
    Setup,
    /// The signaled fingerprint is not `sha-256` followed by 32 colon-separated hex pairs.
    FingerprintSyntax,
    /// The signaled fingerprint uses a hash function other than SHA-256.
    FingerprintHash,
    /// The handshake failed: a fatal alert, a malformed message, no certificate.
    HandshakeFailed,
    /// The handshake succeeded but no SRTP profile is common to both sides.
    NoSrtpProfile,
    /// The client's certificate does not match the fingerprint it signaled.
    FingerprintMismatch,
    /// No completed handshake [`HANDSHAKE_TIMEOUT`] after the server was made.
    HandshakeTimeout,
    /// A datagram arrived while the receive queue was full; it was dropped.
    QueueFull,
    /// A datagram that is not a sequence of well-formed DTLS records; it was dropped.
    NotDtls,
}

impl fmt::Display for DtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertificateGeneration => "DTLS certificate generation failed",
            Self::Setup => "DTLS setup failed",
            Self::FingerprintSyntax => "malformed DTLS fingerprint",
            Self::FingerprintHash => "DTLS fingerprint hash function is not sha-256",
            Self::HandshakeFailed => "DTLS handshake failed",
            Self::NoSrtpProfile => "no common SRTP protection profile",
            Self::FingerprintMismatch => "DTLS certificate does not match the signaled fingerprint",
            Self::HandshakeTimeout => "DTLS handshake timed out",
            Self::QueueFull => "DTLS receive queue full",
            Self::NotDtls => "not a DTLS datagram",
        })
    }
}

impl std::error::Error for DtlsError {}

/// Where the association is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtlsState {
    /// Waiting for or in the handshake.
    Handshaking,
    /// Handshake done and the fingerprint verified: SRTP keys are available.
    Connected,
    /// Gave up; nothing more will be sent or exported.
    Failed(DtlsError),
    /// The peer closed (close_notify or a fatal alert after the handshake).
    Closed,
}
