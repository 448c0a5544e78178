#!/usr/bin/env bash
# The device check, on a machine with a GPU (made by prepare.sh): finds the driver
# and NVRTC, runs the GPU tests (a skip is a failure here), times the models on the
# GPU against the CPU, and prints one table. Exit status: 0 when every check passed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# NVRTC: the toolkit's, else one a Python package carries (nvidia-cuda-nvrtc-cu1x,
# or torch's). linrt loads it as libnvrtc.so, so point a link of that name at it.
libs=$(mktemp -d)
nvrtc=$( (ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null; \
          find / -path /proc -prune -o -name 'libnvrtc.so*' -print 2>/dev/null) | grep -v builtins | head -1)
if [ -n "$nvrtc" ]; then
  nvrtc=$(readlink -f "$nvrtc")
  ln -sf "$nvrtc" "$libs/libnvrtc.so"
  export LD_LIBRARY_PATH="$libs:$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}"
fi
export LINRT_REQUIRE_GPU=1 LINRT_REQUIRE_NVRTC=1 LINRT_CUDA_CACHE="$libs/cache"
status=0
row() { printf '%-44s %s\n' "$1" "$2"; }
echo "=== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
echo "nvrtc: ${nvrtc:-not found}"
./linrt info
echo "=== tests"
for t in tests/*; do
  log=$(mktemp)
  if "$t" --test-threads 1 --nocapture >"$log" 2>&1; then result=pass; else result=FAIL; status=1; fi
  grep -E "max \|gpu|compute_|SKIPPED|panicked|test result" "$log" | sed 's/^/    /'
  row "$(basename "$t")" "$result"
done
echo "=== run: the GPU's outputs against the CPU's, same inputs"
for m in copy.f32:1e-5 copy.int8:2e-3; do
  name=${m%%:*}; tol=${m##*:}
  ./linrt run "models/$name.lrt" --input models/tokens.npy --output "$libs/$name.cpu.npy" 2>/dev/null
  if out=$(./linrt run "models/$name.lrt" --input models/tokens.npy --output "$libs/$name.gpu.npy" \
             --device cuda --expect "$libs/$name.cpu.npy" --tolerance "$tol" 2>&1); then r=pass; else r=FAIL; status=1; fi
  echo "$out" | sed 's/^/    /'
  row "run $name (tolerance $tol)" "$r"
done
echo "=== generate: greedy tokens on both devices"
for name in copy.f32 digits-gen.int8; do
  a=$(./linrt generate --model "models/$name.lrt" --greedy --tokens 10,1,2,3,4,10 --steps 24 --json 2>&1)
  b=$(./linrt generate --model "models/$name.lrt" --greedy --tokens 10,1,2,3,4,10 --steps 24 --json --device cuda 2>&1)
  if [ "$a" = "$b" ]; then r=pass; else r=FAIL; status=1; echo "    cpu: $a"; echo "    gpu: $b"; fi
  row "generate $name (greedy, identical tokens)" "$r"
done
echo "=== bench (µs per pass)"
for m in models/asr-commands.int8.lrt models/digits-gen.int8.lrt; do
  for b in 1 16 256; do
    echo "--- $(basename "$m") batch $b"
    ./linrt bench "$m" --device cuda --batch "$b" --steps 200 || status=1
  done
done
echo "=== $( [ $status = 0 ] && echo ALL PASSED || echo FAILURES ) "
exit $status
