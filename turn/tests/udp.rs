//! TURN over UDP on the packet engine, with each backend: our own client allocates with REST
//! API credentials over real loopback sockets, relays to a peer with Send and Data indications
//! and over a channel, and deletes the allocation (its relay socket closes); a loopback peer is
//! refused unless allowed; EVEN-PORT with a reservation; a full port range answers 508; with
//! two listening-ips (IPv4 and IPv6) clients on each are answered from the address they use.

mod udp_harness;

use std::net::SocketAddr;
use std::time::Duration;

use stun::TransactionId;
use turn::client::{AllocateOptions, ChannelNumber, Outcome, parse_channel_data, parse_data_indication};
use turn::client::{is_channel_data, write_channel_data};
use turn::udp::start_udp;
use udp_harness::*;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_client_relays_to_a_peer_both_ways_and_refresh_zero_closes_the_relay() {
    for backend in BACKENDS {
        let range = (61100, 61199);
        let (listener, shared) = start(&config(range, "allow-loopback-peers"), backend, 2);
        assert_eq!(listener.local_addr().ip(), ip(SERVER_IP));
        let mut client = UdpClient::new(listener.local_addr());

        let allocated = client.allocate(AllocateOptions::default());
        assert_eq!(code(&allocated), 0, "{backend:?}: {allocated:?}");
        assert!(allocated.signed);
        let relayed = allocated.relayed[0];
        assert_eq!(relayed.ip(), ip(SERVER_IP));
        assert!((range.0..=range.1).contains(&relayed.port()), "{relayed}");
        assert_eq!(allocated.mapped, Some(client.local_addr()));
        assert_eq!(wait_sockets_open(&listener, 1), 1, "{backend:?}: one relay socket");

        let peer = peer();
        let peer_addr = peer.local_addr().unwrap();
        assert_eq!(code(&client.permit(&[peer_addr])), 0);
        let mut buf = [0u8; 2048];

        // Send indication -> the peer hears the relayed address.
        let len =
            client.client.send_indication(&mut buf, TransactionId([1; 12]), peer_addr, b"hello peer", false);
        client.send(&buf[..len.unwrap()]);
        let (n, from) = peer_recv(&peer, &mut buf);
        assert_eq!((&buf[..n], from), (&b"hello peer"[..], relayed), "{backend:?}");

        // The peer answers -> a Data indication naming it.
        peer.send_to(b"hello client", relayed).unwrap();
        let n = client.recv(&mut buf).expect("a Data indication");
        assert_eq!(parse_data_indication(&buf[..n]), Some((peer_addr, &b"hello client"[..])), "{backend:?}");

        // ChannelBind, then ChannelData both ways.
        assert_eq!(code(&client.bind(0x4000, peer_addr)), 0);
        let channel = ChannelNumber::new(0x4000).unwrap();
        let len = write_channel_data(&mut buf, channel, b"over the channel", false).unwrap();
        client.send(&buf[..len]);
        let (n, from) = peer_recv(&peer, &mut buf);
        assert_eq!((&buf[..n], from), (&b"over the channel"[..], relayed), "{backend:?}");
        peer.send_to(b"back over the channel", relayed).unwrap();
        let n = client.recv(&mut buf).expect("ChannelData");
        assert!(is_channel_data(&buf[..n]));
        assert_eq!(parse_channel_data(&buf[..n]), Some((channel, &b"back over the channel"[..])));
        assert_eq!(shared.metrics.peer_to_client().0, 2);

        // Refresh with lifetime 0 deletes the allocation and closes its relay socket.
        let deleted = client.refresh(Some(0));
        assert_eq!(code(&deleted), 0, "{backend:?}");
        assert_eq!(wait_sockets_open(&listener, 0), 0, "{backend:?}: the relay socket is closed");
        assert_eq!(shared.quota.current(), 0);
        peer.send_to(b"too late", relayed).unwrap();
        client.socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        assert_eq!(client.recv(&mut buf), None, "{backend:?}: nothing relayed after the delete");
        assert_eq!(shared.metrics.peer_to_client().0, 2);
        assert!(listener.stop(), "{backend:?}");
    }
}

