//! A media thread: owns a share of the participants and runs their loop until the plan's
//! stop time. Each turn sleeps in `epoll_wait` until a socket is readable or the 1 ms tick
//! fires; a tick queues everything due (one `sendmmsg` per participant), a readable socket is
//! drained with `recvmmsg`. In [`Receive::Nap`] mode the thread sleeps on the tick alone, and
//! after each tick asks a second epoll set, which nobody ever sleeps on, which sockets have
//! something (a wait with timeout 0) and drains those. Buffers are allocated before the loop;
//! the loop allocates nothing.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Receive;
use super::batch::{self, SendBatch, Sent};
use super::clock::{self, Clocks};
use super::histogram::{Histogram, Latencies};
use super::layout::Layout;
use super::participant::{Participant, Plan};
use super::poller::{Poller, Ticker};
use super::schedule::VideoPattern;
use crate::mmsg::{self, BUFFER_LEN, RecvBatch};

/// The pacing period.
pub const TICK: Duration = Duration::from_millis(1);
/// The epoll token of the tick; sockets use their participant's position in the worker.
const TICK_TOKEN: u64 = u64::MAX;
/// Datagrams one `recvmmsg` or `sendmmsg` moves at most.
const BATCH: usize = 64;
/// How often a worker recomputes its live loss estimate.
const GAPS_EVERY_NS: u64 = 500_000_000;

/// A worker's running totals, read by the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub gaps: AtomicU64,
    pub done: AtomicBool,
}

/// What a worker hands back.
#[derive(Debug)]
pub struct Outcome {
    pub participants: Vec<Participant>,
    /// One-way latency of every first arrival sent after the warm-up, by stream kind.
    pub latency: [Histogram; 2],
    pub sent: Sent,
    /// Media datagrams received (duplicates included).
    pub received: u64,
}

pub struct Worker {
    participants: Vec<Participant>,
    layout: Arc<Layout>,
    video: VideoPattern,
    plan: Plan,
    live: Arc<Live>,
    receive: Receive,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("participants", &self.participants.len()).finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        participants: Vec<Participant>,
        layout: Arc<Layout>,
        video: VideoPattern,
        plan: Plan,
        live: Arc<Live>,
        receive: Receive,
    ) -> Self {
        Self { participants, layout, video, plan, live, receive }
    }

    pub fn run(mut self) -> io::Result<Outcome> {
        let result = self.media_loop();
        self.live.done.store(true, Ordering::Release);
        result
    }

    fn media_loop(&mut self) -> io::Result<Outcome> {
        let mut poller = Poller::new(self.participants.len() + 1)?;
        let ticker = Ticker::new(TICK)?;
        poller.add(ticker.fd(), TICK_TOKEN)?;
        // Napping, the sockets go in a set of their own that is only ever polled: a socket
        // with no sleeper behind it costs the bridge no wake-up to deliver to.
        let napping = self.receive == Receive::Nap;
        let mut sockets = Poller::new(self.participants.len())?;
        let watch = if napping { &mut sockets } else { &mut poller };
        for (i, participant) in self.participants.iter().enumerate() {
            watch.add(participant.fd(), i as u64)?;
        }
        let mut napped = Vec::with_capacity(self.participants.len());
        let mut ready = Vec::with_capacity(self.participants.len() + 1);
        let mut send = SendBatch::new(BATCH);
        let mut recv = RecvBatch::new(BATCH);
        let mut scratch = vec![0u8; BUFFER_LEN].into_boxed_slice();
        let mut latency = Latencies::new(self.plan.measure_from_ns);
        let mut sent = Sent::default();
        let mut received = 0u64;
        let mut next_gaps_ns = 0;

        loop {
            let now = clock::now_ns();
            if now >= self.plan.stop_ns {
                break;
            }
            let left = Duration::from_nanos(self.plan.stop_ns - now).min(Duration::from_millis(100));
            ready.clear();
            // A millisecond timeout rounds down: wake a millisecond late rather than spin.
            poller.wait(left + Duration::from_millis(1), |token| ready.push(token))?;
            for &token in &ready {
                if token == TICK_TOKEN {
                    ticker.expirations();
                    let now = clock::now_ns();
                    for participant in &mut self.participants {
                        participant.send_due(now, &self.plan, &self.video, &mut send, &mut sent);
                    }
                    sent = batch::add(sent, send.flush());
                    self.live.sent.store(sent.sent, Ordering::Relaxed);
                    if napping {
                        napped.clear();
                        sockets.wait(Duration::ZERO, |token| napped.push(token))?;
                        for &token in &napped {
                            let participant = &mut self.participants[token as usize];
                            received +=
                                drain(participant, &mut recv, &self.layout, &mut scratch, &mut latency)?;
                        }
                    }
                    continue;
                }
                let participant = &mut self.participants[token as usize];
                received += drain(participant, &mut recv, &self.layout, &mut scratch, &mut latency)?;
            }
            self.live.received.store(received, Ordering::Relaxed);
            if now >= next_gaps_ns {
                next_gaps_ns = now + GAPS_EVERY_NS;
                let gaps = self.participants.iter().map(Participant::gaps).sum();
                self.live.gaps.store(gaps, Ordering::Relaxed);
            }
        }
        let gaps = self.participants.iter().map(Participant::gaps).sum();
        self.live.gaps.store(gaps, Ordering::Relaxed);
        let participants = std::mem::take(&mut self.participants);
        Ok(Outcome { participants, latency: latency.by_kind, sent, received })
    }
}

/// Reads everything queued on a participant's socket; returns how many media datagrams came.
fn drain(
    participant: &mut Participant,
    recv: &mut RecvBatch,
    layout: &Layout,
    scratch: &mut [u8],
    latency: &mut Latencies,
) -> io::Result<u64> {
    let mut media = 0;
    loop {
        let n = match recv.recv(participant.fd(), libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if mmsg::is_transient(&e) => return Ok(media),
            Err(e) => return Err(e),
        };
        // One clock read per batch; each datagram is timed by its kernel arrival stamp, so
        // neither this thread's nap nor its turn waiting for a core counts as latency.
        let clocks = Clocks::now();
        for i in 0..n {
            let arrived = recv.arrival_ns(i).map_or(clocks.monotonic_ns, |at| clocks.monotonic(at));
            let datagram = recv.payload(i);
            if is_rtp(datagram) {
                media += 1;
            }
            participant.receive(datagram, arrived, layout, scratch, latency);
        }
        if n < recv.capacity() {
            return Ok(media);
        }
    }
}

/// RTP rather than RTCP, STUN or DTLS (RFC 7983, RFC 5761).
fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [128..=191, second, ..] if !(192..=223).contains(second))
}
