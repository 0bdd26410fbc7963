//! The in-kernel ChannelData relay for real: the tc program attached to loopback's ingress,
//! our client and a peer on real sockets. What the kernel relays arrives exactly as the
//! daemon would have sent it, the daemon's sockets never see it, the counts show live in
//! `/metrics`, and what the program leaves alone (padded ChannelData, a last hop, a deleted
//! allocation) is the daemon's again. Needs CAP_BPF and CAP_NET_ADMIN (root): without them the test fails,
//! it does not skip.

mod udp_harness;

use std::sync::Arc;
use std::time::Duration;

use turn::client::{AllocateOptions, ChannelNumber, parse_channel_data, write_channel_data};
use turn::offload::KernelRelay;
use turn::server::Shared;
use turn::udp::start_udp;
use udp_harness::*;

const MESSAGES: u64 = 300;

fn start_with_kernel_relay(range: (u16, u16)) -> (turn::udp::UdpListener, Arc<Shared>) {
    let config = config(range, "allow-loopback-peers\nkernel-relay-interface=lo");
    let kernel_relay = KernelRelay::load(&config.kernel_relay_interfaces)
        .unwrap_or_else(|e| panic!("{e} (this test needs root: CAP_BPF and CAP_NET_ADMIN)"));
    let shared = Arc::new(Shared { kernel_relay: Some(kernel_relay), ..Shared::new(&config) });
    let listener = start_udp(&config, Arc::clone(&shared), [7; 32], &engine_config(BACKENDS[0], 2)).unwrap();
    (listener, shared)
}