#[test]
fn a_loopback_peer_is_refused_403_unless_allowed() {
    for backend in BACKENDS {
        let (listener, _) = start(&config((61200, 61209), ""), backend, 1);
        let mut client = UdpClient::new(listener.local_addr());
        assert_eq!(code(&client.allocate(AllocateOptions::default())), 0);
        let peer = peer();
        assert_eq!(code(&client.permit(&[peer.local_addr().unwrap()])), 403, "{backend:?}");
        // Nor does a Send indication reach it.
        let mut buf = [0u8; 256];
        let len = client.client.send_indication(
            &mut buf,
            TransactionId([2; 12]),
            peer.local_addr().unwrap(),
            b"x",
            false,
        );
        client.send(&buf[..len.unwrap()]);
        peer.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        assert!(peer.recv_from(&mut buf).is_err(), "{backend:?}: nothing reaches a refused peer");
        assert!(listener.stop());
    }
}

#[test]
fn even_port_with_a_reservation_gives_an_even_port_then_the_next() {
    for backend in BACKENDS {
        let (listener, shared) = start(&config((61300, 61399), ""), backend, 1);
        let mut first = UdpClient::new(listener.local_addr());
        let even = first.allocate(AllocateOptions { even_port: Some(true), ..AllocateOptions::default() });
        assert_eq!(code(&even), 0, "{backend:?}: {even:?}");
        let port = even.relayed[0].port();
        assert_eq!(port % 2, 0, "{backend:?}: {port}");
        let token = even.reservation_token.expect("a RESERVATION-TOKEN");
        assert_eq!(wait_sockets_open(&listener, 2), 2, "the reserved port is held open");

        let mut second = UdpClient::new(listener.local_addr());
        let reserved =
            second.allocate(AllocateOptions { reservation_token: Some(token), ..AllocateOptions::default() });
        assert_eq!(code(&reserved), 0, "{backend:?}: {reserved:?}");
        assert_eq!(reserved.relayed, vec![SocketAddr::new(ip(SERVER_IP), port + 1)]);

        // Without the R bit: an even port, no token.
        let mut third = UdpClient::new(listener.local_addr());
        let plain = third.allocate(AllocateOptions { even_port: Some(false), ..AllocateOptions::default() });
        assert_eq!(code(&plain), 0);
        assert_eq!(plain.relayed[0].port() % 2, 0);
        assert_eq!(plain.reservation_token, None);
        assert_eq!(shared.quota.current(), 3);
        assert!(listener.stop());
        // The engine gives no worker a last turn, so the servers free their allocations as they
        // are dropped: the quota (shared with TCP and TLS) comes back.
        assert_eq!(shared.quota.current(), 0, "{backend:?}");
    }
}

#[test]
fn a_dual_allocation_binds_a_relay_of_each_family() {
    for backend in BACKENDS {
        let extra = format!("relay-ip={SERVER_IP}\nrelay-ip=::1");
        let (listener, _) = start(&config((61400, 61499), &extra), backend, 1);
        assert_eq!(listener.relay_ips(), &[ip(SERVER_IP), ip("::1")]);
        let mut client = UdpClient::new(listener.local_addr());
        let dual = client.allocate(AllocateOptions {
            additional_family: Some(stun::AddressFamily::V6),
            ..AllocateOptions::default()
        });
        assert_eq!(code(&dual), 0, "{backend:?}: {dual:?}");
        assert_eq!(dual.relayed.len(), 2, "{dual:?}");
        assert_eq!((dual.relayed[0].ip(), dual.relayed[1].ip()), (ip(SERVER_IP), ip("::1")));
        assert!(dual.relayed.iter().all(|r| (61400..=61499).contains(&r.port())));
        assert_eq!(wait_sockets_open(&listener, 2), 2);
        assert_eq!(code(&client.refresh(Some(0))), 0);
        assert_eq!(wait_sockets_open(&listener, 0), 0, "{backend:?}");
        assert!(listener.stop());
    }
}

