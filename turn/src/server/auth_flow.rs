//! The long-term credential mechanism on the server's side (RFC 8489 §9.2.4), in the RFC's
//! order: no integrity attribute is a challenge, missing credential attributes a bad request,
//! an old nonce 438, a PASSWORD-ALGORITHM or PASSWORD-ALGORITHMS that does not match the offer a
//! bad request (the bid-down protection of §9.2.1), and a wrong user or key 401; then RFC 8656
//! §5: a request on an allocation's 5-tuple must come from the user who made it (441).
//!
//! Clients that know only RFC 5389 (browsers, coturn's uclient) send neither PASSWORD-ALGORITHM
//! nor PASSWORD-ALGORITHMS and sign with MESSAGE-INTEGRITY: they get MD5 keys, as always.

use std::borrow::Cow;

use stun::{AttrType, Class, ErrorCode, IntegrityKey, Message, Method, PasswordAlgorithm};

use crate::auth::{Features, NonceCheck, PASSWORD_ALGORITHMS};

use super::Server;
use super::io::{ClientTuple, Now, TurnIo};
use super::reply::Reply;

/// A request that passed authentication.
#[derive(Debug)]
pub(super) struct Authenticated<'m> {
    /// From USERNAME, or the configured name a USERHASH matched.
    pub username: Cow<'m, str>,
    /// The key the request was signed with; the response is signed with it too.
    pub key: IntegrityKey,
}

impl Server {
    /// Authenticates `message`, or answers it with the challenge or error and returns `None`.
    pub(super) fn authenticate<'m>(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'m>,
        io: &mut impl TurnIo,
    ) -> Option<Authenticated<'m>> {
        self.adopt_reloaded_credentials();
        let unsigned = Reply::to(message, None);
        if message.get(AttrType::MESSAGE_INTEGRITY).is_none() && !message.has_integrity_sha256() {
            // The first request of every client: not a failure.
            self.challenge(now, tuple, &unsigned, ErrorCode::UNAUTHENTICATED, io);
            return None;
        }
        let user = message.username().map(User::Name).or_else(|_| message.userhash().map(User::Hash));
        let (Ok(user), Some(_), Some(nonce)) =
            (user, message.get(AttrType::REALM), message.get(AttrType::NONCE))
        else {
            self.sent(unsigned.error(io, tuple, ErrorCode::BAD_REQUEST));
            return None;
        };
        let features = match self.nonces.check(nonce, tuple.client.ip(), now.unix_s) {
            NonceCheck::Fresh(features) => features,
            NonceCheck::Stale => {
                self.challenge(now, tuple, &unsigned, ErrorCode::STALE_NONCE, io);
                return None;
            }
            NonceCheck::Invalid => return self.refuse(now, tuple, &unsigned, io),
        };
        let Some(algorithm) = password_algorithm(message, features) else {
            self.sent(unsigned.error(io, tuple, ErrorCode::BAD_REQUEST));
            return None;
        };
        let username = match user {
            User::Name(name) => Cow::Borrowed(name),
            User::Hash(hash) => match self.credentials.username_for_hash(hash) {
                Some(name) => Cow::Owned(name.to_owned()),
                None => return self.refuse(now, tuple, &unsigned, io),
            },
        };
        let allocation_key = self
            .table
            .get(tuple)
            .filter(|a| *a.username == *username && a.key.algorithm() == algorithm)
            .map(|a| a.key.clone());
        if let Some(key) = allocation_key {
            if message.verify_any_integrity(&key).is_ok() {
                return Some(Authenticated { username, key });
            }
            return self.refuse(now, tuple, &unsigned, io);
        }
        let Ok(keys) = self.credentials.keys(&username, algorithm, now.unix_s) else {
            return self.refuse(now, tuple, &unsigned, io);
        };
        let Some(key) = keys.into_iter().find(|key| message.verify_any_integrity(key).is_ok()) else {
            return self.refuse(now, tuple, &unsigned, io);
        };
        let someone_else = self.table.get(tuple).is_some_and(|a| *a.username != *username);
        if someone_else && message.method() != Method::ALLOCATE {
            // Someone else's valid credentials on this 5-tuple (RFC 8656 §5). An Allocate goes
            // on to the 437 Allocation Mismatch of §7.2 instead, as for its own user.
            self.sent(Reply::to(message, Some(&key)).error(io, tuple, ErrorCode::WRONG_CREDENTIALS));
            return None;
        }
        Some(Authenticated { username, key })
    }

    /// Takes the credentials of the latest reload (SIGHUP), if there was one since the last look.
    fn adopt_reloaded_credentials(&mut self) {
        let generation = self.shared.credentials.generation();
        if generation != self.credentials_generation {
            self.credentials = self.shared.credentials.current();
            self.credentials_generation = generation;
        }
    }

    /// 401 for credentials that do not check out, counted towards the source's rate limit.
    fn refuse<T>(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        reply: &Reply<'_>,
        io: &mut impl TurnIo,
    ) -> Option<T> {
        self.shared.metrics.auth_failure();
        self.auth_limit.record_failure(tuple.client.ip(), now.instant);
        self.challenge(now, tuple, reply, ErrorCode::UNAUTHENTICATED, io);
        None
    }

    /// 401 or 438 with REALM, a fresh NONCE and PASSWORD-ALGORITHMS, and no integrity attribute
    /// (RFC 8489 §9.2.4).
    fn challenge(
        &self,
        now: Now,
        tuple: &ClientTuple,
        reply: &Reply<'_>,
        code: ErrorCode,
        io: &mut impl TurnIo,
    ) {
        let features = self.credentials.features();
        let nonce = self.nonces.mint(tuple.client.ip(), features, now.unix_s);
        let realm = self.credentials.realm();
        self.sent(reply.send(io, tuple, Class::Error, |m| {
            m.error(code)?
                .attribute(AttrType::REALM, realm.as_bytes())?
                .attribute(AttrType::NONCE, nonce.as_bytes())?;
            if features.contains(Features::PASSWORD_ALGORITHMS) {
                m.password_algorithms(&PASSWORD_ALGORITHMS)?;
            }
            Ok(())
        }));
    }
}

