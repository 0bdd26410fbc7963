//! The controlling side of ICE against an ICE-lite bridge: binding requests with
//! USE-CANDIDATE (nomination, RFC 8445 §8.1.1) and MESSAGE-INTEGRITY under the bridge's
//! password, the first to open the path and later ones as consent freshness (RFC 7675: the
//! bridge forgets a participant whose checks stop for 30 s).

use stun::{AttrType, Class, Key, MessageBuilder, Method, TransactionId, short_term_key};

/// How often a connected participant renews consent; browsers check about every 5 s.
pub const CONSENT_INTERVAL_NS: u64 = 5_000_000_000;

/// What a participant needs to build its checks, prepared once.
pub struct Checks {
    /// `bridge_ufrag:our_ufrag` (RFC 8445 §7.2.2).
    username: Box<[u8]>,
    key: Key,
    tiebreaker: u64,
    sent: u32,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks").field("sent", &self.sent).finish_non_exhaustive()
    }
}

impl Checks {
    pub fn new(bridge_ufrag: &str, bridge_pwd: &str, our_ufrag: &str, participant: u32) -> Self {
        Self {
            username: format!("{bridge_ufrag}:{our_ufrag}").into_bytes().into_boxed_slice(),
            key: short_term_key(bridge_pwd),
            tiebreaker: 0x4C47_0000_0000_0000 | u64::from(participant),
            sent: 0,
        }
    }

    /// Writes the next check into `buf`; returns its length. Allocates nothing.
    pub fn write(&mut self, buf: &mut [u8]) -> Result<usize, stun::BufferTooSmall> {
        self.sent = self.sent.wrapping_add(1);
        let mut txid = [0u8; 12];
        txid[..8].copy_from_slice(&self.tiebreaker.to_be_bytes());
        txid[8..].copy_from_slice(&self.sent.to_be_bytes());
        let mut b = MessageBuilder::new(buf, Method::BINDING, Class::Request, TransactionId(txid))?;
        b.attribute(AttrType::USERNAME, &self.username)?;
        b.u64(AttrType::ICE_CONTROLLING, self.tiebreaker)?;
        // Type preference 110 (host), as RFC 8445 §5.1.2.1 suggests for a peer-reflexive guess.
        b.u32(AttrType::PRIORITY, 0x6e00_01ff)?;
        b.attribute(AttrType::USE_CANDIDATE, &[])?;
        b.message_integrity(&self.key)?.fingerprint()?;
        Ok(b.finish())
    }
}

/// Whether `datagram` is a successful binding response.
pub fn is_success(datagram: &[u8]) -> bool {
    stun::Message::parse(datagram).is_ok_and(|m| m.method() == Method::BINDING && m.class() == Class::Success)
}
