//! ICE-lite (RFC 8445 §2.5, §7.3) for one endpoint: answer connectivity checks, learn the
//! peer's address only from authenticated checks, follow its nomination, and watch consent
//! (RFC 7675): without an authenticated check for 30 s the endpoint expires.
//!
//! The bridge is always the controlled agent and never sends checks. Handling a request is an
//! ordered list of guard clauses, each ending in a silent drop or an error response, as
//! mediasoup does; the caller counts the outcome.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun::{AttrType, Class, Key, Message, MessageBuilder, Method, short_term_key};

/// How long an address keeps consent after its last authenticated check (RFC 7675 §5.1).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of a STUN request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A success response of `len` bytes is in the output buffer; send it to the source.
    Respond { len: usize },
    /// An error response of `len` bytes is in the output buffer (401, 487, 400).
    Reject { len: usize, code: u16 },
    /// Dropped without a reply, for the reason given.
    Drop(DropCause),
}

/// Why a datagram got no reply. Each is a counted drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// Not a Binding request (indications are keepalives; responses are not ours).
    NotBindingRequest,
    /// FINGERPRINT missing or wrong (RFC 8445 §7.3: discard).
    BadFingerprint,
    /// USERNAME missing or not for this endpoint (the caller routes by ufrag; this is a guard).
    WrongUsername,
    /// The output buffer cannot hold the response.
    NoRoom,
}

/// State of the endpoint's ICE-lite agent.
#[derive(Debug)]
pub struct IceLite {
    local_ufrag: String,
    local_key: Key,
    remote_ufrag: Option<String>,
    /// Address nominated by the peer (USE-CANDIDATE), where media goes.
    selected: Option<SocketAddr>,
    /// Last authenticated check from the selected address.
    last_consent: Option<Instant>,
    expired: bool,
}

impl IceLite {
    /// An agent with our short-term credentials (ufrag and password we signal in the answer).
    pub fn new(local_ufrag: &str, local_password: &str) -> Self {
        Self {
            local_ufrag: local_ufrag.to_owned(),
            local_key: short_term_key(local_password),
            remote_ufrag: None,
            selected: None,
            last_consent: None,
            expired: false,
        }
    }

    /// The peer's ufrag from its offer; once set, checks must name it.
    pub fn set_remote_ufrag(&mut self, ufrag: &str) {
        self.remote_ufrag = Some(ufrag.to_owned());
    }

