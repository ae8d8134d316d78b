#!/usr/bin/env bash
# The one documented interop command, for the GPU machine (transformers + torch):
#   bash tools/interop/run_on_gpu.sh DATA_DIR OUT_DIR
# builds the CLI (no tests, no benchmarks) and runs interop.py, then check_qwen3.py. With MLAR_CLI set to a
# carried prebuilt binary (e.g. build-*/bin/mla-retrofit) that runs there, the build is skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:?data dir (with models/stories260K and text/)}
out=${2:?output dir}
# shellcheck source=../../scripts/gpu_env.sh
source "$root/scripts/gpu_env.sh"
# MLAR_CLI=path: use that prebuilt binary (carried along) when it runs here; else build.
cli=${MLAR_CLI:-}
if [[ -n "$cli" ]] && "$cli" --version >/dev/null 2>&1; then
  echo "using the prebuilt $cli"
else
  cmake -S "$root" -B "$root/build-interop" -DCMAKE_BUILD_TYPE=Release -DMLAR_BUILD_TESTS=OFF -DMLAR_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-interop" -j"$(nproc)" --target mla-retrofit >/dev/null
  cli="$root/build-interop/bin/mla-retrofit"
fi
# Both checks run even when the first finds a difference; the exit status is 1 if either failed.
rc=0
trained=()  # DATA_DIR/models/qwen2ish, qwen3ish (trained models: docs/query-bias.md, docs/serving.md) when there
[[ -d "$data/models/qwen2ish" ]] && trained+=(--qwen2 "$data/models/qwen2ish")
[[ -d "$data/models/qwen3ish" ]] && trained+=(--qwen3 "$data/models/qwen3ish")
python3 "$root/tools/interop/interop.py" --cli "$cli" --data "$data" --out "$out" "${trained[@]}" || rc=1
python3 "$root/tools/interop/check_qwen3.py" --cli "$cli" --out "$out/qwen3" || rc=1
exit $rc
