#!/usr/bin/env bash
# Single-node throughput and latency: ping (the gRPC floor), get, put, and
# put with --sync, each with kvctl bench against a fresh kvd on loopback;
# then a bulk load. Each line also gives kvd's CPU time per call (utime +
# stime from /proc over the run, background threads included).
# Usage: scripts/bench_kv.sh [--cores LIST] [DURATION_S] [CONCURRENCY] [KEYS] [VALUE_BYTES]
#   --cores 1,2,4: the runs once per count N, kvd pinned (taskset) to CPUs
#   0..N-1 and kvctl to the CPUs left (unpinned when none is left); the
#   scaling table of a machine. Counts above nproc are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
CORES=""
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --cores) CORES=${2:?--cores needs a list, e.g. 1,2,4}; shift 2 ;;
    --cores=*) CORES=${1#--cores=}; shift ;;
    -*) echo "bench_kv.sh: unknown option $1" >&2; exit 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
DURATION=${ARGS[0]:-10}
CONCURRENCY=${ARGS[1]:-64}
KEYS=${ARGS[2]:-100000}
VALUE=${ARGS[3]:-100}
NPROC=$(nproc)
for n in ${CORES//,/ }; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench_kv.sh: --cores: '$n' is not a core count" >&2; exit 2; }
done
scripts/build.sh kvd kvctl >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
. scripts/bench_lib.sh

run() {  # run LABEL WORKLOAD [extra bench flags...]
  local label=$1 workload=$2
  shift 2
  if [ "$workload" = get ]; then  # Preload unmeasured, so the CPU is the gets'.
    kvctl_bench --workload get --duration 0.1 --concurrency "$CONCURRENCY" --keys "$KEYS" \
      --value-size "$VALUE" --preload >/dev/null 2>&1
  fi
  measure "$label" --workload "$workload" --duration "$DURATION" \
    --concurrency "$CONCURRENCY" --keys "$KEYS" --value-size "$VALUE" "$@"
}

echo "machine: $NPROC cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "settings: ${DURATION}s per run, $CONCURRENCY in flight, $KEYS keys, $VALUE-byte values"
sweep() {  # sweep PREFIX: the four runs
  local p=$1
  start_kvd plain
  run "${p}ping" ping
  run "${p}get" get
  run "${p}put" put
  stop_kvd
  rm -rf "$TMP/plain"
  start_kvd sync --sync
  run "${p}put --sync" put
  stop_kvd
  rm -rf "$TMP/sync"
}
if [ -z "$CORES" ]; then
  echo "kvd and kvctl unpinned on the same machine"
  sweep ""
else
  for n in ${CORES//,/ }; do
    if [ "$n" -gt "$NPROC" ]; then echo "cores=$n: skipped, this machine has $NPROC"; continue; fi
    KVD_PIN=(taskset -c "0-$((n - 1))")
    if [ "$n" -lt "$NPROC" ]; then
      KVCTL_PIN=(taskset -c "$n-$((NPROC - 1))")
      echo "cores=$n: kvd on CPUs 0-$((n - 1)), kvctl on CPUs $n-$((NPROC - 1))"
    else
      KVCTL_PIN=()
      echo "cores=$n: kvd on CPUs 0-$((n - 1)), kvctl unpinned (no CPU left for it alone)"
    fi
    sweep "cores=$n "
  done
  KVD_PIN=()
  KVCTL_PIN=()
fi

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
