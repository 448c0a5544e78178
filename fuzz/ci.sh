#!/usr/bin/env bash
# CI's short pass: every fuzz target for $1 seconds (default 15), mutating a copy of
# its committed corpus, with the limits of a campaign. A crash fails the run and
# leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-15}
bin=target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d)
for t in lrt state audio compressed resample metadata words onnx; do
  mkdir -p "$work/$t" "artifacts/$t"
  cp corpus/"$t"/* "$work/$t/"
  if ! "$bin/$t" -seed=1 -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" "$work/$t" >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log"
    echo "fuzz target $t crashed: the input is in fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | sed "s/^/$t: /"
done
rm -rf "$work"
