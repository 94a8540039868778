#!/usr/bin/env bash
# A/B of two kvd binaries on the write path, alternated ROUNDS times so
# that drifts of the machine's speed hit both alike: for each binary, put at
# 1 and 64 calls in flight and get at 64 against a fresh kvd, then put at 1
# and 64 against a kvd with --sync; each line also gives kvd's CPU time per
# call (utime + stime over the run).
# Usage: scripts/bench_kvd_ab.sh KVD_A KVD_B [ROUNDS] [DURATION_S]
#   e.g. build an older commit into another build dir, then
#   scripts/bench_kvd_ab.sh /tmp/old/build/server/kvd build/server/kvd 2 5
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/bench_kvd_ab.sh KVD_A KVD_B [ROUNDS] [DURATION_S]" >&2
  exit 2
fi
KVDS=("$1" "$2")
ROUNDS=${3:-2}
DURATION=${4:-5}
for k in "${KVDS[@]}"; do
  [ -x "$k" ] || { echo "bench_kvd_ab.sh: $k is not an executable kvd" >&2; exit 2; }
done
scripts/build.sh kvctl >/dev/null
KVCTL="${BUILD_DIR:-build}/client/kvctl"
. scripts/bench_lib.sh
run() {  # run LABEL WORKLOAD CONCURRENCY
  measure "$1 $2 c=$3" --workload "$2" --duration "$DURATION" --concurrency "$3" \
    --keys 100000 --value-size 100
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "A = ${KVDS[0]}, B = ${KVDS[1]}; ${DURATION}s per run, 100000 keys, 100-byte values"
for round in $(seq "$ROUNDS"); do
  for i in 0 1; do
    label="round $round $( [ $i = 0 ] && echo A || echo B)"
    KVD=${KVDS[$i]}
    start_kvd plain
    kvctl_bench --workload get --duration 0.1 --concurrency 64 --keys 100000 \
      --value-size 100 --preload >/dev/null 2>&1
    run "$label" put 1
    run "$label" put 64
    run "$label" get 64
    stop_kvd
    start_kvd sync --sync
    run "$label --sync" put 1
    run "$label --sync" put 64
    stop_kvd
  done
done
