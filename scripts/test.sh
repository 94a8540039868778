#!/usr/bin/env bash
# Installs missing packages, builds everything and runs every test (unit,
# integration against real kvd processes, simulation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
# The locking annotations (ABSL_GUARDED_BY ...) checked by clang.
/usr/bin/python3 scripts/check_thread_safety.py "$BUILD_DIR"
cd "$BUILD_DIR"
ctest --output-on-failure -j 2 --timeout 600 "$@"
