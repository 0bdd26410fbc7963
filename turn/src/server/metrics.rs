//! Counters every worker updates as it goes, read by the metrics endpoint.
//!
//! Relaxed atomics: each counter is independent and only ever summed, so no ordering between
//! them is needed. The per-packet counters sit on their own cache lines, away from the
//! control-plane ones, so that workers relaying packets contend on as few lines as possible.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::offload::KernelTotals;
use crate::policy::Denied;

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not STUN or ChannelData, a message that does not parse, or one missing what it needs.
    Malformed,
    /// A request from a source that failed authentication too often.
    RateLimited,
    /// A packet to or from a peer the allocation has no permission for.
    NoPermission,
    /// Over the allocation's `max-bps`.
    Bandwidth,
    /// Data on a 5-tuple or relay without an allocation.
    NoAllocation,
    /// ChannelData on a channel that is not bound.
    NoChannel,
    /// A peer datagram too large for the client's buffer once framed.
    TooBig,
    /// The I/O layer's queue or pool was full.
    QueueFull,
}

impl DropReason {
    const ALL: [DropReason; 8] = [
        Self::Malformed,
        Self::RateLimited,
        Self::NoPermission,
        Self::Bandwidth,
        Self::NoAllocation,
        Self::NoChannel,
        Self::TooBig,
        Self::QueueFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::RateLimited => "rate_limited",
            Self::NoPermission => "no_permission",
            Self::Bandwidth => "bandwidth",
            Self::NoAllocation => "no_allocation",
            Self::NoChannel => "no_channel",
            Self::TooBig => "too_big",
            Self::QueueFull => "queue_full",
        }
    }
}

/// The labels [`Denied::as_str`] gives, each with its own counter; "other" catches a label
/// the policy may add later.
const DENIED_LABELS: [&str; 16] = [
    "unspecified",
    "private",
    "cgnat",
    "loopback",
    "link_local",
    "special",
    "documentation",
    "relay_anycast",
    "benchmarking",
    "multicast",
    "reserved",
    "discard",
    "site_local",
    "configured",
    "own_address",
    "other",
];

