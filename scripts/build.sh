#!/usr/bin/env bash
# Installs missing packages, then configures and builds everything (or the
# targets given as arguments) into build/ with Ninja and ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
fi
# Two cores: let Ninja use both, but not more (gRPC/protobuf units are heavy).
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" ${1:+--target "$@"}
