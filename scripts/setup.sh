#!/usr/bin/env bash
# Installs the Debian 12 packages mla-retrofit builds with (idempotent; needs root or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libopenblas-dev liblapacke-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
      libgtest-dev libgmock-dev libbenchmark-dev libsentencepiece-dev libpcre2-dev
      clang libclang-rt-dev libomp-dev)  # scripts/fuzz.sh: clang, libFuzzer runtime, OpenMP for clang
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
