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
