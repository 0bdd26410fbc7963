//! The daemon's configuration (TOML); every table rejects unknown keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sdnotify::logging::LogConfig;
use serde::Deserialize;

pub const DEFAULT_TOML: &str = include_str!("../signaling.toml");

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub rooms: RoomsConfig,
    pub topology: TopologyConfig,
    /// The bridge, or the first of several (`bridges` adds more).
    pub bridge: BridgeConfig,
    /// Further bridges: `[[bridges]]` tables with `url` and `secret`. Each new meeting goes to
    /// the least stressed one that is not draining.
    pub bridges: Vec<BridgeConfig>,
    pub turn: TurnConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Plain-HTTP listener for `GET /metrics` (Prometheus) and `GET /health`, e.g.
    /// "127.0.0.1:9465". Keep it private. Empty: off.
    pub listen: String,
}

impl MetricsConfig {
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|e| format!("metrics.listen: {e}: {:?}", self.listen))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// `turn:` and `turns:` URLs handed to browsers as `iceServers`. Empty: no TURN.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long a credential stays valid, in seconds.
    pub ttl_s: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self { urls: Vec::new(), secret: String::new(), ttl_s: 24 * 3600 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Where the generated certificate is kept between starts.
    pub state_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { listen: "[::]:8443".into(), state_dir: PathBuf::from("/var/lib/signaling") }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain and key. Empty: a self-signed certificate, made at first start and
    /// kept in `server.state_dir`.
    pub cert: String,
    pub key: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    pub max_participants: usize,
    /// Join attempts per source address: a burst, then one per `join_interval_ms`.
    pub join_burst: u32,
    pub join_interval_ms: u64,
    /// Wrong passwords per source address: a burst, then one per `guess_interval_ms`.
    pub guess_burst: u32,
    pub guess_interval_ms: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            max_participants: 50,
            join_burst: 20,
            join_interval_ms: 3000,
            guess_burst: 5,
            guess_interval_ms: 20_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Two participants talk peer to peer; false sends every meeting through the bridge.
    pub p2p: bool,
    /// How long a meeting back at two participants stays on the bridge before P2P resumes.
    pub p2p_delay_ms: u64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self { p2p: true, p2p_delay_ms: 2000 }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// The bridge's control API, e.g. "http://127.0.0.1:8080". Empty: no bridge (meetings of
    /// three or more cannot start).
    pub url: String,
    pub secret: String,
}

impl Config {
    /// Every configured bridge: `bridge` (when its url is set), then `bridges`.
    pub fn bridge_list(&self) -> impl Iterator<Item = &BridgeConfig> {
        std::iter::once(&self.bridge).chain(&self.bridges).filter(|b| !b.url.is_empty())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.listen_addr()?;
        config.metrics.listen_addr()?;
        config.log.level()?;
        if config.rooms.max_participants < 2 {
            return Err("rooms.max_participants: at least 2".into());
        }
        if config.rooms.join_burst == 0 || config.rooms.guess_burst == 0 {
            return Err("rooms.join_burst, rooms.guess_burst: at least 1".into());
        }
        if config.turn.urls.iter().any(|u| !(u.starts_with("turn:") || u.starts_with("turns:"))) {
            return Err("turn.urls: each starts with turn: or turns:".into());
        }
        if !config.turn.urls.is_empty() && config.turn.secret.is_empty() {
            return Err("turn.secret: needed with turn.urls".into());
        }
        if config.tls.cert.is_empty() != config.tls.key.is_empty() {
            return Err("tls.cert and tls.key: set both or neither".into());
        }
        Ok(config)
    }

    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        match path {
            None => Self::parse(DEFAULT_TOML),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Self::parse(&text)
            }
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.server.listen.parse().map_err(|e| format!("server.listen: {e}: {:?}", self.server.listen))
    }

    pub fn p2p_delay(&self) -> Duration {
        Duration::from_millis(self.topology.p2p_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_errors_name_the_key() {
        Config::parse(DEFAULT_TOML).unwrap();
        assert!(Config::parse("[rooms]\nmax_participant = 3").unwrap_err().contains("max_participant"));
        assert!(Config::parse("[server]\nlisten = \"nowhere\"").unwrap_err().contains("server.listen"));
        assert!(Config::parse("[tls]\ncert = \"a.pem\"").unwrap_err().contains("tls.key"));
        assert!(Config::parse("[log]\nlevel = \"loud\"").unwrap_err().contains("log.level: \"loud\""));
        assert_eq!(
            Config::parse("[log]\nlevel = \"debug\"").unwrap().log.level(),
            Ok(sdnotify::logging::LevelFilter::DEBUG)
        );
    }
}
