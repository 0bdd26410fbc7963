//! Goodbye (RFC 3550 §6.6): sources leaving the session.
//!
//! ```text
//! |V=2|P|    SC   |   PT=BYE=203  |             length            |
//! |                           SSRC/CSRC                           |
//! :                              ...                              :
//! |     length    |               reason for leaving (optional) ...
//! ```

use super::{Packet, RtcpError, Ssrcs};

pub(super) fn parse(count: u8, body: &[u8]) -> Result<Packet<'_>, RtcpError> {
    let (ssrcs, rest) = Ssrcs::split(usize::from(count), body)?;
    let reason = match rest.split_first() {
        None => None,
        Some((&len, text)) => Some(text.get(..usize::from(len)).ok_or(RtcpError::BadLength)?),
    };
    Ok(Packet::Bye { ssrcs, reason })
}
