#!/usr/bin/env bash
# Regenerates the tables of docs/compression.md: dev perplexity of stories260K after
# `mla-retrofit convert --rope-mode extend` for every rope strategy x kv method at 50%
# and 25% of the GQA KV cache, calibrated on tinystories-calib.txt, evaluated on
# tinystories-dev.txt at --ctx 256, no training.
#
#   scripts/compression_table.sh            # runs what is missing, prints the tables
#   scripts/compression_table.sh --update   # ... and writes them into docs/compression.md
#
# Two tables:
#   published   the rope separation as TransMLA / MHA2MLA define it: real PCA across
#               kv heads, NoPE queries unchanged (--rope-pca real --nope-rotation none)
#   project     this project's rope separation: complex PCA, mean-rotation NoPE
#               queries (the defaults)
# plus the CLI defaults alone (the project's method), a few ablations, and the
# strategies at a fixed qk_rope_dim of d/2 = 4 (with d = 8 and budgets of 16 or 32
# values, the held-out choice of d_r often keeps every frequency, where all strategies
# coincide).
# Each run writes its --report JSON under $MLAR_TABLE_DIR (default build-table/ in the
# repository); existing reports are reused, so an interrupted run resumes. One run
# takes ~25 s on one core; the whole grid (130 runs) about an hour. Environment: MLAR_BUILD (build
# directory holding bin/mla-retrofit, default build), MLAR_DATA (default ../shared/data),
# MLAR_CALIB_TOKENS (default 65536), MLAR_THREADS (default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
data=${MLAR_DATA:-$root/../shared/data}
out=${MLAR_TABLE_DIR:-$root/build-table}
tokens=${MLAR_CALIB_TOKENS:-65536}
threads=${MLAR_THREADS:-1}
update=0
[[ "${1:-}" == "--update" ]] && update=1
[[ -x "$bin" ]] || { echo "no $bin: build first (scripts/build.sh) or set MLAR_BUILD" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
mkdir -p "$out"

# The published methods: TransMLA's / MHA2MLA's rope separation, without this
# project's value refit.
published=(--rope-pca real --nope-rotation none --value-refit-tokens 0)
model=$data/models/stories260K/stories260K.bin
tok=$data/models/stories260K/tok512.model
calib=$data/text/tinystories-calib.txt
dev=$data/text/tinystories-dev.txt
strategies=(rorope high low uniform 2norm)
methods=(bkv-pca pca svd attn)
budgets=(0.5 0.25)

# run TAG ARGS...: one conversion, its report in $out/TAG.json (skipped when present).
run() {
  local tag=$1
  shift
  [[ -s "$out/$tag.json" ]] && return 0
  echo "== $tag: $*" >&2
  "$bin" convert "$model" --tokenizer "$tok" --rope-mode extend --calib "$calib" --calib-tokens "$tokens" \
    --choice exhaustive --attention-tokens 0 --eval-text "$dev" --ctx 256 --threads "$threads" --out "$out/model-tmp" --force \
    --report "$out/$tag.json.tmp" "$@" >"$out/$tag.log" 2>&1 || { cat "$out/$tag.log" >&2; exit 1; }
  mv "$out/$tag.json.tmp" "$out/$tag.json"
}

for b in "${budgets[@]}"; do
  run "default-$b" --kv-budget "$b"
  for s in "${strategies[@]}"; do
    for m in "${methods[@]}"; do
      run "published-$s-$m-$b" --kv-budget "$b" --rope-strategy "$s" --kv-method "$m" "${published[@]}"
      run "project-$s-$m-$b" --kv-budget "$b" --rope-strategy "$s" --kv-method "$m"
    done
  done
  # Ablations from the baseline (rorope + bkv-pca, published) one change at a time.
  run "abl-complex-$b" --kv-budget "$b" --rope-strategy rorope --kv-method bkv-pca --nope-rotation none --value-refit-tokens 0
  run "abl-mean-$b" --kv-budget "$b" --rope-strategy rorope --kv-method bkv-pca --rope-pca real --value-refit-tokens 0
  run "abl-attn-$b" --kv-budget "$b" --rope-strategy rorope --kv-method attn "${published[@]}"
  run "abl-refit-$b" --kv-budget "$b" --rope-strategy rorope --kv-method bkv-pca --rope-pca real --nope-rotation none
  run "abl-norefit-$b" --kv-budget "$b" --value-refit-tokens 0
  run "abl-parallel-$b" --kv-budget "$b" --calib-mode parallel
  run "abl-energy-$b" --kv-budget "$b" --rank-alloc energy
  for s in "${strategies[@]}"; do
    for m in bkv-pca attn; do
      run "fixed4-published-$s-$m-$b" --kv-budget "$b" --qk-rope-dim 4 --rope-strategy "$s" --kv-method "$m" \
        "${published[@]}"
      run "fixed4-project-$s-$m-$b" --kv-budget "$b" --qk-rope-dim 4 --rope-strategy "$s" --kv-method "$m"
    done
  done
done

cell() { jq -r '"\(.stages[-1].perplexity * 100 | round / 100) (\(.qk_rope_dim))"' "$out/$1.json"; }
stage() { jq -r --arg s "$2" '.stages[] | select(.stage == $s) | .perplexity * 100 | round / 100' "$out/$1.json"; }
# The converted model's perplexity: the last stage (low_rank, or final after the value refit).
last() { jq -r '.stages[-1].perplexity * 100 | round / 100' "$out/$1.json"; }

table() {  # table KIND BUDGET
  local kind=$1 b=$2
  echo "| rope strategy | bkv-pca | pca | svd | attn |"
  echo "| --- | --- | --- | --- | --- |"
  for s in "${strategies[@]}"; do
    local row="| $s"
    for m in "${methods[@]}"; do row+=" | $(cell "$kind-$s-$m-$b")"; done
    echo "$row |"
  done
}

tables() {
  local src
  src=$(stage "default-0.5" source)
  echo "Source (GQA) dev perplexity: $src. Cells: dev perplexity after conversion (chosen qk_rope_dim);"
  echo "calibration: ${tokens} tokens of tinystories-calib.txt, sequential; d_r (and rorope's freqfold, attn's"
  echo "key balance) chosen by held-out perplexity on the last 10% of the calibration text."
  for b in "${budgets[@]}"; do
    local pct
    pct=$(jq -r '.kv_fraction * 100 | round' "$out/default-$b.json")
    echo
    echo "#### ${pct}% of the GQA KV cache ($(jq -r .kv_bytes_per_token_after "$out/default-$b.json") of $(jq -r .kv_bytes_per_token_before "$out/default-$b.json") bytes per token)"
    echo
    echo "Published rope separation (real PCA, NoPE queries unchanged); **rorope + bkv-pca = TransMLA, the baseline**:"
    echo
    table published "$b"
    echo
    echo "This project's rope separation (complex PCA, mean-rotation NoPE queries):"
    echo
    table project "$b"
    local t
    echo
    echo "Every strategy at qk_rope_dim 4 (rorope: freqfold 2 or 4 by held-out perplexity):"
    echo
    echo "| rope strategy | published, bkv-pca | published, attn | project, bkv-pca | project, attn |"
    echo "| --- | --- | --- | --- | --- |"
    for s in "${strategies[@]}"; do
      echo "| $s | $(last "fixed4-published-$s-bkv-pca-$b") | $(last "fixed4-published-$s-attn-$b") |" \
        "$(last "fixed4-project-$s-bkv-pca-$b") | $(last "fixed4-project-$s-attn-$b") |"
    done
    echo
    echo "| run | rope separated (full rank) | final | qk_rope_dim |"
    echo "| --- | --- | --- | --- |"
    for t in "published-rorope-bkv-pca-$b:baseline (TransMLA: rorope + bkv-pca)" \
             "abl-complex-$b:baseline + complex PCA" "abl-mean-$b:baseline + mean rotation" \
             "abl-attn-$b:baseline + attn kv method" "abl-refit-$b:baseline + value refit" \
             "abl-norefit-$b:CLI defaults without the value refit" "default-$b:**CLI defaults** (this project)" \
             "abl-parallel-$b:defaults, --calib-mode parallel" "abl-energy-$b:defaults, --rank-alloc energy"; do
      local tag=${t%%:*} name=${t#*:}
      echo "| $name | $(stage "$tag" rope_separated) | $(last "$tag") | $(jq -r .qk_rope_dim "$out/$tag.json") |"
    done
  done
}

result=$(tables)
echo "$result"
if (( update )); then
  doc=$root/docs/compression.md
  tmp=$(mktemp)
  awk -v r="$result" '
    /<!-- table:begin -->/ { print; print r; skip = 1; next }
    /<!-- table:end -->/ { skip = 0 }
    !skip { print }' "$doc" >"$tmp"
  mv "$tmp" "$doc"
  echo "updated $doc" >&2
fi
