#!/usr/bin/env bash
# Boots the firmware on an emulated Cortex-M4F and checks it against the host: the
# same program built for the host must print the same transcripts, steps and logits
# checksum, and its transcripts must be `linrt asr`'s for the same sample.
# Needs qemu-system-arm (.ci/run installs it). Prints the board's report.
set -euo pipefail
cd "$(dirname "$0")/.."
board=$(mktemp) host=$(mktemp) cli=$(mktemp)
trap 'rm -f "$board" "$host" "$cli"' EXIT

cargo build --locked -q --release -p linrt-firmware --target thumbv7em-none-eabihf
# -icount shift=0: one instruction per virtual nanosecond, so the firmware's SysTick
# count is an instruction count.
timeout 600 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic -icount shift=0 \
  -semihosting-config enable=on,target=native \
  -kernel target/thumbv7em-none-eabihf/release/linrt-firmware > "$board"
cat "$board"
cargo run --locked -q -p linrt-firmware > "$host"
cargo run --locked -q -p linrt-tools -- asr models/asr-commands/sample.wav 2>/dev/null > "$cli"

# The board's extra lines: its banner, instruction count and stack depth; and the pool
# line of both, whose byte counts differ between 32- and 64-bit targets (pointer sizes).
if ! diff <(grep -v -e '^linrt firmware' -e '^instructions' -e '^stack' -e '^static pool' "$board") \
          <(grep -v -e '^static pool' "$host"); then
  echo "firmware check: the board and the host disagree (diff above)" >&2
  exit 1
fi
if ! diff <(grep '^\[' "$host") <(grep '^\[' "$cli"); then
  echo "firmware check: the firmware's transcripts differ from linrt asr's (diff above)" >&2
  exit 1
fi
echo "firmware check: board = host = linrt asr ($(grep -c '^\[' "$host") transcripts, $(grep checksum "$host"))"
