#!/usr/bin/env bash
# End-to-end test of the docker-compose cluster, as a user would run it.
#
#   tests/e2e/docker_cluster_test.sh [BUILD_DIR]   (default build; needs
#                                                 server/kvd and client/kvctl)
#
# 1. Builds the image (scripts/docker-build.sh --no-build), brings the 3 nodes
#    of docker-compose.yml up, waits until all are healthy.
# 2. Writes through node 1 (host kvctl on its published port), reads on all
#    three.
# 3. Cuts node 3 off (docker network disconnect); writes different keys on
#    both sides and the same keys on both sides; reconnects; waits until
#    `kvctl cluster status` says converged and every node holds every
#    acknowledged write, the higher version's value for keys written on both
#    sides (last writer wins).
# 4. Writes to node 1 and node 2 in the background, `docker kill`s node 2 in
#    the middle, starts it again, waits for convergence and checks every
#    acknowledged write on every node.
# 5. Tears down and checks that no container, network or volume is left.
#
# Prints "SKIPPED: no Docker engine" and exits 77 (ctest: skipped) when
# `docker info` fails. The whole run is bounded by KV_E2E_LIMIT_S (420 s):
# past it, it is stopped and cleans up. Everything it makes is named after
# its own compose project (kve2e<pid>) and removed on every exit, pass or
# fail; host ports are free ones picked at start, so a cluster started with
# scripts/docker-cluster.sh is left alone.
set -uo pipefail
cd "$(dirname "$0")/../.."
LIMIT_S=${KV_E2E_LIMIT_S:-420}
if [ -z "${KV_E2E_UNDER_TIMEOUT:-}" ]; then
  # On the time limit the test gets SIGTERM (and cleans up), SIGKILL 60 s later.
  KV_E2E_UNDER_TIMEOUT=1 exec timeout -k 60 "$LIMIT_S" "$0" "$@"
fi

if ! timeout 30 docker info >/dev/null 2>&1; then
  echo "SKIPPED: no Docker engine (docker info failed)"
  exit 77
fi
if ! command -v docker-compose >/dev/null; then
  echo "SKIPPED: no docker-compose"
  exit 77
fi

BUILD_DIR=$(realpath "${1:-${BUILD_DIR:-build}}")
KVCTL="$BUILD_DIR/client/kvctl"
[ -x "$KVCTL" ] && [ -x "$BUILD_DIR/server/kvd" ] ||
  { echo "FAIL: no kvd/kvctl in $BUILD_DIR (build them first)"; exit 2; }

export COMPOSE_PROJECT_NAME="kve2e$$"
IMAGE="kvstore-e2e-$$"
export KV_IMAGE="$IMAGE:latest"
NET="${COMPOSE_PROJECT_NAME}_kvnet"
WORK=$(mktemp -d)
T0=$SECONDS
LOADERS=()

log() { printf '[%3ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }
compose() { timeout 120 docker-compose -f docker-compose.yml "$@"; }
label_filter="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"

leftovers() {  # Prints what this run's project still has, if anything.
  docker ps -a --filter "$label_filter" --format 'container {{.Names}}'
  docker network ls --filter "$label_filter" --format 'network {{.Name}}'
  docker volume ls --filter "$label_filter" --format 'volume {{.Name}}'
}

cleanup() {
  local rc=$?
  trap - EXIT
  # timeout(1) signals the child and then its whole group: ignore the
  # second TERM here, or it would end the clean-up half way.
  trap '' TERM INT
  for pid in "${LOADERS[@]}"; do kill "$pid" 2>/dev/null; done
  if [ "$rc" -ne 0 ] && [ -n "$(docker ps -aq --filter "$label_filter")" ]; then
    for n in 1 2 3; do
      echo "--- the end of node$n's log"
      compose logs --no-color --tail 15 "node$n" 2>&1 | tail -n 15
    done
  fi
  compose down --volumes --remove-orphans -t 5 >/dev/null 2>&1
  # Whatever `down` missed (e.g. it timed out).
  docker ps -aq --filter "$label_filter" | xargs -r docker rm -f >/dev/null 2>&1
  docker network ls -q --filter "$label_filter" | xargs -r docker network rm >/dev/null 2>&1
  docker volume ls -q --filter "$label_filter" | xargs -r docker volume rm -f >/dev/null 2>&1
  docker image ls -q "$IMAGE" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1
  rm -rf "$WORK"
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "FAIL: left behind:"
    echo "$left"
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "FAIL: stopped (over the time limit of ${LIMIT_S} s?)"; exit 124' TERM
trap 'exit 130' INT

# Free host ports for the three published client ports.
read -r P1 P2 P3 < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
export KV_NODE1_PORT=$P1 KV_NODE2_PORT=$P2 KV_NODE3_PORT=$P3
port() { case $1 in 1) echo "$P1" ;; 2) echo "$P2" ;; 3) echo "$P3" ;; esac; }

