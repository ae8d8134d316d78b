#!/usr/bin/env bash
# Regenerates the fine-tuning results of docs/finetune.md on stories260K (about 10-15
# minutes on 2 cores). Outputs go to ${MLAR_OUT:-out/finetune}; the table is printed
# and written to results.md there. Uses the binary of ${MLAR_BUILD:-build} (built
# with scripts/build.sh when missing).
#
#   (a) the 25%-cache `extend` conversion: dev perplexity before fine-tuning, after
#       layerwise, after e2e (from the layerwise model), and e2e alone, vs the source
#       as it is and through the same e2e run.
#   (b) the exact `repeat` conversion fine-tuned vs the source GQA model fine-tuned
#       with the same data, updates, learning rate and seed.
# Training text: tinystories-calib.txt; evaluation: `eval --ctx 256` on tinystories-dev.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${MLAR_DATA:-$root/../shared/data}
m=$data/models/stories260K
calib=$data/text/tinystories-calib.txt
dev=$data/text/tinystories-dev.txt
out=${MLAR_OUT:-$root/out/finetune}
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
threads=${MLAR_THREADS:-2}
steps=${STEPS:-200}
[[ -f $m/stories260K.bin ]] || { echo "finetune_results: $m/stories260K.bin not found (set MLAR_DATA)" >&2; exit 1; }
[[ -x $bin ]] || bash "$root/scripts/build.sh"
mkdir -p "$out"
src="$m/stories260K.bin --tokenizer $m/tok512.model"
# Every training run: batches of 8 sequences of 256 tokens, seed 1, warmup 10, clip 1.
train="--text $calib --batch 8 --seq 256 --seed 1 --warmup 10 --clip 1 --steps $steps --threads $threads --progress-every 50 --force"

step() { printf '\n== %s\n' "$*" >&2; }
ppl() {  # dev perplexity of a model (args: model [--tokenizer ...])
  # shellcheck disable=SC2068
  "$bin" eval $@ --text "$dev" --ctx 256 --threads "$threads" -q | sed -n 's/.* perplexity \([0-9.]*\) over .*/\1/p'
}
start=$SECONDS

step "source model"
p_src=$(ppl $src)

step "(a) 25%-cache extend conversion"
# shellcheck disable=SC2086
"$bin" convert $src --rope-mode extend --kv-budget 0.25 --calib "$calib" --out "$out/extend25" --force \
  --report "$out/extend25-report.json" --threads "$threads" -q
p_ext=$(ppl "$out/extend25")
step "(a) layerwise: each attention block reproduces the source's attention output"
# shellcheck disable=SC2086
"$bin" finetune "$out/extend25" --teacher "$m/stories260K.bin" --mode layerwise --train attn --lr 3e-3 $train \
  --out "$out/extend25-layerwise"
p_lw=$(ppl "$out/extend25-layerwise")
step "(a) e2e from the layerwise model: cross-entropy + KL to the source"
# shellcheck disable=SC2086
"$bin" finetune "$out/extend25-layerwise" --teacher "$m/stories260K.bin" --mode e2e --kl-weight 1 --train attn \
  --lr 2e-3 $train --out "$out/extend25-layerwise-e2e"
p_lw_e2e=$(ppl "$out/extend25-layerwise-e2e")
step "(a) e2e alone (no layerwise stage), same settings"
# shellcheck disable=SC2086
"$bin" finetune "$out/extend25" --teacher "$m/stories260K.bin" --mode e2e --kl-weight 1 --train attn \
  --lr 2e-3 $train --out "$out/extend25-e2e"
p_e2e=$(ppl "$out/extend25-e2e")
step "(a) control: the source GQA model through the same e2e run (KL to itself)"
# shellcheck disable=SC2086
"$bin" finetune $src --teacher "$m/stories260K.bin" --mode e2e --kl-weight 1 --train attn \
  --lr 2e-3 $train --out "$out/gqa-e2e-control"
p_ctl=$(ppl "$out/gqa-e2e-control")

step "(b) exact repeat conversion vs the source, both fine-tuned the same way (e2e, --train all)"
# shellcheck disable=SC2086
"$bin" convert $src --rope-mode repeat --out "$out/repeat" --force -q
p_rep=$(ppl "$out/repeat")
# shellcheck disable=SC2086
"$bin" finetune "$out/repeat" --mode e2e --train all --lr 1e-3 $train --out "$out/repeat-ft"
p_rep_ft=$(ppl "$out/repeat-ft")
# shellcheck disable=SC2086
"$bin" finetune $src --mode e2e --train all --lr 1e-3 $train --out "$out/gqa-ft"
p_gqa_ft=$(ppl "$out/gqa-ft")

{
  echo "| model | KV cache (float32 bytes/token, 5 layers) | dev perplexity (ctx 256) |"
  echo "|---|---|---|"
  echo "| source GQA (stories260K) | 1280 | $p_src |"
  echo "| (a) extend 25%, converted | 320 | $p_ext |"
  echo "| (a) extend 25%, layerwise ($steps updates) | 320 | $p_lw |"
  echo "| (a) extend 25%, layerwise + e2e ($steps + $steps) | 320 | $p_lw_e2e |"
  echo "| (a) extend 25%, e2e only ($steps) | 320 | $p_e2e |"
  echo "| (a) control: source GQA, the same e2e run ($steps) | 1280 | $p_ctl |"
  echo "| (b) repeat, converted (exact) | 1280 | $p_rep |"
  echo "| (b) repeat, fine-tuned ($steps, --train all) | 1280 | $p_rep_ft |"
  echo "| (b) source GQA, fine-tuned ($steps, --train all) | 1280 | $p_gqa_ft |"
  echo
  echo "extend 25%: $(grep -E '"(kv_lora_rank|qk_nope_head_dim|qk_rope_head_dim|v_head_dim|latent_norm)"' \
    "$out/extend25/config.json" | tr -d ' \n')"
  echo "steps $steps, threads $threads, $((SECONDS - start)) s"
} | tee "$out/results.md"