fn metric(shared: &Shared, line_start: &str) -> u64 {
    let mut text = String::new();
    shared.render_prometheus(&mut text);
    let line =
        text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("{line_start}\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn channel_data_is_relayed_by_the_kernel_both_ways_and_handed_back_when_the_allocation_ends() {
    let (listener, shared) = start_with_kernel_relay((61400, 61419));
    let mut client = UdpClient::new(listener.local_addr());
    let allocated = client.allocate(AllocateOptions::default());
    assert_eq!(code(&allocated), 0, "{allocated:?}");
    let relayed = allocated.relayed[0];
    let peer = peer();
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(code(&client.bind(0x4000, peer_addr)), 0);
    assert_eq!(metric(&shared, "turn_kernel_routes "), 1);
    let channel = ChannelNumber::new(0x4000).unwrap();
    let mut buf = [0u8; 2048];

    // Client -> peer: every message arrives, from the relayed address, unchanged.
    let mut sent_bytes = 0;
    for i in 0..MESSAGES {
        let payload = format!("message {i} to the peer, {}", "x".repeat(i as usize % 97));
        sent_bytes += payload.len() as u64;
        let len = write_channel_data(&mut buf, channel, payload.as_bytes(), false).unwrap();
        client.send(&buf[..len]);
        let (n, from) = peer_recv(&peer, &mut buf);
        assert_eq!((&buf[..n], from), (payload.as_bytes(), relayed), "message {i}");
    }
    // Peer -> client: ChannelData on the bound channel, from the server's address.
    for i in 0..MESSAGES {
        let payload = format!("answer {i} {}", "y".repeat(i as usize % 1200));
        peer.send_to(payload.as_bytes(), relayed).unwrap();
        let n = client.recv(&mut buf).expect("the answer arrives");
        assert_eq!(parse_channel_data(&buf[..n]), Some((channel, payload.as_bytes())), "answer {i}");
        assert_eq!(n, 4 + payload.len(), "no padding over UDP");
    }

    // The kernel relayed all of it; the daemon's sockets saw none of it.
    assert_eq!(shared.metrics.client_to_peer(), (0, 0));
    assert_eq!(shared.metrics.peer_to_client(), (0, 0));
    assert_eq!(metric(&shared, "turn_kernel_relayed_packets_total{direction=\"client_to_peer\"}"), MESSAGES);
    assert_eq!(metric(&shared, "turn_kernel_relayed_bytes_total{direction=\"client_to_peer\"}"), sent_bytes);
    assert_eq!(metric(&shared, "turn_kernel_relayed_packets_total{direction=\"peer_to_client\"}"), MESSAGES);
    assert_eq!(metric(&shared, "turn_relayed_packets_total{direction=\"client_to_peer\"}"), MESSAGES);

    // Padded ChannelData (legal, unusual over UDP) is left to the daemon, which relays it.
    let len = write_channel_data(&mut buf, channel, b"odd", true).unwrap();
    assert_eq!(len, 8);
    client.send(&buf[..len]);
    let (n, from) = peer_recv(&peer, &mut buf);
    assert_eq!((&buf[..n], from), (&b"odd"[..], relayed));
    assert_eq!(shared.metrics.client_to_peer(), (1, 3), "the daemon relayed the padded one");

    // A packet arriving with TTL 1 cannot be forwarded with one less (RFC 8656 §14.3): the
    // daemon's socket sends it, with its default TTL.
    client.socket.set_ttl(1).unwrap();
    let len = write_channel_data(&mut buf, channel, b"last hop", false).unwrap();
    client.send(&buf[..len]);
    let (n, from) = peer_recv(&peer, &mut buf);
    assert_eq!((&buf[..n], from), (&b"last hop"[..], relayed));
    assert_eq!(shared.metrics.client_to_peer(), (2, 11), "the daemon relayed the TTL-1 one");
    client.socket.set_ttl(64).unwrap();

    // The allocation ends: the route goes, and a late message is the daemon's to refuse.
    assert_eq!(code(&client.refresh(Some(0))), 0);
    assert_eq!(metric(&shared, "turn_kernel_routes "), 0);
    let len = write_channel_data(&mut buf, channel, b"too late", false).unwrap();
    client.send(&buf[..len]);
    peer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(peer.recv_from(&mut buf).is_err(), "relayed after the allocation ended");
    // Closed routes keep their counts.
    assert_eq!(metric(&shared, "turn_kernel_relayed_packets_total{direction=\"client_to_peer\"}"), MESSAGES);
    drop(listener);
}

/// What `systemd/meeting-turn-kernel-relay.conf` grants is enough: the daemon, as an
/// unprivileged user holding only CAP_BPF and CAP_NET_ADMIN, attaches the relay and serves;
/// without them it refuses to start and says what it needs.
#[test]
fn the_daemon_needs_cap_bpf_and_cap_net_admin_and_nothing_more() {
    let dir = std::env::temp_dir().join(format!("kernel-relay-caps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("turnserver.conf");
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &config,
        format!(
            "listening-ip=127.0.0.1\nlistening-port={port}\nmin-port=61440\nmax-port=61449\nno-tcp\nno-tls\n\
             use-auth-secret\nstatic-auth-secret={SECRET}\nrealm={REALM}\nkernel-relay-interface=lo\n"
        ),
    )
    .unwrap();
    // Readable by the unprivileged user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let run_as_nobody = |caps: &str| {
        let mut child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(format!("--inh-caps=-all{caps}"))
            .arg(format!("--ambient-caps=-all{caps}"))
            .arg(format!("--bounding-set=-all{caps}"))
            .arg(env!("CARGO_BIN_EXE_turn"))
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) runs");
        let stderr = child.stderr.take().unwrap();
        let (lines, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut log = String::new();
        while let Ok(line) = seen.recv_timeout(Duration::from_secs(10)) {
            log.push_str(&line);
            log.push('\n');
            if line.ends_with(" ready") || line.contains("ERROR") {
                break;
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        (log, status)
    };

    let (log, _) = run_as_nobody(",+bpf,+net_admin");
    assert!(log.contains("kernel relay attached"), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" ready")), "{log}");

    let (log, status) = run_as_nobody("");
    assert!(!status.success());
    assert!(log.contains("kernel relay") && log.contains("CAP_BPF and CAP_NET_ADMIN"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
