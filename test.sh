#!/usr/bin/env bash
# Installs what is missing, builds everything into build/, runs every test (ctest).
#   ./test.sh              the full suite: unit, integration, end to end
#   ./test.sh --sanitize   unit tests built with ASan+UBSan into build-asan/, and run
#   ./test.sh -R <regex>   pass-through filter to ctest
#   ./test.sh --fuzz       libFuzzer targets (clang, ASan+UBSan) built into build-fuzz/, each run 60 s
#                          on its seed corpus (tests/fuzz/corpus/); fails on a crash. Only fuzzing.
#   ./test.sh --fuzz --fuzz-seconds N   each target N seconds instead
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

build_dir=build
build_target=all
cmake_args=()
ctest_args=()
fuzz=0
fuzz_seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) build_dir=build-asan; build_target=unit_tests; cmake_args+=(-DTRONCH_SANITIZE=ON); ctest_args+=(-L unit) ;;
    --fuzz) fuzz=1 ;;
    --fuzz-seconds) fuzz=1; fuzz_seconds="${2:?--fuzz-seconds needs a number}"; shift ;;
    *) ctest_args+=("$1") ;;
  esac
  shift
done

if [ "$fuzz" = 1 ]; then
  ensure_packages "${TRONCH_FUZZ_PACKAGES[@]}"
  start=$(date +%s)
  echo "==> configure (build-fuzz, clang)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRONCH_FUZZ=ON >/dev/null
  echo "==> build"
  cmake --build build-fuzz -j "$(nproc)" --target fuzz_targets
  tests/fuzz/run.sh build-fuzz "$fuzz_seconds"
  echo "==> fuzzing passed in $(( $(date +%s) - start ))s"
  exit 0
fi

ensure_packages
jobs=$(nproc)
start=$(date +%s)
echo "==> configure ($build_dir)"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
echo "==> build"
cmake --build "$build_dir" -j "$jobs" --target "$build_target"
echo "==> test"
# Integration tests start their own services on free ports, so they may run side by side.
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "${ctest_args[@]}"
echo "==> all tests passed in $(( $(date +%s) - start ))s"
