# shellcheck shell=bash
# The loopback partition of scripts/bench_partition_heal.sh and
# scripts/metrics_partition_demo.sh, sourced by both (not run on its own).
#
#   partition_init NAME   needs root and cgroup v2; sets CG_NAME and CG (the
#                         cgroup the isolated node runs in), WORK (a temp
#                         dir), PIDS (processes to stop) and an EXIT trap that
#                         heals, stops PIDS, removes the cgroup and WORK.
#   partition_cut K "J..." two iptables rules on the loopback OUTPUT chain:
#                         nothing reaches node K's peer port BASE+100+K, and
#                         nothing sent from the cgroup reaches the peer ports
#                         of nodes J. Clients still reach every node.
#   partition_heal        deletes the rules.
#   roots ADDR...         one line: each node's Merkle root (or "down").
#   ms_now                milliseconds since the epoch.
# The caller sets BASE and KVCTL first.

partition_init() {
  [ "$(id -u)" = 0 ] || { echo "needs root (iptables, cgroups)" >&2; exit 2; }
  if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then CG_ROOT=/sys/fs/cgroup/unified
  elif [ -f /sys/fs/cgroup/cgroup.procs ] && [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG_ROOT=/sys/fs/cgroup
  else
    echo "no cgroup v2 hierarchy found" >&2
    exit 2
  fi
  CG_NAME="$1$$"
  CG="$CG_ROOT/$CG_NAME"
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  PARTITION_RULES=()
  trap partition_cleanup EXIT
}

partition_cut() {  # partition_cut ISOLATED "OTHERS..."
  local isolated=$1 ports="" k
  for k in $2; do ports="${ports:+$ports,}$((BASE + 100 + k))"; done
  PARTITION_RULES=(
    "OUTPUT -o lo -p tcp --dport $((BASE + 100 + isolated)) -j DROP"
    "OUTPUT -o lo -p tcp -m cgroup --path $CG_NAME -m multiport --dports $ports -j DROP"
  )
  local r
  for r in "${PARTITION_RULES[@]}"; do iptables -I $r; done
}

partition_heal() {
  local r
  for r in "${PARTITION_RULES[@]}"; do iptables -D $r 2>/dev/null || true; done
  PARTITION_RULES=()
}

partition_cleanup() {
  partition_heal
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -d "$CG" ] && rmdir "$CG" 2>/dev/null || true
  rm -rf "$WORK"
}

ms_now() { date +%s%3N; }

roots() {  # roots ADDR...: one line, each node's root or "down".
  local out="" a r
  for a in "$@"; do
    r=$("$KVCTL" -e "$a" --timeout 2 -o json stats 2>/dev/null |
        sed -n 's/.*"root_digest": *"\([0-9a-f]*\)".*/\1/p' | head -1)
    out="$out ${r:-down}"
  done
  echo "$out"
}
