//! `bridge`: the media bridge daemon.
//!
//! ```text
//! bridge                      run with the embedded defaults (bridge.toml in the source tree)
//! bridge --config FILE        run with FILE
//! bridge --check-config FILE  validate FILE and exit
//! bridge --print-default-config
//! ```

use std::path::{Path, PathBuf};

use bridge::config::{BridgeConfig, DEFAULT_TOML};
use sdnotify::logging::{self, LevelFilter, LogHandle, Spec};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every target at the configured level, as before there was one; `BRIDGE_LOG` may also give
/// directives (the bridge's libraries log nothing private).
const LOG: Spec = Spec {
    identifier: "bridge",
    env: "BRIDGE_LOG",
    env_directives: true,
    directives: |level: LevelFilter| level.to_string(),
};

const USAGE: &str = "usage: bridge [--config FILE | --check-config FILE | --print-default-config]";

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
    let config = match BridgeConfig::load(path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("bridge: configuration error: {e}");
            std::process::exit(2);
        }
    };
    if check_only {
        println!("configuration ok");
        return;
    }
    let log = logging::init(LOG, config.log.level().unwrap_or(LevelFilter::INFO));
    let code = bridge::run::run_with_hangup(config, &mut || reload(path.as_deref(), &log));
    std::process::exit(code);
}

/// SIGHUP: the file's `log.level` again. A file that no longer parses changes nothing.
fn reload(path: Option<&Path>, log: &LogHandle) {
    tracing::info!("SIGHUP: reloading the log level; other settings are read at start only");
    let Some(path) = path else {
        return tracing::info!("SIGHUP: no configuration file (embedded defaults): the level stays");
    };
    match BridgeConfig::load(Some(path)).and_then(|config| config.log.level()) {
        Ok(level) => log.reload(level),
        Err(e) => tracing::error!("SIGHUP: {e}; the log level stays {}", log.level()),
    }
}
