#!/usr/bin/env bash
# Debian 12 packages Tronch needs to build, test, run and benchmark. Sourced by test.sh,
# run.sh and bench/run; installs only what is missing, so a warm run costs one dpkg query.
TRONCH_PACKAGES=(
  build-essential cmake pkg-config git procps util-linux iproute2 curl
  nginx-core nginx-dev
  libssl-dev zlib1g-dev libpq-dev libhiredis-dev nlohmann-json3-dev
  libboost-dev libboost-test-dev libboost-program-options-dev
  postgresql postgresql-client redis-server redis-tools redis-sentinel
  python3 python3-pytest python3-requests python3-redis python3-psycopg2
  wrk libbenchmark-dev valgrind
  # nginx-extras' third-party modules, loaded next to Tronch by tests/integration/test_module_coexist.py
  libnginx-mod-nchan libnginx-mod-http-ndk libnginx-mod-http-lua libnginx-mod-http-perl
  libnginx-mod-http-auth-pam libnginx-mod-http-cache-purge libnginx-mod-http-dav-ext
  libnginx-mod-http-echo libnginx-mod-http-fancyindex libnginx-mod-http-geoip libnginx-mod-http-geoip2
  libnginx-mod-http-headers-more-filter libnginx-mod-http-image-filter libnginx-mod-http-subs-filter
  libnginx-mod-http-uploadprogress libnginx-mod-http-upstream-fair libnginx-mod-http-xslt-filter
  libnginx-mod-mail libnginx-mod-stream libnginx-mod-stream-geoip libnginx-mod-stream-geoip2
  openssl  # the TLS tests make their CA and certificates with the openssl command
)

# Only for ./test.sh --fuzz: clang with libFuzzer and the sanitizer runtimes (Debian 12: clang 14).
TRONCH_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

tronch_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

tronch_missing_packages() {
  local pkg missing=()
  for pkg in "${TRONCH_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]}"
}

# ensure_packages [extra packages...]
ensure_packages() {
  local missing
  missing=$(tronch_missing_packages "$@")
  [ -z "$missing" ] && return 0
  echo "==> installing missing Debian packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  tronch_sudo apt-get update -q
  # shellcheck disable=SC2086
  tronch_sudo apt-get install -y -q --no-install-recommends $missing
}

# npm installs the pinned OpenAPI linter (tests/openapi/package-lock.json) for it.cp_openapi.
# Debian's nodejs + npm only when no npm is there (a NodeSource node brings its own).
command -v npm >/dev/null 2>&1 || TRONCH_PACKAGES+=(nodejs npm)
# it.cp_openapi validates real tronchd responses against the document's schemas.
TRONCH_PACKAGES+=(python3-jsonschema)
