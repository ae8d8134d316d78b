#!/usr/bin/env bash
# Query-bias removal on a trained Qwen2-shaped model (issue 17): the same extend
# conversion with the bias kept, folded (default), along the mean direction, and
# dropped, at 50% and 25% of the GQA cache; perplexity on the first 200,000 characters
# of WikiText-2 (ctx 256), calibration on tinystories-calib.txt; each removal's cost
# on the held-out calibration tail is in its report (query_bias).
# Usage: bash scripts/query_bias_table.sh [MODEL_DIR] [OUT_DIR]   (MLAR_DATA, MLAR_CLI from the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-/work/artifacts/qwen2ish}
OUT=${2:-build-qbias}
DATA=${MLAR_DATA:-../shared/data}
BIN=${MLAR_CLI:-build/bin/mla-retrofit}  # MLAR_CLI: another build (e.g. build-cuda on the GPU machine)
mkdir -p "$OUT"
head -c 200000 "$DATA/text/wikitext2-test.raw" > "$OUT/wiki200k.txt"
"$BIN" eval "$MODEL" --text "$OUT/wiki200k.txt" --ctx 256 --kv-dtype f32 --json > "$OUT/source.json"
for budget in 0.5 0.25; do
  for qb in keep fold mean drop; do
    tag="b${budget}-${qb}"
    "$BIN" convert "$MODEL" --rope-mode extend --calib "$DATA/text/tinystories-calib.txt" \
      --kv-budget "$budget" --latent-norm calibrated --query-bias "$qb" \
      --out "$OUT/$tag" --force --report "$OUT/$tag.convert.json"
    "$BIN" eval "$OUT/$tag" --text "$OUT/wiki200k.txt" --ctx 256 --kv-dtype f32 --json > "$OUT/$tag.eval.json"
    if [ "$qb" != keep ]; then
      "$BIN" export "$OUT/$tag" --format deepseek-v3 --out "$OUT/$tag.ds" --force
      "$BIN" eval "$OUT/$tag.ds" --text "$OUT/wiki200k.txt" --ctx 256 --kv-dtype f32 --json > "$OUT/$tag.ds.eval.json"
    fi
  done
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def ppl(p): return json.load(open(p))["perplexity"] if os.path.exists(p) else None
print("source perplexity:", ppl(f"{out}/source.json"))
print("| budget | query bias | WikiText-2 ppl | exported ppl | vs keep | held-out max dlogit | held-out ppl kept -> removed |")
print("|---|---|---|---|---|---|---|")
for b in ("0.5", "0.25"):
    keep = ppl(f"{out}/b{b}-keep.eval.json")
    for qb in ("keep", "fold", "mean", "drop"):
        t = f"{out}/b{b}-{qb}"
        p = ppl(f"{t}.eval.json"); e = ppl(f"{t}.ds.eval.json")
        r = json.load(open(f"{t}.convert.json"))["query_bias"]
        held = f"{r['max_abs_logit_diff']:.4g} | {r['heldout_perplexity_kept']:.3f} -> {r['heldout_perplexity']:.3f}" if r.get("removed") else "- | -"
        print(f"| {b} | {qb} | {p:.3f} | {e if e is None else round(e, 3)} | {100 * (p / keep - 1):+.2f}% | {held} |")
PY
