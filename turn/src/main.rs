//! `turn --config FILE`: the TURN server daemon. See [`turn::run`] for what it starts.

use std::path::PathBuf;
use std::process::ExitCode;

use sdnotify::logging::{self, LevelFilter, Spec};
use turn::config::TurnConfig;

const USAGE: &str = "\
usage: turn --config FILE
       turn --help | --version

Runs the TURN server (RFC 8656) with a coturn-style turnserver.conf:
TURN over TCP on listening-port and over TLS on tls-listening-port (cert, pkey)
on every listening-ip (none: all addresses), relay ports min-port..max-port,
credentials from use-auth-secret/static-auth-secret or lt-cred-mech/user.

  -c, --config FILE   the configuration file (required)
  -h, --help          this help
  -V, --version       the version

Signals: SIGTERM or SIGINT stops (allocations are freed); SIGHUP reloads the
credentials (realm, use-auth-secret, static-auth-secret, lt-cred-mech, user)
from FILE and the TLS certificate (also reloaded when its files change); other
settings need a restart; SIGHUP also applies log-level (TURN_LOG, a level,
overrides it). Exit status: 0 after a clean stop, 2 for a bad command
line or configuration, 1 when the system refuses something (a port in use).
";

/// The daemon's own lines at the configured level; libraries (rustls) at warn.
const LOG: Spec = Spec {
    identifier: "turn",
    env: "TURN_LOG",
    env_directives: false,
    directives: |level: LevelFilter| format!("warn,turn={level}"),
};

fn main() -> ExitCode {
    let path = match parse_args(std::env::args().skip(1)) {
        Ok(Some(path)) => path,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turn: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("turn: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let parsed = match TurnConfig::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("turn: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let log = logging::init(LOG, parsed.config.log_level);
    for warning in &parsed.warnings {
        tracing::warn!("{}: {warning}", path.display());
    }
    match turn::run::run(&parsed.config, &path, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// The configuration path; `Ok(None)` when `--help` or `--version` has been answered.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<PathBuf>, String> {
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("turn {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "-c" | "--config" => {
                config = Some(args.next().ok_or_else(|| format!("{arg} needs a file"))?);
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => config = Some(path.to_owned()),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    config.map(|c| Some(PathBuf::from(c))).ok_or_else(|| "--config FILE is required".to_string())
}
