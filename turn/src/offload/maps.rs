//! The loaded program and its two route maps (aya: loading, tcx links, map syscalls).

use std::net::SocketAddrV4;
use std::time::Instant;

use aya::maps::{HashMap, MapData};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};

use super::KernelTotals;
use super::egress::exit_towards;
use super::layout::{self, CLIENT_KEY_LEN, PEER_KEY_LEN, ROUTE_LEN};
use crate::server::ChannelRoute;

/// The program, compiled by build.rs.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay.bpf.o"));

pub(super) struct Maps {
    client_routes: HashMap<MapData, [u8; CLIENT_KEY_LEN], [u8; ROUTE_LEN]>,
    peer_routes: HashMap<MapData, [u8; PEER_KEY_LEN], [u8; ROUTE_LEN]>,
    /// Counts of routes since replaced or withdrawn.
    closed: KernelTotals,
    /// Holds the program and its links: dropping it detaches the program from every interface
    /// (tcx links belong to this process, so a crash detaches it too).
    _program: Ebpf,
}

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps").field("closed", &self.closed).finish_non_exhaustive()
    }
}

/// The keys and values of one route, both ways.
struct Entries {
    client_key: [u8; CLIENT_KEY_LEN],
    peer_key: [u8; PEER_KEY_LEN],
}

fn entries(route: &ChannelRoute) -> Option<(Entries, [SocketAddrV4; 4])> {
    let [client, server, relay, peer] = [route.client, route.server, route.relay, route.peer].map(layout::v4);
    let (client, server, relay, peer) = (client?, server?, relay?, peer?);
    if ![client, server, relay, peer].iter().all(|a| layout::routable(*a.ip())) {
        return None;
    }
    let entries = Entries {
        client_key: layout::client_key(server, client, route.channel),
        peer_key: layout::peer_key(relay, peer),
    };
    Some((entries, [client, server, relay, peer]))
}

impl Maps {
    pub fn load(interfaces: &[String]) -> Result<Self, String> {
        let mut program = EbpfLoader::new().load(PROGRAM).map_err(|e| {
            format!(
                "kernel relay: loading: {e} (loading needs CAP_BPF and CAP_NET_ADMIN: see \
                 systemd/meeting-turn-kernel-relay.conf)"
            )
        })?;
        let classifier: &mut SchedClassifier = program
            .program_mut("turn_relay")
            .ok_or("kernel relay: the object has no turn_relay program")?
            .try_into()
            .map_err(|e| format!("kernel relay: {e}"))?;
        classifier.load().map_err(|e| format!("kernel relay: the kernel refused the program: {e}"))?;
        for interface in interfaces {
            classifier
                .attach(interface, TcAttachType::Ingress)
                .map_err(|e| format!("kernel relay: attaching to {interface}: {e}"))?;
        }
        let mut take = |name: &str| {
            program.take_map(name).ok_or_else(|| format!("kernel relay: the object has no {name} map"))
        };
        let (client_routes, peer_routes) = (take("client_routes")?, take("peer_routes")?);
        Ok(Self {
            client_routes: HashMap::try_from(client_routes).map_err(|e| format!("kernel relay: {e}"))?,
            peer_routes: HashMap::try_from(peer_routes).map_err(|e| format!("kernel relay: {e}"))?,
            closed: KernelTotals::default(),
            _program: program,
        })
    }

    pub fn install(&mut self, route: &ChannelRoute) -> Result<(), ()> {
        let (entries, [client, server, relay, peer]) = entries(route).ok_or(())?;
        let to_peer = exit_towards(*peer.ip()).ok_or(())?;
        let to_client = exit_towards(*client.ip()).ok_or(())?;
        let expires_ns = monotonic_ns_at(route.until);
        let client_route = layout::client_route(relay, peer, to_peer, expires_ns);
        let peer_route = layout::peer_route(server, client, route.channel, to_client, expires_ns);
        // A refresh replaces the values, counts and all: keep what they counted so far. What
        // the program counts between this read and the write below (microseconds) is lost.
        self.close(&entries);
        let installed = self.client_routes.insert(entries.client_key, client_route, 0).is_ok()
            && self.peer_routes.insert(entries.peer_key, peer_route, 0).is_ok();
        if installed {
            Ok(())
        } else {
            self.withdraw(route);
            Err(())
        }
    }

    pub fn withdraw(&mut self, route: &ChannelRoute) {
        let Some((entries, _)) = entries(route) else { return };
        self.close(&entries);
        // Absent entries are fine: a route the kernel refused, or a double withdrawal.
        let _ = self.client_routes.remove(&entries.client_key);
        let _ = self.peer_routes.remove(&entries.peer_key);
    }

    /// Adds what an entry pair counted to the closed totals.
    fn close(&mut self, entries: &Entries) {
        if let Ok(value) = self.client_routes.get(&entries.client_key, 0) {
            add(&mut self.closed.client_to_peer, layout::counters(&value));
        }
        if let Ok(value) = self.peer_routes.get(&entries.peer_key, 0) {
            add(&mut self.closed.peer_to_client, layout::counters(&value));
        }
    }

    pub fn totals(&self) -> KernelTotals {
        let mut totals = self.closed;
        for (_, value) in self.client_routes.iter().flatten() {
            totals.routes += 1;
            add(&mut totals.client_to_peer, layout::counters(&value));
        }
        for (_, value) in self.peer_routes.iter().flatten() {
            add(&mut totals.peer_to_client, layout::counters(&value));
        }
        totals
    }
}

fn add(total: &mut (u64, u64), (packets, bytes): (u64, u64)) {
    total.0 += packets;
    total.1 += bytes;
}

/// `at` on CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns() (and of `Instant` on Linux,
/// though std does not promise it, hence the conversion through "now" on both).
fn monotonic_ns_at(at: Instant) -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to a valid pointer; CLOCK_MONOTONIC exists
    // on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_ns = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
    now_ns + at.saturating_duration_since(Instant::now()).as_nanos() as u64
}
