#!/usr/bin/env bash
# The GPU benchmarks (docs/benchmarks-gpu.md), on a machine with an NVIDIA GPU:
#   bash scripts/bench_cuda.sh [OUT_DIR]
# builds like scripts/test_cuda.sh, then times the decode attention kernels alone
# against the device's copy bandwidth; JSON into OUT_DIR (default bench-cuda-out/).
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
