#!/usr/bin/env bash
# The 3-node docker-compose cluster (docker-compose.yml), for trying things out.
#
#   scripts/docker-cluster.sh up [--no-build]
#                                      build kvd, kvctl and the image
#                                      (scripts/docker-build.sh; --no-build: use
#                                      the binaries already in BUILD_DIR), start
#                                      node1..3, wait until all three are healthy
#   scripts/docker-cluster.sh status   docker-compose ps, then kvctl members and
#                                      kvctl cluster status (run inside node1)
#   scripts/docker-cluster.sh down     stop and remove the containers and the
#                                      network; keeps the data volumes
#   scripts/docker-cluster.sh down -v  ... and removes the data volumes too
#
# Clients reach node K on 127.0.0.1:707K, e.g.
#   build/client/kvctl -e 127.0.0.1:7071 put hello world
# Nothing is ever pulled: the image is built from this machine's binaries.
# COMPOSE_PROJECT_NAME (default: this folder's name) names the containers,
# network and volumes; BUILD_DIR is passed to scripts/docker-build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 3
}

compose() { docker-compose -f docker-compose.yml "$@"; }

up() {
  case "${1:-}" in --no-build | "") ;; *) usage ;; esac
  scripts/docker-build.sh "$@"
  compose up -d --no-build
  local deadline=$((SECONDS + 60)) unhealthy
  while :; do
    unhealthy=""
    for s in node1 node2 node3; do
      local id state
      id=$(compose ps -q "$s")
      state=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo missing)
      [ "$state" = healthy ] || unhealthy+=" $s($state)"
    done
    [ -z "$unhealthy" ] && break
    if [ $SECONDS -ge $deadline ]; then
      echo "not healthy after 60 s:$unhealthy; see docker-compose logs" >&2
      exit 2
    fi
    sleep 1
  done
  echo "node1..node3 healthy on 127.0.0.1:7071..7073"
  echo "try: build/client/kvctl -e 127.0.0.1:7071 put hello world && scripts/docker-cluster.sh status"
}

status() {
  compose ps
  echo
  compose exec -T node1 /kvctl -e 127.0.0.1:7070 members
  echo
  compose exec -T node1 /kvctl -e 127.0.0.1:7070 cluster status
}

case "${1:-}" in
  up) shift; up "$@" ;;
  status) status ;;
  down)
    case "${2:-}" in
      -v) compose down --volumes ;;
      "") compose down ;;
      *) usage ;;
    esac ;;
  *) usage ;;
esac
