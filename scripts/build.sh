#!/usr/bin/env bash
# Configures and builds mla-retrofit (Release) into ${MLAR_BUILD:-build}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAR_BUILD:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
