//! Compiles the in-kernel ChannelData relay (`src/offload/relay.bpf.c`) with clang's BPF
//! target, when clang is there.
//!
//! Without clang the daemon builds all the same, with the `turn_kernel_relay` cfg unset: it
//! then refuses a configuration that asks for `kernel-relay-interface`, naming the cause,
//! and the test command (which installs clang first) fails rather than test a build without
//! the fast path.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/offload/relay.bpf.c";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(turn_kernel_relay)");
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=TURN_BPF_CLANG");
    let clang = env::var("TURN_BPF_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("relay.bpf.o");
    let multiarch =
        format!("/usr/include/{}-linux-gnu", env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I", &multiarch, "-c", SOURCE, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(status) if status.success() => println!("cargo:rustc-cfg=turn_kernel_relay"),
        Ok(status) => panic!("{clang} failed to compile {SOURCE} ({status})"),
        Err(e) => {
            println!(
                "cargo:warning=turn: no kernel relay in this build: cannot run `{clang}` ({e}); \
                 install clang (scripts/install-test-deps.sh does) for the in-kernel ChannelData relay"
            );
            // A path that does not exist makes cargo run this script again on every build,
            // so installing clang is enough to get the kernel relay on the next one.
            println!("cargo:rerun-if-changed=/usr/bin/clang");
        }
    }
}
