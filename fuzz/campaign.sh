#!/usr/bin/env bash
# A fuzzing campaign: each target for its number of executions (the .lrt reader
# 10 million, the others 1 million by default), from the committed corpus, then the
# corpus minimised back into fuzz/corpus/<target> (libFuzzer -merge=1). Prints one
# line per target: executions, seconds, coverage (edges, features), corpus size.
#
#   fuzz/campaign.sh                      # all targets, issue 19's counts
#   fuzz/campaign.sh lrt=200000 state     # some targets, other counts
#   SANITIZER=none fuzz/campaign.sh       # without AddressSanitizer (faster)
#
# Crashes stop the target and stay in fuzz/artifacts/<target>/; copy each into
# fuzz/regressions/<target>/ once fixed, so tests/fuzz_corpus.rs keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")"
sanitizer=${SANITIZER:-address}
declare -A runs=([lrt]=10000000 [state]=1000000 [audio]=1000000 [compressed]=1000000 [resample]=1000000
                 [metadata]=1000000 [words]=1000000 [onnx]=1000000)
targets=()
for arg in "${@:-lrt state audio compressed resample metadata words onnx}"; do
  for t in $arg; do
    name=${t%%=*}
    [[ -n ${runs[$name]:-} ]] || { echo "no fuzz target $name" >&2; exit 2; }
    [[ $t == *=* ]] && runs[$name]=${t#*=}
    targets+=("$name")
  done
done
cargo +nightly fuzz build --sanitizer "$sanitizer"
bin=target/x86_64-unknown-linux-gnu/release
work=${WORK:-$(mktemp -d)}
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  cp corpus/"$t"/* "$work/$t/"
  start=$(date +%s)
  log="$work/$t.log"
  "$bin/$t" -runs="${runs[$t]}" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$work/$t" >"$log" 2>&1 || { echo "$t: crashed, see $log and artifacts/$t"; tail -30 "$log"; exit 1; }
  seconds=$(( $(date +%s) - start ))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  cov=$(sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 edges, \2 features/' <<<"$done_line")
  execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  # Minimise into the committed corpus.
  fresh=$(mktemp -d)
  "$bin/$t" -merge=1 -max_len=65536 "$fresh" "$work/$t" >/dev/null 2>&1
  rm -rf "corpus/$t"
  mv "$fresh" "corpus/$t"
  echo "$t: $execs executions in ${seconds}s, coverage $cov, corpus $(ls "corpus/$t" | wc -l) files ($sanitizer)"
done
