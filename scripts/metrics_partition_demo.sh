#!/usr/bin/env bash
# /metrics of a 3-node kvd cluster on loopback across a partition and its
# heal: which counters move, on which side.
#
#   scripts/metrics_partition_demo.sh [--partition-s S] [--keys K] [--fanout-queue Q]
#                                     [-- KVD_ARGS...]
#
# Needs root (iptables, cgroup v2), like scripts/bench_partition_heal.sh,
# whose partition it uses. Node K serves clients on 127.0.0.1:$((BASE+K)),
# peers on 127.0.0.1:$((BASE+100+K)) (--peer-listen) and metrics on
# 127.0.0.1:$((BASE+200+K)) (--metrics-listen); BASE=${PORT_BASE:-17370}.
# Node 3 runs in a cgroup of its own. Every node runs with
# --fanout-queue-records Q (default 100): fan-out holds at most Q records for
# a peer it cannot reach and drops the rest, leaving them to anti-entropy, so
# that the heal is the repair's work (with kvd's default, 10000, the held
# pushes alone deliver a short partition's writes and anti-entropy finds
# little to do).
#
#  1. Start the 3 nodes, write K keys to node 1 (kvctl bench -w put), wait
#     until the 3 roots are equal. Scrape every node: "before".
#  2. The partition: two iptables rules on the loopback OUTPUT chain: nothing
#     reaches node 3's peer port, and nothing node 3 sends (matched by its
#     cgroup) reaches node 1's or node 2's peer port. Gossip, anti-entropy and
#     fan-out between {1,2} and {3} all fail; clients still reach every client
#     port, so both sides take writes: kvctl bench -w put -c 1 against node 1
#     and against node 3 for S seconds, in the same key space (so some keys
#     are written on both sides). Scrape every node: "at heal".
#  3. The heal: delete the rules; poll the 3 roots (kvctl -o json stats) until
#     they are equal (60 s at most). Scrape every node: "after".
#
# Prints, per node, the anti-entropy, fan-out, gossip and store lines of the
# three scrapes side by side (only lines that exist; a metric absent from
# this build is left out), and for each peer the age of the last completed
# exchange this node started with it (kvctl -o json stats at the scrape;
# exchanges a peer started are not tracked per peer; /metrics has it as
# kvd_anti_entropy_peer_sync_age_seconds). Nodes,
# rules, the cgroup and the data are removed on exit. Every wait is bounded:
# about S + 6 s when all goes well, S + 4 min at most.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BASE=${PORT_BASE:-17370}
PARTITION_S=5
KEYS=2000
FANOUT_QUEUE=100
while [ $# -gt 0 ]; do
  case "$1" in
    --partition-s) PARTITION_S=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --fanout-queue) FANOUT_QUEUE=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$PARTITION_S" =~ ^[0-9]+$ ]] && [ "$PARTITION_S" -ge 1 ] && [ "$PARTITION_S" -le 600 ] ||
  { echo "--partition-s: $PARTITION_S is not a whole number of seconds in [1, 600]" >&2; exit 2; }
[[ "$KEYS" =~ ^[0-9]+$ ]] && [ "$KEYS" -ge 1 ] ||
  { echo "--keys: $KEYS is not a positive whole number" >&2; exit 2; }
[[ "$FANOUT_QUEUE" =~ ^[0-9]+$ ]] && [ "$FANOUT_QUEUE" -ge 1 ] ||
  { echo "--fanout-queue: $FANOUT_QUEUE is not a positive whole number" >&2; exit 2; }
