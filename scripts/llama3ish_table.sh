#!/usr/bin/env bash
# The llama3ish table of docs/compression.md: WikiText-2 perplexity (first 200,000
# characters of wikitext2-test.raw, --ctx 256) of `mla-retrofit convert --rope-mode
# extend` for rope strategies x kv methods at 50% and 25% of the GQA KV cache, in the
# project's own form (no latent norm) and the exportable one (`--target transformers`:
# uniform ranks, calibrated latent norm), with each conversion's time. Calibrated on
# tinystories-calib.txt (all of it), CLI defaults otherwise (`--choice fast`), no training.
#
#   scripts/llama3ish_table.sh MODEL OUTDIR            # the subset (about 30 min on 2 cores)
#   MLAR_GRID=full scripts/llama3ish_table.sh MODEL OUTDIR   # every cell (about 3 h)
#
# MODEL: the llama3ish HF directory (../shared/data/models/llama3ish). OUTDIR receives
# TAG.json (convert --report), TAG.eval.json (eval --json) and TAG.log per run; existing
# results are reused, so an interrupted run resumes and `full` after the subset only runs
# what is missing. The table is printed and written to OUTDIR/table.md.
#
# Grids:
#   subset  CLI defaults at 50% and 25%; every rope strategy (kv method attn, the default)
#           at 25%, uniform and rorope at 50%; the TransMLA baseline (rorope + bkv-pca,
#           real PCA, NoPE queries unchanged) at 50% and 25%; each run plain and exportable.
#   full    additionally every strategy x kv method at both budgets, plain and exportable.
# Environment: MLAR_BUILD (directory holding bin/mla-retrofit, default build), MLAR_DATA
# (default ../shared/data), MLAR_THREADS (default 2), MLAR_GRID (subset or full).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
data=${MLAR_DATA:-$root/../shared/data}
threads=${MLAR_THREADS:-2}
grid=${MLAR_GRID:-subset}
model=${1:?usage: $0 MODEL OUTDIR}
out=${2:?usage: $0 MODEL OUTDIR}
[[ -x "$bin" ]] || { echo "no $bin: build first (scripts/build.sh) or set MLAR_BUILD" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
[[ $grid == subset || $grid == full ]] || { echo "MLAR_GRID must be subset or full" >&2; exit 1; }
mkdir -p "$out"
text=$out/wikitext2-200k.txt
[[ -s $text ]] || head -c 200000 "$data/text/wikitext2-test.raw" >"$text"
calib=$data/text/tinystories-calib.txt
strategies=(rorope high low uniform 2norm)
methods=(bkv-pca pca svd attn)
published=(--rope-pca real --nope-rotation none --value-refit-tokens 0)  # TransMLA's construction, no value refit
exportable=(--target transformers)

# run TAG ARGS...: one conversion and its evaluation (skipped when both are there).
run() {
  local tag=$1
  shift
  [[ -s "$out/$tag.json" && -s "$out/$tag.eval.json" ]] && return 0
  [[ -s "$out/$tag.refused" ]] && return 0
  echo "== $tag: $*" >&2
  if ! "$bin" convert "$model" --rope-mode extend --calib "$calib" --threads "$threads" --out "$out/model-tmp" --force \
    --report "$out/$tag.json.tmp" "$@" >"$out/$tag.log" 2>&1; then
    # A refusal (e.g. an exportable conversion whose rope sizes the DeepSeek formats cannot
    # derive) is a cell of its own; anything else stops the script.
    grep -q '^error: ' "$out/$tag.log" || { cat "$out/$tag.log" >&2; exit 1; }
    grep '^error: ' "$out/$tag.log" >"$out/$tag.refused"
    cat "$out/$tag.refused" >&2
    return 0
  fi
  "$bin" eval "$out/model-tmp" --text "$text" --ctx 256 --threads "$threads" --json -q >"$out/$tag.eval.json.tmp"
  mv "$out/$tag.json.tmp" "$out/$tag.json"
  mv "$out/$tag.eval.json.tmp" "$out/$tag.eval.json"
}
# both TAG ARGS...: plain and exportable.
both() {
  local tag=$1
  shift
  run "$tag" "$@"
  run "$tag-export" "$@" "${exportable[@]}"
}

[[ -s "$out/source.eval.json" ]] || "$bin" eval "$model" --text "$text" --ctx 256 --threads "$threads" --json -q >"$out/source.eval.json"
both "default-0.25" --kv-budget 0.25
both "transmla-0.25" --kv-budget 0.25 --rope-strategy rorope --kv-method bkv-pca "${published[@]}"
for s in "${strategies[@]}"; do
  both "project-$s-attn-0.25" --kv-budget 0.25 --rope-strategy "$s"
done
both "default-0.5" --kv-budget 0.5
both "transmla-0.5" --kv-budget 0.5 --rope-strategy rorope --kv-method bkv-pca "${published[@]}"
for s in uniform rorope; do
  both "project-$s-attn-0.5" --kv-budget 0.5 --rope-strategy "$s"
done
if [[ $grid == full ]]; then
  for b in 0.25 0.5; do
    for s in "${strategies[@]}"; do
      for m in "${methods[@]}"; do
        both "project-$s-$m-$b" --kv-budget "$b" --rope-strategy "$s" --kv-method "$m"
      done
    done
  done
fi

src=$(jq .perplexity "$out/source.eval.json")
cell() {  # TAG: "ppl (ratio; strategy d_r[/freqfold] + r; seconds)", "refused" or "-" when not run
  if [[ -s "$out/$1.refused" ]]; then echo "refused"; return; fi
  if [[ ! -s "$out/$1.eval.json" ]]; then echo "-"; return; fi
  local p
  p=$(jq .perplexity "$out/$1.eval.json")
  printf '%.1f (%.2fx; %s + %s; %.0f s)' "$p" "$(jq -n "$p / $src")" \
    "$(jq -r '"\(.rope_strategy // .options.rope_strategy) \(.qk_rope_dim)\(if .freqfold > 1 then "/\(.freqfold)" else "" end)"' "$out/$1.json")" \
    "$(jq .mla.kv_lora_rank "$out/$1.json")" "$(jq .timings.total "$out/$1.json")"
}

tables() {
  printf 'Source perplexity: %.2f. Cells: perplexity (ratio to the source; rope strategy d_r[/freqfold] + r;\n' "$src"
  echo "conversion seconds, wall, 2 threads on a shared 2-core machine). Plain: no latent norm; exportable:"
  echo "--target transformers; refused: no rope size of the strategy is exportable. '-': not run (MLAR_GRID=full)."
  for b in 0.5 0.25; do
    echo
    echo "#### $(jq -rn "$b * 100 | round")% of the GQA KV cache"
    echo
    echo "| run | plain | exportable |"
    echo "| --- | --- | --- |"
    echo "| **CLI defaults** (rope strategy auto, kv method attn) | $(cell "default-$b") | $(cell "default-$b-export") |"
    echo "| TransMLA (rorope + bkv-pca, real PCA, NoPE queries unchanged) | $(cell "transmla-$b") | $(cell "transmla-$b-export") |"
    echo
    for kind in "" "-export"; do
      echo "Rope strategy x kv method, $([[ -n $kind ]] && echo exportable || echo plain) (project rope separation):"
      echo
      echo "| rope strategy | bkv-pca | pca | svd | attn |"
      echo "| --- | --- | --- | --- | --- |"
      for s in "${strategies[@]}"; do
        local row="| $s"
        for m in "${methods[@]}"; do row+=" | $(cell "project-$s-$m-$b$kind")"; done
        echo "$row |"
      done
      echo
    done
  done
}

tables | tee "$out/table.md"
