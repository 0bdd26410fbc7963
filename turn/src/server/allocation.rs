//! One allocation (RFC 8656 §2.2): its relayed addresses, permissions and channel bindings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun::{AddressFamily, IntegrityKey, TransactionId};

use super::bandwidth::TokenBucket;
use super::channel::ChannelNumber;
use super::io::{ConnectionId, RelayId};
use super::kernel_routes::ChannelRoute;
use super::quota::QuotaTicket;

/// RFC 8656 §9: a permission lasts 300 s unless refreshed.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// RFC 8656 §12: a channel binding lasts 600 s unless refreshed.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8656 §12: after a binding expires, neither its number nor its peer may be bound to
/// anything else for 5 more minutes, so that late packets cannot reach the wrong peer.
pub const CHANNEL_QUARANTINE: Duration = Duration::from_secs(300);
/// Peers with a permission, per allocation. WebRTC clients need one per remote candidate
/// address, a handful; the bound keeps one allocation's memory small (508 beyond it).
pub const MAX_PERMISSIONS: usize = 128;
/// Channel bindings per allocation (508 beyond it), for the same reason.
pub const MAX_CHANNELS: usize = 128;

/// One relay socket of an allocation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Relay {
    pub id: RelayId,
    /// What the socket is bound to.
    pub local: SocketAddr,
    /// What the client is told (the `external-ip` mapping of `local`).
    pub announced: SocketAddr,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding {
    pub peer: SocketAddr,
    pub expires: Instant,
}

pub(crate) fn family_index(family: AddressFamily) -> usize {
    match family {
        AddressFamily::V4 => 0,
        AddressFamily::V6 => 1,
    }
}

#[derive(Debug)]
pub(crate) struct Allocation {
    pub username: Box<str>,
    /// The long-term key the allocation was made with: later requests on its 5-tuple are
    /// checked against it, so a REST API credential that expires mid-meeting keeps working for
    /// the allocation it already made.
    pub key: IntegrityKey,
    /// Relayed addresses by family: [IPv4, IPv6]; a dual allocation has both.
    pub relays: [Option<Relay>; 2],
    pub expires: Instant,
    /// Permissions by peer IP (RFC 8656 §9: the port is not part of a permission).
    pub permissions: HashMap<IpAddr, Instant>,
    pub channels: HashMap<ChannelNumber, Binding>,
    pub channel_of_peer: HashMap<SocketAddr, ChannelNumber>,
    /// The success response to the Allocate that made this allocation, sent again when the
    /// same transaction is retransmitted (RFC 8656 §7.2: a lost response must not become 437).
    pub allocate_response: (TransactionId, Box<[u8]>),
    pub bucket: Option<TokenBucket>,
    pub quota: Option<QuotaTicket>,
    /// The channels the kernel relays now, as last installed.
    pub kernel_routes: HashMap<ChannelNumber, ChannelRoute>,
    /// A TCP allocation (RFC 6062): its relays are listening sockets, and data goes over
    /// peer data connections rather than Send, Data and ChannelData.
    pub tcp: bool,
    /// The peer data connections of a TCP allocation, however far each has got (at most
    /// [`MAX_PEER_CONNECTIONS`](super::tcp_relay::MAX_PEER_CONNECTIONS)).
    pub connections: Vec<ConnectionId>,
}

impl Allocation {
    pub fn relay(&self, family: AddressFamily) -> Option<&Relay> {
        self.relays[family_index(family)].as_ref()
    }

    pub fn relays(&self) -> impl Iterator<Item = &Relay> {
        self.relays.iter().flatten()
    }

    pub fn is_live(&self, now: Instant) -> bool {
        now < self.expires
    }

    pub fn has_permission(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions.get(&peer).is_some_and(|&expires| now < expires)
    }

    /// The peer a live channel binding relays to.
    pub fn channel_peer(&self, channel: ChannelNumber, now: Instant) -> Option<SocketAddr> {
        self.channels.get(&channel).filter(|b| now < b.expires).map(|b| b.peer)
    }

    /// The live channel bound to `peer`, if any.
    pub fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<ChannelNumber> {
        let channel = *self.channel_of_peer.get(&peer)?;
        self.channels.get(&channel).is_some_and(|b| now < b.expires).then_some(channel)
    }

    /// Whether `bytes` fit under the bandwidth cap.
    pub fn within_bandwidth(&mut self, bytes: usize, now: Instant) -> bool {
        self.bucket.as_mut().is_none_or(|bucket| bucket.take(bytes, now))
    }

    /// Drops expired permissions and bindings past their quarantine; returns the next instant
    /// at which something of this allocation (itself included) expires.
    pub fn expire(&mut self, now: Instant) -> Instant {
        self.permissions.retain(|_, &mut expires| now < expires);
        let channel_of_peer = &mut self.channel_of_peer;
        self.channels.retain(|_, binding| {
            let keep = now < binding.expires + CHANNEL_QUARANTINE;
            if !keep {
                channel_of_peer.remove(&binding.peer);
            }
            keep
        });
        let permissions = self.permissions.values().copied();
        let channels = self
            .channels
            .values()
            .map(|b| if now < b.expires { b.expires } else { b.expires + CHANNEL_QUARANTINE });
        permissions.chain(channels).fold(self.expires, Instant::min)
    }
}
