#!/usr/bin/env bash
# Partition heal on 5 real kvd nodes on loopback: how long after a partition
# heals until all 5 hold identical data (equal Merkle roots).
#
#   scripts/bench_partition_heal.sh [--partition-s S] [--runs R] [-- KVD_ARGS...]
#   e.g. scripts/bench_partition_heal.sh -- --fanout-enabled false   # anti-entropy alone
#
# Needs root (iptables, cgroup v2 at /sys/fs/cgroup/unified or /sys/fs/cgroup).
# Each node serves clients on 127.0.0.1:$((BASE+K)) and peers on
# 127.0.0.1:$((BASE+100+K)) (--peer-listen). Node 5 runs in a cgroup of its
# own. The partition is two iptables rules on the loopback OUTPUT chain:
# nothing reaches node 5's peer port, and nothing node 5 sends reaches the
# other nodes' peer ports (matched by its cgroup). Clients still reach every
# node's client port, so both sides take writes: `kvctl bench -w put -c 1`
# against node 1 and against node 5 (same key space, other seeds) for the
# whole partition. The writes stop, the rules are deleted (the heal, t = 0),
# and every node's root (kvctl stats --json) is polled until all 5 are equal.
# Prints one line per run and the median. Nodes, rules and the cgroup are
# removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BASE=${PORT_BASE:-17270}
PARTITION_S=10
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --partition-s) PARTITION_S=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
KVD_ARGS=("$@")
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
for b in "$KVD" "$KVCTL"; do
  [ -x "$b" ] || { echo "$b not built (BUILD_DIR=$BUILD_DIR scripts/build.sh kvd kvctl)" >&2; exit 2; }
done
# shellcheck source=scripts/partition_lib.sh
. scripts/partition_lib.sh
partition_init partition-heal
NODES=()
for k in 1 2 3 4 5; do NODES+=("127.0.0.1:$((BASE + k))"); done

start_cluster() {
  local run=$1
  mkdir -p "$CG"
  for k in 1 2 3 4 5; do
    local args=(--name "node$k" --listen "127.0.0.1:$((BASE + k))"
                --peer-listen "127.0.0.1:$((BASE + 100 + k))"
                --data-dir "$WORK/r$run/node$k" --seeds "127.0.0.1:$((BASE + 101))"
                --ready-file "$WORK/r$run/node$k.ready" "${KVD_ARGS[@]}")
    mkdir -p "$WORK/r$run"
    if [ "$k" = 5 ]; then
      # Into the cgroup first, so that every socket kvd opens belongs to it.
      sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$KVD" "${args[@]}" \
        >"$WORK/r$run/node$k.log" 2>&1 &
    else
      "$KVD" "${args[@]}" >"$WORK/r$run/node$k.log" 2>&1 &
    fi
    PIDS+=($!)
  done
  for k in 1 2 3 4 5; do
    for _ in $(seq 1 300); do [ -s "$WORK/r$run/node$k.ready" ] && break; sleep 0.1; done
    [ -s "$WORK/r$run/node$k.ready" ] || { echo "node$k did not start:" >&2; tail "$WORK/r$run/node$k.log" >&2; exit 1; }
  done
  # Every node sees 5 alive members.
  for _ in $(seq 1 300); do
    local ok=1
    for k in 1 2 3 4 5; do
      local alive
      alive=$("$KVCTL" -e "127.0.0.1:$((BASE + k))" -o json members 2>/dev/null |
              grep -o '"status": *"alive"' | wc -l || true)
      [ "$alive" = 5 ] || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "the cluster did not form" >&2
  exit 1
}

stop_cluster() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

results=()
for run in $(seq 1 "$RUNS"); do
  start_cluster "$run"
  partition_cut 5 "1 2 3 4"
  # Both sides take writes for the whole partition.
  "$KVCTL" -e "127.0.0.1:$((BASE + 1))" bench -w put -c 1 -k 10000 --seed $((run * 2)) \
    -d "$PARTITION_S" >"$WORK/bench1.txt" 2>&1 &
  b1=$!
  "$KVCTL" -e "127.0.0.1:$((BASE + 5))" bench -w put -c 1 -k 10000 --seed $((run * 2 + 1)) \
    -d "$PARTITION_S" >"$WORK/bench5.txt" 2>&1 &
  b5=$!
  wait $b1 $b5
  majority=$(grep -Eo '[0-9]+ ops' "$WORK/bench1.txt" | head -1 || true)
  minority=$(grep -Eo '[0-9]+ ops' "$WORK/bench5.txt" | head -1 || true)
  before=$(roots "${NODES[@]}")
  partition_heal
  t0=$(ms_now)
  converged=""
  while [ $(( $(ms_now) - t0 )) -lt 60000 ]; do
    r=$(roots "${NODES[@]}")
    if [ "$(echo $r | tr ' ' '\n' | sort -u | wc -l)" = 1 ] && [[ "$r" != *down* ]]; then
      converged=$(( $(ms_now) - t0 ))
      break
    fi
    sleep 0.05
  done
  if [ -z "$converged" ]; then
    echo "run $run: not identical within 60 s; roots:$r" >&2
    results+=(60000)
  else
    echo "run $run: identical $converged ms after the heal (writes: node1 ${majority:-?}, node5 ${minority:-?}; roots at the heal:$before)"
    results+=("$converged")
  fi
  stop_cluster
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms over %d runs (min %d, max %d)\n", a[int((NR+1)/2)], NR, a[1], a[NR]}'
