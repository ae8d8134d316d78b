#!/usr/bin/env bash
# Deeper budgets on llama3ish (issue 12 item 2): 25%, 12.5% and 6.25% of the GQA KV
# cache, training-free (plain and exportable) against the exportable conversion with
# `--distill-steps 100` and `300` (layer-wise distillation inside convert, on the
# calibration text; the latent at its natural scale). Perplexity on the first 200,000
# characters of wikitext2-test.raw at --ctx 256; calibrated on tinystories-calib.txt.
#
#   scripts/llama3ish_budgets.sh MODEL OUTDIR      # about 25 min on 2 cores
#
# OUTDIR receives TAG/ (the model), TAG.json (convert --report), TAG.eval.json and TAG.log
# per run; finished runs are skipped. The table is printed and written to OUTDIR/table.md.
# OUTDIR/distill300-0.25 is the starting point of scripts/llama3ish_finetune.sh.
# Environment: MLAR_BUILD (directory holding bin/mla-retrofit, default build), MLAR_DATA
# (default ../shared/data), MLAR_THREADS (default 2), MLAR_BUDGETS (default "0.25 0.125
# 0.0625"), MLAR_DISTILL (default "100 300").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
data=${MLAR_DATA:-$root/../shared/data}
threads=${MLAR_THREADS:-2}
read -r -a budgets <<<"${MLAR_BUDGETS:-0.25 0.125 0.0625}"
read -r -a distill <<<"${MLAR_DISTILL:-100 300}"
model=${1:?usage: $0 MODEL OUTDIR}
out=${2:?usage: $0 MODEL OUTDIR}
[[ -x "$bin" ]] || { echo "no $bin: build first (scripts/build.sh) or set MLAR_BUILD" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
mkdir -p "$out"
text=$out/wikitext2-200k.txt
[[ -s $text ]] || head -c 200000 "$data/text/wikitext2-test.raw" >"$text"
calib=$data/text/tinystories-calib.txt

run() {  # TAG ARGS...: one conversion into OUTDIR/TAG and its evaluation
  local tag=$1
  shift
  [[ -s "$out/$tag.json" && -s "$out/$tag.eval.json" ]] && return 0
  echo "== $tag: $*" >&2
  "$bin" convert "$model" --rope-mode extend --calib "$calib" --threads "$threads" --out "$out/$tag" --force \
    --report "$out/$tag.json.tmp" "$@" >"$out/$tag.log" 2>&1 || { cat "$out/$tag.log" >&2; exit 1; }
  "$bin" eval "$out/$tag" --text "$text" --ctx 256 --threads "$threads" --json -q >"$out/$tag.eval.json.tmp"
  mv "$out/$tag.json.tmp" "$out/$tag.json"
  mv "$out/$tag.eval.json.tmp" "$out/$tag.eval.json"
}

[[ -s "$out/source.eval.json" ]] || "$bin" eval "$model" --text "$text" --ctx 256 --threads "$threads" --json -q >"$out/source.eval.json"
for b in "${budgets[@]}"; do
  run "free-$b" --kv-budget "$b"
  run "export-$b" --kv-budget "$b" --target transformers
  for n in "${distill[@]}"; do
    run "distill$n-$b" --kv-budget "$b" --target transformers --distill-steps "$n"
  done
done

src=$(jq .perplexity "$out/source.eval.json")
cell() {  # TAG: "ppl (ratio; seconds, distillation included)"
  [[ -s "$out/$1.eval.json" ]] || { echo "-"; return; }
  local p
  p=$(jq .perplexity "$out/$1.eval.json")
  printf '%.1f (%.2fx; %.0f s)' "$p" "$(jq -n "$p / $src")" "$(jq '.timings.total + (.timings.distill // 0)' "$out/$1.json")"
}
{
  printf 'Source perplexity %.2f. Cells: perplexity (ratio to the source; conversion seconds, wall, 2 threads).\n\n' "$src"
  head="| budget | d_r + r (exportable) | training-free, plain | training-free, exportable |"
  sep="| --- | --- | --- | --- |"
  for n in "${distill[@]}"; do head+=" exportable + --distill-steps $n |"; sep+=" --- |"; done
  echo "$head"
  echo "$sep"
  for b in "${budgets[@]}"; do
    row="| $(jq -rn "$b * 100")% | $(jq -r '"\(.qk_rope_dim) + \(.mla.kv_lora_rank)"' "$out/export-$b.json")"
    row+=" | $(cell "free-$b") | $(cell "export-$b")"
    for n in "${distill[@]}"; do row+=" | $(cell "distill$n-$b")"; done
    echo "$row |"
  done
} | tee "$out/table.md"
