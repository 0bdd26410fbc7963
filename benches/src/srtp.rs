//! Keys and packets of the SRTP forwarders (`srtp-gcm`, `srtp-cm`), derived the same way by
//! the forwarder child and the load generator from a source's index: its position among the
//! `--route` arguments, which is also its position in [`crate::load::Sources`].
//!
//! Source i encrypts with master key `[i + 1; 16]` and SSRC `0x1000 + i`; every sink's copy is
//! encrypted with [`SINK_KEY`]; every master salt is all 7s. Deterministic test keys: this is a
//! benchmark, not a deployment.

use bridge::media::srtp::{Context, Profile, SrtpError};

/// Master key of every sink (receiver) context.
pub const SINK_KEY: [u8; 16] = [0xA0; 16];
/// Dynamic RTP payload type of the generated packets.
pub const PAYLOAD_TYPE: u8 = 96;
/// RTP fixed header length (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// Master key of source `index`.
pub fn source_key(index: usize) -> [u8; 16] {
    [(index as u8).wrapping_add(1); 16]
}

/// Master salt of every context of `profile`.
pub fn salt(profile: Profile) -> Vec<u8> {
    vec![7; profile.master_salt_len()]
}

/// SSRC of source `index`.
pub fn ssrc(index: usize) -> u32 {
    0x1000 + index as u32
}

/// The context that encrypts what source `index` sends, and that decrypts it at the forwarder.
pub fn source_context(profile: Profile, index: usize) -> Context {
    Context::new(profile, &source_key(index), &salt(profile)).expect("the forwarders use 128-bit profiles")
}

/// The context that encrypts a copy for a sink.
pub fn sink_context(profile: Profile) -> Context {
    Context::new(profile, &SINK_KEY, &salt(profile)).expect("the forwarders use 128-bit profiles")
}

/// The sending side of one source: its context and RTP stream state.
#[derive(Debug)]
pub struct SrtpSource {
    context: Context,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

impl SrtpSource {
    pub fn new(profile: Profile, index: usize) -> Self {
        Self { context: source_context(profile, index), ssrc: ssrc(index), seq: 0, timestamp: 0 }
    }

    /// Bytes [`protect_next`](Self::protect_next) adds to a packet.
    pub fn overhead(&self) -> usize {
        self.context.profile().overhead()
    }

    /// Writes the next RTP header over `buf[..12]` and protects `buf[..len]` in place (the
    /// payload is whatever `buf[12..len]` holds); returns the SRTP packet's length, `len` plus
    /// the overhead. `buf` must hold that many bytes.
    pub fn protect_next(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(3000); // 90 kHz video at 30 frames/s
        buf[0] = 0x80;
        buf[1] = PAYLOAD_TYPE;
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.context.protect_rtp(buf, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarder_decrypts_what_a_source_sends() {
        for profile in [Profile::AeadAes128Gcm, Profile::Aes128CmHmacSha1_80] {
            let mut source = SrtpSource::new(profile, 3);
            let mut inbound = source_context(profile, 3);
            let mut other = source_context(profile, 4);
            let mut buf = vec![0x55u8; 1200 + profile.overhead()];
            for _ in 0..3 {
                let len = source.protect_next(&mut buf, 1200).unwrap();
                assert_eq!(len, 1200 + profile.overhead());
                let mut copy = buf[..len].to_vec();
                assert!(other.unprotect_rtp(&mut copy.clone()).is_err(), "{profile:?}: wrong key accepted");
                assert_eq!(inbound.unprotect_rtp(&mut copy).unwrap(), 1200);
                assert_eq!(&copy[8..12], &ssrc(3).to_be_bytes());
            }
        }
    }
}
