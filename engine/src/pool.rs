//! The packet pool: every byte of media the engine touches lives here.
//!
//! One anonymous mapping, allocated once at start, locked into RAM (`mlock`) so packets never
//! reach swap and excluded from core dumps (`MADV_DONTDUMP`). It is cut into fixed-size slots
//! and each worker owns a contiguous share of them. A slot is named by a [`SlotId`]; a
//! reference count in a side table lets one received packet fan out to several sends, on this
//! core or another, and the slot returns to its owner when the last send completes.
//!
//! Privacy: a released slot has its used bytes wiped before it can hold another packet, so no
//! packet's bytes outlive its last send.

use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::MemoryLock;
use crate::handler::WorkerId;

/// Bytes per slot: a 1500-byte MTU datagram plus io_uring's receive header and address, with
/// room for the media layer to grow a packet (SRTP tags) in place.
pub const SLOT_SIZE: usize = 2048;

/// Index of a slot in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotId(pub u32);

/// Why the pool could not be set up.
#[derive(Debug)]
pub enum PoolError {
    /// `mmap` refused the region.
    Map { bytes: usize, source: std::io::Error },
    /// `mlock` refused and the configuration requires locked memory.
    Lock { bytes: usize, source: std::io::Error },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map { bytes, source } => {
                write!(f, "cannot map the {} MiB packet pool: {source}", bytes >> 20)
            }
            Self::Lock { bytes, source } => write!(
                f,
                "cannot lock the {} MiB packet pool in RAM ({source}): raise LimitMEMLOCK= in \
                 the systemd unit (or `ulimit -l`), or lower engine.pool_slots_per_worker",
                bytes >> 20
            ),
        }
    }
}

impl std::error::Error for PoolError {}

/// The shared pool. Workers reach slot bytes through raw pointers; who may touch a slot at a
/// given moment is decided by ownership (free list, buffer ring, in-flight send), not by the
/// type system, which is why the byte accessors are `unsafe`.
pub struct PacketPool {
    base: NonNull<u8>,
    bytes: usize,
    slots_per_worker: u32,
    workers: u16,
    refs: Box<[AtomicU32]>,
    locked: bool,
}

// SAFETY: the mapping is plain memory shared by all workers; concurrent access to one slot is
// ruled out by the ownership protocol documented on the accessors.
unsafe impl Send for PacketPool {}
// SAFETY: as above.
unsafe impl Sync for PacketPool {}

impl fmt::Debug for PacketPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketPool")
            .field("slots", &self.refs.len())
            .field("workers", &self.workers)
            .field("locked", &self.locked)
            .finish()
    }
}

impl PacketPool {
    /// Maps `slots_per_worker * workers` slots and locks them according to `lock`.
    pub fn new(slots_per_worker: u32, workers: u16, lock: MemoryLock) -> Result<Self, PoolError> {
        let slots = slots_per_worker as usize * workers as usize;
        let bytes = slots * SLOT_SIZE;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(PoolError::Map { bytes, source: std::io::Error::last_os_error() });
        }
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns NULL on success");
        let refs = (0..slots).map(|_| AtomicU32::new(0)).collect();
        let mut pool = Self { base, bytes, slots_per_worker, workers, refs, locked: false };

        // SAFETY: the range is exactly the mapping made above. Failure only means the region
        // may appear in a core dump; the bridge also turns core dumps off for the process.
        unsafe { libc::madvise(ptr, bytes, libc::MADV_DONTDUMP) };

