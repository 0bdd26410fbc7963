//! The long-term credential mechanism on the server's side (RFC 8489 §9.2.4), in the RFC's
//! order: no MESSAGE-INTEGRITY is a challenge, missing credential attributes a bad request, an
//! old nonce 438 and a wrong user or key 401; then RFC 8656 §5: a request on an allocation's
//! 5-tuple must come from the user who made it (441).

use ring::hmac;
use stun::{AttrType, Class, ErrorCode, Message, Method};

use crate::auth::NonceCheck;

use super::Server;
use super::io::{ClientTuple, Now, TurnIo};
use super::reply::Reply;

/// A request that passed authentication.
#[derive(Debug)]
pub(super) struct Authenticated<'m> {
    pub username: &'m str,
    /// The key the request was signed with; the response is signed with it too.
    pub key: hmac::Key,
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
        if message.get(AttrType::MESSAGE_INTEGRITY).is_none() {
            // The first request of every client: not a failure.
            self.challenge(now, tuple, &unsigned, ErrorCode::UNAUTHENTICATED, io);
            return None;
        }
        let (Ok(username), Some(_), Some(nonce)) =
            (message.username(), message.get(AttrType::REALM), message.get(AttrType::NONCE))
        else {
            self.sent(unsigned.error(io, tuple, ErrorCode::BAD_REQUEST));
            return None;
        };
        match self.nonces.check(nonce, tuple.client.ip(), now.unix_s) {
            NonceCheck::Fresh => {}
            NonceCheck::Stale => {
                self.challenge(now, tuple, &unsigned, ErrorCode::STALE_NONCE, io);
                return None;
            }
            NonceCheck::Invalid => return self.refuse(now, tuple, &unsigned, io),
        }
        let allocation = self.table.get(tuple);
        if let Some(allocation) = allocation.filter(|a| &*a.username == username) {
            if message.verify_integrity(&allocation.key).is_ok() {
                return Some(Authenticated { username, key: allocation.key.clone() });
            }
            return self.refuse(now, tuple, &unsigned, io);
        }
        let Ok(keys) = self.credentials.keys(username, now.unix_s) else {
            return self.refuse(now, tuple, &unsigned, io);
        };
        let Some(key) = keys.iter().find(|key| message.verify_integrity(key.hmac()).is_ok()) else {
            return self.refuse(now, tuple, &unsigned, io);
        };
        let key = key.hmac().clone();
        if self.table.get(tuple).is_some() && message.method() != Method::ALLOCATE {
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

    /// 401 or 438 with REALM and a fresh NONCE, and no MESSAGE-INTEGRITY (RFC 8489 §9.2.4).
    fn challenge(
        &self,
        now: Now,
        tuple: &ClientTuple,
        reply: &Reply<'_>,
        code: ErrorCode,
        io: &mut impl TurnIo,
    ) {
        let nonce = self.nonces.mint(tuple.client.ip(), now.unix_s);
        let realm = self.credentials.realm();
        self.sent(reply.send(io, tuple, Class::Error, |m| {
            m.error(code)?
                .attribute(AttrType::REALM, realm.as_bytes())?
                .attribute(AttrType::NONCE, nonce.as_bytes())?;
            Ok(())
        }));
    }
}
