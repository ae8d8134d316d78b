#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with ctest.
# Tests that need ../shared/data find it through $MLAR_DATA or ../shared/data.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
export MLAR_DATA=${MLAR_DATA:-$root/../shared/data}
ctest --test-dir "${MLAR_BUILD:-$root/build}" --output-on-failure -j"$(nproc)"
