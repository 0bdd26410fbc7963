//! TURN over UDP on the packet engine: one [`Server`] per engine worker, clients on the
//! engine's shared listeners (one per `listening-ip`), each relayed address an engine socket of
//! the worker that holds the allocation.
//!
//! ```text
//! per worker, per datagram (engine::Handler::handle):
//!     on a listener     -> server.handle_client(now, (Udp, from, its address), bytes, io)
//!     on relay socket s -> server.handle_peer(now, relay of s, from, bytes, io)
//! per deadline          -> server.handle_timeout(now, io)   (poll_timeout: the server's sweep)
//! io.to_client          -> Output::send(from the listener on the tuple's server address),
//!                          written in place in a slot
//! io.to_peer            -> Output::send(Destination::from_socket(relay socket, peer)), one copy
//! io.open_relay         -> Output::open_udp(relay ip : port from min-port..=max-port)
//! ```
//! SO_REUSEPORT sends every datagram of one client 5-tuple to the same worker, and a relay
//! socket only ever reaches the worker that opened it, so each allocation lives on one worker
//! and nothing is shared but the quota, the metrics and the port claims (all atomics). Relaying
//! allocates nothing and makes no system call per packet
//! (`tests/udp_relaying_allocates_nothing.rs`).
//!
//! Addresses. The engine listens on every `listening-ip` (coturn's semantics: one IPv4 and one
//! IPv6 address, say), or on `0.0.0.0` without one, each on `listening-port`. The 5-tuple's
//! server address is the listener a datagram reached, and answers leave from it, so a client
//! hears the server from the address it talks to; steering by source address puts a client on
//! the same worker whichever listener it uses. Relayed addresses bind the first `relay-ip` of
//! the family asked for, else the first `listening-ip` of that family (coturn's default): an
//! IPv6 client that asks for an IPv6 relay gets one from the IPv6 `listening-ip`. A wildcard
//! relay address (`relay-ip=0.0.0.0`, or none configured while the listener is the wildcard)
//! binds the wildcard and cannot itself be told to clients: it needs an `external-ip` of its
//! family, which is announced instead; without one the listener does not start. (The TCP
//! listeners can use the address a connection reached; a wildcard UDP listener cannot, because
//! the engine does not report a datagram's destination address.)
//!
//! What this listener does not do: run the server's shutdown through the engine (the engine
//! stops its workers and closes their sockets itself; each worker's server then gives its quota
//! back as it is dropped).

mod clock;
mod handler;
mod io;
mod ports;
mod relays;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use engine::{Engine, EngineConfig, MemoryLock, StopHandle};

use crate::config::TurnConfig;
use crate::server::{MAX_RESERVATIONS, Server, Shared};
use handler::UdpWorker;
use ports::PortSpace;
pub use relays::MAX_BIND_FAILURES;

/// Engine settings for the TURN daemon, before [`start_udp`] sets the listen address and the
/// socket limit: a worker per core, a 16 MiB pool per worker, locked in RAM when the system
/// allows it (relayed media is end-to-end encrypted; the bridge, which decrypts, requires the
/// lock).
pub fn engine_defaults() -> EngineConfig {
    // All of a client address's ports on one worker: an RTP/RTCP pair's RESERVATION-TOKEN is
    // redeemed on the worker that issued it.
    EngineConfig { lock_memory: MemoryLock::BestEffort, steer_by_source_ip: true, ..EngineConfig::default() }
}

/// The running UDP listener: its engine, and what it was started with.
#[derive(Debug)]
pub struct UdpListener {
    engine: Engine,
    relay_ips: Vec<IpAddr>,
}

impl UdpListener {
    /// The first listen address (its port resolved when `listening-port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.engine.local_addr()
    }

    /// Every listen address, in `listening-ip` order (ports resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.engine.local_addrs()
    }

    /// The addresses relay sockets may bind; the server relays from the first of each family.
    pub fn relay_ips(&self) -> &[IpAddr] {
        &self.relay_ips
    }

    /// The engine, for its counters (`sockets_open` counts the relay sockets) and metrics.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.engine.stop_handle()
    }

    /// Stops the workers after queued packets leave (up to the engine's drain timeout); false
    /// when a worker did not stop in time.
    pub fn stop(self) -> bool {
        self.engine.stop()
    }
}

