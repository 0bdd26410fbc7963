#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: ./scripts/test.sh
# Needs only the Rust toolchain, gcc and python3; anything else the tests need is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# Release mode: the relay tests push hundreds of thousands of packets through real sockets.
cargo test --workspace --release --locked

step "benchmarks build"
cargo bench --workspace --locked --no-run

echo
echo "all tests passed"
