#!/usr/bin/env bash
# Sets up and runs the tests (unit + end-to-end on the embedded broker), after format and lint
# checks, then a short throughput benchmark that fails unless the worker's counts are exact
# (speed is reported, not checked). Set CTA_TEST_BROKERS and CTA_TEST_SCHEMA_REGISTRY_URL to run
# the tests against another Kafka-protocol broker and registry.
# Extra packages: chromium (tests/e2e/browser.rs drives the live status page headless),
# postgresql (tests/integrations/postgres.rs starts its own server on a free port),
# docker-compose (tests/platform/compose.rs validates docker-compose.yml; no Docker engine needed),
# openssl (tests/integrations/integrations.rs makes a CA and runs a TLS server for --schema-registry-ca).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh chromium postgresql docker-compose openssl
# noida-db (PyPI): a Kafka-protocol broker with transactions and read_committed, for
# tests/faults/exactly_once.rs (the embedded mock broker does not honour read_committed).
# 0.2.3's binary needs glibc 2.39 (its wheel says manylinux_2_17); 0.2.2 runs on Debian 12.
if ! noida-db version >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --force-reinstall 'noida-db==0.2.2'
  hash -r
fi
# tansu 0.6 (crates.io), optional: tests/faults/static_membership.rs runs kill -9 restarts on it
# when scripts/tansu.sh has installed it (a 20-minute build) or CTA_TEST_TANSU names a binary.
TANSU="${CTA_TANSU_ROOT:-/var/cache/cta-stream/tansu}/bin/tansu"
if [ -z "${CTA_TEST_TANSU:-}" ] && [ -x "$TANSU" ]; then
  export CTA_TEST_TANSU="$TANSU"
fi
# ksql-python-ng (PyPI): a ksqlDB client library that tests/e2e/ksql_api.rs runs against the
# worker's ksqlDB-compatible endpoint, in its own virtualenv (found through CTA_KSQL_PYTHON).
# httpx 0.28 dropped the `cert` argument that ksql-python-ng 0.29 passes, hence the pin.
KSQL_VENV="${CTA_KSQL_VENV:-$HOME/.cache/cta-stream/ksql-venv}"
if ! "$KSQL_VENV/bin/python" -c "import ksql, httpx; assert httpx.__version__ == '0.27.2'" >/dev/null 2>&1; then
  python3 -m venv "$KSQL_VENV"
  "$KSQL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "ksql-python-ng==0.29.0.1" "httpx[http2]==0.27.2"
fi
export CTA_KSQL_PYTHON="$KSQL_VENV/bin/python"
# Every crate of the workspace: the application, the stream core (crates/stream) and the
# benchmarks (crates/bench).
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
# The stream core's examples, run on their in-process Kafka, output checked.
./scripts/examples.sh
# Exit code 1 when the turnstile table's counts differ from the produced counts.
cargo run --release --bin bench -- throughput --records 50000
