//! The daemons' logging, set up in one place: entries straight to the journal, with fields,
//! when systemd runs the daemon; human-readable lines on stderr otherwise. The level comes from
//! the configuration file (a daemon's SIGHUP applies it again, [`LogHandle::reload`]) unless the
//! daemon's environment variable (`BRIDGE_LOG`, ...) decides it.
//!
//! ```no_run
//! use sdnotify::logging::{self, LevelFilter, Spec};
//! let spec = Spec {
//!     identifier: "turn",
//!     env: "TURN_LOG",
//!     env_directives: false,
//!     directives: |level| format!("warn,turn={level}"),
//! };
//! let log = logging::init(spec, LevelFilter::INFO);
//! // on SIGHUP, with the level the file names now:
//! log.reload(LevelFilter::DEBUG);
//! ```

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};

pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::journal::{self, JournalLayer};

/// What differs between the daemons.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// `SYSLOG_IDENTIFIER` in the journal.
    pub identifier: &'static str,
    /// The environment variable that, when set, decides the level instead of the configuration.
    pub env: &'static str,
    /// Whether that variable may hold whole filter directives (`bridge=debug,engine=trace`)
    /// rather than a level only. Not where a library must stay quiet: at debug some log what
    /// crosses the wire, names and passwords included (privacy invariant 6).
    pub env_directives: bool,
    /// The filter for a level: the daemon's own targets at it, libraries pinned where needed.
    pub directives: fn(LevelFilter) -> String,
}

/// Where the filter came from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// The environment variable, with the directives it gave.
    Env(String),
    /// The configuration's level.
    Config(LevelFilter),
}

/// Swaps the running filter; cheap to clone.
#[derive(Clone, Debug)]
pub struct LogHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: Spec,
    filter: reload::Handle<EnvFilter, Registry>,
    source: Mutex<Source>,
}

/// Installs the process's logger. `configured` is the configuration file's level, used unless
/// the environment variable decides. Entries go to the journal when stderr is the journal
/// stream systemd connected and its socket ([`journal::socket_path`]) takes a connection;
/// otherwise to stderr, in colour only on a terminal. A second call leaves the first logger in
/// place.
pub fn init(spec: Spec, configured: LevelFilter) -> LogHandle {
    let env = std::env::var(spec.env).ok();
    let source =
        env.as_deref().and_then(|value| from_env(&spec, value)).unwrap_or(Source::Config(configured));
    let (filter, handle) = reload::Layer::new(EnvFilter::new(directives(&spec, &source)));
    let (journal, journal_error) = if journal::stderr_is_journal() {
        let path = journal::socket_path();
        match JournalLayer::connect(&path, spec.identifier) {
            Ok(layer) => (Some(layer), None),
            Err(e) => (None, Some(format!("{}: {e}", path.display()))),
        }
    } else {
        (None, None)
    };
    let stderr = journal.is_none().then(|| {
        fmt::layer().with_target(false).with_ansi(std::io::stderr().is_terminal()).with_writer(|| LossyStderr)
    });
    let _ = tracing_subscriber::registry().with(filter).with(journal).with(stderr).try_init();
    // Said once the logger is in place, so these lines reach it.
    if let Some(e) = journal_error {
        tracing::warn!("journal socket {e}; logging to stderr instead");
    }
    if let Some(value) = env.filter(|_| !matches!(source, Source::Env(_))) {
        tracing::warn!("{}={value:?} is not a log level; using the configured {configured}", spec.env);
    }
    LogHandle { inner: Arc::new(Inner { spec, filter: handle, source: Mutex::new(source) }) }
}

impl LogHandle {
    /// Applies the level a reloaded configuration names, and says what changed. The environment
    /// variable, when it decided at start, still decides.
    pub fn reload(&self, configured: LevelFilter) {
        let Inner { spec, filter, source } = &*self.inner;
        let mut source = source.lock().unwrap_or_else(PoisonError::into_inner);
        let old = match &*source {
            Source::Env(directives) => {
                return tracing::info!(
                    "log level: {} is set ({directives:?}) and decides; the configured {configured} is not applied",
                    spec.env
                );
            }
            Source::Config(old) if *old == configured => {
                return tracing::info!(level = %configured, "log level unchanged");
            }
            Source::Config(old) => *old,
        };
        let new = Source::Config(configured);
        match filter.reload(EnvFilter::new(directives(spec, &new))) {
            Ok(()) => {
                *source = new;
                tracing::info!(old_level = %old, new_level = %configured, "log level changed");
            }
            Err(e) => tracing::error!("log level: cannot swap the filter ({e}); it stays {old}"),
        }
    }

