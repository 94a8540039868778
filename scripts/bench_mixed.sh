#!/usr/bin/env bash
# Writes beside saturating reads, one kvd per setting, pinned to CPU 0 with
# kvctl on the other CPUs (unpinned on a 1-CPU machine): 128 gets in flight
# (2 channels) over 100 000 preloaded keys and, at the same time, 16 puts
# in flight of 1 000-byte values over 1 000 000 keys, so that the memtables
# fill and flush every few seconds while kvd's core is busy with the gets.
# Shows whether the flush keeps up (put throughput, put latency, write
# stalls and stops in kvd's log) under each --storage-cpu-priority,
# alternated ROUNDS times.
# Usage: scripts/bench_mixed.sh [ROUNDS] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
DURATION=${2:-20}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench_mixed.sh: ROUNDS must be a count, not '$ROUNDS'" >&2; exit 2; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "bench_mixed.sh: DURATION_S must be whole seconds, not '$DURATION'" >&2; exit 2; }
scripts/build.sh kvd kvctl >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
. scripts/bench_lib.sh

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ "$(nproc)" -ge 2 ]; then
  KVD_PIN=(taskset -c 0)
  KVCTL_PIN=(taskset -c "1-$(($(nproc) - 1))")
  echo "kvd on CPU 0, kvctl on CPUs 1-$(($(nproc) - 1))"
fi
for round in $(seq "$ROUNDS"); do
  for priority in auto low normal; do
    start_kvd "$priority" --storage-cpu-priority "$priority"
    kvctl_bench --workload get --duration 0.1 --concurrency 64 --keys 100000 --preload \
      >/dev/null 2>&1
    kvctl_bench --workload get --duration "$((DURATION + 4))" --concurrency 128 --channels 2 \
      --keys 100000 >"$TMP/get.txt" 2>&1 &
    getter=$!
    sleep 1
    put=$(kvctl_bench --workload put --duration "$DURATION" --concurrency 16 --keys 1000000 \
      --value-size 1000 2>/dev/null)
    echo "round $round $priority put (1000 B, 16 in flight): ${put#*: }"
    wait "$getter"
    echo "round $round $priority get (128 in flight, beside): $(sed 's/^[^:]*: //' "$TMP/get.txt")"
    # RocksDB logs these at WARN, which kvd's log keeps.
    echo "round $round $priority write stalls and stops logged:" \
      "$(grep -cE 'Stalling writes|Stopping writes' "$TMP/$priority.log" || true)"
    stop_kvd
    rm -rf "${TMP:?}/$priority"
  done
done
