//! TURN over UDP relays without allocating, with each backend: ChannelData both ways and Send
//! and Data indications, over real loopback sockets through the engine, counted by a global
//! allocator over every thread of the process (the engine's workers included). Only setting up
//! (Allocate, CreatePermission, ChannelBind: the control path) may allocate.
//!
//! The only test in its binary, so no other test's allocations land in the count.

mod udp_harness;

use std::sync::atomic::Ordering;

use stun::TransactionId;
use turn::client::{AllocateOptions, ChannelNumber, write_channel_data};
use udp_harness::*;

#[path = "../../scripts/counting_allocator.rs"]
mod counting_allocator;

#[global_allocator]
static GLOBAL: counting_allocator::Counting = counting_allocator::Counting;

const ROUNDS: usize = 1000;

#[test]
fn relaying_over_udp_allocates_nothing() {
    for backend in BACKENDS {
        let (listener, shared) = start(&config((61700, 61799), "allow-loopback-peers"), backend, 1);
        let mut client = UdpClient::new(listener.local_addr());
        let allocated = client.allocate(AllocateOptions::default());
        assert_eq!(code(&allocated), 0, "{backend:?}: {allocated:?}");
        let relayed = allocated.relayed[0];
        // Peer `a` is reached over a channel, peer `b` with Send and Data indications.
        let (a, b) = (peer(), peer());
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(code(&client.permit(&[a_addr, b_addr])), 0);
        assert_eq!(code(&client.bind(0x4000, a_addr)), 0);

        let channel = ChannelNumber::new(0x4000).unwrap();
        let mut channel_data = [0u8; 1204];
        let channel_len = write_channel_data(&mut channel_data, channel, &[7; 1200], false).unwrap();
        let mut send = [0u8; 1300];
        let send_len = client
            .client
            .send_indication(&mut send, TransactionId([3; 12]), b_addr, &[8; 1200], false)
            .unwrap();
        let payload = [9u8; 1200];
        let mut buf = [0u8; 2048];
        let round = |buf: &mut [u8]| {
            client.send(&channel_data[..channel_len]);
            assert_eq!(peer_recv(&a, buf), (1200, relayed));
            a.send_to(&payload, relayed).unwrap();
            assert_eq!(client.recv(buf), Some(1204), "ChannelData");
            client.send(&send[..send_len]);
            assert_eq!(peer_recv(&b, buf), (1200, relayed));
            b.send_to(&payload, relayed).unwrap();
            let len = client.recv(buf).expect("a Data indication");
            assert!(len > 1200 && buf[..2] == [0x00, 0x17], "a Data indication");
        };
        for _ in 0..100 {
            round(&mut buf); // warm-up
        }
        let before = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..ROUNDS {
            round(&mut buf);
        }
        let allocations = counting_allocator::ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(allocations, 0, "{backend:?}: {} datagrams relayed each way", 2 * ROUNDS);
        assert_eq!(shared.metrics.peer_to_client().0, 2 * (100 + ROUNDS) as u64);
        assert!(listener.stop());
    }
}
