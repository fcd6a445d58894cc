#!/usr/bin/env bash
# The whole Tronch stack on loopback, data in .run/ (TRONCH_RUN_DIR):
#   ./run.sh            start Postgres, Redis, tronchd and nginx with the module; Ctrl-C stops all
#   ./run.sh --detach   return once all is healthy (writes .run/env)
#   ./run.sh stop       stop a detached stack
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

if [ "${1:-}" = "stop" ]; then
  exec /usr/bin/python3 scripts/stack.py stop
fi
ensure_packages
echo "==> building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target tronchd tronchctl ngx_http_tronch_module
exec /usr/bin/python3 scripts/stack.py up "$@"
