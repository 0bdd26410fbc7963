//! `signaling`: the signaling daemon.
//!
//! ```text
//! signaling                      run with the embedded defaults (signaling.toml)
//! signaling --config FILE        run with FILE
//! signaling --check-config FILE  validate FILE and exit
//! signaling --print-default-config
//! ```

use std::path::{Path, PathBuf};

use sdnotify::logging::{self, LevelFilter, LogHandle, Spec};
use signaling::config::{Config, DEFAULT_TOML};

const USAGE: &str = "usage: signaling [--config FILE | --check-config FILE | --print-default-config]";

/// `log.level` (or `SIGNALING_LOG`, a level only) sets the level of the daemon's own lines.
/// Libraries stay at "warn" whatever it says: at debug and trace they log what crosses the wire
/// (a WebSocket library logs every message, names and passwords included), which privacy
/// invariant 6 forbids.
const LOG: Spec = Spec {
    identifier: "signaling",
    env: "SIGNALING_LOG",
    env_directives: false,
    directives: |level: LevelFilter| format!("warn,webrtc_sdp=off,signaling={level}"),
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, check_only) = match args.as_slice() {
        [] => (None, false),
        [flag, file] if flag == "--config" => (Some(PathBuf::from(file)), false),
        [flag, file] if flag == "--check-config" => (Some(PathBuf::from(file)), true),
        [flag] if flag == "--print-default-config" => {
            print!("{DEFAULT_TOML}");
            return;
        }
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return;
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let config = match Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("signaling: configuration error: {e}");
            std::process::exit(2);
        }
    };
    if check_only {
        println!("configuration ok");
        return;
    }
    let log = logging::init(LOG, config.log.level().unwrap_or(LevelFilter::INFO));
    let code = signaling::daemon::run_with_hangup(config, Box::new(move || reload(path.as_deref(), &log)));
    std::process::exit(code);
}

/// SIGHUP: the file's `log.level` again, before the certificate. A file that no longer parses
/// changes nothing.
fn reload(path: Option<&Path>, log: &LogHandle) {
    let Some(path) = path else {
        return tracing::info!("SIGHUP: no configuration file (embedded defaults): the log level stays");
    };
    match Config::load(Some(path)).and_then(|config| config.log.level()) {
        Ok(level) => log.reload(level),
        Err(e) => tracing::error!("SIGHUP: {e}; the log level stays {}", log.level()),
    }
}
