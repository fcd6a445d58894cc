#!/usr/bin/env bash
# Builds ngx_http_tronch_module.so against Debian's nginx sources and configure flags.
#   build_nginx_module.sh <build dir> <repo root> <output .so>
# TRONCH_NGX_LIBS (set by CMake) names the static libraries to link.
set -euo pipefail
build="$1"; repo="$2"; out="$3"
src=/usr/share/nginx/src
[ -f "$src/conf_flags" ] || { echo "nginx-dev is not installed ($src/conf_flags missing)" >&2; exit 1; }

stamp="$build/.tronch-configured"
want="$(cat "$src/conf_flags" "$repo/config"; echo "$TRONCH_NGX_LIBS")"
if [ ! -f "$build/objs/Makefile" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$build"
  mkdir -p "$build"
  cp -a "$src/." "$build/"
  (
    cd "$build"
    # shellcheck disable=SC1091
    source ./conf_flags
    ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$repo" >configure.log 2>&1 \
      || { cat configure.log >&2; exit 1; }
  )
  printf '%s' "$want" >"$stamp"
fi

cd "$build"
# The static libraries are not make dependencies of the .so: always relink (cheap).
rm -f objs/ngx_http_tronch_module.so
make -f objs/Makefile modules >make.log 2>&1 || { cat make.log >&2; exit 1; }
cp objs/ngx_http_tronch_module.so "$out"
