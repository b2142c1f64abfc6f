#!/usr/bin/env bash
# Peers in the project's own run (BENCHMARKS.md, "Peers on one broker"): starts a noida-db Kafka
# broker, produces the per-station-count workload as JSON (stations of data/stations.csv drawn by
# ridership, fixed seed) and runs Quix Streams and faust-streaming on it, each counting per station
# in a RocksDB table with a changelog topic; then the project's worker on the same broker
# (`bench throughput`, its own Avro workload of the same kind). Every run checks its counts
# against the produced ones and fails otherwise. Writes one markdown table to stdout and --out.
#
# The Python peers run in a venv this script creates under $CTA_PEERS_CACHE (default
# ~/.cache/cta-stream/peers); nothing here is part of the product.
#
#   scripts/peers.sh [--records 1000000] [--faust-records 200000] [--seed 7] [--partitions 4]
#                    [--out FILE] [--work-dir DIR] [--no-worker] [--no-quix] [--no-faust]
#                    [--faust-store rocksdb://|memory://] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

records=1000000
faust_records=200000
seed=7
partitions=4
out=""
work=""
keep=0
faust_store="rocksdb://"
run_worker=1 run_quix=1 run_faust=1
command_line="scripts/peers.sh${*:+ $*}"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=$2; shift 2 ;;
    --faust-records) faust_records=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --work-dir) work=$2; shift 2 ;;
    --faust-store) faust_store=$2; shift 2 ;;
    --no-worker) run_worker=0; shift ;;
    --no-quix) run_quix=0; shift ;;
    --no-faust) run_faust=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "peers.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$records" "$faust_records" "$seed" "$partitions"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "peers.sh: '$n' is not a whole number" >&2; exit 2; }
done
[ "$records" -ge 1 ] && [ "$faust_records" -ge 1 ] && [ "$partitions" -ge 1 ] ||
  { echo "peers.sh: record counts and partitions must be at least 1" >&2; exit 2; }

started_at=$(date -u +"%Y-%m-%d %H:%M UTC")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/cta-peers.XXXXXX")
mkdir -p "$work"
work=$(cd "$work" && pwd)
[ -n "$out" ] || out="$work/peers-$stamp.md"
loads="$work/loads.txt"
: >"$loads"
note_load() { echo "$1 $2 $(cut -d' ' -f1 /proc/loadavg)" >>"$loads"; }
log() { echo "peers: $*" >&2; }

# --- Python peers: a venv of their own ---------------------------------------------------------
cache="${CTA_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cta-stream/peers}"
venv="$cache/venv"
req="$ROOT/scripts/peers/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
  log "creating the venv $venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/requirements.installed"; then
  log "installing the peers into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/requirements.installed"
fi
py() { PYTHONWARNINGS=ignore PYTHONPATH="$ROOT/scripts/peers" "$venv/bin/python" "$@"; }
# A peer's run, bounded to 2 hours, its output in LOG: run_peer LOG SCRIPT ARGS...
run_peer() {
  local log=$1
  shift
  PYTHONWARNINGS=ignore PYTHONPATH="$ROOT/scripts/peers" timeout 7200 "$venv/bin/python" \
    "$ROOT/scripts/peers/$@" </dev/null >"$log" 2>&1
}

# --- The worker's binaries ---------------------------------------------------------------------
if [ "$run_worker" -eq 1 ]; then
  log "building bench and cta (release)"
  # With a test target in the build, Cargo resolves the dependencies' features as for
  # `cargo test --release` / `--all-targets` (dev-dependencies included), so the cache of the
  # test build is reused; the bins alone (`cargo run --bin bench`) would recompile a dozen crates.
  cargo build --release --bin bench --bin cta --test bench
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    py -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
fi

