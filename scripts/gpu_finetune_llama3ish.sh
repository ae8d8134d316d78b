#!/usr/bin/env bash
# The recipe on one GPU against a control (issue 16's fine-tuning acceptance), on the GPU machine:
#   bash scripts/gpu_finetune_llama3ish.sh DATA_DIR OUT_DIR [RESULTS_JSON]
# DATA_DIR holds models/llama3ish/ (HF Llama directory) and text/{tinystories-calib.txt,wikitext2-test.raw}.
# Converts llama3ish at 25% of the KV cache (extend, --target transformers, --latent-scale natural, DeepSeek-V3
# export), trains it with mlar_train (layerwise, then e2e with KL to the source), trains the source itself with
# the same e2e run (the control), evaluates all four on the first 200,000 characters of WikiText-2 (trained on:
# tinystories-calib + WikiText-2 from character 200,000 on), then runs mlar_train.bench once. Prints a table and
# writes RESULTS_JSON (default OUT_DIR/finetune_llama3ish.json) after every stage. docs/finetune.md.
# Knobs (environment): LW_STEPS (200), E2E_STEPS (400), BATCH (32), SEQ (256), EVAL_DEVICE (cuda; falls back to
# cpu when the CLI has no CUDA backend), BENCH_STEPS (8; 0 = no bench; skipped when less than 45 s of BUDGET_S (200) is left), THREADS (nproc).
# Uses MLAR_CLI when it names a binary that runs here, else builds the CLI as scripts/test_gpu_train.sh does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:?data dir (models/llama3ish, text/)}" && pwd)
out=${2:?output dir}
mkdir -p "$out"
out=$(cd "$out" && pwd)
json=${3:-$out/finetune_llama3ish.json}
# shellcheck source=gpu_env.sh
source "$root/scripts/gpu_env.sh"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
cli=$(mlar_gpu_cli)
cd "$root"
PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" python3 -m mlar_train.recipe --cli "$cli" \
  --source "$data/models/llama3ish" --calib "$data/text/tinystories-calib.txt" --wiki "$data/text/wikitext2-test.raw" \
  --out "$out" --json "$json" --threads "${THREADS:-$(nproc)}" --lw-steps "${LW_STEPS:-200}" \
  --e2e-steps "${E2E_STEPS:-400}" --batch "${BATCH:-32}" --seq "${SEQ:-256}" --eval-device "${EVAL_DEVICE:-cuda}" \
  --bench-steps "${BENCH_STEPS:-8}" --budget-s "${BUDGET_S:-200}"
