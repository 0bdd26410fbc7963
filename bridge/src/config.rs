//! The bridge's configuration file (TOML). Every table rejects unknown keys, so a typo is an
//! error that names the key rather than a setting silently ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use engine::EngineConfig;
use sdnotify::logging::LogConfig;
use serde::Deserialize;

use crate::control::ControlConfig;
use crate::relay::RelayConfig;

/// The embedded defaults, used when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../bridge.toml");

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    pub engine: EngineConfig,
    pub metrics: MetricsConfig,
    pub relay: RelayConfig,
    pub control: ControlConfig,
    pub media: MediaConfig,
    pub log: LogConfig,
    /// Test builds only (cargo feature `test-tap`); any other build rejects the table.
    #[cfg(feature = "test-tap")]
    pub test_tap: crate::sfu::tap::TapConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Addresses participants reach the media port on, announced as ICE host candidates. Empty:
    /// the address of `engine.listen` when it names one.
    pub announce: Vec<IpAddr>,
}

impl MediaConfig {
    /// The addresses to announce, given where the engine listens.
    pub fn announced(&self, listen: SocketAddr) -> Vec<IpAddr> {
        if self.announce.is_empty() && !listen.ip().is_unspecified() {
            vec![listen.ip()]
        } else {
            self.announce.clone()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where Prometheus scrapes `/metrics`; keep it private. Empty string turns it off.
    pub listen: String,
    /// How often worker counters are copied into the exporter, in milliseconds.
    pub interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into(), interval_ms: 1000 }
    }
}

impl MetricsConfig {
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|e| format!("metrics.listen: {e}: {:?}", self.listen))
    }
}

impl BridgeConfig {
    /// Parses and validates a configuration text. Errors name the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.engine.validate().map_err(|e| e.to_string())?;
        config.metrics.listen_addr()?;
        config.log.level()?;
        if config.metrics.interval_ms == 0 {
            return Err("metrics.interval_ms: must be at least 1".into());
        }
        config.relay.validate()?;
        config.control.validate()?;
        if config.media.announce.iter().any(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err("media.announce: addresses must be unicast and specific".into());
        }
        #[cfg(feature = "test-tap")]
        config.test_tap.validate()?;
        Ok(config)
    }

    /// Reads `path`, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        match path {
            None => Self::parse(DEFAULT_TOML),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let config = BridgeConfig::parse(DEFAULT_TOML).unwrap();
        assert_eq!(config.engine, EngineConfig::default());
        assert_eq!(config.relay.drop_every, 0, "fault injection is off unless asked for");
        assert_eq!(config.log.level(), Ok(sdnotify::logging::LevelFilter::INFO));
    }

    #[test]
    fn errors_name_the_bad_key() {
        let cases = [
            ("[engine]\nwrkers = 2\n", "wrkers"),
            ("[engine]\nworkers = \"two\"\n", "workers"),
            ("[engine]\npool_slots_per_worker = 3\n", "engine.pool_slots_per_worker"),
            ("[engine]\nlisten = \"nowhere\"\n", "listen"),
            ("[engine]\nbackend = \"dpdk\"\n", "backend"),
            ("[engine]\nlock_memory = \"maybe\"\n", "lock_memory"),
            ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
            ("[relay]\nroutes = [{ from = \"127.0.0.1:1\", to = [] }]\n", "relay.routes[0].to"),
            ("[relay]\nroutes = [{ from = \"127.0.0.1:1\", too = [] }]\n", "too"),
            ("[relya]\n", "relya"),
            ("[relay]\ndrop_every = -1\n", "drop_every"),
            ("[log]\nlevel = \"loud\"\n", "log.level: \"loud\" is not a log level"),
        ];
        for (text, key) in cases {
            let error = BridgeConfig::parse(text).unwrap_err();
            assert!(error.contains(key), "error for {text:?} does not name {key:?}: {error}");
        }
    }

    #[test]
    fn only_test_builds_know_the_test_tap() {
        let parsed = BridgeConfig::parse("[test_tap]\nrecords = 16\n");
        #[cfg(feature = "test-tap")]
        {
            assert_eq!(parsed.unwrap().test_tap.records, 16);
            let error = BridgeConfig::parse("[test_tap]\nrecords = 1000000\n").unwrap_err();
            assert!(error.contains("test_tap.records"), "{error}");
        }
        #[cfg(not(feature = "test-tap"))]
        assert!(parsed.unwrap_err().contains("test_tap"), "a production build rejects the tap");
    }
}
