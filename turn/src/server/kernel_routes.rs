//! Which channel bindings the kernel relays (see `crate::offload`): the server decides, the
//! I/O layer installs. A route exists exactly while the daemon itself would relay the
//! channel's packets without looking at them: over UDP and IPv4, with no bandwidth cap, the
//! allocation, binding and permission all live. Its deadline is the earliest of their
//! expiries, which the kernel enforces by itself; refreshes move it, and the sweep takes
//! back what has ended.

use std::net::SocketAddr;
use std::time::Instant;

use stun::AddressFamily;

use super::Server;
use super::allocation::Allocation;
use super::channel::ChannelNumber;
use super::io::{ClientTuple, Transport, TurnIo};

/// A channel binding relayed in the kernel, both ways, until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRoute {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The channel number as on the wire.
    pub channel: u16,
    /// The relay socket's own address (not the announced one).
    pub relay: SocketAddr,
    pub peer: SocketAddr,
    pub until: Instant,
}

impl Server {
    /// Brings the kernel's routes for `tuple`'s allocation in line with its state: installs
    /// new or refreshed ones, withdraws ended ones. Free when the kernel relay is off.
    pub(super) fn sync_kernel_routes(&mut self, tuple: &ClientTuple, now: Instant, io: &mut impl TurnIo) {
        if !self.kernel_relay {
            return;
        }
        let Some(allocation) = self.table.get_mut(tuple) else { return };
        let wanted = wanted_routes(tuple, allocation, now);
        let installed = std::mem::take(&mut allocation.kernel_routes);
        for (channel, route) in &installed {
            if !wanted.iter().any(|w| w.channel == channel.get() && w.peer == route.peer) {
                io.withdraw_channel(route);
            }
        }
        for route in wanted {
            let channel = ChannelNumber::new(route.channel).expect("wanted_routes takes bound numbers");
            // Unchanged routes are not written again; a refused one is asked for at the next sync.
            let unchanged = installed.get(&channel).is_some_and(|r| *r == route);
            if unchanged || io.install_channel(&route) {
                allocation.kernel_routes.insert(channel, route);
            }
        }
    }

    /// Withdraws every route of an allocation that is going away.
    pub(super) fn withdraw_kernel_routes(allocation: &mut Allocation, io: &mut impl TurnIo) {
        for (_, route) in allocation.kernel_routes.drain() {
            io.withdraw_channel(&route);
        }
    }
}

fn wanted_routes(tuple: &ClientTuple, allocation: &Allocation, now: Instant) -> Vec<ChannelRoute> {
    let eligible = tuple.transport == Transport::Udp
        && allocation.bucket.is_none()
        && tuple.client.is_ipv4()
        && tuple.server.is_ipv4()
        && !tuple.server.ip().is_unspecified()
        && allocation.is_live(now);
    let Some(relay) = allocation.relay(AddressFamily::V4).filter(|_| eligible) else { return Vec::new() };
    allocation
        .channels
        .iter()
        .filter(|(_, binding)| now < binding.expires && binding.peer.is_ipv4())
        .filter_map(|(channel, binding)| {
            let permission = *allocation.permissions.get(&binding.peer.ip())?;
            (now < permission).then(|| ChannelRoute {
                client: tuple.client,
                server: tuple.server,
                channel: channel.get(),
                relay: relay.local,
                peer: binding.peer,
                until: binding.expires.min(permission).min(allocation.expires),
            })
        })
        .collect()
}
