//! `tuning/check` runs as an unprivileged user and reports every setting of the sysctl drop-in,
//! the same list the bridge embeds for its start-up warnings (`bridge::host`). Its verdicts on
//! a fake /proc agree with the bridge's: LOW/HIGH exits 1, all met exits 0, a broken drop-in 2.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bridge::host::{DROP_IN, Rule, Setting, recommendations};

const NOBODY: &str = "65534";

fn tuning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning")
}

fn settings() -> Vec<Setting> {
    recommendations(DROP_IN).expect("the embedded drop-in parses")
}

/// Copies the script and the drop-in where any user may read them (the source tree may sit
/// under a private home directory).
fn public_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, mode) in [("check", 0o755), ("99-meeting-bridge.conf", 0o644)] {
        let to = dir.path().join(name);
        std::fs::copy(tuning_dir().join(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

/// `program args` as user and group nobody when the test runs as root (else as this user),
/// with a clean environment, killed after 30 s.
fn run_unprivileged(program: &Path, args: &[&str]) -> Output {
    // SAFETY: geteuid has no preconditions.
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).env_clear().env("PATH", "/usr/bin:/bin").current_dir("/");
    run_bounded(command)
}

fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} ran for more than 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn privileges_are_really_dropped() {
    let output = run_unprivileged(Path::new("/usr/bin/id"), &["-u"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(text(&output.stdout).trim(), NOBODY);
    }
}

#[test]
fn reports_every_setting_as_nobody() {
    let copy = public_copy();
    let output = run_unprivileged(&copy.path().join("check"), &[]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?} (2 is an error)\n{stdout}\n{stderr}");
    for setting in settings() {
        let bound = match setting.rule {
            Rule::AtLeast => ">=",
            Rule::AtMost => "<=",
        };
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(setting.key.as_str()))
            .unwrap_or_else(|| panic!("no line for {}:\n{stdout}", setting.key));
        let fields: Vec<_> = line.split_whitespace().collect();
        let verdict = *fields.last().unwrap();
        assert!(["OK", "LOW", "HIGH", "ABSENT"].contains(&verdict), "{line}");
        let at = fields.iter().position(|f| *f == bound).unwrap_or_else(|| panic!("no {bound}: {line}"));
        assert!(at >= 2, "no current value: {line}");
        let wanted: Vec<String> = setting.wanted.iter().map(u64::to_string).collect();
        assert_eq!(fields[at + 1..fields.len() - 1], wanted[..], "{line}");
        // The verdict is the bridge's own judgement of the value shown.
        let current = fields[1..at].join(" ");
        if verdict != "ABSENT" {
            assert_eq!(setting.met_by(&current), Some(verdict == "OK"), "{line}");
        }
    }
    assert!(stdout.lines().any(|l| l.starts_with("memlock ")), "{stdout}");
    let below = stdout.lines().filter(|l| l.ends_with(" LOW") || l.ends_with(" HIGH")).count();
    assert_eq!(code == Some(1), below > 0, "exit status and verdicts disagree:\n{stdout}");
}

#[test]
fn json_lists_the_same_settings() {
    let copy = public_copy();
    let output = run_unprivileged(&copy.path().join("check"), &["--json"]);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    let checks = report["checks"].as_array().expect("a list of checks");
    for setting in settings() {
        let check = checks
            .iter()
            .find(|c| c["name"] == setting.key.as_str())
            .unwrap_or_else(|| panic!("{} missing from {report}", setting.key));
        assert!(!check["current"].as_str().unwrap().is_empty(), "{check}");
        assert!(["OK", "LOW", "HIGH", "ABSENT"].contains(&check["verdict"].as_str().unwrap()), "{check}");
    }
    let below = checks.iter().filter(|c| c["verdict"] == "LOW" || c["verdict"] == "HIGH").count();
    assert_eq!(report["below_recommendation"], below);
    assert_eq!(output.status.code() == Some(1), below > 0);
}

/// A fake root: every drop-in setting at `value`, an unlimited memlock limit.
fn fake_root(value: impl Fn(&Setting) -> String) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for setting in settings() {
        let path = root.path().join("proc/sys").join(setting.key.replace('.', "/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{}\n", value(&setting))).unwrap();
    }
    std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
    std::fs::write(
        root.path().join("proc/self/limits"),
        "Max locked memory   unlimited   unlimited   bytes\n",
    )
    .unwrap();
    root
}

fn joined(numbers: impl Iterator<Item = u64>) -> String {
    numbers.map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
}

fn check_against(root: &Path, extra: &[&str]) -> Output {
    let mut command = Command::new(tuning_dir().join("check"));
    command.arg("--root").arg(root).args(extra);
    run_bounded(command)
}

#[test]
fn exit_status_follows_the_verdicts_on_a_fake_proc() {
    let met = fake_root(|s| joined(s.wanted.iter().copied()));
    let output = check_against(met.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));

    for low in settings() {
        let root = fake_root(|s| {
            let off = |w: u64| {
                if s.key != low.key {
                    w
                } else if s.rule == Rule::AtLeast {
                    w - 1
                } else {
                    w + 1
                }
            };
            joined(s.wanted.iter().map(|&w| off(w)))
        });
        let output = check_against(root.path(), &["--json"]);
        assert_eq!(output.status.code(), Some(1), "{}", low.key);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let flagged: Vec<_> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["verdict"] == "LOW" || c["verdict"] == "HIGH")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(flagged, [low.key.as_str()]);
    }
}

#[test]
fn a_broken_drop_in_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "net.core.rmem_max = lots\n").unwrap();
    let output = check_against(dir.path(), &["--conf", conf.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("line 1"), "{}", text(&output.stderr));
    let output = check_against(dir.path(), &["--conf", "/nonexistent/99-meeting-bridge.conf"]);
    assert_eq!(output.status.code(), Some(2));
}
