//! Per-packet costs of the packet pool: taking and returning a free slot, the reference count
//! a forwarded packet carries (one per fan-out copy), and wiping a released slot's bytes (the
//! privacy rule: no packet outlives its last send).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::{FreeList, MemoryLock, PacketPool, SlotId, WorkerId};

const SLOTS_PER_WORKER: u32 = 1024;
const WORKERS: u16 = 2;
/// A typical video RTP packet; what the engine wipes after forwarding one.
const PACKET_LEN: usize = 1200;

fn pool() -> PacketPool {
    PacketPool::new(SLOTS_PER_WORKER, WORKERS, MemoryLock::Off).expect("an unlocked 4 MiB pool maps")
}

fn free_list(c: &mut Criterion) {
    let pool = pool();
    let mut free = FreeList::full(pool.worker_slots(WorkerId(0)));
    c.bench_function("pool/free_list_pop_push", |b| {
        b.iter(|| {
            let slot = free.pop().expect("the list starts full and every pop is pushed back");
            free.push(black_box(slot));
        })
    });
}

fn refs(c: &mut Criterion) {
    let pool = pool();
    let slot = SlotId(7);
    let mut group = c.benchmark_group("pool/set_refs_unref");
    for fanout in [1u32, 4] {
        group.bench_with_input(BenchmarkId::new("fanout", fanout), &fanout, |b, &fanout| {
            b.iter(|| {
                pool.set_refs(slot, black_box(fanout));
                let mut last = false;
                for _ in 0..fanout {
                    last = pool.unref(black_box(slot));
                }
                black_box(last)
            })
        });
    }
    group.finish();
}

fn wipe(c: &mut Criterion) {
    let pool = pool();
    let mut group = c.benchmark_group("pool/wipe");
    group.throughput(Throughput::Bytes(PACKET_LEN as u64));
    // The engine wipes a slot right after its last send, so its bytes are usually in cache.
    group.bench_function("1200_bytes_hot", |b| {
        b.iter(|| {
            // SAFETY: this benchmark owns the pool and no engine runs on it, so nothing else
            // reads or writes the slot; the range lies inside it.
            unsafe { pool.wipe(black_box(SlotId(3)), 0..PACKET_LEN) }
        })
    });
    // Walking all 4 MiB of slots shows the cost when the slot has left the cache.
    let slots = pool.len() as u32;
    let mut next = 0u32;
    group.bench_function("1200_bytes_rotating", |b| {
        b.iter(|| {
            next = (next + 1) % slots;
            // SAFETY: as above; `next` stays below the pool's slot count.
            unsafe { pool.wipe(black_box(SlotId(next)), 0..PACKET_LEN) }
        })
    });
    group.finish();
}

criterion_group!(benches, free_list, refs, wipe);
criterion_main!(benches);
