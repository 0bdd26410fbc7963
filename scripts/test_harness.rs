//! What the test binaries that drive real clients share (included with `#[path]` by
//! `bridge/tests/real_clients.rs` and `appliance/tests/browsers.rs`, as `scripts/webdriver.py`
//! is shared by their Python drivers): installing the test dependencies, running a script in
//! a private network namespace, and running a command with a hard time limit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root, from a member crate's manifest directory.
pub fn repo_root(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).parent().expect("a workspace member has a parent").to_path_buf()
}

/// Runs scripts/install-test-deps.sh once per test binary; every test that needs it gets the
/// same verdict.
pub fn install_test_deps(root: &Path) {
    static DEPS: OnceLock<Result<(), String>> = OnceLock::new();
    let verdict = DEPS.get_or_init(|| {
        let script = root.join("scripts/install-test-deps.sh");
        let status = Command::new("bash")
            .arg(&script)
            .current_dir(root)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if status.success() { Ok(()) } else { Err(format!("{} failed: {status}", script.display())) }
    });
    if let Err(e) = verdict {
        panic!("test dependencies are not installed: {e}");
    }
}

/// `unshare --net <script>`, with `--map-root-user` when we are not root (root may enter a
/// network namespace directly, others need a user namespace too).
pub fn in_private_network(script: &Path) -> Command {
    let id = Command::new("id").arg("-u").output().expect("run id -u");
    let mut command = Command::new("unshare");
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        command.arg("--map-root-user");
    }
    command.arg("--net").arg(script);
    command
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` in its own process group, collecting its output; after `limit` the whole
/// group is killed (the scripts bound themselves; this is the last line).
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pgid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            // The process group this harness created for the child, with kill(1).
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{pgid}")).status();
            timed_out = true;
            break child.wait().expect("wait for killed child");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if timed_out {
        panic!(
            "{command:?} did not finish within {limit:?} (killed)\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out_reader.join().unwrap_or_default(),
            err_reader.join().unwrap_or_default()
        );
    }
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}
