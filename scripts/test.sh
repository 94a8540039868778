#!/usr/bin/env bash
# Installs missing packages, builds everything and runs every test (unit,
# integration against real kvd processes, simulation). Then, in the clang-14
# sanitizer build (ASan+UBSan, build-fuzz/, see scripts/build_sanitized.sh):
#  - each libFuzzer target of tests/fuzz for KV_FUZZ_SECONDS (default 20)
#    over its checked-in seed corpus (about 3 minutes with the build);
#  - with KV_SANITIZE=1 also the unit tests and the simulators (not the
#    integration tests) under the sanitizers: a second full build, longer
#    than the 8 minutes we allow by default on 2 cores, hence opt-in.
# KV_FUZZ=0 skips the sanitizer build altogether.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
export FUZZ_BUILD_DIR
# The locking annotations (ABSL_GUARDED_BY ...) checked by clang.
/usr/bin/python3 scripts/check_thread_safety.py "$BUILD_DIR"
(cd "$BUILD_DIR" && ctest --output-on-failure -j 2 --timeout 600 "$@")

if [ "${KV_FUZZ:-1}" != 0 ] || [ "${KV_SANITIZE:-0}" = 1 ]; then
  if [ "${KV_SANITIZE:-0}" = 1 ]; then
    scripts/build_sanitized.sh  # Unit tests, simulators and fuzz targets.
    select=(-LE 'integration|e2e' -E '_NOT_BUILT$')
  else
    scripts/build_sanitized.sh exchange_fuzz gossip_fuzz record_fuzz
    select=(-L fuzz)
  fi
  (cd "$FUZZ_BUILD_DIR" &&
    ctest --output-on-failure -j 2 --timeout 900 "${select[@]}")
fi