# --- Broker (noida-db) and, for the worker's Avro, a schema registry (`cta platform`) ----------
noida=$(command -v noida-db || true)
if [ -z "$noida" ]; then
  [ -x "$venv/bin/noida-db" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check noida-db
  noida="$venv/bin/noida-db"
fi
free_port() { py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
groups=()
cleanup() {
  local pg
  # Each service runs in a process group of its own (setsid): the noida-db launcher runs the
  # broker as its child, so the whole group goes.
  for pg in "${groups[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  sleep 1
  for pg in "${groups[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
  if [ "$keep" -eq 0 ]; then
    rm -rf "$work/noida" "$work/quix-state" "$work/faust-data" "$work/worker-data"
  fi
}
trap cleanup EXIT
wait_port() { # port name
  local i
  for i in $(seq 1 300); do
    if py -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "peers.sh: $2 did not listen on 127.0.0.1:$1 within 30 s (log: $work/$2.log)" >&2
  exit 1
}

kafka_port=$(free_port)
brokers="127.0.0.1:$kafka_port"
setsid "$noida" start --only kafka --kafka-port "$kafka_port" --data-dir "$work/noida" \
  >"$work/noida-db.log" 2>&1 &
groups+=("$!")
wait_port "$kafka_port" noida-db
noida_version=$("$noida" version 2>/dev/null | tail -1 | sed 's/^noida-db //')
log "noida-db ($noida_version) on $brokers"

results_worker="" results_quix="" results_faust=""

# One Python peer: its own topic of N JSON records, then its count, bounded in time; the result
# is $work/KEY.json (absent when the run failed). peer_phase KEY LABEL N SCRIPT EXTRA-ARGS...
peer_phase() {
  local key=$1 label=$2 n=$3 script=$4
  shift 4
  log "$label: producing $n JSON records"
  py "$ROOT/scripts/peers/workload.py" --brokers "$brokers" --topic "peers-$key-turnstile" \
    --records "$n" --partitions "$partitions" --seed "$seed" --out "$work/$key-expected.json"
  rm -f "$work/$key.json"
  note_load "$key" start
  log "$label: counting"
  run_peer "$work/$key.log" "$script" --brokers "$brokers" --topic "peers-$key-turnstile" \
    --expected "$work/$key-expected.json" --out "$work/$key.json" "$@" ||
    log "$label run failed (log: $work/$key.log)"
  note_load "$key" end
  grep -a -E "^(Quix|Faust|error):" "$work/$key.log" | sed "s/\x1b\[[0-9;?]*[a-zA-Z]//g" >&2 || true
}
if [ "$run_quix" -eq 1 ]; then
  peer_phase quix "Quix Streams" "$records" quix_count.py --state-dir "$work/quix-state"
  results_quix="$work/quix.json"
fi
if [ "$run_faust" -eq 1 ]; then
  peer_phase faust "faust-streaming (store $faust_store)" "$faust_records" faust_count.py \
    --partitions "$partitions" --data-dir "$work/faust-data" --store "$faust_store"
  results_faust="$work/faust.json"
fi

if [ "$run_worker" -eq 1 ]; then
  registry_port=$(free_port)
  CTA_PLATFORM_FILE="$work/platform.json" RUST_LOG=warn setsid "$target_dir/release/cta" platform \
    --registry-addr "127.0.0.1:$registry_port" >"$work/registry.log" 2>&1 &
  groups+=("$!")
  wait_port "$registry_port" registry
  results_worker="$work/worker.json"
  rm -f "$results_worker"
  note_load worker start
  log "worker: bench throughput --records $records on $brokers"
  mkdir -p "$work/worker-data"
  RUST_LOG=warn "$target_dir/release/bench" throughput --records "$records" --seed "$seed" \
    --partitions "$partitions" --brokers "$brokers" \
    --schema-registry-url "http://127.0.0.1:$registry_port" --work-dir "$work/worker-data" \
    --json >"$work/worker.json.tmp" && mv "$work/worker.json.tmp" "$results_worker" ||
    log "worker run failed"
  note_load worker end
fi

py "$ROOT/scripts/peers/report.py" ${results_worker:+--worker "$results_worker"} \
  ${results_quix:+--quix "$results_quix"} ${results_faust:+--faust "$results_faust"} \
  --loads "$loads" --command "$command_line" --date "$started_at" \
  --broker "noida-db $noida_version (\`noida-db start --only kafka\`), $partitions partitions; the worker's schema registry: \`cta platform\`" \
  --out "$out"
log "table written to $out"
