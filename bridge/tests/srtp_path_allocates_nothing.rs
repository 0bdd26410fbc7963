//! The SRTP work of forwarding (unprotect from the sender, protect for each of N receivers)
//! allocates nothing in steady state, for every profile.

use std::sync::atomic::Ordering;

mod common;

use bridge::media::srtp::{Context, Profile};
use common::ALLOCATIONS;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

const RECEIVERS: usize = 4;

#[test]
fn forwarding_crypto_allocates_nothing() {
    for profile in [Profile::AeadAes128Gcm, Profile::Aes128CmHmacSha1_80, Profile::Aes128CmHmacSha1_32] {
        let salt = vec![5u8; profile.master_salt_len()];
        let mut sender = Context::new(profile, &[1; 16], &salt).unwrap();
        let mut from_sender = Context::new(profile, &[1; 16], &salt).unwrap();
        let mut to_receivers: Vec<Context> =
            (0..RECEIVERS).map(|i| Context::new(profile, &[10 + i as u8; 16], &salt).unwrap()).collect();
        let mut packet = [0u8; 1300];
        let mut copy = [0u8; 1300];
        packet[0] = 0x80;
        packet[8..12].copy_from_slice(&0xfeed_beefu32.to_be_bytes());

        let mut forward = |seq: u16| {
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[12..1200].fill(seq as u8);
            let len = sender.protect_rtp(&mut packet, 1200).unwrap();
            let plain = from_sender.unprotect_rtp(&mut packet[..len]).unwrap();
            for receiver in &mut to_receivers {
                copy[..plain].copy_from_slice(&packet[..plain]);
                receiver.protect_rtp(&mut copy, plain).unwrap();
            }
        };
        for seq in 0..100 {
            forward(seq); // first packets register the SSRC in each context
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for seq in 100..5100 {
            forward(seq);
        }
        let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(during, 0, "{profile:?}: {during} allocations for 5,000 packets to {RECEIVERS} receivers");
    }
}
