#!/usr/bin/env bash
# Gossip membership at scale in the simulator: rounds until every live node
# knows of a join and of a crash (median, p99) and gossip bytes per node per
# round, for each N. Arguments go to gossip_bench, e.g.
#   scripts/bench_gossip.sh --n 10,100,1000 --seeds 10 --loss 0.01
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh gossip_bench
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/tests/bench/gossip_bench" "$@"
