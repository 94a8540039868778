#!/usr/bin/env bash
# Generates the stubs and runs the Go example's tests against a kvd they start.
#   examples/go/test.sh [KVD]   (default build/server/kvd)
# Exits 77 (ctest: skipped) and says so when there is no Go toolchain.
set -euo pipefail
kvd=$(realpath "${1:-$(dirname "$0")/../../build/server/kvd}")
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "SKIPPED: no Go toolchain (go not on PATH nor in /usr/local/go/bin)"
  exit 77
fi
./generate.sh
go vet ./...
KVD="$kvd" go test -count=1 -v ./...
