#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: ./scripts/test.sh
# Needs only the Rust toolchain, gcc and python3; anything else the tests need is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# Before anything is built: clang compiles turn's kernel relay at build time, and the tests
# need Chromium, coturn's clients, iproute2 and the rest (idempotent, quiet when all is there).
step "test dependencies"
bash scripts/install-test-deps.sh
if ! command -v tc >/dev/null; then
    echo "tc (iproute2) is missing after install-test-deps.sh" >&2
    exit 1
fi

step "format"
cargo fmt --all -- --check

# Tests build with the test-only tap (bridge/src/sfu/tap.rs); release builds never have it, so
# both variants are linted.
TEST_FEATURES=(--features appliance/test-tap)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked "${TEST_FEATURES[@]}" -- -D warnings

step "tests"
# Release mode: the relay tests push hundreds of thousands of packets through real sockets.
cargo test --workspace --release --locked "${TEST_FEATURES[@]}"

step "benchmarks build"
cargo bench --workspace --locked --no-run

echo
echo "all tests passed"
