#!/usr/bin/env bash
# Builds kvd and ae_bench (through scripts/build.sh: installs what is missing,
# builds into $BUILD_DIR, default build/) and runs the anti-entropy benchmark:
# two kvd nodes on loopback, n keys replicated, then one case per d of
# differing keys (records streamed, bytes on the wire, time to converge),
# then restart timing. Arguments go to ae_bench; without any it runs
#   --n 1000000 --d 0,1,100,10000
# e.g.  scripts/bench_ae.sh --n 20000 --d 0,1,100 --output json
#       scripts/bench_ae.sh --help
# The 1M-key load and full sync take a minute or two; ae_bench prints its
# progress on stderr and the results on stdout (--output json: its
# AeBenchReport, tests/bench/ae_bench_report.proto, through protobuf's JSON
# printer: int64 fields are strings), and exits 0 when every target is met,
# 1 when one is not, 2 when it could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build output goes to stderr: stdout is the report (--output json parses).
scripts/build.sh kvd ae_bench >&2
BUILD_DIR=${BUILD_DIR:-build}
if [ $# -eq 0 ]; then
  set -- --n 1000000 --d 0,1,100,10000
fi
# ae_bench runs the kvd of its own build unless given --kvd.
exec "$BUILD_DIR/tests/bench/ae_bench" "$@"
