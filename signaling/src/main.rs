//! `signaling`: the signaling daemon.
//!
//! ```text
//! signaling                      run with the embedded defaults (signaling.toml)
//! signaling --config FILE        run with FILE
//! signaling --check-config FILE  validate FILE and exit
//! signaling --print-default-config
//! ```

use std::path::PathBuf;

use signaling::config::{Config, DEFAULT_TOML};

const USAGE: &str = "usage: signaling [--config FILE | --check-config FILE | --print-default-config]";

/// Standard error that never fails (see the bridge's): a closed log pipe must not stop the
/// daemon.
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

fn main() {
    // SIGNALING_LOG sets the level of the daemon's own lines only. Libraries stay at "warn"
    // whatever it says: at debug and trace they log what crosses the wire (a WebSocket library
    // logs every message, names and passwords included), which privacy invariant 6 forbids.
    let level = std::env::var("SIGNALING_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!("warn,webrtc_sdp=off,signaling={level}")))
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
    std::process::exit(signaling::daemon::run(config));
}
