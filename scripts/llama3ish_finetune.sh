#!/usr/bin/env bash
# Fine-tuning on llama3ish (issue 12 item 5): the exportable 25% conversion with
# layer-wise distillation inside convert (`--target transformers --distill-steps N`: the
# layer-wise stage), then end-to-end training (cross-entropy + --kl-weight x KL to the
# source, attention tensors), against the fair control: the source GQA model through the
# same e2e run (same text, seed, batches, steps, learning rate, tensors trained and KL to
# itself). Training text: tinystories-calib.txt + WikiText-2 test from character 200,000
# on; evaluation: the first 200,000 characters of WikiText-2 test (text neither saw), ctx 256.
#
#   scripts/llama3ish_finetune.sh MODEL OUTDIR [CONVERTED]
#
# CONVERTED (optional): an existing conversion to start from (e.g. scripts/llama3ish_budgets.sh's
# OUTDIR/distill300-0.25); without it the script converts. Environment: MLAR_BUILD, MLAR_DATA,
# MLAR_THREADS (default 2), STEPS (e2e updates, default 150), DISTILL (default 200), LR (e2e
# peak learning rate, default 1e-3), KL (default 1), TRAIN (attn or all, default attn).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
data=${MLAR_DATA:-$root/../shared/data}
threads=${MLAR_THREADS:-2}
steps=${STEPS:-150}
distill=${DISTILL:-200}
lr=${LR:-1e-3}
kl=${KL:-1}
tensors=${TRAIN:-attn}
model=${1:?usage: $0 MODEL OUTDIR [CONVERTED]}
out=${2:?usage: $0 MODEL OUTDIR [CONVERTED]}
[[ -x "$bin" ]] || { echo "no $bin: build first (scripts/build.sh) or set MLAR_BUILD" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
mkdir -p "$out"
wiki=$data/text/wikitext2-test.raw
calib=$data/text/tinystories-calib.txt
text=$out/wikitext2-200k.txt
train_text=$out/train-text.txt
[[ -s $text ]] || head -c 200000 "$wiki" >"$text"
[[ -s $train_text ]] || { cat "$calib"; printf '\n'; tail -c +200001 "$wiki"; } >"$train_text"

converted=${3:-$out/converted}
if [[ ! -d $converted ]]; then
  "$bin" convert "$model" --rope-mode extend --calib "$calib" --kv-budget 0.25 --target transformers \
    --distill-steps "$distill" --threads "$threads" --out "$converted" --report "$out/converted.json" -q
fi
ppl() { "$bin" eval "$1" --text "$text" --ctx 256 --threads "$threads" --json -q >"$2"; jq .perplexity "$2"; }
# The e2e run both models go through.
e2e=(--teacher "$model" --mode e2e --kl-weight "$kl" --train "$tensors" --text "$train_text" --steps "$steps"
  --lr "$lr" --batch 8 --seq 256 --seed 1 --warmup 10 --clip 1 --threads "$threads" --progress-every 20 --force -q)
train() {  # FROM TO
  [[ -s "$out/$2.eval.json" ]] && return 0
  echo "== e2e $1 -> $2" >&2
  local t0=$SECONDS
  "$bin" finetune "$1" "${e2e[@]}" --out "$out/$2" >"$out/$2.log" 2>&1 || { cat "$out/$2.log" >&2; exit 1; }
  echo $((SECONDS - t0)) >"$out/$2.seconds"
  ppl "$out/$2" "$out/$2.eval.json" >/dev/null
}
[[ -s $out/source.eval.json ]] || ppl "$model" "$out/source.eval.json" >/dev/null
[[ -s $out/converted.eval.json ]] || ppl "$converted" "$out/converted.eval.json" >/dev/null
train "$converted" converted-e2e
train "$model" source-e2e

p() { printf '%.2f' "$(jq .perplexity "$out/$1.eval.json")"; }
tps() {  # tokens/s of a run: batch x seq x steps / seconds (wall, training only)
  printf '%.0f' "$(jq -n "8 * 256 * $steps / $(cat "$out/$1.seconds")")"
}
{
  echo "| model | KV cache | WikiText-2 ppl (first 200k chars, ctx 256) |"
  echo "| --- | --- | --- |"
  echo "| source GQA | 100% | $(p source) |"
  echo "| 25% exportable + --distill-steps $distill (converted) | 25% | $(p converted) |"
  echo "| the same, + e2e $steps ($(tps converted-e2e) tokens/s, $(cat "$out/converted-e2e.seconds") s) | 25% | **$(p converted-e2e)** |"
  echo "| control: source + the same e2e $steps ($(tps source-e2e) tokens/s, $(cat "$out/source-e2e.seconds") s) | 100% | **$(p source-e2e)** |"
  echo
  printf 'Ratio fine-tuned 25%% / fine-tuned source: %.3f\n' \
    "$(jq -n "$(jq .perplexity "$out/converted-e2e.eval.json") / $(jq .perplexity "$out/source-e2e.eval.json")")"
} | tee "$out/table.md"
