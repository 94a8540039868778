#!/usr/bin/env bash
# Write fan-out in the simulator: per write, Push messages and record copies
# (all nodes and the writer's), nodes the fast path reached, hops (per node
# and until the last node), and the time until every node held the write
# with anti-entropy, for each N and fanout (0: push directly to all).
# Arguments go to fanout_sim_bench, e.g.
#   scripts/bench_fanout_sim.sh --n 5,50,500 --fanout 0,4,6,8 --seeds 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh fanout_sim_bench
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/tests/bench/fanout_sim_bench" "$@"