#[test]
fn clients_on_each_listening_ip_are_answered_from_it_and_relayed() {
    for backend in BACKENDS {
        let (listener, _) =
            start(&config((61700, 61799), "allow-loopback-peers\nlistening-ip=::1"), backend, 2);
        let [v4, v6] = [listener.local_addrs()[0], listener.local_addrs()[1]];
        assert_eq!(listener.local_addrs().len(), 2, "{backend:?}");
        assert_eq!((v4.ip(), v6.ip()), (ip(SERVER_IP), ip("::1")), "{backend:?}");
        assert_eq!(listener.relay_ips(), &[ip(SERVER_IP), ip("::1")]);

        // `recv` asserts that every answer comes from the address the client sent to.
        let mut on_v4 = UdpClient::new(v4);
        let allocated = on_v4.allocate(AllocateOptions::default());
        assert_eq!(code(&allocated), 0, "{backend:?}: {allocated:?}");
        assert_eq!(allocated.relayed[0].ip(), ip(SERVER_IP));
        assert_eq!(allocated.mapped, Some(on_v4.local_addr()));

        // An IPv6 client on the IPv6 listener gets the IPv6 relay it asks for, and the IPv4 one
        // (the first IPv4 listening-ip) by default.
        let mut asks_v6 = UdpClient::new(v6);
        let six = asks_v6.allocate(AllocateOptions {
            family: Some(stun::AddressFamily::V6),
            ..AllocateOptions::default()
        });
        assert_eq!(code(&six), 0, "{backend:?}: {six:?}");
        assert_eq!(six.relayed[0].ip(), ip("::1"), "{backend:?}");
        assert_eq!(six.mapped, Some(asks_v6.local_addr()));
        let mut on_v6 = UdpClient::new(v6);
        let default = on_v6.allocate(AllocateOptions::default());
        assert_eq!(code(&default), 0, "{backend:?}: {default:?}");
        assert_eq!(default.relayed[0].ip(), ip(SERVER_IP));
        assert_eq!(wait_sockets_open(&listener, 3), 3, "{backend:?}");

        // Each IPv4-relayed client reaches a peer and hears back on its own listener, with Send
        // and Data indications and over a channel.
        let peer = peer();
        let peer_addr = peer.local_addr().unwrap();
        let mut buf = [0u8; 2048];
        for (client, relayed) in [(&mut on_v4, allocated.relayed[0]), (&mut on_v6, default.relayed[0])] {
            assert_eq!(code(&client.permit(&[peer_addr])), 0, "{backend:?}");
            let len =
                client.client.send_indication(&mut buf, TransactionId([2; 12]), peer_addr, b"hi", false);
            client.send(&buf[..len.unwrap()]);
            let (n, from) = peer_recv(&peer, &mut buf);
            assert_eq!((&buf[..n], from), (&b"hi"[..], relayed), "{backend:?} via {}", client.server);
            peer.send_to(b"back", relayed).unwrap();
            let n = client.recv(&mut buf).expect("a Data indication");
            assert_eq!(parse_data_indication(&buf[..n]), Some((peer_addr, &b"back"[..])), "{backend:?}");

            assert_eq!(code(&client.bind(0x4001, peer_addr)), 0, "{backend:?}");
            peer.send_to(b"over the channel", relayed).unwrap();
            let n = client.recv(&mut buf).expect("ChannelData");
            let channel = ChannelNumber::new(0x4001).unwrap();
            assert_eq!(parse_channel_data(&buf[..n]), Some((channel, &b"over the channel"[..])));
        }
        for client in [&mut on_v4, &mut asks_v6, &mut on_v6] {
            assert_eq!(code(&client.refresh(Some(0))), 0, "{backend:?}");
        }
        assert_eq!(wait_sockets_open(&listener, 0), 0, "{backend:?}");
        assert!(listener.stop(), "{backend:?}");
    }
}

#[test]
fn a_full_port_range_answers_508_and_a_freed_port_is_used_again() {
    for backend in BACKENDS {
        // One port: the engine allows one relay socket per worker.
        let (listener, _) = start(&config((61500, 61500), "total-quota=10"), backend, 1);
        let mut first = UdpClient::new(listener.local_addr());
        let allocated = first.allocate(AllocateOptions::default());
        assert_eq!(code(&allocated), 0, "{backend:?}: {allocated:?}");
        assert_eq!(allocated.relayed[0].port(), 61500);
        let mut second = UdpClient::new(listener.local_addr());
        assert_eq!(code(&second.allocate(AllocateOptions::default())), 508, "{backend:?}");

        assert_eq!(code(&first.refresh(Some(0))), 0);
        // The port is free once the engine has closed the descriptor (a loop turn or two).
        assert_eq!(wait_sockets_open(&listener, 0), 0);
        let again = second.allocate(AllocateOptions::default());
        assert_eq!(code(&again), 0, "{backend:?}: {again:?}");
        assert_eq!(again.relayed[0].port(), 61500);
        assert!(listener.stop());
    }
}

