#!/usr/bin/env bash
# The main job, end to end on stories260K: build, inspect, import to an HF
# directory, generate, evaluate perplexity from the .bin, the .gguf and the
# imported directory, convert to MLA exactly (repeat, plain and absorbed) and
# compare with the source; then compress to 25% of the KV cache (extend),
# fine-tune, and export to DeepSeek-V3 and GGUF deepseek2. Outputs go to
# ${MLAR_OUT:-out/demo}.
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
step "compare the source with the exact conversions (whole dev text, ctx 256; float32 caches: an exactness check)"
for mla in "$out/stories260K-mla-repeat" "$out/stories260K-mla-repeat-absorbed"; do
  "$bin" compare "$m/stories260K.bin" "$mla" --tokenizer "$m/tok512.model" --text "$data/text/tinystories-dev.txt" --ctx 256 --max-tokens 0 --kv-dtype f32 -q
done
step "KV cache: the source, the exact retrofit, and a DeepSeek layout at 25% (r = 12, d_r = 4)"
"$bin" inspect "$m/stories260K.bin" --kv-lora-rank 12 --qk-rope-dim 4
"$bin" inspect "$out/stories260K-mla-repeat"

step "compressed retrofit to the DeepSeek layout at 25% of the KV cache (calibrated, no training)"
"$bin" convert "$m/stories260K.bin" --tokenizer "$m/tok512.model" --rope-mode extend --target transformers --kv-budget 0.25 --latent-scale natural \
  --calib "$data/text/tinystories-calib.txt" --eval-text "$data/text/tinystories-dev.txt" \
  --ctx 256 --out "$out/stories260K-mla-25" --report "$out/stories260K-mla-25.json" --force
step "fine-tune it: layerwise against the source, then end to end with KL to the source (short runs)"
train="--text $data/text/tinystories-calib.txt --batch 8 --seq 256 --seed 1 --warmup 10 --clip 1 --steps 60 --progress-every 20 --force"
# shellcheck disable=SC2086
"$bin" finetune "$out/stories260K-mla-25" --teacher "$m/stories260K.bin" --mode layerwise --train attn --lr 3e-3 $train \
  --out "$out/stories260K-mla-25-lw"
# shellcheck disable=SC2086
"$bin" finetune "$out/stories260K-mla-25-lw" --teacher "$m/stories260K.bin" --mode e2e --kl-weight 1 --train attn \
  --lr 2e-3 $train --out "$out/stories260K-mla-25-ft"
for model in "$m/stories260K.bin --tokenizer $m/tok512.model" "$out/stories260K-mla-25" "$out/stories260K-mla-25-ft"; do
  # shellcheck disable=SC2086
  "$bin" eval $model --text "$data/text/tinystories-dev.txt" --ctx 256 -q
done
step "export the fine-tuned model to HF DeepSeek-V3 and GGUF deepseek2, reload both and compare"
"$bin" export "$out/stories260K-mla-25-ft" --format deepseek-v3 --out "$out/stories260K-deepseek-v3" --force
"$bin" export "$out/stories260K-mla-25-ft" --format gguf --out "$out/stories260K-deepseek2.gguf" --force
for exported in "$out/stories260K-deepseek-v3" "$out/stories260K-deepseek2.gguf"; do
  "$bin" compare "$out/stories260K-mla-25-ft" "$exported" --text "$data/text/tinystories-dev.txt" --ctx 256 --kv-dtype f32 -q
done
"$bin" generate "$out/stories260K-deepseek2.gguf" --prompt "Once upon a time" -n 40 --temperature 0
