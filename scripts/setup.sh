#!/usr/bin/env bash
# Installs what building cta-stream needs on a fresh Debian/Ubuntu machine (idempotent):
# cmake + libcurl headers (librdkafka's build), clang + libclang (RocksDB bindings), OpenSSL
# headers (schema registry client). Extra packages for tests are passed as arguments.
set -euo pipefail

packages=(cmake libcurl4-openssl-dev libclang-dev clang libssl-dev pkg-config build-essential "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
# The first build compiles RocksDB and librdkafka (20.3 and 29.5 minutes on two fresh 2-core
# machines, measured 2026-12-04 and 2026-12-02; see README); keep the target directory outside
# the checkout so later clones reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cta-stream/target}"
