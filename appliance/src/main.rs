//! `appliance`: the bridge and the signaling daemon in one process, with embedded defaults and
//! a fresh control secret, for trying the system on one machine:
//!
//! ```text
//! cargo run --release -p appliance
//! ```
//!
//! Production runs the two daemons as separate systemd units with their own configuration
//! files; this binary is the one command that gets a meeting going. Under systemd it is one
//! `Type=notify` service: one `READY=1` once both serve, one watchdog ([`daemons`]).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;

mod daemons;
#[cfg(feature = "test-tap")]
mod test_tap;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `APPLIANCE_LOG` (a level) for the daemons' own lines; libraries stay at "warn": at debug they
/// log message contents (privacy invariant 6). No file to reload: the level is set at start.
const LOG: sdnotify::logging::Spec = sdnotify::logging::Spec {
    identifier: "appliance",
    env: "APPLIANCE_LOG",
    env_directives: false,
    directives: |level| format!("warn,webrtc_sdp=off,signaling={level},bridge={level},engine={level}"),
};

/// The address other machines (and the browser here) reach this host on: the source address
/// the kernel picks for a public destination. Nothing is sent.
fn host_address() -> IpAddr {
    let probe = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect("192.0.2.1:9").map(|()| s));
    match probe.and_then(|s| s.local_addr()) {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("meeting-appliance")
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    signaling::secret::random_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let _log = sdnotify::logging::init(LOG, sdnotify::logging::LevelFilter::INFO);

    let host = host_address();
    let secret = random_secret();
    let mut bridge = match bridge::config::BridgeConfig::parse(bridge::config::DEFAULT_TOML) {
        Ok(config) => config,
        Err(e) => return eprintln!("appliance: bridge defaults: {e}"),
    };
    bridge.control.secret = secret.clone();
    bridge.engine.lock_memory = engine::MemoryLock::BestEffort;
    bridge.media.announce = vec![host];
    let control = bridge.control.listen.clone();
    #[cfg(feature = "test-tap")]
    if let Err(e) = test_tap::configure(&mut bridge)
        .and_then(|()| test_tap::publish_control(&format!("http://{control}"), &secret))
    {
        return eprintln!("appliance: {e}");
    }

    let mut signaling = match signaling::config::Config::parse(signaling::config::DEFAULT_TOML) {
        Ok(config) => config,
        Err(e) => return eprintln!("appliance: signaling defaults: {e}"),
    };
    signaling.server.state_dir = state_dir();
    signaling.bridge.url = format!("http://{control}");
    signaling.bridge.secret = secret;
    let port = signaling.listen_addr().map(|a| a.port()).unwrap_or(8443);

    let url = match host {
        IpAddr::V6(ip) => format!("https://[{ip}]:{port}/"),
        IpAddr::V4(ip) => format!("https://{ip}:{port}/"),
    };
    eprintln!("\n    Open {url} in a browser (the certificate is self-signed: accept it once).\n");
    std::process::exit(daemons::run(bridge, signaling));
}
