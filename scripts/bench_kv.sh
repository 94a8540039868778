#!/usr/bin/env bash
# Single-node throughput and latency: ping (the gRPC floor), get, put, and
# put with --sync, each with kvctl bench against a fresh kvd on loopback.
# Usage: scripts/bench_kv.sh [DURATION_S] [CONCURRENCY] [KEYS] [VALUE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONCURRENCY=${2:-64}
KEYS=${3:-100000}
VALUE=${4:-100}
scripts/build.sh kvd kvctl >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
TMP=$(mktemp -d)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

start_kvd() {  # start_kvd NAME [kvd flags...]
  local name=$1
  shift
  "$KVD" --listen 127.0.0.1:0 --data-dir "$TMP/$name" --ready-file "$TMP/$name.ready" \
    --log-level warn "$@" >"$TMP/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do [ -s "$TMP/$name.ready" ] && break; sleep 0.05; done
  ADDR=$(head -1 "$TMP/$name.ready")
}
stop_kvd() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

run() {  # run LABEL WORKLOAD [extra bench flags...]
  local label=$1 workload=$2
  shift 2
  local line
  line=$("$KVCTL" --endpoint "$ADDR" bench --workload "$workload" --duration "$DURATION" \
    --concurrency "$CONCURRENCY" --keys "$KEYS" --value-size "$VALUE" "$@" 2>/dev/null)
  echo "$label: ${line#*: }"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "settings: ${DURATION}s per run, $CONCURRENCY in flight, $KEYS keys, $VALUE-byte values, kvd and kvctl unpinned on the same machine"
start_kvd plain
run "ping" ping
run "get" get --preload
run "put" put
stop_kvd
start_kvd sync --sync
run "put --sync" put
stop_kvd

# Bulk load: 1M keys of VALUE bytes through BatchWrite (kvctl bench
# --preload, 1000 keys per call), then kvd's peak resident memory.
LOAD_KEYS=${LOAD_KEYS:-1000000}
start_kvd load
LOAD_START=$(date +%s.%N)
"$KVCTL" --endpoint "$ADDR" bench --workload get --preload --keys "$LOAD_KEYS" \
  --value-size "$VALUE" --duration 1 --concurrency "$CONCURRENCY" >/dev/null 2>"$TMP/load.err" ||
  { cat "$TMP/load.err" >&2; exit 2; }
LOAD_END=$(date +%s.%N)
echo "load: $(grep -o 'preload: [0-9]* keys in [0-9.]* s' "$TMP/load.err" | tail -1)" \
  "(kvctl wall time $(awk -v a="$LOAD_START" -v b="$LOAD_END" 'BEGIN {printf "%.1f", b - a}') s including a 1 s get run)"
echo "load: kvd peak RSS (VmHWM) $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$PID/status)," \
  "data directory $(du -sh "$TMP/load" | cut -f1)"
stop_kvd
