//! What loadgen's test files share: the bridge they run against and the load they offer.

use std::time::Duration;

use benches::loadgen::schedule::VideoPattern;
use benches::loadgen::{Config, Target};
use bridge::config::BridgeConfig;

/// The bridge's control secret in these tests.
pub const SECRET: &str = "loadgen-test-secret-0123456789";

/// The engine as the tests run it: two workers on an ephemeral port, no memory locking.
pub const ENGINE: &str = r#"
[engine]
listen = "127.0.0.1:0"
workers = 2
lock_memory = "off"
pool_slots_per_worker = 2048
[metrics]
listen = ""
"#;

/// The bridge in SFU mode with its control API, as `bridge::run` starts it.
pub fn start_sfu() -> bridge::run::Sfu {
    let text = format!("{ENGINE}[control]\nlisten = \"127.0.0.1:0\"\nsecret = \"{SECRET}\"\n");
    bridge::run::start_sfu(&BridgeConfig::parse(&text).unwrap()).unwrap()
}

/// `participants` in `conferences` for `secs`, video at 200 packets/s in 30 frames/s.
pub fn load(participants: usize, conferences: usize, secs: f64, target: Target) -> Config {
    Config {
        participants,
        conferences,
        duration: Duration::from_secs_f64(secs),
        drain: Duration::from_millis(500),
        warmup: Duration::ZERO,
        video: VideoPattern::new(200, 30, 1, 4),
        audio_level_id: 1,
        threads: 1,
        target,
        e2ee: false,
    }
}