/// Starts TURN over UDP: the engine with `engine`'s settings, listening on every configured
/// address at the configured port, allowed enough sockets per worker for the relay port range, each worker
/// running its own `Server::new(config, shared, nonce_key)` (the same `shared` and `nonce_key`
/// as the stream listeners, so quotas are common and a nonce from one transport is good on the
/// other). The caller skips this for `no-udp`.
pub fn start_udp(
    config: &TurnConfig,
    shared: Arc<Shared>,
    nonce_key: [u8; 32],
    engine: &EngineConfig,
) -> Result<UdpListener, String> {
    let listen = listen_addrs(config);
    let relay_ips = relay_ips(config, listen[0].ip())?;
    let server_config = TurnConfig { relay_ips: relay_ips.clone(), ..config.clone() };
    let ports = Arc::new(PortSpace::new(config.min_port, config.max_port, &relay_ips));
    let engine_config = EngineConfig {
        listen: listen[0],
        extra_listen: listen[1..].to_vec(),
        max_sockets_per_worker: sockets_per_worker(config, &ports, relay_ips.len()),
        ..engine.clone()
    };
    let engine = Engine::start(&engine_config, |_| {
        UdpWorker::new(Server::new(&server_config, Arc::clone(&shared), nonce_key), Arc::clone(&ports))
    })
    .map_err(|e| format!("udp: {e}"))?;
    Ok(UdpListener { engine, relay_ips })
}

/// Every `listening-ip`, or every IPv4 address, on `listening-port`; never empty.
fn listen_addrs(config: &TurnConfig) -> Vec<SocketAddr> {
    let wildcard = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    let ips = if config.listening_ips.is_empty() { &wildcard[..] } else { &config.listening_ips };
    ips.iter().map(|&ip| SocketAddr::new(ip, config.listening_port)).collect()
}

