#!/usr/bin/env bash
# The GPU tests, on a machine with an NVIDIA GPU and the CUDA toolkit (nvcc, cuBLAS):
#   bash scripts/test_cuda.sh
# builds with -DMLAR_CUDA=ON into build-cuda (Ninja, every core) and runs tests/cuda
# (each CUDA op against its CPU op). Without a GPU every test fails, saying so.
# MLAR_BUILD=dir picks another build folder; extra arguments go to the test binary
# (e.g. --gtest_filter=Attention.*).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAR_BUILD:-$root/build-cuda}
# shellcheck source=gpu_env.sh
source "$root/scripts/gpu_env.sh"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMLAR_CUDA=ON -DMLAR_BUILD_TESTS=ON \
  -DMLAR_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target test_cuda bench_cuda_attention bench_cuda_decode mla-retrofit
export MLAR_DATA=${MLAR_DATA:-$root/../shared/data}
"$build/tests/test_cuda" "$@"
