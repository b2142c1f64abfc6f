#!/usr/bin/env bash
# Runs the stream core's examples against their in-process Kafka and checks what they print
# against counts computed here from the same input with coreutils and awk.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=crates/stream/examples
# Built with the whole workspace: `-p cta-stream-core` alone would unify the dependencies'
# features differently and rebuild RocksDB.
cargo build --release --quiet --workspace --examples
bin="${CARGO_TARGET_DIR:-target}/release/examples"
run() { "$bin/$1"; }
export LC_ALL=C
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run word_count >"$out/word_count.txt"
tr -s ' \n' '\n\n' <"$dir/words.txt" | grep -v '^$' | sort | uniq -c |
  awk '{print $2 "\t" $1}' >"$out/word_count.want"
diff -u "$out/word_count.want" "$out/word_count.txt"

run windowed_clicks >"$out/windowed_clicks.txt"
awk 'NF == 2 {print int($1 / 60) * 60, $2}' "$dir/clicks.txt" | sort -k1,1n -k2,2 | uniq -c |
  awk '{print $2, $3, $1}' >"$out/windowed_clicks.want"
diff -u "$out/windowed_clicks.want" "$out/windowed_clicks.txt"
echo "examples: output as expected"