        match lock {
            MemoryLock::Off => {}
            MemoryLock::Required | MemoryLock::BestEffort => {
                // SAFETY: the range is exactly the mapping made above.
                if unsafe { libc::mlock(ptr, bytes) } == 0 {
                    pool.locked = true;
                } else {
                    let error = PoolError::Lock { bytes, source: std::io::Error::last_os_error() };
                    if lock == MemoryLock::Required {
                        // `pool` unmaps on drop. The daemon adds the way out to the message.
                        return Err(error);
                    }
                    tracing::warn!(
                        "{error}; starting anyway (lock_memory = \"best-effort\"): packets may reach swap"
                    );
                }
            }
        }
        Ok(pool)
    }

    /// Whether the pool is locked in RAM.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Number of slots in the whole pool.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether the pool has no slots (never true for a started engine).
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The slots `worker` owns.
    pub fn worker_slots(&self, worker: WorkerId) -> Range<u32> {
        let start = u32::from(worker.0) * self.slots_per_worker;
        start..start + self.slots_per_worker
    }

    /// The worker a slot belongs to.
    #[inline]
    pub fn owner(&self, slot: SlotId) -> WorkerId {
        WorkerId((slot.0 / self.slots_per_worker) as u16)
    }

    /// Start address of a slot. Valid for `SLOT_SIZE` bytes for the pool's lifetime.
    #[inline]
    pub fn slot_ptr(&self, slot: SlotId) -> *mut u8 {
        assert!((slot.0 as usize) < self.refs.len(), "slot id out of range");
        // SAFETY: the index is in range, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(slot.0 as usize * SLOT_SIZE) }
    }

    /// The bytes of a slot, for writing.
    ///
    /// # Safety
    /// The caller must hold the slot exclusively: it came off a free list or out of a receive
    /// completion and has not been handed to a send yet.
    #[inline]
    #[allow(clippy::mut_from_ref)] // shared memory handed out under the ownership protocol above
    pub unsafe fn slot_mut(&self, slot: SlotId) -> &mut [u8] {
        // SAFETY: in range (checked by slot_ptr); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.slot_ptr(slot), SLOT_SIZE) }
    }

    /// Sets the number of sends that will read a slot before it is released.
    #[inline]
    pub fn set_refs(&self, slot: SlotId, refs: u32) {
        // Relaxed suffices: the slot reaches other cores only through an SPSC push, whose
        // Release store orders this write (and the packet bytes) before the consumer's reads.
        self.refs[slot.0 as usize].store(refs, Ordering::Relaxed);
    }

    /// Drops one reference; returns true when it was the last, so the caller now owns the slot.
    #[inline]
    pub fn unref(&self, slot: SlotId) -> bool {
        // AcqRel: the last releaser must see every other sender's reads finished before it
        // wipes the bytes and recycles the slot.
        self.refs[slot.0 as usize].fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Wipes `range` of a slot the caller owns exclusively, before it is reused.
    ///
    /// # Safety
    /// As for [`slot_mut`](Self::slot_mut).
    #[inline]
    pub unsafe fn wipe(&self, slot: SlotId, range: Range<usize>) {
        // SAFETY: exclusivity is the caller's promise; slicing checks the range.
        unsafe { self.slot_mut(slot)[range].fill(0) };
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this length, and every worker that could
        // reference it has been joined (the engine holds the pool until then).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

/// A worker's stack of free slots it owns. Preallocated to hold all of them, so pushes never
/// grow it.
#[derive(Debug)]
pub struct FreeList {
    slots: Vec<u32>,
}

impl FreeList {
    /// A list holding every slot of `range`.
    pub fn full(range: Range<u32>) -> Self {
        let mut slots = Vec::with_capacity(range.len());
        slots.extend(range.rev());
        Self { slots }
    }

    /// Takes a free slot, or `None` when the worker's share is exhausted.
    #[inline]
    pub fn pop(&mut self) -> Option<SlotId> {
        self.slots.pop().map(SlotId)
    }

    /// Gives a slot back.
    #[inline]
    pub fn push(&mut self, slot: SlotId) {
        debug_assert!(self.slots.len() < self.slots.capacity(), "a slot was freed twice");
        self.slots.push(slot.0);
    }

    /// Number of free slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is free.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_share_returns_none_instead_of_growing() {
        let pool = PacketPool::new(4, 2, MemoryLock::Off).unwrap();
        let mut free = FreeList::full(pool.worker_slots(WorkerId(1)));
        let taken: Vec<_> = std::iter::from_fn(|| free.pop()).collect();
        assert_eq!(taken.len(), 4);
        assert!(taken.iter().all(|&s| pool.owner(s) == WorkerId(1)));
        assert_eq!(free.pop(), None);
        free.push(taken[0]);
        assert_eq!(free.pop(), Some(taken[0]));
    }

    #[test]
    fn last_unref_owns_the_slot() {
        let pool = PacketPool::new(1, 1, MemoryLock::Off).unwrap();
        pool.set_refs(SlotId(0), 3);
        assert!(!pool.unref(SlotId(0)));
        assert!(!pool.unref(SlotId(0)));
        assert!(pool.unref(SlotId(0)));
    }

    #[test]
    fn locked_pool_is_locked_and_wipes() {
        let pool = PacketPool::new(8, 1, MemoryLock::BestEffort).unwrap();
        // SAFETY: test owns every slot.
        let bytes = unsafe { pool.slot_mut(SlotId(3)) };
        bytes[..100].fill(0xAB);
        // SAFETY: as above.
        unsafe { pool.wipe(SlotId(3), 0..100) };
        // SAFETY: as above.
        assert!(unsafe { pool.slot_mut(SlotId(3)) }.iter().all(|&b| b == 0));
    }
}
