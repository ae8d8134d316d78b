#!/usr/bin/env bash
# The Qwen3 rows of issue 13: `convert --rope-mode extend` of a Qwen3 model with its
# per-head q/k norms cached (exact score scales, n_kv values per token more) and
# calibrated (constants folded: exportable), at 50% and 25% of the GQA KV cache.
# Calibrated on tinystories-calib.txt; perplexity at --ctx 256 on the first 200,000
# characters of wikitext2-test.raw, for the source and each conversion.
#
#   scripts/qwen3_extend_table.sh MODEL_DIR     # e.g. /work/artifacts/qwen3ish
#
# Reports (JSON) and logs go to $MLAR_TABLE_DIR (default build-qwen3/). Environment:
# MLAR_BUILD (directory holding bin/mla-retrofit, default build), MLAR_DATA (default
# ../shared/data), MLAR_CALIB_TOKENS (default 65536), MLAR_THREADS (default 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MLAR_BUILD:-$root/build}/bin/mla-retrofit
data=${MLAR_DATA:-$root/../shared/data}
out=${MLAR_TABLE_DIR:-$root/build-qwen3}
tokens=${MLAR_CALIB_TOKENS:-65536}
threads=${MLAR_THREADS:-2}
model=${1:?usage: $0 MODEL_DIR}
[[ -x "$bin" ]] || { echo "no $bin: build first or set MLAR_BUILD" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
mkdir -p "$out"
text=$out/wikitext2-200k.txt
head -c 200000 "$data/text/wikitext2-test.raw" >"$text"
calib=$data/text/tinystories-calib.txt

"$bin" eval "$model" --text "$text" --ctx 256 --threads "$threads" --json >"$out/source.json"
printf '| conversion | KV fraction | ppl (wikitext2, 200k chars, ctx 256) |\n|---|---|---|\n'
printf '| source | 100%% | %.3f |\n' "$(jq .perplexity "$out/source.json")"
for b in 0.5 0.25; do
  for mode in cached calibrated; do
    tag=$mode-$b
    extra=()
    [[ $mode == calibrated ]] && extra=(--latent-norm calibrated)
    "$bin" convert "$model" --rope-mode extend --calib "$calib" --calib-tokens "$tokens" --kv-budget "$b" \
      --qk-norm "$mode" "${extra[@]}" --threads "$threads" --out "$out/$tag" --force -q \
      --report "$out/$tag-report.json" >"$out/$tag.log" 2>&1 || { cat "$out/$tag.log" >&2; exit 1; }
    "$bin" eval "$out/$tag" --text "$text" --ctx 256 --threads "$threads" --json >"$out/$tag.json"
    printf '| %s%s | %.1f%% | %.3f |\n' "$mode" "${extra:+ + latent norm}" \
      "$(jq '.kv_fraction * 100' "$out/$tag-report.json")" "$(jq .perplexity "$out/$tag.json")"
  done
done
