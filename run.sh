#!/usr/bin/env bash
# The whole Tronch stack on loopback, data in .run/ (TRONCH_RUN_DIR):
#   ./run.sh            start Postgres, Redis, tronchd and nginx with the module; Ctrl-C stops all
#   ./run.sh --detach   return once all is healthy (writes .run/env)
#   ./run.sh stop [COMPONENT]                 stop the stack, or one of postgres|redis|tronchd|nginx
#   ./run.sh start|restart COMPONENT          start / restart one component (no build step)
#   ./run.sh status [COMPONENT]               what runs (exit 0) and what does not (exit 3)
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

case "${1:-}" in
  stop|start|restart|status) exec /usr/bin/python3 scripts/stack.py "$@" ;;
esac
ensure_packages
echo "==> building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target tronchd tronchctl ngx_http_tronch_module
[ "${1:-}" = "up" ] && shift
exec /usr/bin/python3 scripts/stack.py up "$@"
