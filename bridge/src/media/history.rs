//! Per-sender RTP packet history, to answer generic NACKs (RFC 4585 §6.2.1), and the RTX form
//! of a retransmission (RFC 4588 §4).
//!
//! A [`PacketHistory`] keeps the last N packets of one sender stream (N a power of two) in a
//! ring indexed by `seq % N`. Each slot holds up to [`MAX_PACKET`] bytes of decrypted RTP with
//! its length and sequence number, so a slot since reused for a newer packet answers `None`
//! rather than the wrong packet.
//!
//! Privacy (DESIGN.md, invariant 5): decrypted media may live only in preallocated memory that
//! is locked in RAM, kept out of core dumps and wiped when freed. The ring's bytes are one
//! [`LockedBytes`] mapping made at creation; `insert` copies into it and `get` lends from it,
//! and neither allocates. The per-slot lengths and sequence numbers are not media and live on
//! the heap, also allocated once.

use std::fmt;
use std::io;
use std::ptr::NonNull;

use zeroize::Zeroize;

use crate::media::rtp::{RtpError, RtpHeader};

/// Largest packet the history stores: an Ethernet MTU. Longer ones are not kept (nothing in a
/// WebRTC session sends them).
pub const MAX_PACKET: usize = 1500;

/// How far behind the packet already in its slot an arriving packet may be and still count as
/// late (kept out, so it does not evict a newer one) rather than as a sender that jumped back
/// (stored). RFC 3550 A.1's MAX_DROPOUT, the same judgement for sequence numbers.
const MAX_LATE: u16 = 3000;

/// Bytes in an anonymous private mapping made once: locked in RAM when the memlock limit
/// allows (best effort, see [`is_locked`](Self::is_locked)), excluded from core dumps, and
/// wiped before it is unmapped.
pub struct LockedBytes {
    base: NonNull<u8>,
    len: usize,
    locked: bool,
}

// SAFETY: a LockedBytes owns its mapping exclusively, as a Box<[u8]> owns its allocation; the
// pointer is never shared, so moving it to another thread moves the only access.
unsafe impl Send for LockedBytes {}
// SAFETY: `&LockedBytes` gives out only `&[u8]`; writing needs `&mut LockedBytes`.
unsafe impl Sync for LockedBytes {}

impl fmt::Debug for LockedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the contents: they are decrypted media.
        f.debug_struct("LockedBytes").field("len", &self.len).field("locked", &self.locked).finish()
    }
}

impl LockedBytes {
    /// Maps `len` zeroed bytes, excludes them from core dumps and tries to lock them in RAM.
    /// Fails only when `len` is zero or the kernel refuses the mapping; a refused lock is
    /// reported by `is_locked`, for the caller to count.
    pub fn new(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot map zero bytes"));
        }
        // SAFETY: an anonymous private mapping with no address hint and no file; the result
        // is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns NULL on success");
        // From here on, dropping `bytes` wipes and unmaps.
        let mut bytes = Self { base, len, locked: false };
        // SAFETY: the range is exactly the mapping made above. Failure only means the bytes
        // may appear in a core dump; the bridge also turns core dumps off for the process.
        unsafe { libc::madvise(ptr, len, libc::MADV_DONTDUMP) };
        // SAFETY: the range is exactly the mapping made above. Failure (RLIMIT_MEMLOCK) leaves
        // the mapping usable, only swappable.
        bytes.locked = unsafe { libc::mlock(ptr, len) } == 0;
        Ok(bytes)
    }

    /// Whether the bytes are locked in RAM (false when the memlock limit refused).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `base` points to `len` readable bytes (anonymous mappings start zeroed, so
        // they are initialised) that stay mapped until `self` drops; `&self` rules out a
        // concurrent `&mut`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        // Volatile writes: the compiler may not drop them as dead stores before the unmap.
        self.as_mut_slice().zeroize();
        // SAFETY: the mapping was made in `new` with this length, and no slice of it outlives
        // `self` (they all borrow it). Unmapping also drops the lock.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Length and sequence number of what a slot holds; `len == 0` is an empty slot.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u16,
    len: u16,
}

/// The last N packets of one sender stream, by sequence number.
pub struct PacketHistory {
    bytes: LockedBytes,
    slots: Box<[Slot]>,
    /// N - 1: `seq & mask` is the slot.
    mask: usize,
}

impl fmt::Debug for PacketHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketHistory")
            .field("capacity", &self.slots.len())
            .field("stored", &self.slots.iter().filter(|s| s.len != 0).count())
            .field("locked", &self.bytes.is_locked())
            .finish()
    }
}

