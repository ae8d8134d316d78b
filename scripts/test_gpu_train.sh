#!/usr/bin/env bash
# The GPU tests of the PyTorch trainer (python/mlar_train), on the GPU machine:
#   bash scripts/test_gpu_train.sh DATA_DIR OUT_DIR [RESULTS_JSON]
# DATA_DIR holds models/stories260K/{stories260K.bin,tok512.model} and
# text/{tinystories-calib.txt,tinystories-dev.txt}; with models/llama3ish/ (an HF Llama directory)
# the first-step checks also run on llama3ish. Builds the CLI (Release, no tests, no benchmarks) into
# build-gputrain unless MLAR_CLI names a prebuilt binary that runs here. Prints a table and writes
# RESULTS_JSON (default OUT_DIR/gpu_train.json); exit status 1 when a check fails. docs/finetune.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:?data dir (models/stories260K, text/)}" && pwd)
out=${2:?output dir}
mkdir -p "$out"
out=$(cd "$out" && pwd)
json=${3:-$out/gpu_train.json}
# shellcheck source=gpu_env.sh
source "$root/scripts/gpu_env.sh"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
cli=$(mlar_gpu_cli)
python3 -m unittest discover -s "$root/python/mlar_train/tests" -t "$root/python" 2>&1 | tail -3
cd "$root"
PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" python3 -m mlar_train.gpu_checks --cli "$cli" --data "$data" \
  --out "$out" --json "$json"