    /// Where media goes, once the peer nominated a pair.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// Whether a datagram from `from` may reach the conference: only the nominated address.
    pub fn accepts(&self, from: SocketAddr) -> bool {
        !self.expired && self.selected == Some(from)
    }

    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// When consent runs out, if anything is selected.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expired { None } else { self.last_consent.map(|t| t + CONSENT_TIMEOUT) }
    }

    /// Expires the endpoint once consent has run out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.expired = true;
            self.selected = None;
        }
    }

    /// Handles one STUN message from `from`; a response goes into `out`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Message<'_>,
        out: &mut [u8],
    ) -> Outcome {
        if request.method() != Method::BINDING || request.class() != Class::Request {
            return Outcome::Drop(DropCause::NotBindingRequest);
        }
        if request.verify_fingerprint().is_err() {
            return Outcome::Drop(DropCause::BadFingerprint);
        }
        if !self.username_matches(request) {
            return Outcome::Drop(DropCause::WrongUsername);
        }
        if request.verify_integrity(&self.local_key).is_err() {
            return self.error(request, 401, "Unauthorized", out);
        }
        // We are controlled; a peer that also claims the controlled role conflicts (§7.3.1.1).
        if request.ice_controlled().is_ok() {
            return self.error(request, 487, "Role Conflict", out);
        }
        if request.priority().is_err() {
            return self.error(request, 400, "Bad Request", out);
        }
        if request.use_candidate() && !self.expired {
            // Nomination: the address switches only here, on an authenticated request.
            self.selected = Some(from);
        }
        if self.selected == Some(from) {
            self.last_consent = Some(now);
        }
        self.success(request, from, out)
    }

    /// USERNAME must be "our ufrag:their ufrag" (RFC 8445 §7.2.2).
    fn username_matches(&self, request: &Message<'_>) -> bool {
        let Ok(username) = request.username() else { return false };
        let Some((ours, theirs)) = username.split_once(':') else { return false };
        ours == self.local_ufrag && self.remote_ufrag.as_deref().is_none_or(|r| r == theirs)
    }

    fn success(&self, request: &Message<'_>, from: SocketAddr, out: &mut [u8]) -> Outcome {
        let built = (|| {
            let mut response =
                MessageBuilder::new(out, Method::BINDING, Class::Success, request.transaction_id())?;
            response.xor_address(AttrType::XOR_MAPPED_ADDRESS, from)?;
            response.message_integrity(&self.local_key)?.fingerprint()?;
            Ok::<_, stun::BufferTooSmall>(response.finish())
        })();
        built.map_or(Outcome::Drop(DropCause::NoRoom), |len| Outcome::Respond { len })
    }

    /// An error response. 401 carries no MESSAGE-INTEGRITY (we could not authenticate the
    /// peer); the others are signed.
    fn error(&self, request: &Message<'_>, code: u16, reason: &str, out: &mut [u8]) -> Outcome {
        let built = (|| {
            let mut response =
                MessageBuilder::new(out, Method::BINDING, Class::Error, request.transaction_id())?;
            response.error_code(code, reason)?;
            if code != 401 {
                response.message_integrity(&self.local_key)?;
            }
            response.fingerprint()?;
            Ok::<_, stun::BufferTooSmall>(response.finish())
        })();
        built.map_or(Outcome::Drop(DropCause::NoRoom), |len| Outcome::Reject { len, code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::TransactionId;

    const LOCAL_UFRAG: &str = "brdg";
    const LOCAL_PWD: &str = "bridge-password-0123456789";

    /// A check as a controlling full agent (Chromium) sends it.
    fn check(username: &str, password: &str, use_candidate: bool, txid: u8, buf: &mut [u8]) -> usize {
        let key = short_term_key(password);
        let mut b =
            MessageBuilder::new(buf, Method::BINDING, Class::Request, TransactionId([txid; 12])).unwrap();
        b.attribute(AttrType::USERNAME, username.as_bytes()).unwrap();
        b.u64(AttrType::ICE_CONTROLLING, 42).unwrap();
        b.u32(AttrType::PRIORITY, 0x6e00_01ff).unwrap();
        if use_candidate {
            b.attribute(AttrType::USE_CANDIDATE, &[]).unwrap();
        }
        b.message_integrity(&key).unwrap().fingerprint().unwrap();
        b.finish()
    }

    fn agent() -> IceLite {
        let mut agent = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
        agent.set_remote_ufrag("peer");
        agent
    }

    fn send(
        agent: &mut IceLite,
        now: Instant,
        from: &str,
        username: &str,
        pwd: &str,
        nominate: bool,
    ) -> (Outcome, Vec<u8>) {
        let mut buf = [0u8; 256];
        let len = check(username, pwd, nominate, 9, &mut buf);
        let message = Message::parse(&buf[..len]).unwrap();
        let mut out = [0u8; 256];
        let outcome = agent.handle_request(now, from.parse().unwrap(), &message, &mut out);
        (outcome, out.to_vec())
    }

    #[test]
    fn authenticated_check_gets_a_signed_response_with_the_mapped_address() {
        let mut agent = agent();
        let (outcome, out) =
            send(&mut agent, Instant::now(), "192.0.2.7:5000", "brdg:peer", LOCAL_PWD, false);
        let Outcome::Respond { len } = outcome else { panic!("{outcome:?}") };
        let response = Message::parse(&out[..len]).unwrap();
        assert_eq!(response.class(), Class::Success);
        assert_eq!(response.transaction_id(), TransactionId([9; 12]));
        assert_eq!(response.xor_mapped_address(), Ok("192.0.2.7:5000".parse().unwrap()));
        response.verify_integrity(&short_term_key(LOCAL_PWD)).unwrap();
        response.verify_fingerprint().unwrap();
        assert_eq!(agent.selected(), None, "no nomination yet");
    }

    #[test]
    fn nomination_selects_and_only_authenticated_checks_switch_the_address() {
        let mut agent = agent();
        let now = Instant::now();
        send(&mut agent, now, "192.0.2.7:5000", "brdg:peer", LOCAL_PWD, true);
        assert!(agent.accepts("192.0.2.7:5000".parse().unwrap()));
        assert!(!agent.accepts("192.0.2.8:5000".parse().unwrap()));

        let (outcome, out) = send(&mut agent, now, "198.51.100.1:9", "brdg:peer", "guessed", true);
        let Outcome::Reject { len, code: 401 } = outcome else { panic!("{outcome:?}") };
        assert_eq!(Message::parse(&out[..len]).unwrap().error_code(), Ok((401, "Unauthorized")));
        assert_eq!(agent.selected(), Some("192.0.2.7:5000".parse().unwrap()), "a forged check moves nothing");

        send(&mut agent, now, "192.0.2.9:6000", "brdg:peer", LOCAL_PWD, true);
        assert_eq!(
            agent.selected(),
            Some("192.0.2.9:6000".parse().unwrap()),
            "an authenticated nomination does"
        );
    }

    #[test]
    fn wrong_usernames_are_dropped_silently() {
        let mut agent = agent();
        for username in ["other:peer", "brdg:someone", "brdg", ""] {
            let (outcome, _) = send(&mut agent, Instant::now(), "192.0.2.7:5000", username, LOCAL_PWD, true);
            assert_eq!(outcome, Outcome::Drop(DropCause::WrongUsername), "{username:?}");
        }
        assert_eq!(agent.selected(), None);
    }

    #[test]
    fn consent_expires_thirty_seconds_after_the_last_check() {
        let mut agent = agent();
        let start = Instant::now();
        send(&mut agent, start, "192.0.2.7:5000", "brdg:peer", LOCAL_PWD, true);
        let refreshed = start + Duration::from_secs(20);
        send(&mut agent, refreshed, "192.0.2.7:5000", "brdg:peer", LOCAL_PWD, false);
        assert_eq!(agent.poll_timeout(), Some(refreshed + CONSENT_TIMEOUT));
        agent.handle_timeout(refreshed + Duration::from_secs(29));
        assert!(!agent.is_expired());
        agent.handle_timeout(refreshed + CONSENT_TIMEOUT);
        assert!(agent.is_expired());
        assert!(!agent.accepts("192.0.2.7:5000".parse().unwrap()));
        assert_eq!(agent.poll_timeout(), None);
    }

    #[test]
    fn a_peer_claiming_the_controlled_role_gets_487() {
        let mut agent = agent();
        let mut buf = [0u8; 256];
        let key = short_term_key(LOCAL_PWD);
        let mut b =
            MessageBuilder::new(&mut buf, Method::BINDING, Class::Request, TransactionId([1; 12])).unwrap();
        b.attribute(AttrType::USERNAME, b"brdg:peer").unwrap();
        b.u64(AttrType::ICE_CONTROLLED, 7).unwrap();
        b.u32(AttrType::PRIORITY, 1).unwrap();
        b.message_integrity(&key).unwrap().fingerprint().unwrap();
        let len = b.finish();
        let mut out = [0u8; 256];
        let message = Message::parse(&buf[..len]).unwrap();
        let outcome =
            agent.handle_request(Instant::now(), "192.0.2.7:5000".parse().unwrap(), &message, &mut out);
        assert!(matches!(outcome, Outcome::Reject { code: 487, .. }), "{outcome:?}");
    }

    #[test]
    fn responses_that_do_not_fit_are_dropped_not_truncated() {
        let mut agent = agent();
        let mut buf = [0u8; 256];
        let len = check("brdg:peer", LOCAL_PWD, false, 3, &mut buf);
        let message = Message::parse(&buf[..len]).unwrap();
        let mut tiny = [0u8; 40];
        let outcome =
            agent.handle_request(Instant::now(), "192.0.2.7:5000".parse().unwrap(), &message, &mut tiny);
        assert_eq!(outcome, Outcome::Drop(DropCause::NoRoom));
    }
}
