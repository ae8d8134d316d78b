# Sourced by the GPU-machine scripts. That machine (Ubuntu 24.04) has every library
# the build needs except PCRE2's development files; carry Debian's libpcre2-dev and
# libpcre2-8-0 .debs in .pcre2-debs/ (`apt-get download libpcre2-dev libpcre2-8-0`
# here) and this unpacks them into .pcre2/ (never into /) and points pkg-config there.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! pkg-config --exists libpcre2-8 2>/dev/null; then
  if compgen -G "$_root/.pcre2-debs/*.deb" >/dev/null; then
    for f in "$_root"/.pcre2-debs/*.deb; do dpkg -x "$f" "$_root/.pcre2"; done
    _pc="$_root/.pcre2/usr/lib/x86_64-linux-gnu/pkgconfig"
    sed -i "s|^prefix=.*|prefix=$_root/.pcre2/usr|" "$_pc"/*.pc
    export PKG_CONFIG_PATH="$_pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$_root/.pcre2/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    echo "gpu_env: libpcre2-8 not found and no .pcre2-debs/ to unpack" >&2
  fi
fi

# mlar_gpu_cli: prints the absolute path of an mla-retrofit that runs here: $MLAR_CLI when
# it does, else one built (Release, no tests or benchmarks) into build-gputrain. What it
# did goes to stderr.
mlar_gpu_cli() {
  local cli=${MLAR_CLI:-} t0
  if [[ -n "$cli" ]] && "$cli" --version >/dev/null 2>&1; then
    cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")
    echo "using the prebuilt $cli" >&2
  else
    t0=$(date +%s)
    cmake -S "$_root" -B "$_root/build-gputrain" -DCMAKE_BUILD_TYPE=Release -DMLAR_BUILD_TESTS=OFF \
      -DMLAR_BUILD_BENCH=OFF >/dev/null
    cmake --build "$_root/build-gputrain" -j"$(nproc)" --target mla-retrofit >/dev/null
    cli="$_root/build-gputrain/bin/mla-retrofit"
    echo "built $cli in $(( $(date +%s) - t0 )) s" >&2
  fi
  echo "$cli"
}
