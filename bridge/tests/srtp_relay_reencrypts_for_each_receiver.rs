//! The SFU's crypto path on the engine: each SRTP packet from a sender is decrypted on
//! arrival and re-encrypted for three receivers with their own keys (one copy crossing to the
//! other worker). Every receiver decrypts every packet to the sender's plaintext, forged
//! packets are dropped and counted, and the steady state allocates nothing.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bridge::media::srtp::{Context, Profile};
use bridge::media::srtp_relay::{SrtpRelay, SrtpRoute};
use common::{ALLOCATIONS, udp};
use engine::{BackendChoice, Destination, DropReason, Engine, EngineConfig, MemoryLock, Via, WorkerId};

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

const RECEIVERS: usize = 3;
const SENDER_KEY: [u8; 16] = [1; 16];

fn receiver_key(i: usize) -> [u8; 16] {
    [10 + i as u8; 16]
}

/// Writes RTP packet `seq` (1000 bytes, content from seq) into `buf`.
fn rtp(seq: u16, buf: &mut [u8]) -> usize {
    buf[0] = 0x80;
    buf[1] = 111;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    buf[8..12].copy_from_slice(&0x5eed_0001u32.to_be_bytes());
    for (i, b) in buf[12..1000].iter_mut().enumerate() {
        *b = (i as u16 ^ seq) as u8;
    }
    1000
}

struct Peers {
    sender: UdpSocket,
    sender_context: Context,
    sinks: Vec<(UdpSocket, Context)>,
}

/// Sends `count` packets from `first_seq` and checks each receiver decrypts each one.
fn exchange(peers: &mut Peers, to: std::net::SocketAddr, first_seq: u16, count: u16) {
    let mut buf = [0u8; 2048];
    let mut expected = [0u8; 2048];
    for seq in first_seq..first_seq + count {
        let len = rtp(seq, &mut buf);
        let len = peers.sender_context.protect_rtp(&mut buf, len).unwrap();
        peers.sender.send_to(&buf[..len], to).unwrap();
        let plain_len = rtp(seq, &mut expected);
        for (i, (sink, context)) in peers.sinks.iter_mut().enumerate() {
            let n = loop {
                match sink.recv_from(&mut buf) {
                    Ok((n, _)) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("receiver {i}, seq {seq}: {e}"),
                }
            };
            let plain = context.unprotect_rtp(&mut buf[..n]).unwrap_or_else(|e| panic!("receiver {i}: {e}"));
            assert_eq!(&buf[..plain], &expected[..plain_len], "receiver {i}, seq {seq}");
        }
    }
}

#[test]
fn every_receiver_decrypts_every_packet_and_nothing_allocates() {
    for profile in [Profile::AeadAes128Gcm, Profile::Aes128CmHmacSha1_80] {
        let salt = vec![7u8; profile.master_salt_len()];
        let sender = udp("127.0.0.1:0");
        let sinks: Vec<UdpSocket> = (0..RECEIVERS).map(|_| udp("127.0.0.1:0")).collect();
        for sink in &sinks {
            sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        // Each worker gets its own contexts (SRTP state is per core); the sender's 4-tuple
        // hashes to one of them, which does all the work.
        let sink_addrs: Vec<_> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
        let sender_addr = sender.local_addr().unwrap();
        let relay = |_: WorkerId| {
            let to = sink_addrs
                .iter()
                .enumerate()
                .map(|(i, &addr)| {
                    let dest =
                        Destination { via: Via::Worker(WorkerId((i % 2) as u16)), ..Destination::here(addr) };
                    (dest, Context::new(profile, &receiver_key(i), &salt).unwrap())
                })
                .collect();
            let route = SrtpRoute { inbound: Context::new(profile, &SENDER_KEY, &salt).unwrap(), to };
            SrtpRelay::new(HashMap::from([(sender_addr, route)]))
        };
        let config = EngineConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            lock_memory: MemoryLock::Off,
            pool_slots_per_worker: 512,
            backend: BackendChoice::Auto,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&config, relay).unwrap();
        let to = engine.local_addr();
        let mut peers = Peers {
            sender,
            sender_context: Context::new(profile, &SENDER_KEY, &salt).unwrap(),
            sinks: sinks
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, Context::new(profile, &receiver_key(i), &salt).unwrap()))
                .collect(),
        };

        exchange(&mut peers, to, 0, 200); // warm up
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        exchange(&mut peers, to, 200, 3000);
        let during = ALLOCATIONS.load(Ordering::SeqCst) - before;

        // A forged packet (right header, wrong key) is dropped and counted, never forwarded.
        let mut forged = [0u8; 2048];
        let len = rtp(5000, &mut forged);
        let len = Context::new(profile, &[99; 16], &salt).unwrap().protect_rtp(&mut forged, len).unwrap();
        peers.sender.send_to(&forged[..len], to).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let counters = engine.counter_handles();
        assert!(engine.stop());
        let mut totals = engine::Counts::default();
        counters.iter().for_each(|c| totals.add(&c.load()));

        assert_eq!(
            during, 0,
            "{profile:?}: {during} allocations relaying 3,000 packets to {RECEIVERS} receivers"
        );
        assert_eq!(totals.drops(DropReason::Rejected), 1, "{profile:?}: {totals:?}");
        assert_eq!(totals.tx_packets, 3200 * RECEIVERS as u64, "{profile:?}: {totals:?}");
    }
}
