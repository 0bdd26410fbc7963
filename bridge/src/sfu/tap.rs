//! A test tap on the forwarding path: what the SFU had in hand, after SRTP decryption, for the
//! first packets it forwarded. Compiled only with the cargo feature `test-tap`, which no
//! production build enables (`scripts/test.sh` turns it on for the tests), and switched on at
//! run time by `[test_tap] records = N` in the configuration (the appliance: `APPLIANCE_TEST_TAP`).
//!
//! It exists so an end-to-end test can show that, with end-to-end encryption on, the inner
//! payloads the bridge forwards are SFrame ciphertext (privacy invariant 9). It keeps media
//! bytes outside the mlock'd pool, which privacy invariant 5 forbids in production: that is
//! why it is a compile-time feature and not a configuration key every build understands.
//!
//! Recording is lock-free and allocation-free: the slots are allocated when the tap is made,
//! each packet claims the next one with one atomic add, and the packets past the last slot are
//! only counted. Every worker records into the same tap; the control API reads it
//! (`GET /v1/test/tap`, see `bridge/API.md`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::rtp::RtpHeader;

/// Payload bytes kept per packet: enough to tell an SFrame header and ciphertext from a
/// codec's payload header and the start of a frame.
pub const PREFIX_LEN: usize = 256;
/// The prefix is stored as words, so a slot is plain atomics and needs no lock or `unsafe`.
const PREFIX_WORDS: usize = PREFIX_LEN / 8;
/// Most records a tap may hold (about 280 bytes each).
pub const MAX_RECORDS: usize = 100_000;

/// The `[test_tap]` table of the bridge's configuration (test builds only).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TapConfig {
    /// Packets to record; 0 leaves the tap off.
    pub records: usize,
}

impl TapConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.records > MAX_RECORDS {
            return Err(format!("test_tap.records: at most {MAX_RECORDS}"));
        }
        Ok(())
    }
}

/// One recorded packet, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapRecord {
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The whole payload's length (padding removed).
    pub payload_len: usize,
    /// Its first `PREFIX_LEN` bytes at most.
    pub payload_prefix: Vec<u8>,
}

/// Storage for one record, written once by the packet that claimed it.
#[derive(Default)]
struct Slot {
    /// Set (release) after the fields below: a reader that sees it (acquire) sees them whole.
    written: AtomicBool,
    ssrc: AtomicU32,
    /// The RTP header's second byte: marker bit and payload type.
    marker_and_type: AtomicU8,
    sequence: AtomicU16,
    timestamp: AtomicU32,
    payload_len: AtomicU32,
    prefix: [AtomicU64; PREFIX_WORDS],
}

/// The records of one bridge process.
pub struct Tap {
    slots: Box<[Slot]>,
    /// Packets offered so far; the n-th (from 0) goes into slot n while there is one.
    forwarded: AtomicU64,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("capacity", &self.capacity())
            .field("forwarded", &self.forwarded())
            .finish()
    }
}

impl Tap {
    /// A tap with room for `records` packets, all allocated now.
    pub fn new(records: usize) -> Self {
        Self { slots: (0..records).map(|_| Slot::default()).collect(), forwarded: AtomicU64::new(0) }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Packets offered to the tap since start, recorded or not.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Records a decrypted RTP packet the SFU forwarded. Called once per received packet,
    /// however many receivers got a copy. No allocation, no lock, no syscall.
    pub fn record(&self, header: &RtpHeader<'_>, packet: &[u8]) {
        // Relaxed: the claim only has to be unique; `written` publishes the slot's contents.
        let claim = self.forwarded.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = usize::try_from(claim).ok().and_then(|at| self.slots.get(at)) else { return };
        let end = header.header_len + header.payload_len;
        let payload = packet.get(header.header_len..end).unwrap_or_default();
        slot.ssrc.store(header.ssrc, Ordering::Relaxed);
        let marker = if header.marker { 0x80 } else { 0 };
        slot.marker_and_type.store(marker | header.payload_type, Ordering::Relaxed);
        slot.sequence.store(header.sequence, Ordering::Relaxed);
        slot.timestamp.store(header.timestamp, Ordering::Relaxed);
        slot.payload_len.store(payload.len() as u32, Ordering::Relaxed);
        let prefix = &payload[..payload.len().min(PREFIX_LEN)];
        for (word, chunk) in slot.prefix.iter().zip(prefix.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        slot.written.store(true, Ordering::Release);
    }

    /// The records so far, in the order the packets claimed them (arrival order per sender).
    /// A slot claimed but not yet written is left out.
    pub fn records(&self) -> Vec<TapRecord> {
        let claimed = usize::try_from(self.forwarded()).unwrap_or(usize::MAX).min(self.slots.len());
        self.slots[..claimed]
            .iter()
            .filter(|slot| slot.written.load(Ordering::Acquire))
            .map(|slot| {
                let payload_len = slot.payload_len.load(Ordering::Relaxed) as usize;
                let mut prefix: Vec<u8> =
                    slot.prefix.iter().flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes()).collect();
                prefix.truncate(payload_len.min(PREFIX_LEN));
                let marker_and_type = slot.marker_and_type.load(Ordering::Relaxed);
                TapRecord {
                    ssrc: slot.ssrc.load(Ordering::Relaxed),
                    payload_type: marker_and_type & 0x7f,
                    sequence: slot.sequence.load(Ordering::Relaxed),
                    timestamp: slot.timestamp.load(Ordering::Relaxed),
                    marker: marker_and_type & 0x80 != 0,
                    payload_len,
                    payload_prefix: prefix,
                }
            })
            .collect()
    }

    /// The answer of `GET /v1/test/tap`.
    pub fn to_json(&self) -> Value {
        let forwarded = self.forwarded();
        let records: Vec<Value> = self
            .records()
            .into_iter()
            .map(|r| {
                json!({
                    "ssrc": r.ssrc,
                    "payload_type": r.payload_type,
                    "sequence": r.sequence,
                    "timestamp": r.timestamp,
                    "marker": r.marker,
                    "payload_len": r.payload_len,
                    "payload_prefix": hex(&r.payload_prefix),
                })
            })
            .collect();
        json!({
            "capacity": self.capacity(),
            "forwarded": forwarded,
            "recorded": records.len(),
            "records": records,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 15)] as char])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::RtpHeader;

    fn packet(marker: bool, pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x80, (u8::from(marker) << 7) | pt];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        packet.extend_from_slice(&0xAABB_CCDDu32.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn keeps_the_first_packets_and_counts_the_rest() {
        let tap = Tap::new(2);
        let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        for (seq, payload) in [(7, &long[..]), (8, &[1, 2, 3][..]), (9, &[4][..])] {
            let packet = packet(seq == 7, 96, seq, payload);
            tap.record(&RtpHeader::parse(&packet).unwrap(), &packet);
        }
        let records = tap.records();
        assert_eq!(tap.forwarded(), 3);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            TapRecord {
                ssrc: 0xAABB_CCDD,
                payload_type: 96,
                sequence: 7,
                timestamp: 0x0102_0304,
                marker: true,
                payload_len: 300,
                payload_prefix: long[..PREFIX_LEN].to_vec(),
            }
        );
        assert_eq!((records[1].payload_len, &records[1].payload_prefix[..]), (3, &[1, 2, 3][..]));
        let json = tap.to_json();
        assert_eq!((json["capacity"].as_u64(), json["forwarded"].as_u64()), (Some(2), Some(3)));
        assert_eq!(json["records"][1]["payload_prefix"], "010203");
    }
}
