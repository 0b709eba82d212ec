#!/usr/bin/env bash
# Every test of the project, from a fresh machine with only the Rust toolchain:
# installs what the tests need (tansu, cargo-nextest, Debian packages), checks formatting and lints, then runs the unit, property
# and end-to-end tests (each end-to-end scenario against the embedded broker and tansu).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TANSU_VERSION=0.6.0
# dynostore: memory storage; libsql: sqlite storage, which keeps SCRAM users across the restart
# that turns authentication on (tests/security). An older install without it is redone.
TANSU_FEATURES=dynostore,libsql
tansu_has_sqlite() {
  /usr/bin/python3 -c '
import json, os, sys
installs = json.load(open(os.path.expanduser("~/.cargo/.crates2.json")))["installs"]
ok = any(k.startswith("tansu ") and "libsql" in v.get("features", []) for k, v in installs.items())
sys.exit(0 if ok else 1)' 2>/dev/null
}
if ! command -v tansu >/dev/null 2>&1 || ! tansu_has_sqlite; then
  echo "== installing tansu $TANSU_VERSION, a Kafka-compatible broker the tests run against (several minutes, once)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES"
fi

# Debian packages the tests use: Chromium and its driver (the pages, in a real headless
# browser), python3-yaml (the compose files), shellcheck (the scripts), systemd
# (systemd-analyze, the units), iproute2 (network namespaces for the multi-host test),
# stunnel4 (TLS in front of tansu, which ignores its own --cert); and the build's: OpenSSL's
# headers and pkg-config (librdkafka's TLS and SASL SCRAM).
NEEDED=""
pkg-config --exists openssl >/dev/null 2>&1 || NEEDED="$NEEDED libssl-dev pkg-config"
[ -x /usr/bin/chromium ] || NEEDED="$NEEDED chromium"
[ -x /usr/bin/chromedriver ] || NEEDED="$NEEDED chromium-driver"
/usr/bin/python3 -c "import yaml" >/dev/null 2>&1 || NEEDED="$NEEDED python3-yaml"
command -v shellcheck >/dev/null 2>&1 || NEEDED="$NEEDED shellcheck"
command -v systemd-analyze >/dev/null 2>&1 || NEEDED="$NEEDED systemd"
command -v ip >/dev/null 2>&1 || NEEDED="$NEEDED iproute2"
command -v stunnel >/dev/null 2>&1 || NEEDED="$NEEDED stunnel4"
if [ -n "$NEEDED" ]; then
  echo "== installing Debian packages the tests need:$NEEDED"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $NEEDED >/dev/null
fi

# The outside client of tests/outside.rs (tests/outside/evclient.py) runs in a venv of its
# own under the target directory, where that test looks for it, with pinned packages.
OUTSIDE_VENV="${CARGO_TARGET_DIR:-target}/outside-venv"
OUTSIDE_PACKAGES="confluent-kafka==2.16.1 cryptography==50.0.2 ocpp==2.1.0 websockets==17.4"
# Ready when it has every package at its pinned version: a changed pin installs again.
outside_venv_ready() {
  # shellcheck disable=SC2086
  "$OUTSIDE_VENV/bin/python" - $OUTSIDE_PACKAGES >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != pinned for name, pinned in (p.split("==") for p in sys.argv[1:])))
PY
}
if ! outside_venv_ready; then
  echo "== preparing $OUTSIDE_VENV, the Python of the outside client's tests (once)"
  # Debian's Python makes venvs only with python3-venv (ensurepip) installed.
  if ! /usr/bin/python3 -m venv --clear "$OUTSIDE_VENV" >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    /usr/bin/python3 -m venv --clear "$OUTSIDE_VENV"
  fi
  # shellcheck disable=SC2086
  "$OUTSIDE_VENV/bin/pip" install --quiet --disable-pip-version-check $OUTSIDE_PACKAGES
fi

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest, which runs the test binaries side by side (a few minutes, once)"
  cargo install cargo-nextest --locked
fi

# Every test in a process of its own, the binaries side by side; the groups and limits that
# keep that safe are in .config/nextest.toml. nextest does not run doctests: the crate has
# none; with the first, add `cargo test --doc --locked` here.
echo "== tests"
cargo nextest run --all-targets --locked
