//! Test builds only (cargo feature `test-tap`): lets a test reach the bridge's tap.
//!
//! - `APPLIANCE_TEST_TAP=<records>`: the bridge records the first `<records>` packets it forwards
//!   (`[test_tap] records` of the bridge's configuration; see `bridge/src/sfu/tap.rs`).
//! - `APPLIANCE_TEST_CONTROL_FILE=<path>`: the appliance writes its bridge control API's URL and
//!   fresh secret there, as `{"url": "http://127.0.0.1:8080", "secret": "…"}` (mode 0600), so
//!   the test can call `GET /v1/test/tap`. The file appears before the API listens: poll.
//!
//! A production build has neither variable: this module is not compiled.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Applies `APPLIANCE_TEST_TAP` to the bridge's configuration.
pub fn configure(bridge: &mut bridge::config::BridgeConfig) -> Result<(), String> {
    let Ok(records) = std::env::var("APPLIANCE_TEST_TAP") else { return Ok(()) };
    bridge.test_tap.records = records.parse().map_err(|e| format!("APPLIANCE_TEST_TAP={records:?}: {e}"))?;
    bridge.test_tap.validate()
}

/// Writes the control URL and secret to `APPLIANCE_TEST_CONTROL_FILE`, if it is set.
pub fn publish_control(url: &str, secret: &str) -> Result<(), String> {
    let Some(path) = std::env::var_os("APPLIANCE_TEST_CONTROL_FILE") else { return Ok(()) };
    let path = Path::new(&path);
    let text = format!("{{\"url\": \"{url}\", \"secret\": \"{secret}\"}}\n");
    // Written beside and renamed into place, so a polling test never reads half a file.
    let partial = path.with_extension("partial");
    let write = || -> std::io::Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&partial, path)
    };
    write().map_err(|e| format!("APPLIANCE_TEST_CONTROL_FILE {}: {e}", path.display()))
}
