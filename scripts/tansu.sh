#!/usr/bin/env bash
# Installs tansu 0.6 (a Kafka-protocol broker written in Rust) for the tests that run on it
# (tests/faults/static_membership.rs: kill -9 restarts on a broker that never expires a dead
# member). About 20 minutes of compiling on 2 cores, so scripts/test.sh does not do it: it uses
# tansu when this script has installed it (or CTA_TEST_TANSU points at a binary) and skips
# those tests otherwise.
set -euo pipefail
ROOT="${CTA_TANSU_ROOT:-/var/cache/cta-stream/tansu}"
if "$ROOT/bin/tansu" --version >/dev/null 2>&1; then
  echo "tansu already at $ROOT/bin/tansu"
  exit 0
fi
cargo install tansu --version '^0.6' --features dynostore,libsql --root "$ROOT"
