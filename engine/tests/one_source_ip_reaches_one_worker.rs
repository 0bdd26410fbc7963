//! With `steer_by_source_ip`, every datagram from one source address reaches one worker,
//! whatever its source port, and that worker is the one `worker_for_source_ip` names; without
//! it, the kernel's 4-tuple hash spreads one address's ports over the workers. With both
//! backends, 2 and 3 workers, several loopback addresses (127.0.0.x) and, where the host has
//! IPv6, a dual-stack listener reached over IPv4 and ::1.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{
    BackendChoice, Datagram, Destination, Engine, EngineConfig, Handler, MemoryLock, Output, WorkerId,
    worker_for_source_ip,
};

const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Mmsg];

/// Answers every datagram with the id of the worker that handled it.
struct WhoAmI;

impl Handler for WhoAmI {
    fn handle(&mut self, _now: Instant, from: SocketAddr, _packet: &mut Datagram<'_>, out: &mut Output<'_>) {
        let id = out.worker().0.to_be_bytes();
        out.send(Destination::here(from), |buf| buf.extend_from_slice(&id).unwrap());
    }
}

fn start(backend: BackendChoice, listen: &str, workers: usize, steer: bool) -> Engine {
    let config = EngineConfig {
        listen: listen.parse().unwrap(),
        workers,
        pin_workers: false,
        lock_memory: MemoryLock::Off,
        pool_slots_per_worker: 256,
        steer_by_source_ip: steer,
        backend,
        ..EngineConfig::default()
    };
    Engine::start(&config, |_| WhoAmI).expect("engine starts")
}

/// The worker that answers a datagram from a fresh socket (a fresh source port) on `source`.
fn worker_seen(source: IpAddr, to: SocketAddr) -> WorkerId {
    let socket = UdpSocket::bind((source, 0)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        socket.send_to(b"who", to).unwrap();
        loop {
            match socket.recv_from(&mut buf) {
                Ok((2, from)) if from.port() == to.port() => {
                    return WorkerId(u16::from_be_bytes([buf[0], buf[1]]));
                }
                Ok(_) => continue,
                // Blocking calls in these test processes now and then return EINTR: retry.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
    panic!("no answer from {to} to {source}");
}

/// Workers that answered `ports` fresh source ports of `source`.
fn workers_seen(source: IpAddr, to: SocketAddr, ports: usize) -> BTreeSet<WorkerId> {
    (0..ports).map(|_| worker_seen(source, to)).collect()
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
fn every_port_of_one_address_reaches_the_predicted_worker() {
    for backend in BACKENDS {
        for workers in [2, 3] {
            let engine = start(backend, "127.0.0.1:0", workers, true);
            let mut used = BTreeSet::new();
            for last in 1..=8 {
                let source = loopback(last);
                let seen = workers_seen(source, engine.local_addr(), 24);
                let predicted = worker_for_source_ip(source, workers);
                assert_eq!(
                    seen,
                    BTreeSet::from([predicted]),
                    "{backend:?}, {workers} workers: every port of {source} on worker {predicted:?}"
                );
                used.insert(predicted);
            }
            // The addresses are not all sent to one worker (the prediction spreads them, and
            // the kernel followed it).
            assert!(used.len() > 1, "{backend:?}, {workers} workers: {used:?}");
            assert_eq!(engine.totals().total_drops(), 0, "{backend:?}");
            assert!(engine.stop());
        }
    }
}

#[test]
fn a_dual_stack_listener_steers_ipv4_and_ipv6_sources() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    // With 2 workers ::1 is predicted on worker 1, where a program that read zeros (a wrong
    // offset into the IPv6 header) would pick worker 0.
    assert_eq!(worker_for_source_ip("::1".parse().unwrap(), 2), WorkerId(1));
    for backend in BACKENDS {
        for workers in [2, 3] {
            let engine = start(backend, "[::]:0", workers, true);
            let port = engine.local_addr().port();
            for source in [loopback(1), loopback(2), loopback(3), "::1".parse().unwrap()] {
                let to = SocketAddr::new(if source.is_ipv4() { loopback(1) } else { source }, port);
                let seen = workers_seen(source, to, 12);
                let predicted = worker_for_source_ip(source, workers);
                assert_eq!(
                    seen,
                    BTreeSet::from([predicted]),
                    "{backend:?}, {workers} workers: every port of {source}"
                );
            }
            assert!(engine.stop());
        }
    }
}

#[test]
fn without_steering_one_address_spreads_over_workers() {
    for backend in BACKENDS {
        for workers in [2, 3] {
            let engine = start(backend, "127.0.0.1:0", workers, false);
            // 64 ports all hashed to one worker: odds of 2^-63 with 2 workers.
            let seen = workers_seen(loopback(1), engine.local_addr(), 64);
            assert!(seen.len() > 1, "{backend:?}, {workers} workers: 64 ports all on {seen:?}");
            assert!(engine.stop());
        }
    }
}
