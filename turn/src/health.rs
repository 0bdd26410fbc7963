//! Is the daemon healthy? The one check behind `GET /health` on the metrics endpoint and behind
//! the watchdog ([`crate::service`]): every worker, UDP (the packet engine) and TCP/TLS (the
//! stream workers), finished a loop turn since the previous check.
//!
//! A heartbeat check wakes the workers and needs them to have turned by the next one, so two
//! checks a moment apart would fail a healthy daemon. Callers come at their own pace (the
//! watchdog every half interval, scrapers, the readiness probe), so a check closer than
//! [`SPACING`] to the previous one answers that one's verdict instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two real checks: ample for an idle worker to wake and turn
/// (microseconds), short next to any watchdog interval.
pub const SPACING: Duration = Duration::from_millis(250);

/// A group of workers whose loops must keep turning.
pub trait Heartbeat: Send {
    /// True when every worker of the group turned since the previous call.
    fn check(&mut self) -> bool;
}

impl Heartbeat for engine::Liveness {
    fn check(&mut self) -> bool {
        engine::Liveness::check(self)
    }
}

impl Heartbeat for crate::net::StreamLiveness {
    fn check(&mut self) -> bool {
        crate::net::StreamLiveness::check(self)
    }
}

/// The daemon's health, shared by the metrics endpoint and the watchdog.
pub struct Health {
    state: Mutex<State>,
}

struct State {
    /// Each group with what its failure is called.
    groups: Vec<(&'static str, Box<dyn Heartbeat>)>,
    checked: Instant,
    verdict: Result<(), &'static str>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    /// Watches `groups`, each with what its failure is called ("a UDP worker is stuck").
    /// Healthy until the first real check, [`SPACING`] after `now` (the groups' handles were
    /// just made and woke their workers).
    pub fn new(groups: Vec<(&'static str, Box<dyn Heartbeat>)>, now: Instant) -> Self {
        Self { state: Mutex::new(State { groups, checked: now, verdict: Ok(()) }) }
    }

    /// Ok, or why not: the first group with a worker that did not turn since the previous
    /// check. At most [`SPACING`] old.
    pub fn check(&self, now: Instant) -> Result<(), &'static str> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(state.checked) >= SPACING {
            state.checked = now;
            // Every group is checked (each check also wakes its workers for the next one).
            let mut verdict = Ok(());
            for (failure, group) in &mut state.groups {
                if !group.check() && verdict.is_ok() {
                    verdict = Err(*failure);
                }
            }
            state.verdict = verdict;
        }
        state.verdict
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A group that turns while `alive` is raised.
    struct Fake(Arc<AtomicBool>);

    impl Heartbeat for Fake {
        fn check(&mut self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn a_stuck_group_is_named_and_checks_are_spaced() {
        let (udp, tcp) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(true)));
        let start = Instant::now();
        let health = Health::new(
            vec![
                ("a UDP worker is stuck", Box::new(Fake(udp.clone()))),
                ("a TCP/TLS worker is stuck", Box::new(Fake(tcp.clone()))),
            ],
            start,
        );
        assert_eq!(health.check(start + SPACING), Ok(()));

        tcp.store(false, Ordering::SeqCst);
        assert_eq!(health.check(start + SPACING * 3 / 2), Ok(()), "too soon: the last verdict");
        assert_eq!(health.check(start + SPACING * 2), Err("a TCP/TLS worker is stuck"));
        udp.store(false, Ordering::SeqCst);
        assert_eq!(health.check(start + SPACING * 3), Err("a UDP worker is stuck"), "the first group first");

        udp.store(true, Ordering::SeqCst);
        tcp.store(true, Ordering::SeqCst);
        assert_eq!(health.check(start + SPACING * 4), Ok(()), "healthy again once they turn");
    }
}
