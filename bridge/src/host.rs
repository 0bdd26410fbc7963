//! Host tuning, checked once at start: one warning per kernel setting below what
//! `tuning/99-meeting-bridge.conf` recommends, and one when the locked-memory limit cannot hold
//! the packet pool.
//!
//! The drop-in is embedded and parsed here, so the bridge, the drop-in and `tuning/check` (which
//! parses the same file) never disagree. Its format: `key = value` lines, `#` comments; a value
//! is a minimum unless the comment line `# check: at most` comes right before its key. A value
//! of several numbers (`4096 87380 6291456`) is compared field by field and every field must
//! pass; a current value with fewer fields than recommended fails.
//!
//! Reading only: nothing here changes the host. Paths are taken under a root directory so the
//! tests can point the reader at a fake `/proc`.

use std::fmt;
use std::path::Path;

use engine::{EngineConfig, MemoryLock, SLOT_SIZE};

/// The sysctl drop-in, the one source of the recommended values.
pub const DROP_IN: &str = include_str!("../../tuning/99-meeting-bridge.conf");

/// Where the warnings send the operator.
const SEE: &str = "see tuning/99-meeting-bridge.conf, and tuning/check for a report";

/// CAP_IPC_LOCK's bit in /proc/<pid>/status CapEff: with it, mlock ignores RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

/// How a current value is compared with the recommended one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    AtLeast,
    AtMost,
}

impl Rule {
    fn passes(self, current: u64, wanted: u64) -> bool {
        match self {
            Self::AtLeast => current >= wanted,
            Self::AtMost => current <= wanted,
        }
    }
}

/// One line of the drop-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Dotted sysctl name, as in the drop-in (`net.core.rmem_max`).
    pub key: String,
    pub wanted: Vec<u64>,
    pub rule: Rule,
}

impl Setting {
    /// Whether `current` (the text of the /proc/sys file) meets the recommendation; `None` when
    /// it is not a list of numbers.
    pub fn met_by(&self, current: &str) -> Option<bool> {
        let current = numbers(current)?;
        let short = current.len() < self.wanted.len();
        Some(!short && current.iter().zip(&self.wanted).all(|(&c, &w)| self.rule.passes(c, w)))
    }
}

/// Parses a drop-in. Errors name the line.
pub fn recommendations(text: &str) -> Result<Vec<Setting>, String> {
    let mut settings = Vec::new();
    let mut rule = Rule::AtLeast;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let at_most = comment.trim() == "check: at most";
            rule = if at_most { Rule::AtMost } else { Rule::AtLeast };
            continue;
        }
        if line.is_empty() {
            rule = Rule::AtLeast;
            continue;
        }
        let parsed = line.split_once('=').and_then(|(key, value)| {
            let key = key.trim();
            let valid = !key.is_empty() && !key.contains(char::is_whitespace);
            Some(Setting { key: key.to_owned(), wanted: numbers(value)?, rule }).filter(|_| valid)
        });
        settings.push(parsed.ok_or_else(|| format!("line {}: expected `key = numbers`: {line:?}", n + 1))?);
        rule = Rule::AtLeast;
    }
    Ok(settings)
}

/// Whitespace-separated decimal numbers, digits only (as `tuning/check` reads them: no sign).
fn numbers(text: &str) -> Option<Vec<u64>> {
    let number = |f: &str| f.bytes().all(|b| b.is_ascii_digit()).then(|| f.parse().ok()).flatten();
    let fields: Option<Vec<u64>> = text.split_whitespace().map(number).collect();
    fields.filter(|f| !f.is_empty())
}

/// A setting the host falls short of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    Sysctl {
        key: String,
        current: String,
        wanted: String,
        rule: Rule,
    },
    /// RLIMIT_MEMLOCK (soft) below the packet pool, without CAP_IPC_LOCK.
    Memlock {
        limit: u64,
        pool: u64,
    },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sysctl { key, current, wanted, rule } => {
                let (side, bound) = match rule {
                    Rule::AtLeast => ("below", "at least"),
                    Rule::AtMost => ("above", "at most"),
                };
                write!(f, "host tuning: {key} is {current}, {side} the recommended {bound} {wanted}; {SEE}")
            }
            Self::Memlock { limit, pool } => write!(
                f,
                "host tuning: the locked-memory limit is {} KiB, below the {} KiB packet pool (and \
                 each video stream's history locks about 750 KiB more): raise LimitMEMLOCK= in \
                 the systemd unit (or `ulimit -l`); {SEE}",
                limit >> 10,
                pool >> 10
            ),
        }
    }
}

