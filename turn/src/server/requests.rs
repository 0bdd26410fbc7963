//! Refresh (RFC 8656 §8), CreatePermission (§10) and ChannelBind (§12): the requests on an
//! existing allocation.

use std::net::{IpAddr, SocketAddr};

use stun::{AddressFamily, AttrType, AttributeError, ErrorCode, Message};

use super::allocate::desired_lifetime;
use super::allocation::{Binding, CHANNEL_LIFETIME, MAX_CHANNELS, MAX_PERMISSIONS, PERMISSION_LIFETIME};
use super::auth_flow::Authenticated;
use super::channel::ChannelNumber;
use super::io::{ClientTuple, Now, TurnIo};
use super::reply::Reply;
use super::{DEFAULT_LIFETIME, Server};

impl Server {
    pub(super) fn refresh(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        let Some(allocation) = self.table.get_mut(tuple) else {
            return self.sent(reply.error(io, tuple, ErrorCode::ALLOCATION_MISMATCH));
        };
        let family = match message.get(AttrType::REQUESTED_ADDRESS_FAMILY).map(stun::decode_family) {
            None => None,
            Some(Err(_)) => return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST)),
            Some(Ok(family)) => match family.filter(|&f| allocation.relay(f).is_some()) {
                Some(family) => Some(family),
                None => return self.sent(reply.error(io, tuple, ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH)),
            },
        };
        let lifetime = match message.lifetime() {
            Ok(0) => None,
            Ok(seconds) => Some(desired_lifetime(seconds)),
            Err(AttributeError::Missing) => Some(DEFAULT_LIFETIME),
            Err(_) => return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST)),
        };
        match (lifetime, family) {
            (Some(lifetime), _) => {
                allocation.expires = now.instant + lifetime;
                self.schedule(now.instant + lifetime);
            }
            // With REQUESTED-ADDRESS-FAMILY, a dual allocation gives up just that family.
            (None, Some(family)) if allocation.relays().count() > 1 => {
                if let Some(relay) = self.table.remove_relay(tuple, family) {
                    io.close_relay(relay.id);
                }
            }
            (None, _) => self.free(tuple, io),
        }
        let seconds = lifetime.map_or(0, |l| l.as_secs() as u32);
        self.sent(reply.success(io, tuple, |m| m.u32(AttrType::LIFETIME, seconds).map(drop)));
        self.sync_kernel_routes(tuple, now.instant, io);
    }

    /// All or nothing: every XOR-PEER-ADDRESS must pass before any permission is installed
    /// (RFC 8656 §10.2).
    pub(super) fn create_permission(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        let Some(allocation) = self.table.get(tuple) else {
            return self.sent(reply.error(io, tuple, ErrorCode::ALLOCATION_MISMATCH));
        };
        let mut peers: Vec<IpAddr> = Vec::new();
        for attribute in message.attributes().filter(|a| a.typ == AttrType::XOR_PEER_ADDRESS) {
            match stun::decode_xor_address(attribute.value, &message.transaction_id()) {
                Ok(peer) => peers.push(peer.ip()),
                Err(_) => return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST)),
            }
        }
        if peers.is_empty() {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        if peers.iter().any(|&peer| allocation.relay(AddressFamily::of(peer)).is_none()) {
            return self.sent(reply.error(io, tuple, ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        for &peer in &peers {
            if let Err(why) = self.policy.check(peer) {
                self.shared.metrics.denied_peer(why);
                return self.sent(reply.error(io, tuple, ErrorCode::FORBIDDEN));
            }
        }
        peers.sort_unstable();
        peers.dedup();
        let new = peers.iter().filter(|peer| !allocation.permissions.contains_key(peer)).count();
        if allocation.permissions.len() + new > MAX_PERMISSIONS {
            return self.sent(reply.error(io, tuple, ErrorCode::INSUFFICIENT_CAPACITY));
        }
        let expires = now.instant + PERMISSION_LIFETIME;
        let allocation = self.table.get_mut(tuple).expect("looked up above");
        for peer in peers {
            allocation.permissions.insert(peer, expires);
        }
        self.schedule(expires);
        self.sent(reply.success(io, tuple, |_| Ok(())));
        self.sync_kernel_routes(tuple, now.instant, io);
    }

    pub(super) fn channel_bind(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        auth: &Authenticated<'_>,
        io: &mut impl TurnIo,
    ) {
        let reply = Reply::to(message, Some(&auth.key));
        let Some(allocation) = self.table.get(tuple) else {
            return self.sent(reply.error(io, tuple, ErrorCode::ALLOCATION_MISMATCH));
        };
        // A TCP allocation's data goes over its peer data connections (RFC 6062 §5).
        if allocation.tcp {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        }
        let channel = message.get(AttrType::CHANNEL_NUMBER).map(stun::decode_channel_number);
        let (Some(Ok(channel)), Ok(peer)) = (channel, message.xor_address(AttrType::XOR_PEER_ADDRESS)) else {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        };
        let Some(channel) = ChannelNumber::new(channel) else {
            return self.sent(reply.error(io, tuple, ErrorCode::BAD_REQUEST));
        };
        if allocation.relay(AddressFamily::of(peer.ip())).is_none() {
            return self.sent(reply.error(io, tuple, ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        if let Err(why) = self.policy.check(peer.ip()) {
            self.shared.metrics.denied_peer(why);
            return self.sent(reply.error(io, tuple, ErrorCode::FORBIDDEN));
        }
        if let Err(code) = can_bind(allocation, channel, peer) {
            return self.sent(reply.error(io, tuple, code));
        }
        let allocation = self.table.get_mut(tuple).expect("looked up above");
        allocation.channels.insert(channel, Binding { peer, expires: now.instant + CHANNEL_LIFETIME });
        allocation.channel_of_peer.insert(peer, channel);
        allocation.permissions.insert(peer.ip(), now.instant + PERMISSION_LIFETIME);
        self.schedule(now.instant + PERMISSION_LIFETIME);
        self.sent(reply.success(io, tuple, |_| Ok(())));
        self.sync_kernel_routes(tuple, now.instant, io);
    }
}

/// RFC 8656 §12.2: a channel stays with its peer and a peer with its channel (for the
/// binding's life and 5 minutes after); refreshing the same pair is always allowed.
fn can_bind(
    allocation: &super::allocation::Allocation,
    channel: ChannelNumber,
    peer: SocketAddr,
) -> Result<(), ErrorCode> {
    let bound_peer = allocation.channels.get(&channel).map(|b| b.peer);
    let bound_channel = allocation.channel_of_peer.get(&peer).copied();
    if bound_peer.is_some_and(|p| p != peer) || bound_channel.is_some_and(|c| c != channel) {
        return Err(ErrorCode::BAD_REQUEST);
    }
    let new_channel = bound_peer.is_none();
    let new_permission = !allocation.permissions.contains_key(&peer.ip());
    if (new_channel && allocation.channels.len() >= MAX_CHANNELS)
        || (new_permission && allocation.permissions.len() >= MAX_PERMISSIONS)
    {
        return Err(ErrorCode::INSUFFICIENT_CAPACITY);
    }
    Ok(())
}
