#!/usr/bin/env bash
# TLS off vs on in the same run: two fresh kvd on loopback, one plaintext, one
# with TLS and --client-cert-auth (certificates from scripts/gen-certs.sh),
# kvctl bench get and put against each, alternating, ROUNDS times; per run
# also kvd's CPU time per call (utime + stime from /proc, less disturbed by
# other load on the machine than throughput and latency are).
# Usage: scripts/bench_tls.sh [DURATION_S] [CONCURRENCY] [ROUNDS] [KEYS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONCURRENCY=${2:-64}
ROUNDS=${3:-3}
KEYS=${4:-10000}
BUILD_DIR=${BUILD_DIR:-build}
scripts/build.sh kvd kvctl >/dev/null
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
scripts/gen-certs.sh "$TMP/certs" 2>/dev/null
C="$TMP/certs"
"$KVD" --name plain --listen 127.0.0.1:0 --ready-file "$TMP/p.addr" --data-dir "$TMP/p" \
  --log-level warn >"$TMP/p.log" 2>&1 &
PIDS+=($!)
"$KVD" --name tls --listen 127.0.0.1:0 --ready-file "$TMP/t.addr" --data-dir "$TMP/t" \
  --log-level warn --tls-cert "$C/node1.pem" --tls-key "$C/node1-key.pem" \
  --tls-ca "$C/ca.pem" --client-cert-auth >"$TMP/t.log" 2>&1 &
PIDS+=($!)
for f in p t; do
  for _ in $(seq 100); do [ -s "$TMP/$f.addr" ] && break; sleep 0.1; done
  [ -s "$TMP/$f.addr" ] || { echo "kvd did not start:" >&2; cat "$TMP/$f.log" >&2; exit 1; }
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    if [ "$mode" = off ]; then
      args=(--endpoint "$(cat "$TMP/p.addr")"); pid=${PIDS[0]}
    else
      args=(--endpoint "$(cat "$TMP/t.addr")" --cacert "$C/ca.pem" --cert "$C/client.pem"
            --key "$C/client-key.pem"); pid=${PIDS[1]}
    fi
    for w in get put; do
      [ "$w" = get ] && "$KVCTL" "${args[@]}" bench -w get -d 1 -c "$CONCURRENCY" \
        -k "$KEYS" --preload >/dev/null 2>&1
      t0=$(cpu_ticks "$pid")
      out=$("$KVCTL" "${args[@]}" bench -w "$w" -d "$DURATION" -c "$CONCURRENCY" -k "$KEYS" 2>/dev/null)
      t1=$(cpu_ticks "$pid")
      ops=$(echo "$out" | sed -E 's/.* ([0-9]+) ops in .*/\1/')
      echo "round $round tls=$mode $out | kvd CPU $(( (t1 - t0) * 1000000 / HZ / ops )) us/call"
    done
  done
done
