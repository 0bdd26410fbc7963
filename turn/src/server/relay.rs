//! The data paths: Send indications and ChannelData from clients to peers (RFC 8656 §11.2,
//! §12.4), and peer datagrams back as ChannelData or Data indications (§11.3, §12.5). Nothing
//! here allocates: lookups in the worker's tables, then the payload is copied once, into the
//! I/O layer's buffer.

use std::net::SocketAddr;

use stun::{AddressFamily, AttrType, Class, Message, MessageBuilder, Method, TransactionId};

use super::allocation::Allocation;
use super::channel::{parse_channel_data, write_channel_data};
use super::io::{ClientTuple, Now, RelayId, TurnIo};
use super::metrics::{DropReason, Metrics};
use super::{KNOWN_ATTRIBUTES, Server};

impl Server {
    /// A Send indication: never answered; dropped (and counted) unless it can be relayed.
    pub(super) fn send_indication(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        message: &Message<'_>,
        io: &mut impl TurnIo,
    ) {
        let metrics = &self.shared.metrics;
        // RFC 8489 §6.3.2: an indication with unknown comprehension-required attributes is dropped.
        if message.unknown_required(&KNOWN_ATTRIBUTES).is_some() {
            return metrics.dropped(DropReason::Malformed);
        }
        let (Ok(peer), Ok(data)) = (message.xor_address(AttrType::XOR_PEER_ADDRESS), message.data()) else {
            return metrics.dropped(DropReason::Malformed);
        };
        let dont_fragment = message.get(AttrType::DONT_FRAGMENT).is_some();
        let Some(allocation) = self.table.get_mut(tuple) else {
            return metrics.dropped(DropReason::NoAllocation);
        };
        forward_to_peer(allocation, metrics, now, peer, data, dont_fragment, io);
    }

    pub(super) fn channel_data_from_client(
        &mut self,
        now: Now,
        tuple: &ClientTuple,
        bytes: &[u8],
        io: &mut impl TurnIo,
    ) {
        let metrics = &self.shared.metrics;
        let Some((channel, data)) = parse_channel_data(bytes) else {
            return metrics.dropped(DropReason::Malformed);
        };
        let Some(allocation) = self.table.get_mut(tuple) else {
            return metrics.dropped(DropReason::NoAllocation);
        };
        let Some(peer) = allocation.channel_peer(channel, now.instant) else {
            return metrics.dropped(DropReason::NoChannel);
        };
        forward_to_peer(allocation, metrics, now, peer, data, false, io);
    }

    /// One datagram that arrived on relay socket `relay` from `peer`.
    pub fn handle_peer(
        &mut self,
        now: Now,
        relay: RelayId,
        peer: SocketAddr,
        bytes: &[u8],
        io: &mut impl TurnIo,
    ) {
        self.indications_sent = self.indications_sent.wrapping_add(1);
        let mut transaction = [0u8; 12];
        transaction[..4].copy_from_slice(&self.indication_prefix);
        transaction[4..].copy_from_slice(&self.indications_sent.to_be_bytes());
        let metrics = &self.shared.metrics;
        let Some((tuple, allocation)) = self.table.by_relay_mut(relay) else {
            return metrics.dropped(DropReason::NoAllocation);
        };
        if !allocation.is_live(now.instant) {
            return metrics.dropped(DropReason::NoAllocation);
        }
        // RFC 8656 §9: the permission is what keeps unsolicited peers out.
        if !allocation.has_permission(peer.ip(), now.instant) {
            return metrics.dropped(DropReason::NoPermission);
        }
        if !allocation.within_bandwidth(bytes.len(), now.instant) {
            return metrics.dropped(DropReason::Bandwidth);
        }
        let mut fits = true;
        let queued = match allocation.peer_channel(peer, now.instant) {
            Some(channel) => io.to_client(&tuple, |buf| {
                write_channel_data(buf, channel, bytes, tuple.transport.is_stream()).unwrap_or_else(|| {
                    fits = false;
                    0
                })
            }),
            None => io.to_client(&tuple, |buf| {
                data_indication(buf, TransactionId(transaction), peer, bytes).unwrap_or_else(|_| {
                    fits = false;
                    0
                })
            }),
        };
        if !fits {
            metrics.dropped(DropReason::TooBig);
        } else if !queued {
            metrics.dropped(DropReason::QueueFull);
        } else {
            metrics.relayed_to_client(bytes.len());
        }
    }
}

fn forward_to_peer(
    allocation: &mut Allocation,
    metrics: &Metrics,
    now: Now,
    peer: SocketAddr,
    data: &[u8],
    dont_fragment: bool,
    io: &mut impl TurnIo,
) {
    // A TCP allocation has no datagrams to send: its relays are listening sockets.
    if !allocation.is_live(now.instant) || allocation.tcp {
        return metrics.dropped(DropReason::NoAllocation);
    }
    // No relay of the peer's family means no permission could exist for it either.
    let relay = allocation.relay(AddressFamily::of(peer.ip())).map(|r| r.id);
    let Some(relay) = relay.filter(|_| allocation.has_permission(peer.ip(), now.instant)) else {
        return metrics.dropped(DropReason::NoPermission);
    };
    if !allocation.within_bandwidth(data.len(), now.instant) {
        return metrics.dropped(DropReason::Bandwidth);
    }
    if io.to_peer(relay, peer, data, dont_fragment) {
        metrics.relayed_to_peer(data.len());
    } else {
        metrics.dropped(DropReason::QueueFull);
    }
}

/// A Data indication (RFC 8656 §11.3): XOR-PEER-ADDRESS and DATA, unsigned.
fn data_indication(
    buf: &mut [u8],
    transaction: TransactionId,
    peer: SocketAddr,
    data: &[u8],
) -> Result<usize, stun::BufferTooSmall> {
    let mut message = MessageBuilder::new(buf, Method::DATA, Class::Indication, transaction)?;
    message.xor_address(AttrType::XOR_PEER_ADDRESS, peer)?.attribute(AttrType::DATA, data)?;
    Ok(message.finish())
}
