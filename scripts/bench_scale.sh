#!/usr/bin/env bash
# Real model sizes (docs/benchmarks.md, "Real model sizes"), in one command from the
# repository root:
#
#   bash scripts/bench_scale.sh
#
# Builds, writes random-weight BF16 HF directories of Llama-3-8B's shape (32 layers;
# and 8 and 16 layers of the same width for the depth rows) with bench/make_random_hf
# under ${MLAR_BIG:-build-bench/big} (16 + 5.6 + 9.1 GB: needs about 50 GB free with
# the conversions' outputs), then
#  1. bench_scale: inspect, eval (two windows of 256), generate -n 16, convert repeat,
#     convert extend (25%, 4,096 calibration tokens, fixed choices), export to HF
#     DeepSeek-V3 and GGUF, with wall time and peak anonymous / file-backed memory;
#     convert (repeat, extend) at 8, 16 and 32 layers;
#  2. bench_context: decode tokens/s of the default random Llama-shaped model with
#     F32 and with BF16 weights (bf16 cache), contexts 16 and 4096.
# JSON in ${MLAR_BENCH_DIR:-build-bench}/scale-*.json. About an hour on 2 cores.
# MLAR_SCALE_STEPS overrides bench_scale's --steps; MLAR_SCALE_DEPTHS=0 skips the depth rows.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAR_BUILD:-$root/build}
data=${MLAR_DATA:-$root/../shared/data}
out=${MLAR_BENCH_DIR:-$root/build-bench}
big=${MLAR_BIG:-$out/big}
[[ -d $data/models/llama3ish ]] || { echo "bench_scale: no $data/models/llama3ish (set MLAR_DATA)" >&2; exit 1; }

bash "$root/scripts/setup.sh"
MLAR_BUILD=$build bash "$root/scripts/build.sh"
mkdir -p "$out" "$big"
bin=$build/bin
for layers in 32 16 8; do
  dir=$big/llama3-8b-l$layers
  [[ -f $dir/config.json ]] || "$bin/make_random_hf" --shape llama3-8b --layers "$layers" --out "$dir" \
    --tokenizer-from "$data/models/llama3ish"
done

echo "== 1/2 bench_scale on the 8B shape"
depths=""
[[ ${MLAR_SCALE_DEPTHS:-1} != 0 ]] && depths="$big/llama3-8b-l8,$big/llama3-8b-l16,$big/llama3-8b-l32"
"$bin/bench_scale" --cli "$bin/mla-retrofit" --model "$big/llama3-8b-l32" \
  --calib "$data/text/tinystories-calib.txt" --text "$data/text/tinystories-dev.txt" --work "$big/work" \
  ${MLAR_SCALE_STEPS:+--steps "$MLAR_SCALE_STEPS"} ${depths:+--depth-models "$depths"} --json "$out/scale-8b.json"

echo "== 2/2 bench_context: F32 against BF16 weights"
for wd in f32 bf16; do
  "$bin/bench_context" --forms gqa --contexts 16,4096 --kv-dtypes bf16 --weight-dtype "$wd" --decode 8 --reps 2 \
    --naive-max-context 1 --json "$out/scale-decode-$wd.json"
done
