#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md, in one command (from the repository root):
#
#   bash scripts/benchmarks.sh [--update]
#
# Installs packages and builds as the README's commands do, then
#  1. converts stories260K to the DeepSeek layout at 25% of its KV cache (the CLI
#     defaults, calibrated on tinystories-calib.txt);
#  2. bench_context: decode tokens/s and KV bytes against context (512 .. 16K) for the
#     GQA source, the exact MLA form and the 25%-cache form, naive and absorbed, on a
#     random-weight Llama-shaped model (hidden 1024, 16 layers, 16 heads / 4 kv heads
#     of 64, FFN 2816, vocab 32000: 246 M parameters, 1 GB in float32) and on stories260K;
#  3. bench_convert: wall time and peak RSS of `convert` against model size (3 M to
#     722 M parameters with and without calibration; 2.8 G without);
#  4. bench_report: the plot and tables.
# Results: ${MLAR_BENCH_DIR:-build-bench}/{context-*.json,convert.json,benchmarks.svg,benchmarks.md}.
# --update also copies the plot to docs/benchmarks.svg and replaces the tables in
# docs/benchmarks.md (between the table markers). About 11 minutes on 2 cores after the build (7.7 in session 8; 10.5 in session 10,
# the value refit having made the calibrated conversions longer).
# Environment: MLAR_BUILD (default build), MLAR_DATA (default ../shared/data),
# MLAR_BENCH_LARGE (sizes converted without calibration; "" to skip),
# MLAR_BENCH_THREADS (default: all cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
update=0
[[ "${1:-}" == "--update" ]] && update=1
build=${MLAR_BUILD:-$root/build}
data=${MLAR_DATA:-$root/../shared/data}
out=${MLAR_BENCH_DIR:-$root/build-bench}
threads=${MLAR_BENCH_THREADS:-0}
large=${MLAR_BENCH_LARGE-3072,28,24,8,128,8192}
M=$data/models/stories260K
T=$data/text
[[ -f $M/stories260K.bin ]] || { echo "benchmarks: no $M/stories260K.bin (set MLAR_DATA)" >&2; exit 1; }

bash "$root/scripts/setup.sh"
MLAR_BUILD=$build bash "$root/scripts/build.sh"
mkdir -p "$out"
bin=$build/bin

echo "== 1/4 stories260K -> 25% of its KV cache (calibrated, CLI defaults)"
"$bin/mla-retrofit" convert "$M/stories260K.bin" --tokenizer "$M/tok512.model" --rope-mode extend \
  --calib "$T/tinystories-calib.txt" --calib-tokens 65536 --kv-budget 0.25 --out "$out/stories-25" --force -q

echo "== 2/4 decode against context"
"$bin/bench_context" --threads "$threads" --label "random Llama-shaped, 246 M parameters" \
  --json "$out/context-random.json"
"$bin/bench_context" --threads "$threads" --label "random Llama-shaped, 246 M parameters" --forms compressed,gqa \
  --contexts 512,4096,16384 --kv-dtypes f32,bf16 --naive-max-context 1 --decode 16 --reps 3 \
  --json "$out/bound-random.json"
# The same shape read from a file, as a user's model is (issue 14's --model variant).
"$bin/make_random_hf" --out "$out/random-246m" --shape 1024,16,16,4,64,2816,32000 --dtype f32 --force >/dev/null
"$bin/bench_context" --threads "$threads" --label "random Llama-shaped, 246 M parameters, from a file (make_random_hf)" \
  --model "$out/random-246m" --forms compressed,gqa --contexts 512,4096,16384 --kv-dtypes f32,bf16 \
  --naive-max-context 1 --decode 16 --reps 3 --json "$out/bound-random-file.json"
"$bin/bench_context" --threads "$threads" --label "stories260K" --model "$M/stories260K.bin" \
  --tokenizer "$M/tok512.model" --compressed "$out/stories-25" --decode 16 --reps 3 \
  --json "$out/context-stories.json"

echo "== 3/4 conversion cost against model size"
"$bin/bench_convert" --cli "$bin/mla-retrofit" --tokenizer "$M/tok512.model" --calib "$T/tinystories-calib.txt" \
  --threads "$threads" --large "$large" --work "$out/convert" --json "$out/convert.json"

echo "== 4/4 report"
"$bin/bench_report" --context "$out/context-random.json" --context "$out/context-stories.json" \
  --bound "$out/bound-random.json" --bound "$out/bound-random-file.json" --convert "$out/convert.json" --svg "$out/benchmarks.svg" >"$out/benchmarks.md"
cat "$out/benchmarks.md"
if ((update)); then
  cp "$out/benchmarks.svg" "$root/docs/benchmarks.svg"
  doc=$root/docs/benchmarks.md
  awk -v tables="$out/benchmarks.md" '
    /<!-- bench:begin -->/ { print; while ((getline line < tables) > 0) print line; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip { print }' "$doc" >"$doc.tmp"
  mv "$doc.tmp" "$doc"
  echo "updated docs/benchmarks.md and docs/benchmarks.svg"
fi
