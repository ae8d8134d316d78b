#!/usr/bin/env bash
# The GPU benchmarks (docs/benchmarks-gpu.md), on a machine with an NVIDIA GPU:
#   bash scripts/bench_cuda.sh [OUT_DIR]
# builds like scripts/test_cuda.sh, then times the decode attention kernels alone
# against the device's copy bandwidth, and convert --rope-mode extend of a 1B-shaped model on the
# GPU and the CPU; JSON into OUT_DIR (default bench-cuda-out/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAR_BUILD:-$root/build-cuda}
out=${1:-$root/bench-cuda-out}
mkdir -p "$out"
# shellcheck source=gpu_env.sh
source "$root/scripts/gpu_env.sh"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMLAR_CUDA=ON -DMLAR_BUILD_TESTS=OFF \
  -DMLAR_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_cuda_attention
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv | tee "$out/nvidia-smi.csv"
"$build/bin/bench_cuda_attention" --json "$out/attention.json"
"$build/bin/bench_cuda_attention" --forms deepseek,mla25 --contexts 16384,65536 --batches 1 --paths auto,tiled \
  --json "$out/attention_tiled.json"

# convert --rope-mode extend (25% of the cache, the default held-out choice, 16384 calibration tokens)
# of a Llama-3.2-1B-shaped random model, on the GPU, then the same command on the CPU (MLAR_CPU_CONVERT=0
# skips it: it takes minutes). Needs MLAR_DATA (or ../shared/data) for the calibration text and tokenizer.
data=${MLAR_DATA:-$root/../shared/data}
if [[ -f "$data/text/tinystories-calib.txt" ]]; then
  cmake --build "$build" -j"$(nproc)" --target mla-retrofit make_random_hf
  [[ -d "$out/l1b" ]] || "$build/bin/make_random_hf" --out "$out/l1b" --shape llama3-1b \
    --tokenizer-from "$data/models/llama3ish"
  devices=(cuda)
  [[ "${MLAR_CPU_CONVERT:-1}" == 1 ]] && devices+=(cpu)
  for dev in "${devices[@]}"; do
    "$build/bin/mla-retrofit" convert "$out/l1b" --rope-mode extend --kv-budget 0.25 \
      --calib "$data/text/tinystories-calib.txt" --calib-tokens 16384 --device "$dev" \
      --out "$out/l1b-mla25-$dev" --force --report "$out/convert_$dev.json" -q
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], {k: round(v, 1) for k, v in j['timings'].items()})" \
      "$out/convert_$dev.json" "$dev"
  done
else
  echo "bench_cuda: no $data/text/tinystories-calib.txt (set MLAR_DATA): the convert timing is skipped" >&2
fi