/// One direction's relayed traffic, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Direction {
    packets: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    client_to_peer: Direction,
    peer_to_client: Direction,
    /// Bytes through the byte pipes of TCP allocations (RFC 6062), which have no packets.
    tcp_client_to_peer: Direction,
    tcp_peer_to_client: Direction,
    /// Peer data connections open now (RFC 6062), in every state; a gauge.
    peer_connections: AtomicU64,
    peer_connect_failures: AtomicU64,
    allocations_total: AtomicU64,
    auth_failures: AtomicU64,
    quota_rejections: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    denied_peers: [AtomicU64; DENIED_LABELS.len()],
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn relayed_to_peer(&self, bytes: usize) {
        bump(&self.client_to_peer.packets);
        self.client_to_peer.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn relayed_to_client(&self, bytes: usize) {
        bump(&self.peer_to_client.packets);
        self.peer_to_client.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes a TCP allocation's pipe wrote to a peer.
    pub(crate) fn tcp_relayed_to_peer(&self, bytes: usize) {
        self.tcp_client_to_peer.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes a TCP allocation's pipe wrote to a client.
    pub(crate) fn tcp_relayed_to_client(&self, bytes: usize) {
        self.tcp_peer_to_client.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn peer_connection_opened(&self) {
        bump(&self.peer_connections);
    }

    pub(crate) fn peer_connection_closed(&self) {
        self.peer_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A Connect answered 447: the peer refused, did not answer in time, or no socket.
    pub(crate) fn peer_connect_failed(&self) {
        bump(&self.peer_connect_failures);
    }

    /// Bytes relayed over TCP allocations: (client to peer, peer to client).
    pub fn tcp_relayed_bytes(&self) -> (u64, u64) {
        (
            self.tcp_client_to_peer.bytes.load(Ordering::Relaxed),
            self.tcp_peer_to_client.bytes.load(Ordering::Relaxed),
        )
    }

    /// Peer data connections open now, over every worker.
    pub fn peer_connections(&self) -> u64 {
        self.peer_connections.load(Ordering::Relaxed)
    }

    pub fn peer_connect_failures(&self) -> u64 {
        self.peer_connect_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn allocated(&self) {
        bump(&self.allocations_total);
    }

    pub(crate) fn auth_failure(&self) {
        bump(&self.auth_failures);
    }

    pub(crate) fn quota_rejection(&self) {
        bump(&self.quota_rejections);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        bump(&self.drops[reason as usize]);
    }

    pub(crate) fn denied_peer(&self, why: Denied) {
        let label = why.as_str();
        let at = DENIED_LABELS.iter().position(|&l| l == label).unwrap_or(DENIED_LABELS.len() - 1);
        bump(&self.denied_peers[at]);
    }

    /// Packets and bytes relayed from clients to peers.
    pub fn client_to_peer(&self) -> (u64, u64) {
        (
            self.client_to_peer.packets.load(Ordering::Relaxed),
            self.client_to_peer.bytes.load(Ordering::Relaxed),
        )
    }

    /// Packets and bytes relayed from peers to clients.
    pub fn peer_to_client(&self) -> (u64, u64) {
        (
            self.peer_to_client.packets.load(Ordering::Relaxed),
            self.peer_to_client.bytes.load(Ordering::Relaxed),
        )
    }

    pub fn allocations_total(&self) -> u64 {
        self.allocations_total.load(Ordering::Relaxed)
    }

    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    pub fn quota_rejections(&self) -> u64 {
        self.quota_rejections.load(Ordering::Relaxed)
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    /// Peers refused under `label` (a [`Denied::as_str`]).
    pub fn denied_peers(&self, label: &str) -> u64 {
        DENIED_LABELS
            .iter()
            .position(|&l| l == label)
            .map_or(0, |at| self.denied_peers[at].load(Ordering::Relaxed))
    }

    /// Prometheus text exposition; `allocations` is the gauge of allocations open now, `kernel`
    /// what the kernel relay relayed (counted in the relayed totals too).
    pub(crate) fn render_prometheus(&self, allocations: u32, kernel: Option<KernelTotals>, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        };
        metric("turn_allocations", "gauge", "Allocations open now.");
        metric("turn_allocations_total", "counter", "Allocations made.");
        let _ = writeln!(out, "turn_allocations {allocations}");
        let _ = writeln!(out, "turn_allocations_total {}", self.allocations_total());
        let in_kernel = kernel.unwrap_or_default();
        let sum = |(p, b): (u64, u64), (kp, kb): (u64, u64)| (p + kp, b + kb);
        let directions = [
            ("client_to_peer", sum(self.client_to_peer(), in_kernel.client_to_peer)),
            ("peer_to_client", sum(self.peer_to_client(), in_kernel.peer_to_client)),
        ];
        let _ = write!(
            out,
            "# HELP turn_relayed_packets_total Datagrams relayed.\n# TYPE turn_relayed_packets_total counter\n"
        );
        for (label, (packets, _)) in directions {
            let _ = writeln!(out, "turn_relayed_packets_total{{direction=\"{label}\"}} {packets}");
        }
        let _ = write!(
            out,
            "# HELP turn_relayed_bytes_total Application data bytes relayed.\n\
             # TYPE turn_relayed_bytes_total counter\n"
        );
        for (label, (_, bytes)) in directions {
            let _ = writeln!(out, "turn_relayed_bytes_total{{direction=\"{label}\"}} {bytes}");
        }
        if let Some(kernel) = kernel {
            render_kernel(&kernel, out);
        }
        self.render_tcp(out);
        let _ = write!(
            out,
            "# HELP turn_auth_failures_total Requests refused for their credentials (401).\n\
             # TYPE turn_auth_failures_total counter\nturn_auth_failures_total {}\n",
            self.auth_failures()
        );
        let _ = write!(
            out,
            "# HELP turn_quota_rejections_total Allocations refused by a quota (486).\n\
             # TYPE turn_quota_rejections_total counter\nturn_quota_rejections_total {}\n",
            self.quota_rejections()
        );
        let _ = write!(
            out,
            "# HELP turn_denied_peers_total Peer addresses refused by the peer policy (403).\n\
             # TYPE turn_denied_peers_total counter\n"
        );
        for (label, counter) in DENIED_LABELS.iter().zip(&self.denied_peers) {
            let _ = writeln!(
                out,
                "turn_denied_peers_total{{reason=\"{label}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP turn_dropped_total Datagrams dropped, by reason.\n# TYPE turn_dropped_total counter\n"
        );
        for reason in DropReason::ALL {
            let _ =
                writeln!(out, "turn_dropped_total{{reason=\"{}\"}} {}", reason.as_str(), self.drops(reason));
        }
    }
}

impl Metrics {
    /// TCP allocations (RFC 6062): their bytes, the peer connection gauge, failed Connects.
    fn render_tcp(&self, out: &mut String) {
        let (to_peer, to_client) = self.tcp_relayed_bytes();
        let _ = write!(
            out,
            "# HELP turn_tcp_relayed_bytes_total Bytes relayed over TCP allocations (RFC 6062).\n\
             # TYPE turn_tcp_relayed_bytes_total counter\n\
             turn_tcp_relayed_bytes_total{{direction=\"client_to_peer\"}} {to_peer}\n\
             turn_tcp_relayed_bytes_total{{direction=\"peer_to_client\"}} {to_client}\n\
             # HELP turn_peer_connections Peer data connections of TCP allocations open now.\n\
             # TYPE turn_peer_connections gauge\nturn_peer_connections {}\n\
             # HELP turn_peer_connect_failures_total Connect requests answered 447.\n\
             # TYPE turn_peer_connect_failures_total counter\nturn_peer_connect_failures_total {}\n",
            self.peer_connections(),
            self.peer_connect_failures(),
        );
    }
}

/// The kernel relay's share: the route gauge and what it relayed, each way.
fn render_kernel(kernel: &KernelTotals, out: &mut String) {
    let _ = write!(
        out,
        "# HELP turn_kernel_routes Channel bindings the kernel relays now (kernel-relay-interface).\n\
         # TYPE turn_kernel_routes gauge\nturn_kernel_routes {}\n\
         # HELP turn_kernel_relayed_packets_total Datagrams the kernel relayed (part of \
         turn_relayed_packets_total).\n# TYPE turn_kernel_relayed_packets_total counter\n",
        kernel.routes
    );
    let directions = [("client_to_peer", kernel.client_to_peer), ("peer_to_client", kernel.peer_to_client)];
    for (label, (packets, _)) in directions {
        let _ = writeln!(out, "turn_kernel_relayed_packets_total{{direction=\"{label}\"}} {packets}");
    }
    let _ = write!(
        out,
        "# HELP turn_kernel_relayed_bytes_total Application bytes the kernel relayed (part of \
         turn_relayed_bytes_total).\n# TYPE turn_kernel_relayed_bytes_total counter\n"
    );
    for (label, (_, bytes)) in directions {
        let _ = writeln!(out, "turn_kernel_relayed_bytes_total{{direction=\"{label}\"}} {bytes}");
    }
}
