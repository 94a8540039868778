#!/usr/bin/env bash
# Installs missing packages, builds kvd and kvctl, and runs one node in the
# foreground with its data in ./data/node1 (Ctrl-C stops it cleanly).
# Extra arguments go to kvd, e.g. scripts/run.sh --sync --listen 127.0.0.1:7071
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh kvd kvctl
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p data
echo "kvd: starting node1 on 127.0.0.1:7070, data in $(pwd)/data/node1"
echo "kvd: try   $BUILD_DIR/client/kvctl put hello world && $BUILD_DIR/client/kvctl get hello"
exec "$BUILD_DIR/server/kvd" --name node1 --listen 127.0.0.1:7070 \
  --data-dir data/node1 "$@"