impl PacketHistory {
    /// A history of `capacity_packets` slots (a power of two, at most 65536: beyond that
    /// sequence numbers repeat), all its memory allocated now.
    pub fn new(capacity_packets: usize) -> io::Result<Self> {
        if !capacity_packets.is_power_of_two() || capacity_packets > 1 << 16 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "history capacity must be a power of two, at most 65536",
            ));
        }
        let bytes = LockedBytes::new(capacity_packets * MAX_PACKET)?;
        let slots = vec![Slot::default(); capacity_packets].into_boxed_slice();
        Ok(Self { bytes, slots, mask: capacity_packets - 1 })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether the stored packets are locked in RAM (see [`LockedBytes::is_locked`]).
    pub fn is_locked(&self) -> bool {
        self.bytes.is_locked()
    }

    /// Stores `packet` (decrypted RTP) as `seq`, replacing what its slot held. Empty packets
    /// and packets longer than [`MAX_PACKET`] are not stored (the slot is emptied, so it
    /// cannot answer for an old packet by mistake). A packet that is late, older than the one
    /// in its slot by less than 3000, is not stored either: evicting the newer packet would
    /// lose the one receivers are more likely to ask for. Never allocates.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) {
        let index = usize::from(seq) & self.mask;
        let Some(slot) = self.slots.get_mut(index) else { return };
        let lead = slot.seq.wrapping_sub(seq);
        if slot.len != 0 && lead != 0 && lead < MAX_LATE {
            return;
        }
        let start = index * MAX_PACKET;
        let stored = u16::try_from(packet.len())
            .ok()
            .filter(|&len| len != 0 && usize::from(len) <= MAX_PACKET)
            .and_then(|len| Some((len, self.bytes.as_mut_slice().get_mut(start..start + usize::from(len))?)));
        *slot = match stored {
            Some((len, dst)) => {
                dst.copy_from_slice(packet);
                Slot { seq, len }
            }
            None => Slot::default(),
        };
    }

    /// The packet stored as `seq`, or `None` when it was never stored or its slot has since
    /// been reused. Never allocates.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let index = usize::from(seq) & self.mask;
        let slot = self.slots.get(index).filter(|s| s.len != 0 && s.seq == seq)?;
        let start = index * MAX_PACKET;
        self.bytes.as_slice().get(start..start + usize::from(slot.len))
    }
}

/// Why an RTX packet could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtxError {
    /// The original is not an RTP packet we can read.
    Rtp(RtpError),
    /// The RTX payload type does not fit 7 bits.
    BadPayloadType,
    /// The output buffer cannot hold the RTX packet.
    BufferTooSmall,
}

impl fmt::Display for RtxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rtp(e) => write!(f, "original is not RTP: {e:?}"),
            Self::BadPayloadType => f.write_str("RTX payload type above 127"),
            Self::BufferTooSmall => f.write_str("buffer too small for the RTX packet"),
        }
    }
}

impl std::error::Error for RtxError {}

