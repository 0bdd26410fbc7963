//! The in-kernel ChannelData relay: a tc classifier (`relay.bpf.c`) that relays the packets
//! of channel-bound UDP allocations where they arrive, and the daemon's side of it.
//!
//! At real-time packet rates each relayed packet arrives alone and costs the daemon a wake-up,
//! a receive and a send: most of its CPU. A channel-bound flow is pure header rewriting, so
//! the daemon hands exactly those flows to the kernel for as long as they are allowed and
//! takes them back when that ends: [`Server`](crate::server::Server) decides (a live
//! allocation without a bandwidth cap, over UDP and IPv4, a live binding and permission), and
//! writes a [`ChannelRoute`] with its deadline, which the program checks itself on every
//! packet. Everything else stays on the daemon's sockets.
//!
//! Opt-in (`kernel-relay-interface=`): loading a BPF program needs CAP_BPF and CAP_NET_ADMIN,
//! which the daemon otherwise never holds.

mod egress;
mod layout;
#[cfg_attr(not(turn_kernel_relay), path = "unavailable.rs")]
mod maps;

use std::sync::Mutex;

use crate::server::ChannelRoute;

/// What the kernel relayed: closed routes' counts plus open routes' counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTotals {
    /// Routes installed now.
    pub routes: u64,
    /// Packets and application bytes, each way.
    pub client_to_peer: (u64, u64),
    pub peer_to_client: (u64, u64),
}

/// The loaded program, attached to the ingress of the configured interfaces while this
/// lives, and its route maps. Written on the control path only (a ChannelBind, a
/// CreatePermission, a sweep), so one lock is enough.
#[derive(Debug)]
pub struct KernelRelay {
    maps: Mutex<maps::Maps>,
}

impl KernelRelay {
    /// Loads the program and attaches it to the ingress of each interface.
    pub fn load(interfaces: &[String]) -> Result<Self, String> {
        let maps = maps::Maps::load(interfaces)?;
        Ok(Self { maps: Mutex::new(maps) })
    }

    /// Relays `route` in the kernel until its deadline, replacing an older version of it.
    /// `false`: it stays with the daemon (no way out to one end, or the map is full).
    pub fn install(&self, route: &ChannelRoute) -> bool {
        self.lock().install(route).is_ok()
    }

    /// Takes `route` back: its packets reach the daemon's sockets again.
    pub fn withdraw(&self, route: &ChannelRoute) {
        self.lock().withdraw(route);
    }

    pub fn totals(&self) -> KernelTotals {
        self.lock().totals()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, maps::Maps> {
        // A panic while holding the lock cannot leave the maps half-written (each call is one
        // or two whole-entry syscalls), so a poisoned lock is still good to use.
        self.maps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
