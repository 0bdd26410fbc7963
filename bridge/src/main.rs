//! `bridge`: the media bridge daemon.
//!
//! ```text
//! bridge                      run with the embedded defaults (bridge.toml in the source tree)
//! bridge --config FILE        run with FILE
//! bridge --check-config FILE  validate FILE and exit
//! bridge --print-default-config
//! ```

use std::path::PathBuf;

use bridge::config::{BridgeConfig, DEFAULT_TOML};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Standard error that never fails: if whatever reads the log goes away (a closed pipe, a
/// restarted journald), the daemon keeps serving and the lines are lost, instead of the
/// subscriber's fallback `eprintln!` panicking on EPIPE.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const USAGE: &str = "usage: bridge [--config FILE | --check-config FILE | --print-default-config]";

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRIDGE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_writer(|| LossyStderr)
        .init();

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
    std::process::exit(bridge::run::run(config));
}
