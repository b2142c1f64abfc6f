#!/usr/bin/env bash
# Sets up and runs the tests (unit + end-to-end on the embedded broker), after format and lint
# checks. Set CTA_TEST_BROKERS and CTA_TEST_SCHEMA_REGISTRY_URL to run them against another
# Kafka-protocol broker and registry.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the headless browser test of the live status page (tests/browser.rs).
source scripts/setup.sh chromium
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