/// Every shortfall of the host under `root` ("/" in production): the drop-in's settings read
/// from `root/proc/sys`, then the memlock limit against `pool_bytes` (`None`: the pool is not
/// locked, so no limit applies). An unreadable file is not a shortfall: a kernel without the
/// knob (kernel.io_uring_disabled before 6.6) has nothing to tune.
pub fn shortfalls(root: &Path, settings: &[Setting], pool_bytes: Option<u64>) -> Vec<Shortfall> {
    let mut found = Vec::new();
    for setting in settings {
        let path = root.join("proc/sys").join(setting.key.replace('.', "/"));
        let Ok(current) = std::fs::read_to_string(&path) else { continue };
        if setting.met_by(&current) == Some(false) {
            found.push(Shortfall::Sysctl {
                key: setting.key.clone(),
                current: current.split_whitespace().collect::<Vec<_>>().join(" "),
                wanted: setting.wanted.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
                rule: setting.rule,
            });
        }
    }
    if let Some(pool) = pool_bytes
        && !has_cap_ipc_lock(root)
        && let Some(limit) = memlock_limit(root)
        && limit < pool
    {
        found.push(Shortfall::Memlock { limit, pool });
    }
    found
}

/// The soft RLIMIT_MEMLOCK from /proc/self/limits; `u64::MAX` for "unlimited".
fn memlock_limit(root: &Path) -> Option<u64> {
    let limits = std::fs::read_to_string(root.join("proc/self/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max locked memory"))?;
    match line.trim_start_matches("Max locked memory").split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

fn has_cap_ipc_lock(root: &Path) -> bool {
    let Ok(status) = std::fs::read_to_string(root.join("proc/self/status")) else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Bytes the engine will lock for its packet pool with `config`; `None` when it locks nothing.
pub fn pool_bytes(config: &EngineConfig) -> Option<u64> {
    (config.lock_memory != MemoryLock::Off)
        .then(|| config.worker_count() as u64 * u64::from(config.pool_slots_per_worker) * SLOT_SIZE as u64)
}

/// Logs one warning per shortfall of this host. Called once at start.
pub fn warn_untuned(config: &EngineConfig) {
    let settings = recommendations(DROP_IN).expect("the embedded drop-in parses (tested)");
    for shortfall in shortfalls(Path::new("/"), &settings, pool_bytes(config)) {
        tracing::warn!("{shortfall}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root with every setting of the drop-in at `value(key, wanted)`.
    fn fake_root(value: impl Fn(&Setting) -> String, memlock: &str, cap_eff: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for setting in recommendations(DROP_IN).unwrap() {
            let path = root.path().join("proc/sys").join(setting.key.replace('.', "/"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{}\n", value(&setting))).unwrap();
        }
        // The layout of /proc/<pid>/limits: soft and hard limits in columns.
        let limits = format!(
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            1024                 524288               files\n\
             Max locked memory         {memlock:<20} {memlock:<20} bytes\n"
        );
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::write(root.path().join("proc/self/limits"), limits).unwrap();
        std::fs::write(root.path().join("proc/self/status"), format!("Name:\tbridge\nCapEff:\t{cap_eff}\n"))
            .unwrap();
        root
    }

    fn joined(numbers: &[u64]) -> String {
        numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
    }

    /// A value that just meets the setting, or just misses it.
    fn meeting(setting: &Setting) -> String {
        joined(&setting.wanted)
    }

    fn missing(setting: &Setting) -> String {
        let off = |w: u64| match setting.rule {
            Rule::AtLeast => w.saturating_sub(1),
            Rule::AtMost => w + 1,
        };
        joined(&setting.wanted.iter().map(|&w| off(w)).collect::<Vec<_>>())
    }

    const POOL: u64 = 32 << 20;

    #[test]
    fn the_embedded_drop_in_parses_with_its_rules() {
        let settings = recommendations(DROP_IN).unwrap();
        let keys: Vec<_> = settings.iter().map(|s| s.key.as_str()).collect();
        assert!(keys.contains(&"net.core.rmem_max") && keys.contains(&"net.core.wmem_max"), "{keys:?}");
        // The engine's default socket buffer must fit under the recommended maxima.
        let socket_buffer = EngineConfig::default().socket_buffer as u64;
        for key in ["net.core.rmem_max", "net.core.wmem_max"] {
            let setting = settings.iter().find(|s| s.key == key).unwrap();
            assert!(setting.wanted[0] >= socket_buffer, "{key} below engine.socket_buffer");
        }
        let io_uring = settings.iter().find(|s| s.key == "kernel.io_uring_disabled").unwrap();
        assert_eq!((io_uring.rule, io_uring.wanted.as_slice()), (Rule::AtMost, &[0][..]));
        assert!(settings.iter().filter(|s| s.key != io_uring.key).all(|s| s.rule == Rule::AtLeast));
    }

    #[test]
    fn no_warning_when_all_are_fine() {
        let root = fake_root(meeting, "unlimited", "0000000000000000");
        let settings = recommendations(DROP_IN).unwrap();
        assert_eq!(shortfalls(root.path(), &settings, Some(POOL)), []);
        let root = fake_root(meeting, &POOL.to_string(), "0000000000000000");
        assert_eq!(shortfalls(root.path(), &settings, Some(POOL)), []);
    }

    #[test]
    fn exactly_one_warning_per_low_setting() {
        let settings = recommendations(DROP_IN).unwrap();
        for low in &settings {
            let root =
                fake_root(|s| if s.key == low.key { missing(s) } else { meeting(s) }, "unlimited", "0");
            let found = shortfalls(root.path(), &settings, Some(POOL));
            assert_eq!(found.len(), 1, "{}: {found:?}", low.key);
            let message = found[0].to_string();
            let parts = [low.key.clone(), missing(low), meeting(low)];
            for part in
                parts.iter().map(String::as_str).chain(["tuning/99-meeting-bridge.conf", "tuning/check"])
            {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
        let root = fake_root(missing, "unlimited", "0");
        assert_eq!(shortfalls(root.path(), &settings, Some(POOL)).len(), settings.len());
    }

    #[test]
    fn memlock_below_the_pool_warns_once_unless_cap_ipc_lock() {
        let settings = recommendations(DROP_IN).unwrap();
        let root = fake_root(meeting, "8388608", "0000000000000000");
        let found = shortfalls(root.path(), &settings, Some(POOL));
        assert_eq!(found, [Shortfall::Memlock { limit: 8 << 20, pool: POOL }]);
        assert!(found[0].to_string().contains("LimitMEMLOCK"), "{}", found[0]);
        // Root's capabilities (CapEff of a root shell) let mlock ignore the limit.
        let root = fake_root(meeting, "8388608", "000001ffffffffff");
        assert_eq!(shortfalls(root.path(), &settings, Some(POOL)), []);
        // lock_memory = "off": nothing is locked, so no limit matters.
        let root = fake_root(meeting, "8388608", "0");
        assert_eq!(shortfalls(root.path(), &settings, None), []);
    }

    #[test]
    fn multi_field_values_compare_every_field() {
        let settings =
            recommendations("a.b = 4096 87380 6291456\n# check: at most\nc.d = 32768 49151\n").unwrap();
        let (at_least, at_most) = (&settings[0], &settings[1]);
        assert_eq!(at_least.met_by("4096\t131072\t6291456\n"), Some(true));
        assert_eq!(at_least.met_by("4096 87380 4194304"), Some(false), "the last field is low");
        assert_eq!(at_least.met_by("8192 87380"), Some(false), "a missing field fails");
        assert_eq!(at_most.met_by("32768 60999"), Some(false));
        assert_eq!(at_most.met_by("1024 49151"), Some(true));
        assert_eq!(at_least.met_by("unlimited"), None);
    }

    #[test]
    fn a_rule_applies_only_to_the_key_right_after_it() {
        let text =
            "# check: at most\n\na = 1\n# check: at most\n# why\nb = 1\n# check: at most\nc = 1\nd = 1\n";
        let rules: Vec<_> = recommendations(text).unwrap().into_iter().map(|s| s.rule).collect();
        assert_eq!(rules, [Rule::AtLeast, Rule::AtLeast, Rule::AtMost, Rule::AtLeast]);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for text in ["a.b 1\n", "= 1\n", "a.b = one\n", "a.b =\n", "a b = 1\n", "a.b = +1\n"] {
            assert!(recommendations(text).unwrap_err().contains("line 1"), "{text:?}");
        }
    }

    #[test]
    fn an_absent_knob_is_not_a_shortfall() {
        let empty = tempfile::tempdir().unwrap();
        let settings = recommendations(DROP_IN).unwrap();
        assert_eq!(shortfalls(empty.path(), &settings, Some(POOL)), []);
    }
}
