#!/usr/bin/env bash
# Builds, here, everything the device check runs on a GPU machine that has the NVIDIA
# driver and NVRTC but no Rust toolchain: the linrt binary with CUDA, the CUDA test
# executables, the models they use, and run.sh. Carry target/device-check to the
# machine and run `target/device-check/run.sh` there (one call, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=target/device-check
rm -rf "$out" && mkdir -p "$out/tests" "$out/models"
cargo build --locked --release -q -p linrt-tools --features cuda
cp target/release/linrt "$out/"
# The test executables of linrt-cuda, by name (ptx, gpu, and the unit tests).
cargo test --locked --release -q -p linrt-cuda --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | while read -r exe; do
      name=$(basename "$exe"); cp "$exe" "$out/tests/${name%%-*}"
    done
cp models/asr-commands/asr-commands.int8.lrt models/copy/copy.f32.lrt models/copy/copy.int8.lrt \
   models/digits-gen/digits-gen.int8.lrt "$out/models/"
# 64 token ids (0-9) as an int64 .npy, written without numpy.
python3 - "$out/models/tokens.npy" <<'PY'
import struct, sys
header = "{'descr': '<i8', 'fortran_order': False, 'shape': (64,), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(b"".join(struct.pack("<q", (i * 7 + 3) % 10) for i in range(64)))
PY
cp runtime/cuda/device-check/run.sh "$out/"
strip "$out/linrt" "$out"/tests/* 2>/dev/null || true
du -sh "$out"
