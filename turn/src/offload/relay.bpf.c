// SPDX-License-Identifier: GPL-2.0-only
//
// In-kernel ChannelData relay for the `turn` daemon (a tc ingress classifier).
//
// A channel-bound TURN flow over UDP is pure header rewriting: a ChannelData message from a
// client becomes a UDP datagram from the allocation's relayed address to the peer, and a
// datagram from that peer to the relayed address becomes a ChannelData message back to the
// client. Doing that here, where the packet arrives, saves the daemon the wake-up, two
// syscalls and two copies per packet that dominate its cost at real-time packet rates.
//
// The daemon owns every decision: it writes a route into `client_routes` and `peer_routes`
// only while the allocation lives, the permission and the channel binding are valid and no
// bandwidth cap applies, and removes it when any of that ends. Anything else (IPv6, IP
// options, fragments, padded or truncated ChannelData, packets that would need
// fragmenting, STUN) is left untouched for the daemon's sockets, which remain the
// reference implementation; this program only ever takes a shortcut the daemon allowed.
//
// Licensed GPL-2.0-only because the helpers it calls are GPL-only; the daemon that loads it
// is AGPL-3.0 and only talks to it through maps.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

// Helpers by their stable numbers in enum bpf_func_id (linux/bpf.h), so that no libbpf
// headers are needed to build.
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 off, void *to, __u32 len) =
    (void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_skb_store_bytes)(void *skb, __u32 off, const void *from, __u32 len, __u64 flags) =
    (void *)BPF_FUNC_skb_store_bytes;
static long (*bpf_skb_adjust_room)(void *skb, __s32 len_diff, __u32 mode, __u64 flags) =
    (void *)BPF_FUNC_skb_adjust_room;
static long (*bpf_redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) =
    (void *)BPF_FUNC_redirect_neigh;

// Every address and port is in network byte order, exactly as on the wire; `channel` too.
// The layouts are mirrored by `turn/src/offload/maps.rs`.

// A client's ChannelData message: (server address it reached, client address, channel).
struct client_key {
    __u32 server_ip;
    __u32 client_ip;
    __u16 server_port;
    __u16 client_port;
    __u16 channel;
    __u16 pad;
};

// Where it goes: from the relayed address to the peer.
struct client_route {
    __u32 relay_ip;
    __u32 peer_ip;
    __u16 relay_port;
    __u16 peer_port;
    __u32 ifindex; // 0: the peer is a local address
    __u32 mtu;     // larger packets go to the daemon, whose socket can fragment them
    __u32 pad;
    __u64 expires_ns; // CLOCK_MONOTONIC: the permission, binding or allocation ends
    __u64 packets;
    __u64 bytes;
};

// A peer's datagram: (relayed address it reached, peer address).
struct peer_key {
    __u32 relay_ip;
    __u32 peer_ip;
    __u16 relay_port;
    __u16 peer_port;
};

// Where it goes: ChannelData from the server address the client uses, to the client.
struct peer_route {
    __u32 server_ip;
    __u32 client_ip;
    __u16 server_port;
    __u16 client_port;
    __u16 channel;
    __u16 pad;
    __u32 ifindex; // 0: the client is at a local address
    __u32 mtu;
    __u64 expires_ns;
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct client_key);
    __type(value, struct client_route);
} client_routes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct peer_key);
    __type(value, struct peer_route);
} peer_routes SEC(".maps");

// Not ours, or not now: the next tc program (tcx), then the stack, sees the packet as it came.
#define PASS TC_ACT_UNSPEC

#define IP_OFF ETH_HLEN
#define UDP_OFF (ETH_HLEN + sizeof(struct iphdr))
#define PAYLOAD_OFF (UDP_OFF + sizeof(struct udphdr))
#define CHANNEL_DATA_HEADER 4

INLINE __u16 htons16(__u16 x) { return __builtin_bswap16(x); }

INLINE __u16 ipv4_checksum(const struct iphdr *ip)
{
    const __u16 *word = (const __u16 *)ip;
    __u32 sum = 0;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
        sum += word[i];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)~sum;
}