declare -A CID
# kvh N ARGS: host kvctl through node N's published port.
kvh() { local n=$1; shift; timeout 10 "$KVCTL" -e "127.0.0.1:$(port "$n")" --timeout 3 "$@"; }
# kvx N ARGS: kvctl inside node N's container (works while it is cut off).
kvx() { local n=$1; shift; timeout 15 docker exec "${CID[$n]}" /kvctl -e 127.0.0.1:7070 --timeout 3 "$@"; }

# EXPECTED holds "key<TAB>value" lines; a later line for a key replaces an
# earlier one. check NODE_OUTPUT_CMD... checks one node's scan against it.
EXPECTED="$WORK/expected"
: >"$EXPECTED"
cat >"$WORK/check.py" <<'PY'
import json, sys
expected = {}
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("\t")
    expected[k] = v
got = {e["key"]: e["value"] for e in json.loads(sys.stdin.read() or '{"entries":[]}')["entries"]}
missing = [k for k in expected if k not in got]
wrong = [(k, got[k], expected[k]) for k in expected if k in got and got[k] != expected[k]]
if missing or wrong:
    print(f"{len(missing)} missing (e.g. {missing[:3]}), {len(wrong)} with another value "
          f"(key, got, want: {wrong[:3]})")
    sys.exit(1)
print(f"all {len(expected)} acknowledged writes")
PY
check_node() {  # check_node N [via]: via kvh (published port) or kvx (exec)
  local n=$1 via=${2:-kvx}
  $via "$n" --output json scan --prefix e2e/ | /usr/bin/python3 "$WORK/check.py" "$EXPECTED"
}