#[test]
fn a_wildcard_listener_needs_an_address_to_announce() {
    let mut config = config((61600, 61609), "");
    config.listening_ips.clear();
    let shared = std::sync::Arc::new(turn::server::Shared::new(&config));
    let error =
        start_udp(&config, shared, [7; 32], &engine_config(engine::BackendChoice::Mmsg, 1)).unwrap_err();
    assert!(error.contains("relay-ip"), "{error}");

    // With an external-ip the relays bind the wildcard and the external address is announced.
    config.external_ips.push(turn::config::ExternalIp { public: ip("203.0.113.5"), private: None });
    let (listener, _) = start(&config, engine::BackendChoice::Mmsg, 1);
    assert_eq!(listener.relay_ips(), &[ip("0.0.0.0")]);
    // Answers leave with the kernel's source address for the client: talk to 127.0.0.1.
    let server = SocketAddr::new(ip("127.0.0.1"), listener.local_addr().port());
    let mut client = UdpClient::new(server);
    let allocated = client.allocate(AllocateOptions::default());
    assert_eq!(code(&allocated), 0, "{allocated:?}");
    assert_eq!(allocated.relayed[0].ip(), ip("203.0.113.5"));
    assert!((61600..=61609).contains(&allocated.relayed[0].port()));
    assert_eq!(allocated.outcome, Outcome::Success);
    assert!(listener.stop());
}

/// The IP_MTU_DISCOVER mode of this process's UDP socket bound to `local`, found among the
/// open descriptors (the engine's relay sockets live in this process).
fn mtu_discover_mode(local: SocketAddr) -> Option<libc::c_int> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else { continue };
        let mut name: libc::sockaddr_in = unsafe_zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes into `name`, a live local; a descriptor
        // that is not a socket (or went away) makes it fail, which is skipped.
        if unsafe { libc::getsockname(fd, (&raw mut name).cast(), &mut len) } != 0
            || i32::from(name.sin_family) != libc::AF_INET
            || u16::from_be(name.sin_port) != local.port()
        {
            continue;
        }
        let mut mode: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one c_int into `mode`, a live local.
        let rc = unsafe {
            libc::getsockopt(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, (&raw mut mode).cast(), &mut len)
        };
        if rc == 0 {
            return Some(mode);
        }
    }
    None
}

fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for sockaddr_in, plain C data for which all zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

#[test]
fn dont_fragment_in_a_send_indication_sets_df_on_the_relay_socket() {
    for backend in BACKENDS {
        let (listener, _shared) = start(&config((61300, 61399), "allow-loopback-peers"), backend, 1);
        let mut client = UdpClient::new(listener.local_addr());
        let allocated = client.allocate(AllocateOptions::default());
        let relayed = allocated.relayed[0];
        let peer = peer();
        let peer_addr = peer.local_addr().unwrap();
        assert_eq!(code(&client.permit(&[peer_addr])), 0);
        let default = mtu_discover_mode(relayed).expect("the relay socket is in this process");
        assert_ne!(default, libc::IP_PMTUDISC_DO, "{backend:?}: the kernel's default until asked");

        let mut buf = [0u8; 2048];
        for (dont_fragment, mode) in [(true, libc::IP_PMTUDISC_DO), (false, libc::IP_PMTUDISC_DONT)] {
            let len = client.client.send_indication(
                &mut buf,
                TransactionId([2; 12]),
                peer_addr,
                b"df",
                dont_fragment,
            );
            client.send(&buf[..len.unwrap()]);
            let (n, _) = peer_recv(&peer, &mut buf);
            assert_eq!(&buf[..n], b"df");
            assert_eq!(mtu_discover_mode(relayed), Some(mode), "{backend:?}: DONT-FRAGMENT {dont_fragment}");
        }
        assert!(listener.stop(), "{backend:?}");
    }
}

/// RFC 6062 §5.1: a TCP allocation needs a TCP or TLS control connection; over UDP it is a
/// bad request, and the engine never opens a relay for it.
#[test]
fn a_tcp_allocation_over_udp_is_400() {
    for backend in BACKENDS {
        let (listener, _shared) = start(&config((61800, 61809), "allow-loopback-peers"), backend, 1);
        let mut client = UdpClient::new(listener.local_addr());
        let tcp = AllocateOptions { transport: 6, ..AllocateOptions::default() };
        assert_eq!(code(&client.allocate(tcp)), 400, "{backend:?}");
        assert_eq!(wait_sockets_open(&listener, 0), 0, "{backend:?}: no relay");
        assert_eq!(code(&client.allocate(AllocateOptions::default())), 0, "{backend:?}: UDP still is");
        assert!(listener.stop(), "{backend:?}");
    }
}
