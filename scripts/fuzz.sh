#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14, ASan+UBSan, in
# build-fuzz/) and runs each for SECONDS (default 60) on one core, starting
# from its checked-in seed corpus (tests/fuzz/corpus/<target>/, never
# written). New inputs go to build-fuzz/tests/fuzz/corpus/<target>/, crash
# reproducers to build-fuzz/fuzz-artifacts/<target>/. Prints executions per
# target and any crash; exits 1 when a target crashed.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Reproduce a crash: build-fuzz/tests/fuzz/<target> <artifact file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(exchange_fuzz gossip_fuzz record_fuzz); fi
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
export FUZZ_BUILD_DIR
scripts/build_sanitized.sh "${targets[@]}"
failed=0
for t in "${targets[@]}"; do
  work="$FUZZ_BUILD_DIR/tests/fuzz/corpus/$t"
  artifacts="$FUZZ_BUILD_DIR/fuzz-artifacts/$t/"
  log="$FUZZ_BUILD_DIR/fuzz-$t.log"
  mkdir -p "$work" "$artifacts"
  rc=0
  "$FUZZ_BUILD_DIR/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" \
    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t: ${execs:-?} executions in ${seconds}s, ${cov:-cov: ?}, no crash"
  else
    failed=1
    echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} executions; log $log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*check failed|artifact_prefix|Test unit written)' \
      "$log" | head -20 >&2 || true
  fi
done
exit $failed
