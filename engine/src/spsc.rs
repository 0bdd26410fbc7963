//! A bounded single-producer single-consumer ring for cross-core hand-off.
//!
//! Lamport's queue with cached indices: the producer owns `tail`, the consumer owns `head`, and
//! each side re-reads the other's index only when its cached copy says the ring is full (or
//! empty). In steady state a push or pop touches no cache line the other core is writing.
//! A full ring refuses the value instead of waiting: the caller drops and counts it.

use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

struct Ring<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next index the consumer reads. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next index the producer writes. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: a slot is written by the producer only while it is outside `head..tail`, and read by
// the consumer only while it is inside; the Release store of the index that moves it across that
// boundary happens-before the other side's Acquire load. `T: Copy` means nothing is dropped.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}
// SAFETY: as above; the ring only holds `T: Send` values.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

/// The writing end. Not `Clone`: there is exactly one producer.
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    tail: usize,
    head_cache: usize,
}

/// The reading end. Not `Clone`: there is exactly one consumer.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    head: usize,
    tail_cache: Cell<usize>,
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("capacity", &(self.ring.mask + 1)).finish()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("capacity", &(self.ring.mask + 1)).finish()
    }
}

/// A ring holding up to `capacity` values, rounded up to a power of two.
pub fn channel<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2).next_power_of_two();
    let slots = (0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
    let ring = Arc::new(Ring {
        slots,
        mask: capacity - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
    });
    let producer = Producer { ring: ring.clone(), tail: 0, head_cache: 0 };
    let consumer = Consumer { ring, head: 0, tail_cache: Cell::new(0) };
    (producer, consumer)
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `value`, or hands it back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let ring = &*self.ring;
        if self.tail.wrapping_sub(self.head_cache) > ring.mask {
            self.head_cache = ring.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) > ring.mask {
                return Err(value);
            }
        }
        let slot = &ring.slots[self.tail & ring.mask];
        // SAFETY: the slot is outside head..tail (checked above), so the consumer is not reading
        // it, and only this producer writes slots.
        unsafe { (*slot.get()).write(value) };
        self.tail = self.tail.wrapping_add(1);
        ring.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Capacity of the ring.
    pub fn capacity(&self) -> usize {
        self.ring.mask + 1
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest value, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let ring = &*self.ring;
        if self.head == self.tail_cache.get() {
            self.tail_cache.set(ring.tail.load(Ordering::Acquire));
            if self.head == self.tail_cache.get() {
                return None;
            }
        }
        let slot = &ring.slots[self.head & ring.mask];
        // SAFETY: the slot is inside head..tail, so the producer finished writing it (Acquire
        // load of `tail` above or on an earlier call) and will not touch it until `head` moves.
        let value = unsafe { (*slot.get()).assume_init() };
        self.head = self.head.wrapping_add(1);
        ring.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Whether a value is waiting. Used before a worker goes to sleep.
    #[inline]
    pub fn is_empty(&self) -> bool {
        if self.head != self.tail_cache.get() {
            return false;
        }
        self.tail_cache.set(self.ring.tail.load(Ordering::Acquire));
        self.head == self.tail_cache.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_refuses_without_blocking() {
        let (mut tx, mut rx) = channel::<u32>(4);
        for i in 0..4 {
            tx.push(i).unwrap();
        }
        assert_eq!(tx.push(99), Err(99));
        assert_eq!(rx.pop(), Some(0));
        tx.push(4).unwrap();
        assert_eq!((1..=4).map(|_| rx.pop().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(rx.pop(), None);
        assert!(rx.is_empty());
    }

    #[test]
    fn values_cross_threads_in_order() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = channel::<u64>(64);
        let producer = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if tx.push(i).is_ok() {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0;
        while expected < N {
            if let Some(v) = rx.pop() {
                assert_eq!(v, expected);
                expected += 1;
            }
        }
        producer.join().unwrap();
    }
}
