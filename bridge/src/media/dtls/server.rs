//! The DTLS server state machine: OpenSSL does the protocol; this drives it with datagrams
//! and the caller's time, checks the peer's fingerprint and takes the keys out.

use std::fmt;
use std::time::Instant;

use openssl::error::ErrorStack;
use openssl::ssl::{
    ErrorCode, Ssl, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslStream, SslVerifyMode,
    SslVersion,
};

use super::keys::{self, Role, SrtpKeys};
use super::timer::{self, Expiry};
use super::transport::Datagrams;
use super::{Certificate, DtlsError, DtlsState, Fingerprint, HANDSHAKE_TIMEOUT, MTU, SRTP_PROFILES, record};

/// One peer's DTLS association, bridge side.
pub struct DtlsServer {
    stream: SslStream<Datagrams>,
    /// What the peer signaled in `a=fingerprint`.
    remote: Fingerprint,
    state: DtlsState,
    handshake_deadline: Instant,
    /// When OpenSSL's retransmission timer fires, in the caller's time.
    retransmit_at: Option<Instant>,
    /// Exported once the handshake is done and verified, until taken.
    keys: Option<SrtpKeys>,
}

impl fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsServer")
            .field("state", &self.state)
            .field("remote", &self.remote)
            .field("handshake_deadline", &self.handshake_deadline)
            .field("retransmit_at", &self.retransmit_at)
            .finish_non_exhaustive()
    }
}

/// An `SSL` in accept state for one association.
fn configure(cert: &Certificate) -> Result<Ssl, ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::dtls_server())?;
    // DTLS 1.2 only: RFC 5764's exporter layout is defined for it (and OpenSSL 3 speaks
    // nothing newer, DESIGN.md).
    ctx.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    ctx.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    ctx.set_certificate(&cert.x509)?;
    ctx.set_private_key(&cert.key)?;
    ctx.check_private_key()?;
    // WebRTC certificates are self-signed: any passes here, and the fingerprint comparison
    // after the handshake authenticates the peer (RFC 8122 §5). The client must send one.
    ctx.set_verify_callback(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT, |_, _| true);
    ctx.set_tlsext_use_srtp(SRTP_PROFILES)?;
    // NO_QUERY_MTU: without it, after three retransmissions OpenSSL asks the BIO for a
    // fallback MTU, which the crate's stream BIO answers with 0 (`dtls1_check_timeout_num`).
    // No tickets or session cache: one context per association, every handshake a full one,
    // so the client's certificate is always there to check.
    ctx.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
    ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
    let ctx = ctx.build();
    let mut ssl = Ssl::new(&ctx)?;
    ssl.set_mtu(MTU as u32)?;
    ssl.set_accept_state();
    Ok(ssl)
}

impl DtlsServer {
    /// A server for one peer that signaled `remote`, with the handshake deadline counted
    /// from `now`.
    pub fn new(cert: &Certificate, remote: Fingerprint, now: Instant) -> Result<Self, DtlsError> {
        let ssl = configure(cert).map_err(|_| DtlsError::Setup)?;
        let stream = SslStream::new(ssl, Datagrams::default()).map_err(|_| DtlsError::Setup)?;
        Ok(Self {
            stream,
            remote,
            state: DtlsState::Handshaking,
            handshake_deadline: now + HANDSHAKE_TIMEOUT,
            retransmit_at: None,
            keys: None,
        })
    }

