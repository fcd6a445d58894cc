#!/usr/bin/env bash
# Runs every libFuzzer target for a while on a copy of its seed corpus; fails on the first crash.
#   tests/fuzz/run.sh <build-fuzz dir> <seconds per target> [target...]
# A crash leaves its input in <build dir>/fuzz-artifacts/<target>/; once fixed, commit that input
# to tests/fuzz/corpus/<target>/ as regression-<what> so every later run replays it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1"; seconds="$2"; shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_key_parse fuzz_key_mask fuzz_key_record fuzz_cidr fuzz_cursor fuzz_cp_validation fuzz_redis_reply)
fi
failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  work="$build/fuzz-corpus/$t"           # grows across runs; the committed seeds stay small
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$work" "$artifacts"
  log="$build/fuzz-$t.log"
  echo "==> fuzz $t for ${seconds}s"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" "$work" "$here/corpus/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "    ok: ${execs:-?} executions, 0 crashes, corpus $(ls "$work" | wc -l) inputs"
  else
    echo "    CRASH (log: $log, input in $artifacts/):"
    grep -E "ERROR|SUMMARY|runtime error|deadly signal|abort|Test unit written" "$log" | head -20 | sed 's/^/    /'
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