/// Who a request says it is from.
#[derive(Clone, Copy, Debug)]
enum User<'m> {
    Name(&'m str),
    Hash(&'m [u8; 32]),
}

/// The password algorithm of a request whose nonce advertised `features` (RFC 8489 §9.2.4), or
/// `None` for a bid-down attempt: 400. Without either attribute the request is a classic one
/// and takes MD5. Otherwise both must be present, PASSWORD-ALGORITHMS exactly the list this
/// server offers (the nonce's tag proves the offer was ours), and PASSWORD-ALGORITHM one of it.
fn password_algorithm(message: &Message<'_>, features: Features) -> Option<PasswordAlgorithm> {
    let chosen = message.get(AttrType::PASSWORD_ALGORITHM);
    let offered = message.get(AttrType::PASSWORD_ALGORITHMS);
    if !features.contains(Features::PASSWORD_ALGORITHMS) || (chosen.is_none() && offered.is_none()) {
        return Some(PasswordAlgorithm::Md5);
    }
    let mut ours = [0u8; 32];
    let len = stun::encode_password_algorithms(&PASSWORD_ALGORITHMS, &mut ours);
    if offered? != &ours[..len] {
        return None;
    }
    let (code, params) = stun::decode_password_algorithm(chosen?).ok()?;
    // MD5 and SHA-256 take no parameters (RFC 8489 §18.5).
    let algorithm = PasswordAlgorithm::from_code(code).filter(|_| params.is_empty())?;
    PASSWORD_ALGORITHMS.contains(&algorithm).then_some(algorithm)
}
