#!/usr/bin/env bash
# Membership on a real 5-node loopback cluster (scripts/cluster.sh):
#   1. SECONDS_ (default 300) with both cores saturated by bounded CPU
#      burners: false down events (target 0), summed over the nodes;
#   2. kill -9 one node: seconds until every other node marks it down;
#   3. kill -STOP one node: seconds until every other marks it down, then
#      kill -CONT: seconds until every other sees it alive again.
#
#   scripts/soak_membership.sh [SECONDS]      (default 300)
# PORT_BASE (default 7370) and BUILD_DIR override the defaults. Every node,
# burner and temp dir it made is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK=${1:-300}
[[ "$SOAK" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 3; }
export BUILD_DIR=${BUILD_DIR:-build}
export PORT_BASE=${PORT_BASE:-7370}
export DATA_DIR
DATA_DIR=$(mktemp -d /tmp/kv-soak.XXXXXX)
KVCTL="$BUILD_DIR/client/kvctl"
BURNERS=()
cleanup() {
  for p in "${BURNERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$DATA_DIR"/node*.pid; do
    [ -f "$f" ] && { kill -CONT "$(cat "$f")" 2>/dev/null || true; }
  done
  scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

ep() { echo "127.0.0.1:$((PORT_BASE + $1))"; }
# status_of ASKER NAME: the status node ASKER gives member NAME ("?" if none).
status_of() {
  "$KVCTL" -e "$(ep "$1")" --timeout 2 --output json members 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
try:
  d=json.load(sys.stdin)
except Exception:
  print("?"); sys.exit()
print(next((m["status"] for m in d.get("members",[]) if m["name"]==sys.argv[1]),"?"))' "$2"
}
down_events() {
  "$KVCTL" -e "$(ep "$1")" --output json members |
    /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("down_events",0)))'
}
# wait_all VICTIM STATUS: seconds until every other node reports STATUS for it.
wait_all() {
  local victim=$1 want=$2 start now
  start=$(date +%s.%N)
  for _ in $(seq 1 300); do  # Bounded: 300 polls (about 30-60 s).
    local all=1
    for k in 1 2 3 4 5; do
      [ "$k" = "$victim" ] || [ "$k" = "$DEAD" ] && continue
      [ "$(status_of "$k" "node$victim")" = "$want" ] || { all=0; break; }
    done
    if [ $all = 1 ]; then
      now=$(date +%s.%N)
      /usr/bin/python3 -c "print(f'{$now - $start:.2f}')"
      return 0
    fi
    sleep 0.1
  done
  echo "timeout"
  return 1
}

scripts/cluster.sh up 5 >/dev/null
sleep 3
for k in 1 2 3 4 5; do
  for j in 1 2 3 4 5; do
    [ "$(status_of "$k" "node$j")" = alive ] || { echo "node$k does not see node$j alive" >&2; exit 1; }
  done
done
echo "5 nodes up; every node sees every other alive"

before=0
for k in 1 2 3 4 5; do before=$((before + $(down_events "$k"))); done
for _ in 1 2; do timeout "$SOAK" bash -c 'while :; do :; done' & BURNERS+=($!); done
echo "burning both cores for ${SOAK}s..."
wait "${BURNERS[@]}" 2>/dev/null || true
BURNERS=()
after=0
for k in 1 2 3 4 5; do after=$((after + $(down_events "$k"))); done
echo "false down events over ${SOAK}s with both cores saturated: $((after - before))"

DEAD=none
kill -9 "$(cat "$DATA_DIR/node5.pid")"
echo "kill -9 node5: every other node marks it down after $(wait_all 5 down) s"

DEAD=5
kill -STOP "$(cat "$DATA_DIR/node4.pid")"
echo "kill -STOP node4: every other live node marks it down after $(wait_all 4 down) s"
kill -CONT "$(cat "$DATA_DIR/node4.pid")"
echo "kill -CONT node4: alive again everywhere after $(wait_all 4 alive) s"
