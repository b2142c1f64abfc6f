#!/usr/bin/env bash
# Sets up and runs the tests (unit + end-to-end on the embedded broker), after format and lint
# checks, then a short throughput benchmark that fails unless the worker's counts are exact
# (speed is reported, not checked). Set CTA_TEST_BROKERS and CTA_TEST_SCHEMA_REGISTRY_URL to run
# the tests against another Kafka-protocol broker and registry.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the headless browser test of the live status page (tests/browser.rs).
source scripts/setup.sh chromium
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
# Exit code 1 when the turnstile table's counts differ from the produced counts.
cargo run --release --bin bench -- throughput --records 50000