wait_healthy() {
  local deadline=$((SECONDS + 60)) bad
  while :; do
    bad=""
    for n in 1 2 3; do
      local s
      s=$(docker inspect -f '{{.State.Health.Status}}' "${CID[$n]}" 2>/dev/null || echo missing)
      [ "$s" = healthy ] || bad+=" node$n:$s"
    done
    [ -z "$bad" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "not healthy after 60 s:$bad"
    sleep 1
  done
}

# Waits until node 1 says converged and all three nodes hold every expected
# write (cluster status compares gossiped roots, which may lag the data).
wait_converged() {
  local start=$SECONDS deadline=$((SECONDS + 120)) status out
  while :; do
    status=$(kvx 1 cluster status 2>&1) && {
      local ok=1
      for n in 1 2 3; do out=$(check_node "$n") || { ok=0; break; }; done
      if [ $ok = 1 ]; then
        log "converged after $((SECONDS - start)) s: $(echo "$status" | tail -n 1)"
        for n in 1 2 3; do log "  node$n: $(check_node "$n")"; done
        return 0
      fi
    }
    if [ $SECONDS -ge $deadline ]; then
      echo "$status"
      for n in 1 2 3; do echo "node$n: $(check_node "$n")"; done
      fail "not converged after 120 s"
    fi
    sleep 1
  done
}

# ver_gt A B: version A (HLC:NODE, unsigned decimals) is higher than B.
ver_gt() {
  local ah=${1%%:*} an=${1##*:} bh=${2%%:*} bn=${2##*:}
  [ "$ah" != "$bh" ] && { [ "$ah" -gt "$bh" ]; return; }
  [ ${#an} -ne ${#bn} ] && { [ ${#an} -gt ${#bn} ]; return; }
  [[ "$an" > "$bn" ]]
}

# --- 1 ----------------------------------------------------------------------
log "1. image, cluster up, health (project $COMPOSE_PROJECT_NAME, ports $P1 $P2 $P3)"
IMAGE=$IMAGE BUILD_DIR=$BUILD_DIR scripts/docker-build.sh --no-build 2>&1 |
  grep -v -e DEPRECATED -e BuildKit -e 'environment-variable' -e '^ *$' ||
  fail "docker-build.sh failed"
docker image inspect "$KV_IMAGE" >/dev/null 2>&1 || fail "no image $KV_IMAGE"
compose up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "docker-compose up"; }
for n in 1 2 3; do CID[$n]=$(compose ps -q "node$n"); done
wait_healthy
log "all three healthy"

# --- 2 ----------------------------------------------------------------------
log "2. write 20 keys through node 1, read them on all three"
for i in $(seq 1 20); do
  kvh 1 put "e2e/s2/$i" "v$i" >/dev/null || fail "put e2e/s2/$i on node1"
  printf 'e2e/s2/%s\tv%s\n' "$i" "$i" >>"$EXPECTED"
done
deadline=$((SECONDS + 30))
for n in 1 2 3; do
  until out=$(check_node "$n" kvh); do
    [ $SECONDS -lt $deadline ] || fail "node$n (port $(port "$n")): $out"
    sleep 0.5
  done
  log "  node$n on 127.0.0.1:$(port "$n"): $out"
done

# --- 3 ----------------------------------------------------------------------
log "3. partition: node3 cut off from $NET"
docker network disconnect "$NET" "${CID[3]}" || fail "network disconnect"
for i in $(seq 1 10); do
  kvh 1 put "e2e/pa/$i" "a$i" >/dev/null || fail "put e2e/pa/$i on node1"
  printf 'e2e/pa/%s\ta%s\n' "$i" "$i" >>"$EXPECTED"
done
for i in $(seq 1 5); do
  kvx 3 put "e2e/pb/$i" "b$i" >/dev/null || fail "put e2e/pb/$i on node3"
  printf 'e2e/pb/%s\tb%s\n' "$i" "$i" >>"$EXPECTED"
done
# The same keys on both sides, in both orders; the higher version must win.
for i in $(seq 1 6); do
  if [ $((i % 2)) = 1 ]; then
    vb=$(kvx 3 put "e2e/ps/$i" "side-b-$i") && va=$(kvh 1 put "e2e/ps/$i" "side-a-$i")
  else
    va=$(kvh 1 put "e2e/ps/$i" "side-a-$i") && vb=$(kvx 3 put "e2e/ps/$i" "side-b-$i")
  fi || fail "put e2e/ps/$i"
  if ver_gt "$va" "$vb"; then win="side-a-$i"; else win="side-b-$i"; fi
  printf 'e2e/ps/%s\t%s\n' "$i" "$win" >>"$EXPECTED"
done
log "  wrote 10 keys on node1, 5 on node3, 6 on both"
sleep 3  # Several anti-entropy rounds: nothing may cross the cut.
kvx 3 get e2e/pa/1 >/dev/null 2>&1; rc=$?
[ $rc = 1 ] || fail "node3 answered $rc for a key written on node1 during the partition (want 1, not found)"
kvh 1 get e2e/pb/1 >/dev/null 2>&1; rc=$?
[ $rc = 1 ] || fail "node1 answered $rc for a key written on node3 during the partition (want 1, not found)"
deadline=$((SECONDS + 20))
until ! status=$(kvx 1 cluster status 2>&1); do
  [ $SECONDS -lt $deadline ] || fail "node1 still says converged 20 s into the partition"
  sleep 1
done
log "  the cut holds; node1: $(echo "$status" | tail -n 1)"
docker network connect --alias node3 "$NET" "${CID[3]}" || fail "network connect"
log "  node3 reconnected"
wait_converged

# --- 4 ----------------------------------------------------------------------
log "4. docker kill node2 under a write load on node1 and node2"
load() {  # load N PREFIX COUNT: puts PREFIX/i to node N, logs the acknowledged ones
  local n=$1 prefix=$2 count=$3 end=$((SECONDS + 40))
  for i in $(seq 1 "$count"); do
    [ $SECONDS -lt $end ] || break
    if kvh "$n" put "$prefix/$i" "w$i" >/dev/null 2>&1; then
      printf '%s/%s\tw%s\n' "$prefix" "$i" "$i" >>"$WORK/acked-$n"
    else
      echo "$prefix/$i" >>"$WORK/failed-$n"
    fi
  done
}
: >"$WORK/acked-1"; : >"$WORK/acked-2"; : >"$WORK/failed-1"; : >"$WORK/failed-2"
load 1 e2e/l1 300 & LOADERS+=($!)
load 2 e2e/l2 300 & LOADERS+=($!)
deadline=$((SECONDS + 30))
until [ "$(wc -l <"$WORK/acked-2")" -ge 30 ]; do
  [ $SECONDS -lt $deadline ] || fail "node2 acknowledged under 30 writes in 30 s"
  sleep 0.1
done
docker kill "${CID[2]}" >/dev/null || fail "docker kill node2"
log "  killed node2 after $(wc -l <"$WORK/acked-2") acknowledged writes to it"
wait "${LOADERS[@]}"
LOADERS=()
a1=$(wc -l <"$WORK/acked-1"); f1=$(wc -l <"$WORK/failed-1")
a2=$(wc -l <"$WORK/acked-2"); f2=$(wc -l <"$WORK/failed-2")
log "  load done: node1 $a1 acknowledged / $f1 failed, node2 $a2 acknowledged / $f2 failed"
[ "$f2" -gt 0 ] || fail "no write to node2 failed: the kill did not happen under load"
[ "$a1" -gt 0 ] || fail "node1 acknowledged nothing"
cat "$WORK/acked-1" "$WORK/acked-2" >>"$EXPECTED"
compose start node2 >/dev/null 2>&1 || fail "docker-compose start node2"
wait_healthy
log "  node2 restarted and healthy"
wait_converged

# --- 5 ----------------------------------------------------------------------
log "5. tear down"
start=$SECONDS
compose down --volumes -t 10 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; fail "docker-compose down"; }
log "  docker-compose down --volumes took $((SECONDS - start)) s"
docker image ls -q "$IMAGE" | sort -u | xargs -r docker rmi -f >/dev/null
left=$(leftovers)
[ -z "$left" ] || fail "left behind: $left"
log "PASS: nothing left (containers, networks, volumes of $COMPOSE_PROJECT_NAME); total $((SECONDS - T0)) s"
