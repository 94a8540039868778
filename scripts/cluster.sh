#!/usr/bin/env bash
# A local cluster of N kvd nodes on loopback, for trying things out.
#
#   scripts/cluster.sh up [N]       build kvd and kvctl, start nodes 1..N (default 3)
#   scripts/cluster.sh status [N]   kvctl members and kvctl cluster status (asks node 1)
#   scripts/cluster.sh down [N]     stop every node started here (SIGTERM)
#
# Node K listens on 127.0.0.1:$((7070 + K)) (PORT_BASE=7070 by default), keeps
# its data in ./data/nodeK, its log in ./data/nodeK.log and its pid in
# ./data/nodeK.pid. Node 1 is the seed of all of them. Extra arguments after
# N go to every kvd (e.g. `up 5 --gossip-interval-ms 100`). BUILD_DIR, PORT_BASE
# and DATA_DIR (default ./data) override the defaults.
# Then, for example:
#   build/client/kvctl -e 127.0.0.1:7071 put hello world
#   scripts/cluster.sh status
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
PORT_BASE=${PORT_BASE:-7070}
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
DATA=${DATA_DIR:-data}

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 3
}

running() {  # running PIDFILE: true when the pid in it is a live process
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

up() {
  local n=${1:-3}
  shift || true
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || usage
  scripts/build.sh kvd kvctl
  mkdir -p "$DATA"
  local seed="127.0.0.1:$((PORT_BASE + 1))"
  for k in $(seq 1 "$n"); do
    local pidfile="$DATA/node$k.pid" ready="$DATA/node$k.ready"
    if running "$pidfile"; then
      echo "node$k: already running (pid $(cat "$pidfile"))"
      continue
    fi
    rm -f "$ready"
    "$KVD" --name "node$k" --listen "127.0.0.1:$((PORT_BASE + k))" \
      --data-dir "$DATA/node$k" --seeds "$seed" --ready-file "$ready" "$@" \
      >>"$DATA/node$k.log" 2>&1 &
    echo $! >"$pidfile"
  done
  for k in $(seq 1 "$n"); do
    local pidfile="$DATA/node$k.pid" ready="$DATA/node$k.ready"
    for _ in $(seq 1 200); do  # Up to 20 s.
      [ -s "$ready" ] && break
      if ! running "$pidfile"; then
        echo "node$k: exited at start; the end of $DATA/node$k.log:" >&2
        tail -n 20 "$DATA/node$k.log" >&2
        exit 2
      fi
      sleep 0.1
    done
    [ -s "$ready" ] || { echo "node$k: not ready after 20 s (see $DATA/node$k.log)" >&2; exit 2; }
    echo "node$k: pid $(cat "$pidfile"), 127.0.0.1:$((PORT_BASE + k)), data in $DATA/node$k"
  done
  echo "try: $KVCTL -e $seed put hello world && scripts/cluster.sh status"
}

down() {
  local pids=() names=()
  shopt -s nullglob
  for pidfile in "$DATA"/node*.pid; do
    if running "$pidfile"; then
      kill -TERM "$(cat "$pidfile")"
      pids+=("$(cat "$pidfile")")
      names+=("$(basename "$pidfile" .pid)")
    else
      rm -f "$pidfile"
    fi
  done
  for i in "${!pids[@]}"; do
    for _ in $(seq 1 100); do  # Up to 10 s, then SIGKILL.
      kill -0 "${pids[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${names[$i]}: did not stop in 10 s; killing it" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    rm -f "$DATA/${names[$i]}.pid"
    echo "${names[$i]}: stopped"
  done
  [ ${#pids[@]} -gt 0 ] || echo "no node is running"
}

status() {
  local endpoint="127.0.0.1:$((PORT_BASE + 1))"
  [ -x "$KVCTL" ] || { echo "no $KVCTL: run scripts/cluster.sh up first" >&2; exit 2; }
  "$KVCTL" -e "$endpoint" members
  echo
  "$KVCTL" -e "$endpoint" cluster status
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