/// The relay addresses the server may bind (it uses the first of each family): `relay-ip`s, else
/// `listening-ip`s, else (the listener on the wildcard) the wildcard of each family an
/// `external-ip` announces (or that `external-ip`'s private address). A wildcard address needs
/// an `external-ip` of its family to be announced.
fn relay_ips(config: &TurnConfig, listen: IpAddr) -> Result<Vec<IpAddr>, String> {
    let configured = if config.relay_ips.is_empty() { &config.listening_ips } else { &config.relay_ips };
    // With neither configured, the listener is the wildcard (`listen_addrs`).
    let ips: Vec<IpAddr> = if !configured.is_empty() {
        configured.clone()
    } else {
        let mut ips = Vec::new();
        for external in &config.external_ips {
            let ip = external.private.unwrap_or(match external.public {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        if ips.is_empty() {
            return Err(format!(
                "udp: listening on {listen} (no listening-ip), the server cannot tell which of this \
                 host's addresses a client reached, so it has no relayed address to announce: set \
                 relay-ip (or listening-ip), or external-ip"
            ));
        }
        ips
    };
    for ip in ips.iter().filter(|ip| ip.is_unspecified()) {
        let announced = config
            .external_ips
            .iter()
            .any(|e| e.private == Some(*ip) || (e.private.is_none() && e.public.is_ipv4() == ip.is_ipv4()));
        if !announced {
            return Err(format!(
                "udp: relay address {ip} is a wildcard, which cannot be announced to clients: set \
                 relay-ip to an address of this host, or an external-ip of that family to announce"
            ));
        }
    }
    Ok(ips)
}

/// `max_sockets_per_worker`: as many relay sockets as the port range holds on the relay
/// addresses, and no more than the allocations the quota lets in could use (one relay per family
/// each, plus the ports held for RESERVATION-TOKENs). Not divided by the workers: SO_REUSEPORT
/// spreads clients unevenly, so one worker may hold most allocations. Each is a descriptor: the
/// descriptor limit must cover `workers x` this.
fn sockets_per_worker(config: &TurnConfig, ports: &PortSpace, relay_ips: usize) -> usize {
    let in_range = ports.len() * relay_ips.max(1);
    let allocations = if config.total_quota > 0 { config.total_quota as usize } else { ports.len() };
    let by_quota = allocations * relay_ips.clamp(1, 2) + MAX_RESERVATIONS;
    // The engine's bound (its socket ids carry a 16-bit index).
    in_range.min(by_quota).min(65_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> TurnConfig {
        let text = format!("use-auth-secret\nstatic-auth-secret=0123456789abcdef\nrealm=r\n{extra}");
        TurnConfig::parse(&text).unwrap().config
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn the_listeners_are_every_listening_ip_or_the_ipv4_wildcard() {
        let wildcard = listen_addrs(&config("listening-port=3479\n"));
        assert_eq!(wildcard, ["0.0.0.0:3479".parse().unwrap()]);
        let two = config("listening-ip=192.0.2.1\nlistening-ip=2001:db8::1\n");
        assert_eq!(
            listen_addrs(&two),
            ["192.0.2.1:3478".parse().unwrap(), "[2001:db8::1]:3478".parse().unwrap()]
        );
    }

    #[test]
    fn relay_addresses_come_from_relay_ip_then_listening_ip() {
        let c = config("listening-ip=192.0.2.1\nrelay-ip=192.0.2.9\nrelay-ip=2001:db8::9\n");
        assert_eq!(relay_ips(&c, listen_addrs(&c)[0].ip()), Ok(ips(&["192.0.2.9", "2001:db8::9"])));
        let c = config("listening-ip=192.0.2.1\nlistening-ip=192.0.2.2\n");
        assert_eq!(relay_ips(&c, listen_addrs(&c)[0].ip()), Ok(ips(&["192.0.2.1", "192.0.2.2"])));
    }

    #[test]
    fn a_wildcard_relay_address_needs_an_external_ip_of_its_family() {
        let c = config("");
        let error = relay_ips(&c, listen_addrs(&c)[0].ip()).unwrap_err();
        assert!(error.contains("set relay-ip"), "{error}");
        let c = config("external-ip=203.0.113.5\n");
        assert_eq!(relay_ips(&c, listen_addrs(&c)[0].ip()), Ok(ips(&["0.0.0.0"])));
        let c = config("external-ip=203.0.113.5/10.0.0.5\n");
        assert_eq!(relay_ips(&c, listen_addrs(&c)[0].ip()), Ok(ips(&["10.0.0.5"])));
        let c = config("relay-ip=0.0.0.0\n");
        assert!(relay_ips(&c, listen_addrs(&c)[0].ip()).unwrap_err().contains("wildcard"));
        let c = config("relay-ip=::\nexternal-ip=203.0.113.5\n");
        assert!(
            relay_ips(&c, listen_addrs(&c)[0].ip()).is_err(),
            "an IPv4 external-ip does not announce IPv6"
        );
    }

    #[test]
    fn the_socket_limit_follows_the_port_range_and_the_quota() {
        let c = config("min-port=50000\nmax-port=50099\n");
        let ports = PortSpace::new(c.min_port, c.max_port, &ips(&["192.0.2.1"]));
        assert_eq!(sockets_per_worker(&c, &ports, 1), 100);
        let c = config("min-port=40000\nmax-port=60000\ntotal-quota=100\n");
        let ports = PortSpace::new(c.min_port, c.max_port, &ips(&["192.0.2.1", "2001:db8::1"]));
        assert_eq!(sockets_per_worker(&c, &ports, 2), 200 + MAX_RESERVATIONS);
        let c = config("min-port=1024\nmax-port=65535\n");
        let ports = PortSpace::new(c.min_port, c.max_port, &ips(&["192.0.2.1", "2001:db8::1"]));
        assert_eq!(sockets_per_worker(&c, &ports, 2), 65_000);
    }
}
