//! The cross-core hand-off ring (`engine::spsc`): what a push and a pop cost on one thread, how
//! many values per second cross from one core to another when the ring streams, and how long
//! a round trip between two cores takes when each side waits for the other (the latency of a
//! packet handed to another worker that was spinning on its queue).
//!
//! The two-thread benchmarks pin their threads to the first two CPUs this process may use.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::spsc;

/// The engine's default `handoff_queue`.
const CAPACITY: usize = 1024;
/// Values per streaming measurement.
const STREAM: u64 = 100_000;

/// Pins the calling thread to the `index`-th allowed CPU (wrapping). Best effort: unpinned,
/// the numbers are noisier, not wrong.
fn pin(index: usize) {
    let cpus = engine::affinity::allowed_cpus();
    if let Some(&cpu) = cpus.get(index % cpus.len().max(1)) {
        let _ = engine::affinity::pin_current_thread(cpu);
    }
}

/// Spins, yielding now and then so that two threads sharing one CPU still make progress.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if spins.is_multiple_of(1024) {
        thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn same_thread(c: &mut Criterion) {
    let (mut tx, mut rx) = spsc::channel::<u64>(CAPACITY);
    c.bench_function("spsc/push_pop_same_thread", |b| {
        b.iter(|| {
            tx.push(black_box(1)).expect("the ring is empty before every push");
            black_box(rx.pop())
        })
    });
}

/// A producer on one core pushes `count` values, a consumer on another pops them; returns the
/// time from both being ready to the last pop.
fn stream(count: u64) -> Duration {
    let (mut tx, mut rx) = spsc::channel::<u64>(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let start = start.clone();
        thread::spawn(move || {
            pin(0);
            start.wait();
            let mut spins = 0;
            for value in 0..count {
                while tx.push(value).is_err() {
                    backoff(&mut spins);
                }
            }
        })
    };
    let consumer = thread::spawn(move || {
        pin(1);
        start.wait();
        let began = Instant::now();
        let (mut received, mut spins) = (0, 0);
        while received < count {
            match rx.pop() {
                Some(value) => {
                    black_box(value);
                    received += 1;
                }
                None => backoff(&mut spins),
            }
        }
        began.elapsed()
    });
    producer.join().expect("producer thread");
    consumer.join().expect("consumer thread")
}

fn cross_core_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc/cross_core");
    group.throughput(Throughput::Elements(STREAM));
    group.sample_size(30);
    group.bench_function("stream_100k", |b| b.iter_custom(|iters| (0..iters).map(|_| stream(STREAM)).sum()));
    group.finish();
}

/// `rounds` round trips: one core pushes a value on ring A and waits for it to come back on
/// ring B, which an echo thread on another core does. Returns the time of all rounds.
fn ping_pong(rounds: u64) -> Duration {
    let (mut ping_tx, mut ping_rx) = spsc::channel::<u64>(CAPACITY);
    let (mut pong_tx, mut pong_rx) = spsc::channel::<u64>(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let echo = {
        let start = start.clone();
        thread::spawn(move || {
            pin(1);
            start.wait();
            let mut spins = 0;
            for _ in 0..rounds {
                let value = loop {
                    match ping_rx.pop() {
                        Some(value) => break value,
                        None => backoff(&mut spins),
                    }
                };
                pong_tx.push(value).expect("one value is in flight at a time, the ring has room");
            }
        })
    };
    let pinger = thread::spawn(move || {
        pin(0);
        start.wait();
        let began = Instant::now();
        let mut spins = 0;
        for round in 0..rounds {
            ping_tx.push(round).expect("one value is in flight at a time, the ring has room");
            while pong_rx.pop().is_none() {
                backoff(&mut spins);
            }
        }
        began.elapsed()
    });
    echo.join().expect("echo thread");
    pinger.join().expect("pinger thread")
}

fn cross_core_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc/cross_core");
    group.sample_size(30);
    group.bench_function("ping_pong_round_trip", |b| b.iter_custom(ping_pong));
    group.finish();
}

criterion_group!(benches, same_thread, cross_core_stream, cross_core_round_trip);
criterion_main!(benches);