/// Writes the RTX form (RFC 4588 §4) of `original`, a decrypted RTP packet, into `out`: the
/// same header (marker, timestamp, CSRCs, header extensions) except payload type `rtx_pt`,
/// SSRC `rtx_ssrc` and sequence number `rtx_seq`; a payload of the original sequence number
/// (OSN, 2 bytes, big endian) then the original payload. Padding is removed (the P bit
/// cleared). Returns the length.
///
/// ```text
/// |V=2|0|X|  CC   |M| rtx_pt      |       rtx_seq                 |
/// |                     timestamp (unchanged)                     |
/// |                        rtx_ssrc                               |
/// |            CSRCs, header extension (unchanged)                |
/// |        OSN                    |  original payload           ...
/// ```
pub fn write_rtx(
    original: &[u8],
    rtx_pt: u8,
    rtx_ssrc: u32,
    rtx_seq: u16,
    out: &mut [u8],
) -> Result<usize, RtxError> {
    if rtx_pt > 0x7f {
        return Err(RtxError::BadPayloadType);
    }
    let header = RtpHeader::parse(original).map_err(RtxError::Rtp)?;
    let (head, rest) =
        original.split_at_checked(header.header_len).ok_or(RtxError::Rtp(RtpError::HeaderOverrun))?;
    let payload = rest.get(..header.payload_len).ok_or(RtxError::Rtp(RtpError::BadPadding))?;
    let len = head.len() + 2 + payload.len();
    let out = out.get_mut(..len).ok_or(RtxError::BufferTooSmall)?;
    let (out_head, out_rest) = out.split_at_mut(head.len());
    let (osn, out_payload) = out_rest.split_at_mut(2);
    out_head.copy_from_slice(head);
    osn.copy_from_slice(&header.sequence.to_be_bytes());
    out_payload.copy_from_slice(payload);
    // The header is at least 12 bytes (RtpHeader::parse checked), so these indices hold.
    out_head[0] &= !0x20;
    out_head[1] = (out_head[1] & 0x80) | rtx_pt;
    out_head[2..4].copy_from_slice(&rtx_seq.to_be_bytes());
    out_head[8..12].copy_from_slice(&rtx_ssrc.to_be_bytes());
    Ok(len)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    /// A packet whose bytes say which sequence number and which version of it they are.
    fn packet(seq: u16, len: usize, tag: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8) ^ (seq as u8) ^ tag).collect()
    }

    #[test]
    fn locked_bytes_start_zeroed_and_hold_writes() {
        let mut bytes = LockedBytes::new(4096).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.as_slice().iter().all(|&b| b == 0));
        bytes.as_mut_slice()[4095] = 7;
        assert_eq!(bytes.as_slice()[4095], 7);
        assert!(!format!("{bytes:?}").contains('7'), "Debug never shows contents");
        assert_eq!(LockedBytes::new(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn capacity_must_be_a_power_of_two() {
        for bad in [0, 3, 500, 1 << 17] {
            assert_eq!(PacketHistory::new(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
        let history = PacketHistory::new(8).unwrap();
        assert_eq!(history.capacity(), 8);
        let _ = history.is_locked(); // either is fine: it depends on RLIMIT_MEMLOCK
    }

    #[test]
    fn insert_then_get() {
        let mut history = PacketHistory::new(16).unwrap();
        assert_eq!(history.get(5), None);
        history.insert(5, &packet(5, 100, 0));
        history.insert(6, &packet(6, MAX_PACKET, 0));
        assert_eq!(history.get(5), Some(&packet(5, 100, 0)[..]));
        assert_eq!(history.get(6), Some(&packet(6, MAX_PACKET, 0)[..]));
        assert_eq!(history.get(7), None);
    }

    #[test]
    fn a_reused_slot_does_not_answer_for_its_old_packet() {
        let mut history = PacketHistory::new(16).unwrap();
        history.insert(5, &packet(5, 100, 0));
        history.insert(21, &packet(21, 80, 0)); // same slot, 16 later
        assert_eq!(history.get(5), None);
        assert_eq!(history.get(21), Some(&packet(21, 80, 0)[..]));
    }

    #[test]
    fn a_shorter_packet_never_shows_the_tail_of_a_longer_one() {
        let mut history = PacketHistory::new(16).unwrap();
        history.insert(3, &[0xaa; 1200]);
        history.insert(19, &[0xbb; 40]);
        assert_eq!(history.get(19), Some(&[0xbb; 40][..]));
        history.insert(19, &[0xcc; 12]); // the same number again (a retransmission): replaced
        assert_eq!(history.get(19), Some(&[0xcc; 12][..]));
    }

    #[test]
    fn oversized_and_empty_packets_empty_the_slot() {
        let mut history = PacketHistory::new(16).unwrap();
        history.insert(1, &packet(1, 50, 0));
        history.insert(17, &packet(17, MAX_PACKET + 1, 0));
        assert_eq!((history.get(1), history.get(17)), (None, None));
        history.insert(2, &packet(2, 50, 0));
        history.insert(18, &[]);
        assert_eq!((history.get(2), history.get(18)), (None, None));
    }

    #[test]
    fn a_late_packet_does_not_evict_a_newer_one() {
        let mut history = PacketHistory::new(16).unwrap();
        history.insert(40, &packet(40, 60, 0));
        history.insert(24, &packet(24, 60, 0)); // 16 behind: late
        assert_eq!(history.get(40), Some(&packet(40, 60, 0)[..]));
        assert_eq!(history.get(24), None);
        // A sender that jumped far back is a new run of numbers: stored.
        history.insert(40u16.wrapping_sub(16 * 1000), &packet(0, 60, 1));
        assert_eq!(history.get(40u16.wrapping_sub(16 * 1000)), Some(&packet(0, 60, 1)[..]));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut history = PacketHistory::new(512).unwrap();
        for seq in (65000u16..=65535).chain(0..=600) {
            history.insert(seq, &packet(seq, 200, 0));
        }
        // The last 512 inserted: 89..=600 and nothing before.
        for seq in 89..=600u16 {
            assert_eq!(history.get(seq), Some(&packet(seq, 200, 0)[..]), "{seq}");
        }
        for seq in (65000u16..=65535).chain(0..89) {
            assert_eq!(history.get(seq), None, "{seq}");
        }
    }

    #[test]
    fn wrap_from_65535_to_0_keeps_both_sides() {
        let mut history = PacketHistory::new(64).unwrap();
        for seq in [65534, 65535, 0, 1] {
            history.insert(seq, &packet(seq, 30, 0));
        }
        for seq in [65534, 65535, 0, 1] {
            assert_eq!(history.get(seq), Some(&packet(seq, 30, 0)[..]));
        }
    }

    /// RFC 4588 §4 layout on a packet with a CSRC, a one-byte header extension, the marker
    /// and 3 bytes of padding.
    #[test]
    fn rtx_layout() {
        let original = hex("b1e0 1234 00000064 deadbeef  cafebabe  bede0001 10aa0000  01020304 05  000003");
        let mut out = [0u8; 64];
        let len = write_rtx(&original, 97, 0x0102_0304, 0x4321, &mut out).unwrap();
        assert_eq!(
            out[..len],
            hex("91e1 4321 00000064 01020304  cafebabe  bede0001 10aa0000  1234  01020304 05")[..]
        );
        let rtx = RtpHeader::parse(&out[..len]).unwrap();
        assert!(rtx.marker);
        assert_eq!((rtx.payload_type, rtx.sequence, rtx.timestamp, rtx.ssrc), (97, 0x4321, 100, 0x0102_0304));
        assert_eq!(rtx.csrcs().collect::<Vec<_>>(), [0xcafebabe]);
        assert_eq!(rtx.extension(1), Some(&[0xaa][..]));
        assert_eq!(rtx.payload_len, 2 + 5);
    }

    #[test]
    fn rtx_errors() {
        let original = hex("8060 0001 00000000 00000001 aabbcc");
        let mut out = [0u8; 64];
        assert_eq!(write_rtx(&original, 128, 1, 1, &mut out), Err(RtxError::BadPayloadType));
        assert_eq!(write_rtx(&original[..11], 97, 1, 1, &mut out), Err(RtxError::Rtp(RtpError::NotRtp)));
        let needed = original.len() + 2;
        for cap in 0..needed {
            assert_eq!(write_rtx(&original, 97, 1, 1, &mut out[..cap]), Err(RtxError::BufferTooSmall));
        }
        assert_eq!(write_rtx(&original, 97, 1, 1, &mut out[..needed]), Ok(needed));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever is inserted in whatever order, `get` returns either nothing or exactly the
        /// last packet inserted under that number; the latest insert of an acceptable packet
        /// is always there.
        #[test]
        fn get_returns_only_the_last_packet_of_a_number(
            ops in prop::collection::vec((any::<u16>(), 0usize..1600), 1..300),
            near in any::<bool>(),
        ) {
            let mut history = PacketHistory::new(32).unwrap();
            let mut last = std::collections::HashMap::new();
            for (i, &(seq, len)) in ops.iter().enumerate() {
                let seq = if near { seq % 100 } else { seq };
                let bytes = packet(seq, len, i as u8);
                let slot = usize::from(seq) % 32;
                let occupant = history.slots[slot];
                history.insert(seq, &bytes);
                last.insert(seq, bytes.clone());
                let late = occupant.len != 0 && occupant.seq != seq && occupant.seq.wrapping_sub(seq) < MAX_LATE;
                if (1..=MAX_PACKET).contains(&len) && !late {
                    prop_assert_eq!(history.get(seq), Some(&bytes[..]));
                }
                for probe in [seq, seq.wrapping_sub(32), seq.wrapping_add(1)] {
                    if let Some(got) = history.get(probe) {
                        prop_assert_eq!(Some(got), last.get(&probe).map(Vec::as_slice));
                    }
                }
            }
        }

        /// `write_rtx` never panics nor writes past `out`; what it writes is the original's
        /// payload behind its sequence number.
        #[test]
        fn rtx_never_panics(mut original in prop::collection::vec(any::<u8>(), 0..200), cap in 0usize..220, pt in any::<u8>()) {
            if let Some(b) = original.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let mut out = vec![0u8; cap];
            if let Ok(len) = write_rtx(&original, pt, 9, 10, &mut out) {
                let before = RtpHeader::parse(&original).unwrap();
                let after = RtpHeader::parse(&out[..len]).unwrap();
                prop_assert_eq!((after.payload_type, after.sequence, after.ssrc), (pt, 10, 9));
                prop_assert_eq!(after.header_len, before.header_len);
                let payload = &out[after.header_len..len];
                prop_assert_eq!(&payload[..2], &before.sequence.to_be_bytes()[..]);
                prop_assert_eq!(&payload[2..], &original[before.header_len..before.header_len + before.payload_len]);
            }
        }
    }
}
