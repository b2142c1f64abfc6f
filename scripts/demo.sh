#!/usr/bin/env bash
# Sets up and runs the whole demo: embedded broker + schema registry, simulation, worker, and
# the status page on http://localhost:8889. Extra arguments go to `cta demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec cargo run --release --bin cta -- demo "$@"
