#!/usr/bin/env bash
# Debian 12 packages Tronch needs to build, test, run and benchmark. Sourced by test.sh,
# run.sh and bench/run; installs only what is missing, so a warm run costs one dpkg query.
TRONCH_PACKAGES=(
  build-essential cmake pkg-config git procps util-linux iproute2 curl
  nginx-core nginx-dev
  libssl-dev zlib1g-dev libpq-dev libhiredis-dev nlohmann-json3-dev
  libboost-dev libboost-test-dev libboost-program-options-dev
  postgresql postgresql-client redis-server redis-tools
  python3 python3-pytest python3-requests python3-redis python3-psycopg2
  wrk libbenchmark-dev valgrind
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
