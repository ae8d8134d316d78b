#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, -DMLAR_FUZZ=ON: ASan + UBSan +
# coverage) into ${MLAR_FUZZ_BUILD:-build-fuzz} and runs each target for
# SECONDS_PER_TARGET (default 30) on a temporary copy of its seed corpus
# fuzz/corpus/<target>/ (the committed corpus never grows).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: safetensors gguf hf_config deepseek_v3_config hf_tokenizer llama2c_model
# llama2c_tokenizer spm_model (default: all). A crashing, leaking, hanging or over-allocating input
# is saved as ${MLAR_FUZZ_ARTIFACTS:-build-fuzz/artifacts}/<target>-crash-<sha1>
# (replay: build-fuzz/fuzz/fuzz_<target> FILE) and the script exits 1.
# MLAR_FUZZ_KEEP_CORPUS=DIR keeps each run's grown corpus in DIR/<target>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))
all=(safetensors gguf hf_config deepseek_v3_config hf_tokenizer llama2c_model llama2c_tokenizer spm_model)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
build=${MLAR_FUZZ_BUILD:-$root/build-fuzz}
artifacts=${MLAR_FUZZ_ARTIFACTS:-$build/artifacts}

bash "$root/scripts/setup.sh"  # clang, libclang-rt-dev (libFuzzer), libomp-dev among the rest
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMLAR_FUZZ=ON -DMLAR_BUILD_TESTS=OFF -DMLAR_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzzers

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

# Longest input per target: a few times the largest seed.
max_len() {
  case $1 in
    gguf) echo 65536 ;;
    hf_tokenizer) echo 32768 ;;
    llama2c_model | llama2c_tokenizer | spm_model) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case $1 in
    hf_config | deepseek_v3_config | hf_tokenizer) cat "$root/fuzz/dict/json.dict" "$root/fuzz/dict/$1.dict" ;;
    safetensors | gguf) cat "$root/fuzz/dict/$1.dict" ;;
    llama2c_model | llama2c_tokenizer) cat "$root/fuzz/dict/llama2c.dict" ;;
  esac
}

# halt at the first report; leaks are checked (the readers must not leak on errors).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for t in "${targets[@]}"; do
  [[ -x $build/fuzz/fuzz_$t ]] || { echo "fuzz: unknown target $t (known: ${all[*]})" >&2; exit 2; }
  cp -r "$root/fuzz/corpus/$t" "$work/$t"
  dict "$t" >"$work/$t.dict"
  opts=(-max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-")
  [[ -s $work/$t.dict ]] && opts+=(-dict="$work/$t.dict")
  echo "== fuzz_$t: ${secs}s"
  rc=0
  "$build/fuzz/fuzz_$t" "${opts[@]}" "$work/$t" >"$work/$t.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    grep -E '^#[0-9]+ +DONE|^stat::' "$work/$t.log" || true
  else
    tail -n 80 "$work/$t.log"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n1)
  summary+=("$(printf '%-18s %6ss %10s execs  %s' "$t" "$secs" "${runs:-?}" "$([[ $rc == 0 ]] && echo ok || echo "FAILED (rc $rc)")")")
  ((rc == 0)) || failed+=("$t")
  if [[ -n ${MLAR_FUZZ_KEEP_CORPUS:-} ]]; then
    mkdir -p "$MLAR_FUZZ_KEEP_CORPUS/$t"
    cp -n "$work/$t"/* "$MLAR_FUZZ_KEEP_CORPUS/$t"/ 2>/dev/null || true
  fi
done

echo
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}; inputs in $artifacts" >&2
  exit 1
fi
