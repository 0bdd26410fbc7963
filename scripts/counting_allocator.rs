//! A global allocator that counts allocations, for the tests that prove a packet path
//! allocates nothing. Shared by the crates' tests through `#[path]`; each test binary that
//! uses it installs it:
//!
//! ```ignore
//! #[path = "../../scripts/counting_allocator.rs"]
//! mod counting_allocator;
//! #[global_allocator]
//! static GLOBAL: counting_allocator::Counting = counting_allocator::Counting;
//! ```
//!
//! and reads [`ALLOCATIONS`] before and after the path runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts every allocation and reallocation in the process, then forwards to the system
/// allocator.
pub struct Counting;

/// Allocations and reallocations so far, in every thread.
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout, through `alloc` or `realloc` here.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `realloc` are passed on as they are.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
