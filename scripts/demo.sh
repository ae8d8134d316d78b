#!/usr/bin/env bash
# The main job, end to end on stories260K: build, inspect, import to an HF
# directory, generate, evaluate perplexity from the .bin, the .gguf and the
# imported directory, convert to MLA exactly (repeat, plain and absorbed) and
# compare with the source. Outputs go to ${MLAR_OUT:-out/demo}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
data=${MLAR_DATA:-$root/../shared/data}
m=$data/models/stories260K
out=${MLAR_OUT:-$root/out/demo}
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
[[ -f $m/stories260K.bin ]] || { echo "demo: $m/stories260K.bin not found (set MLAR_DATA)" >&2; exit 1; }
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }
step "inspect"
"$bin" inspect "$m/stories260K.bin" --tokenizer "$m/tok512.bin"
step "import the llama2.c checkpoint as an HF Llama directory"
"$bin" import "$m/stories260K.bin" --tokenizer "$m/tok512.model" --out "$out/stories260K-hf" --force
step "generate (greedy)"
"$bin" generate "$m/stories260K.bin" --tokenizer "$m/tok512.bin" --prompt "Once upon a time" -n 40 --temperature 0
step "generate (temperature 0.8, top-p 0.9, seed 7)"
"$bin" generate "$out/stories260K-hf" --prompt "Once upon a time" -n 40 --temperature 0.8 --top-p 0.9 --seed 7
step "perplexity on tinystories-dev.txt, ctx 256"
for src in "$m/stories260K.bin --tokenizer $m/tok512.model" "$m/stories260K.gguf" "$out/stories260K-hf"; do
  # shellcheck disable=SC2086
  "$bin" eval $src --text "$data/text/tinystories-dev.txt" --ctx 256
done

step "exact MLA retrofit (--rope-mode repeat), plain and with stored absorption"
"$bin" convert "$m/stories260K.bin" --tokenizer "$m/tok512.model" --rope-mode repeat --out "$out/stories260K-mla-repeat" --force
"$bin" convert "$m/stories260K.bin" --tokenizer "$m/tok512.model" --rope-mode repeat --absorb --out "$out/stories260K-mla-repeat-absorbed" --force
step "compare the source with the exact conversions (whole dev text, ctx 256)"
for mla in "$out/stories260K-mla-repeat" "$out/stories260K-mla-repeat-absorbed"; do
  "$bin" compare "$m/stories260K.bin" "$mla" --tokenizer "$m/tok512.model" --text "$data/text/tinystories-dev.txt" --ctx 256 --max-tokens 0 -q
done
step "KV cache: the source, the exact retrofit, and a DeepSeek layout at 25% (r = 12, d_r = 4)"
"$bin" inspect "$m/stories260K.bin" --kv-lora-rank 12 --qk-rope-dim 4
"$bin" inspect "$out/stories260K-mla-repeat"