    /// The level in force, for a message: the configured one, or the environment's directives.
    pub fn level(&self) -> String {
        match &*self.inner.source.lock().unwrap_or_else(PoisonError::into_inner) {
            Source::Env(directives) => format!("{directives} (from {})", self.inner.spec.env),
            Source::Config(level) => level.to_string(),
        }
    }
}

/// The `[log]` table of a daemon's TOML configuration (the bridge's and the signaling
/// daemon's): `level`, off, error, warn, info, debug or trace. SIGHUP applies it again; the
/// daemon's environment variable ([`Spec::env`]) overrides it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

impl LogConfig {
    pub fn level(&self) -> Result<LevelFilter, String> {
        parse_level(&self.level).map_err(|e| format!("log.level: {e}"))
    }
}

/// A configuration file's level name: off, error, warn, info, debug or trace (any case).
pub fn parse_level(text: &str) -> Result<LevelFilter, String> {
    const NAMES: [(&str, LevelFilter); 6] = [
        ("off", LevelFilter::OFF),
        ("error", LevelFilter::ERROR),
        ("warn", LevelFilter::WARN),
        ("info", LevelFilter::INFO),
        ("debug", LevelFilter::DEBUG),
        ("trace", LevelFilter::TRACE),
    ];
    NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
        .map(|(_, level)| *level)
        .ok_or_else(|| format!("{text:?} is not a log level (off, error, warn, info, debug or trace)"))
}

/// The source the environment variable's `value` gives, `None` when it gives none.
fn from_env(spec: &Spec, value: &str) -> Option<Source> {
    if let Ok(level) = parse_level(value) {
        return Some(Source::Env((spec.directives)(level)));
    }
    let valid = spec.env_directives && EnvFilter::try_new(value).is_ok();
    valid.then(|| Source::Env(value.to_owned()))
}

/// The filter for `source`. This module's own lines stay at info whatever the level: an operator
/// who changes it must hear that it changed, also to something quieter.
fn directives(spec: &Spec, source: &Source) -> String {
    let directives = match source {
        Source::Env(directives) => directives.clone(),
        Source::Config(level) => (spec.directives)(*level),
    };
    format!("{directives},{}=info", module_path!())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        identifier: "test",
        env: "TEST_LOG",
        env_directives: false,
        directives: |level| format!("warn,test={level}"),
    };

    #[test]
    fn levels_parse_by_name_only() {
        assert_eq!(parse_level("debug"), Ok(LevelFilter::DEBUG));
        assert_eq!(parse_level(" WARN "), Ok(LevelFilter::WARN));
        assert_eq!(parse_level("off"), Ok(LevelFilter::OFF));
        assert!(parse_level("loud").unwrap_err().contains("\"loud\" is not a log level"));
        assert!(parse_level("3").is_err(), "numbers say nothing to an operator");
    }

    #[test]
    fn the_environment_gives_a_level_or_if_allowed_directives() {
        assert_eq!(from_env(&SPEC, "debug"), Some(Source::Env("warn,test=debug".into())));
        assert_eq!(from_env(&SPEC, "hyper=trace"), None, "libraries stay pinned");
        let open = Spec { env_directives: true, ..SPEC };
        assert_eq!(
            from_env(&open, "test=debug,engine=trace"),
            Some(Source::Env("test=debug,engine=trace".into()))
        );
        assert_eq!(from_env(&open, "test=[{"), None);
    }

    #[test]
    fn level_changes_are_heard_at_any_level() {
        let quiet = directives(&SPEC, &Source::Config(LevelFilter::OFF));
        assert_eq!(quiet, "warn,test=off,sdnotify::logging=info");
        let env = directives(&SPEC, &Source::Env("test=debug".into()));
        assert_eq!(env, "test=debug,sdnotify::logging=info");
    }
}
