#!/usr/bin/env bash
# Every test of the project, from a fresh machine with only the Rust toolchain:
# installs what the tests need (tansu, chromium), checks formatting and lints, then runs the unit, property
# and end-to-end tests (each end-to-end scenario against the embedded broker and tansu).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TANSU_VERSION=0.6.0
if ! command -v tansu >/dev/null 2>&1; then
  echo "== installing tansu $TANSU_VERSION, a Kafka-compatible broker the tests run against (several minutes, once)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
fi

# The pages are tested in a real headless Chromium, driven through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing chromium and chromium-driver (Debian packages) for the browser tests"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --all-targets --locked