    /// One received DTLS datagram (it may hold several records). `Err` means it was dropped
    /// without reaching OpenSSL: count it by reason. What the datagram does to the
    /// association shows in [`state`](Self::state); after a failure or close, datagrams are
    /// ignored.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DtlsError> {
        record::check_datagram(datagram).map_err(|_| DtlsError::NotDtls)?;
        self.check_deadline(now);
        if !self.is_live() {
            return Ok(());
        }
        self.stream.get_mut().push_incoming(datagram)?;
        self.drive();
        self.rearm(now);
        Ok(())
    }

    /// Copies the next datagram to send into `out` (give it [`MTU`] bytes) and returns its
    /// length; `None` when nothing is queued.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<usize> {
        self.stream.get_mut().pop_outgoing(out)
    }

    /// The next retransmission or the handshake deadline, whichever comes first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            DtlsState::Handshaking => {
                Some(self.retransmit_at.map_or(self.handshake_deadline, |at| at.min(self.handshake_deadline)))
            }
            DtlsState::Connected => self.retransmit_at,
            DtlsState::Failed(_) | DtlsState::Closed => None,
        }
    }

    /// Retransmits if the timer is due, or fails the handshake at its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_deadline(now);
        if !self.is_live() {
            return;
        }
        // Not due: leave the deadline alone. Re-reading OpenSSL's timer against a `now` that
        // is not the real time would move it.
        if self.retransmit_at.is_none_or(|at| now < at) {
            return;
        }
        if timer::handle_timeout(self.stream.ssl()) == Expiry::Fatal {
            self.fail(DtlsError::HandshakeFailed);
            return;
        }
        // Retransmitted (the timer restarted, doubled), or OpenSSL's clock says a few
        // milliseconds remain: either way the new deadline is what OpenSSL says is left.
        self.rearm(now);
    }

    pub fn state(&self) -> DtlsState {
        self.state
    }

    /// Once connected: the negotiated profile and keys, the first time only.
    pub fn take_srtp_keys(&mut self) -> Option<SrtpKeys> {
        if self.state != DtlsState::Connected {
            return None;
        }
        self.keys.take()
    }

    /// Ends a connected association with a close_notify (queued for `poll_transmit`).
    pub fn close(&mut self) {
        if self.state == DtlsState::Connected {
            // A failure to queue the alert changes nothing: we are closed either way.
            let _ = self.stream.shutdown();
        }
        if self.is_live() {
            self.end(DtlsState::Closed);
        }
    }

    /// Datagrams dropped on the way out: the queue was full or `poll_transmit`'s buffer too
    /// small.
    pub fn dropped_datagrams(&self) -> u64 {
        self.stream.get_ref().dropped_outgoing()
    }

    fn is_live(&self) -> bool {
        matches!(self.state, DtlsState::Handshaking | DtlsState::Connected)
    }

    fn check_deadline(&mut self, now: Instant) {
        if self.state == DtlsState::Handshaking && now >= self.handshake_deadline {
            self.fail(DtlsError::HandshakeTimeout);
        }
    }

    /// Lets OpenSSL consume what is queued: the handshake, then records after it.
    fn drive(&mut self) {
        if self.state == DtlsState::Handshaking {
            match self.stream.accept() {
                Ok(()) => self.finish_handshake(),
                Err(e) if e.code() == ErrorCode::WANT_READ => return,
                Err(_) => {
                    // A fatal alert OpenSSL queued, if any, still goes out through poll_transmit.
                    self.fail(DtlsError::HandshakeFailed);
                    return;
                }
            }
        }
        if self.state == DtlsState::Connected {
            self.read_records();
        }
    }

    /// Handshake done: authenticate the peer by its fingerprint, then export the keys.
    fn finish_handshake(&mut self) {
        let verified = self
            .stream
            .ssl()
            .peer_certificate()
            .and_then(|cert| Fingerprint::of(&cert).ok())
            .is_some_and(|fingerprint| fingerprint == self.remote);
        let keys = if verified {
            keys::export(self.stream.ssl(), Role::Server)
        } else {
            Err(DtlsError::FingerprintMismatch)
        };
        match keys {
            Ok(keys) => {
                self.keys = Some(keys);
                self.state = DtlsState::Connected;
            }
            Err(e) => {
                // Tell the client at once rather than let it wait for media that never comes.
                let _ = self.stream.shutdown();
                self.fail(e);
            }
        }
    }

    /// Reads what follows the handshake: application data is discarded (no data channels);
    /// a close_notify or a fatal alert closes. Retransmitted client flights are answered by
    /// OpenSSL in passing.
    fn read_records(&mut self) {
        let mut discard = [0u8; 2048];
        loop {
            match self.stream.ssl_read(&mut discard) {
                Ok(_) => continue,
                Err(e) if e.code() == ErrorCode::WANT_READ => return,
                Err(e) => {
                    if e.code() == ErrorCode::ZERO_RETURN {
                        // Answer the close_notify with ours (RFC 5246 §7.2.1).
                        let _ = self.stream.shutdown();
                    }
                    self.end(DtlsState::Closed);
                    return;
                }
            }
        }
    }

    /// Re-reads OpenSSL's timer into the caller's time.
    fn rearm(&mut self, now: Instant) {
        self.retransmit_at = if self.is_live() {
            timer::time_left(self.stream.ssl()).and_then(|left| now.checked_add(left))
        } else {
            None
        };
    }

    fn fail(&mut self, error: DtlsError) {
        self.end(DtlsState::Failed(error));
    }

    /// Enters a final state: no more timers, no keys left to take.
    fn end(&mut self, state: DtlsState) {
        self.state = state;
        self.retransmit_at = None;
        self.keys = None;
    }
}
