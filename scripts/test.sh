#!/usr/bin/env bash
# Installs missing packages, builds everything and runs every test (unit,
# integration against real kvd processes, simulation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j 2 --timeout 600 "$@"
