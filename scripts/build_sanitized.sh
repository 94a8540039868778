#!/usr/bin/env bash
# Configures and builds the sanitizer build: clang-14 with ASan+UBSan and the
# libFuzzer targets, in build-fuzz/ (or $FUZZ_BUILD_DIR). Builds the targets
# given as arguments, by default the unit tests, the simulators and the fuzz
# targets (kv_unit_tests exchange_fuzz gossip_fuzz record_fuzz); the
# integration tests and kvd are not built there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$FUZZ_BUILD_DIR/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$FUZZ_BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKV_SANITIZE=ON -DKV_FUZZ=ON >/dev/null
fi
if [ -n "${KV_FUZZ_SECONDS:-}" ]; then  # Seconds per fuzz target under CTest.
  cmake -B "$FUZZ_BUILD_DIR" -DKV_FUZZ_SECONDS="$KV_FUZZ_SECONDS" >/dev/null
fi
if [ $# -eq 0 ]; then
  set -- kv_unit_tests exchange_fuzz gossip_fuzz record_fuzz
fi
cmake --build "$FUZZ_BUILD_DIR" -j "${JOBS:-2}" --target "$@"
