#!/usr/bin/env bash
# Install both module systems from Debian for the HPC tests: Environment Modules (Tcl)
# through apt, and Lmod unpacked under /opt/lmod-root, because Debian declares the two
# packages conflicting although they coexist fine when Lmod lives in its own prefix.
set -euo pipefail
LMOD_ROOT=${LMOD_ROOT_DIR:-/opt/lmod-root}
export DEBIAN_FRONTEND=noninteractive
need_update=1
apt_install() { [ $need_update = 1 ] && { apt-get update -qq; need_update=0; }; apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

[ -r /usr/share/modules/init/bash ] || apt_install environment-modules tcl
if [ ! -r "$LMOD_ROOT/usr/share/lmod/lmod/init/bash" ]; then
  apt_install lua5.3 lua-posix lua-filesystem lua-json lua-term lua-bit32 lua-lpeg tcl
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download lmod >/dev/null)
  mkdir -p "$LMOD_ROOT"
  dpkg -x "$tmp"/lmod_*.deb "$LMOD_ROOT"
  grep -rlI "/usr/share/lmod" "$LMOD_ROOT" | xargs sed -i "s#/usr/share/lmod#$LMOD_ROOT/usr/share/lmod#g"
  rm -rf "$tmp"
fi
echo "Environment Modules: /usr/share/modules/init/bash; Lmod: $LMOD_ROOT/usr/share/lmod/lmod/init/bash"