// How the rewritten packet leaves: ifindex 0 means the destination is one of this host's own
// addresses, which the stack delivers as it is; anything else goes out of that interface,
// with the neighbour subsystem filling in the link-layer addresses. The daemon works the
// interface and its MTU out when it writes the route, because bpf_fib_lookup() refuses to
// answer on hosts that do not forward.
INLINE int leave(__u32 ifindex)
{
    if (!ifindex)
        return TC_ACT_OK;
    return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

// One packet's rewrite: the new addresses and ports, and what changes in between.
struct rewrite {
    __u32 saddr, daddr;
    __u16 sport, dport;
    __u16 data_len;          // the application data, which stays where it is
    const __u8 *channel;     // the ChannelData header to put in front of it, or none
    __u32 mtu, ifindex;      // from the route (see leave())
    __u64 *packets, *bytes;  // the route's counters
};

// Rewrites the packet as `r` says and sends it on, or leaves it untouched to the daemon when
// it would not fit through the way out. Over UDP the ChannelData header is the only
// difference in length: 4 bytes taken off (to a peer) or put on (to a client), right after
// the IP header; the UDP header is then written whole over where it lands.
INLINE int relay(struct __sk_buff *skb, struct iphdr *ip, const struct rewrite *r)
{
    __u16 udp_len = sizeof(struct udphdr) + (r->channel ? CHANNEL_DATA_HEADER : 0) + r->data_len;
    __u16 tot_len = sizeof(*ip) + udp_len;
    if (tot_len > r->mtu)
        return PASS;
    __s32 grow = r->channel ? CHANNEL_DATA_HEADER : -CHANNEL_DATA_HEADER;
    if (bpf_skb_adjust_room(skb, grow, BPF_ADJ_ROOM_NET, 0))
        return PASS;
    ip->saddr = r->saddr;
    ip->daddr = r->daddr;
    ip->tot_len = htons16(tot_len);
    // RFC 8656 §14.3's preferred behaviour: one less than it came with (turn_relay() left
    // packets at 1 or 0 to the daemon). DSCP and ECN travel as they came (§14.2, §14.4).
    ip->ttl -= 1;
    ip->check = 0;
    ip->check = ipv4_checksum(ip);
    struct udphdr udp = {
        .source = r->sport,
        .dest = r->dport,
        .len = htons16(udp_len),
        .check = 0, // legal for IPv4; the payload is end-to-end protected by its sender
    };
    if (bpf_skb_store_bytes(skb, IP_OFF, ip, sizeof(*ip), 0) ||
        bpf_skb_store_bytes(skb, UDP_OFF, &udp, sizeof(udp), 0))
        return TC_ACT_SHOT;
    if (r->channel && bpf_skb_store_bytes(skb, PAYLOAD_OFF, r->channel, CHANNEL_DATA_HEADER, 0))
        return TC_ACT_SHOT;
    __sync_fetch_and_add(r->packets, 1);
    __sync_fetch_and_add(r->bytes, r->data_len);
    return leave(r->ifindex);
}

#define NOT_A_CLIENT_ROUTE 0x10000

// Client -> peer: strip the ChannelData header, send from the relayed address.
INLINE int from_client(struct __sk_buff *skb, struct iphdr *ip, struct udphdr *udp, __u8 *head)
{
    struct client_key key = {
        .server_ip = ip->daddr,
        .client_ip = ip->saddr,
        .server_port = udp->dest,
        .client_port = udp->source,
        .channel = (__u16)(head[0] | head[1] << 8),
    };
    struct client_route *route = bpf_map_lookup_elem(&client_routes, &key);
    if (!route)
        return NOT_A_CLIENT_ROUTE;
    // Past its deadline the route is the daemon's again, which refuses or relays it by its
    // own clock until its sweep removes the route.
    if (bpf_ktime_get_ns() >= route->expires_ns)
        return PASS;
    __u16 data_len = (__u16)(head[2] << 8 | head[3]);
    // Padded (or short) ChannelData is legal but rare over UDP: the daemon handles it.
    if (htons16(udp->len) != sizeof(*udp) + CHANNEL_DATA_HEADER + data_len)
        return PASS;
    struct rewrite r = {
        .saddr = route->relay_ip,
        .daddr = route->peer_ip,
        .sport = route->relay_port,
        .dport = route->peer_port,
        .data_len = data_len,
        .channel = 0,
        .mtu = route->mtu,
        .ifindex = route->ifindex,
        .packets = &route->packets,
        .bytes = &route->bytes,
    };
    return relay(skb, ip, &r);
}

// Peer -> client: prepend a ChannelData header, send from the server address.
INLINE int from_peer(struct __sk_buff *skb, struct iphdr *ip, struct udphdr *udp)
{
    struct peer_key key = {
        .relay_ip = ip->daddr,
        .peer_ip = ip->saddr,
        .relay_port = udp->dest,
        .peer_port = udp->source,
    };
    struct peer_route *route = bpf_map_lookup_elem(&peer_routes, &key);
    if (!route || bpf_ktime_get_ns() >= route->expires_ns)
        return PASS;
    __u16 udp_len = htons16(udp->len);
    if (udp_len < sizeof(*udp) || udp_len > 0xffff - sizeof(*ip) - CHANNEL_DATA_HEADER)
        return PASS;
    __u16 data_len = udp_len - sizeof(*udp);
    __u8 channel[CHANNEL_DATA_HEADER] = {
        (__u8)route->channel, (__u8)(route->channel >> 8), (__u8)(data_len >> 8), (__u8)data_len,
    };
    struct rewrite r = {
        .saddr = route->server_ip,
        .daddr = route->client_ip,
        .sport = route->server_port,
        .dport = route->client_port,
        .data_len = data_len,
        .channel = channel,
        .mtu = route->mtu,
        .ifindex = route->ifindex,
        .packets = &route->packets,
        .bytes = &route->bytes,
    };
    return relay(skb, ip, &r);
}

SEC("classifier")
int turn_relay(struct __sk_buff *skb)
{
    if (skb->protocol != htons16(ETH_P_IP))
        return PASS;
    struct iphdr ip;
    struct udphdr udp;
    __u8 head[CHANNEL_DATA_HEADER];
    if (bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)) || ip.ihl != 5 || ip.version != 4 ||
        ip.protocol != IPPROTO_UDP || (ip.frag_off & htons16(0x3fff)) || ip.ttl <= 1)
        return PASS;
    if (bpf_skb_load_bytes(skb, UDP_OFF, &udp, sizeof(udp)))
        return PASS;
    // ChannelData starts with 0b01; anything else (STUN, the peer's data) cannot be a
    // client route, but can be a peer's datagram.
    if (bpf_skb_load_bytes(skb, PAYLOAD_OFF, head, sizeof(head)) == 0 && (head[0] & 0xc0) == 0x40) {
        int verdict = from_client(skb, &ip, &udp, head);
        if (verdict != NOT_A_CLIENT_ROUTE)
            return verdict;
    }
    return from_peer(skb, &ip, &udp);
}

char LICENSE[] SEC("license") = "GPL";