KVD_ARGS=("$@")
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
for b in "$KVD" "$KVCTL"; do
  [ -x "$b" ] || { echo "$b not built (BUILD_DIR=$BUILD_DIR scripts/build.sh kvd kvctl)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }
for k in 1 2 3; do
  for port in $((BASE + k)) $((BASE + 100 + k)) $((BASE + 200 + k)); do
    if ss -Htln "sport = :$port" | grep -q .; then
      echo "port $port is in use (set PORT_BASE)" >&2
      exit 2
    fi
  done
done

# shellcheck source=scripts/partition_lib.sh
. scripts/partition_lib.sh
partition_init metrics-partition
client() { echo "127.0.0.1:$((BASE + $1))"; }
metrics() { echo "127.0.0.1:$((BASE + 200 + $1))"; }
NODES=("$(client 1)" "$(client 2)" "$(client 3)")
all_equal() { [ "$(echo $1 | tr ' ' '\n' | sort -u | wc -l)" = 1 ] && [[ "$1" != *down* ]]; }

wait_equal_roots() {  # wait_equal_roots WHAT: up to 60 s; prints the time taken.
  local t0 r
  t0=$(ms_now)
  while [ $(( $(ms_now) - t0 )) -lt 60000 ]; do
    r=$(roots "${NODES[@]}")
    if all_equal "$r"; then
      echo "$1: roots equal after $(( $(ms_now) - t0 )) ms:$r"
      return 0
    fi
    sleep 0.1
  done
  echo "$1: roots not equal within 60 s:$r" >&2
  exit 1
}

# scrape NAME: every node's /metrics into $WORK/NAME.K, followed by one
# line per peer from kvctl stats: "kvctl_stats_last_exchange_age_s{peer=...}
# SECONDS" ("never" when no exchange with it completed yet).
scrape() {
  for k in 1 2 3; do
    curl -sf --max-time 5 "http://$(metrics "$k")/metrics" >"$WORK/$1.$k" ||
      { echo "scrape of node$k's /metrics failed" >&2; exit 1; }
    "$KVCTL" -e "$(client "$k")" --timeout 5 -o json stats | python3 -c '
import json, sys, time
now_ms = time.time() * 1000
for p in json.load(sys.stdin).get("peers", []):
    t = int(p.get("last_exchange_unix_ms", 0))
    age = "never" if t == 0 else "%.1f" % ((now_ms - t) / 1000)
    print("kvctl_stats_last_exchange_age_s{peer=\"%s\"} %s" % (p["address"], age))
' >>"$WORK/$1.$k" || { echo "kvctl stats of node$k failed" >&2; exit 1; }
  done
}

# The lines shown: anti-entropy, fan-out, gossip members and down events,
# store keys, and the per-peer ages from kvctl stats.
# kvd_anti_entropy_peer_last_exchange_timestamp_seconds is left out: /metrics
# prints it with 6 significant digits (e.g. 1.79602e+09), +-5000 s.
SHOWN='^(kvd_(anti_entropy_[a-z_]+|fanout_(records|batches)_total|gossip_members|gossip_down_events_total|store_keys)|kvctl_stats_last_exchange_age_s)'
HIDDEN='^kvd_anti_entropy_(peer_last_exchange_timestamp_seconds|records_refused_clock_total)|status="(left|removed)"'
show() {  # show K: "metric: before -> at heal -> after" for node K.
  awk -v shown="$SHOWN" -v hidden="$HIDDEN" '
    FNR == 1 { f++ }
    /^#/ || !($0 ~ shown) || $0 ~ hidden { next }
    {
      if (!($1 in seen)) { seen[$1] = ++n; order[n] = $1 }
      val[$1, f] = $2
    }
    END {
      for (i = 1; i <= n; i++) {
        m = order[i]
        a = ((m, 1) in val) ? val[m, 1] : "-"
        b = ((m, 2) in val) ? val[m, 2] : "-"
        c = ((m, 3) in val) ? val[m, 3] : "-"
        mark = (a != b || b != c) ? "  *" : ""
        printf "  %-62s %9s -> %9s -> %9s%s\n", m, a, b, c, mark
      }
    }' "$WORK/before.$1" "$WORK/heal.$1" "$WORK/after.$1"
}

mkdir -p "$CG"
for k in 1 2 3; do
  args=(--name "node$k" --listen "$(client "$k")" --peer-listen "127.0.0.1:$((BASE + 100 + k))"
        --metrics-listen "$(metrics "$k")" --data-dir "$WORK/node$k"
        --seeds "127.0.0.1:$((BASE + 101))" --ready-file "$WORK/node$k.ready"
        --fanout-queue-records "$FANOUT_QUEUE" "${KVD_ARGS[@]}")
  if [ "$k" = 3 ]; then
    # Into the cgroup first, so that every socket kvd opens belongs to it.
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$KVD" "${args[@]}" \
      >"$WORK/node$k.log" 2>&1 &
  else
    "$KVD" "${args[@]}" >"$WORK/node$k.log" 2>&1 &
  fi
  PIDS+=($!)
done
for k in 1 2 3; do
  for _ in $(seq 1 300); do [ -s "$WORK/node$k.ready" ] && break; sleep 0.1; done
  [ -s "$WORK/node$k.ready" ] || { echo "node$k did not start:" >&2; tail "$WORK/node$k.log" >&2; exit 1; }
done
for _ in $(seq 1 300); do
  ok=1
  for k in 1 2 3; do
    alive=$("$KVCTL" -e "$(client "$k")" --timeout 2 -o json members 2>/dev/null |
            grep -o '"status": *"alive"' | wc -l || true)
    [ "$alive" = 3 ] || ok=0
  done
  [ $ok = 1 ] && break
  sleep 0.1
done
[ $ok = 1 ] || { echo "the cluster did not form (3 alive members on every node)" >&2; exit 1; }
echo "3 nodes up: clients $(client 1),$(client 2),$(client 3); metrics $(metrics 1),$(metrics 2),$(metrics 3)"

"$KVCTL" -e "$(client 1)" bench -w put -c 4 -k "$KEYS" -d 1 --seed 1 >"$WORK/bench0.txt" 2>&1 ||
  { cat "$WORK/bench0.txt" >&2; exit 1; }
echo "before: $(grep -Eo '[0-9]+ ops in [0-9.]+ s' "$WORK/bench0.txt" | head -1 || echo '? ops') put on node1 (key space $KEYS)"
wait_equal_roots "before"
scrape before

partition_cut 3 "1 2"
echo "partition: node3 cut off from node1 and node2 (iptables on lo), ${PARTITION_S} s of writes on both sides"
"$KVCTL" -e "$(client 1)" bench -w put -c 1 -k "$KEYS" --seed 2 -d "$PARTITION_S" \
  >"$WORK/bench1.txt" 2>&1 &
b1=$!
"$KVCTL" -e "$(client 3)" bench -w put -c 1 -k "$KEYS" --seed 3 -d "$PARTITION_S" \
  >"$WORK/bench3.txt" 2>&1 &
b3=$!
wait $b1 $b3
echo "partition writes: node1 $(grep -Eo '[0-9]+ ops in [0-9.]+ s' "$WORK/bench1.txt" | head -1 || echo '?'), node3 $(grep -Eo '[0-9]+ ops in [0-9.]+ s' "$WORK/bench3.txt" | head -1 || echo '?')"
echo "at heal: roots:$(roots "${NODES[@]}")"
scrape heal

partition_heal
wait_equal_roots "heal"
scrape after
"$KVCTL" -e "$(client 1)" cluster status || true

echo
echo "/metrics per node: before partition -> at heal -> after equal roots  (* = moved)"
for k in 1 2 3; do
  echo "node$k ($(metrics "$k")):"
  show "$k"
done
