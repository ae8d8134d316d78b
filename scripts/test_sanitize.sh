#!/usr/bin/env bash
# Builds mla-retrofit with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DMLAR_SANITIZE=address,undefined, RelWithDebInfo, every UB check fatal) into
# ${MLAR_ASAN_BUILD:-build-asan} and runs the whole ctest suite there.
#   scripts/test_sanitize.sh [CTEST_ARGS...]      e.g. -R Gguf
# MLAR_ASAN_TARGETS="test_gguf test_tokenizer" builds (and so runs) only those.
# Expect 3-5x the time of scripts/test.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
build=${MLAR_ASAN_BUILD:-$root/build-asan}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMLAR_SANITIZE=address,undefined \
  -DMLAR_BUILD_BENCH=OFF >/dev/null
if [[ -n ${MLAR_ASAN_TARGETS:-} ]]; then
  # shellcheck disable=SC2086
  cmake --build "$build" -j"$(nproc)" --target $MLAR_ASAN_TARGETS
else
  cmake --build "$build" -j"$(nproc)"
fi

export MLAR_DATA=${MLAR_DATA:-$root/../shared/data}
# Leak checking stays on: OpenBLAS keeps its buffers in mmap'd memory and libgomp
# its threads alive until exit, neither of which LeakSanitizer reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
