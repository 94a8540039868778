#!/usr/bin/env bash
# Time to back up and restore a node: loads KEYS keys of VALUE bytes into a
# fresh kvd (kvctl bench --preload), then, with a put load running
# (kvctl bench --workload put, LOAD_S seconds), times `kvctl snapshot save`;
# then times `kvd --restore-from` from its start to serving (the ready file
# written, `kvctl health` SERVING) and checks the restored node: its key count
# and root digest equal the manifest's, its node id differs.
# Usage: scripts/bench_snapshot.sh [KEYS] [VALUE_BYTES]   (default 1000000 100)
# Uses $BUILD_DIR/server/kvd and $BUILD_DIR/client/kvctl (default build/;
# build them first: scripts/build.sh kvd kvctl). TMPDIR picks the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
VALUE=${2:-100}
LOAD_S=${LOAD_S:-20}
BUILD_DIR=${BUILD_DIR:-build}
KVD="$BUILD_DIR/server/kvd"
KVCTL="$BUILD_DIR/client/kvctl"
for b in "$KVD" "$KVCTL"; do
  [ -x "$b" ] || { echo "missing $b: scripts/build.sh kvd kvctl" >&2; exit 2; }
done
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
json_field() {  # json_field NAME < JSON: the first "NAME":value, unquoted.
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1
}

wait_ready() {  # wait_ready READY_FILE PID: the address, or exit 2.
  for _ in $(seq 1200); do
    [ -s "$1" ] && { head -1 "$1"; return; }
    kill -0 "$2" 2>/dev/null || { echo "kvd exited" >&2; exit 2; }
    sleep 0.05
  done
  echo "kvd not ready after 60 s" >&2
  exit 2
}

"$KVD" --name source --listen 127.0.0.1:0 --data-dir "$TMP/source" \
  --ready-file "$TMP/source.ready" --log-level warn >"$TMP/source.log" 2>&1 &
PIDS+=($!)
SRC=$(wait_ready "$TMP/source.ready" $!)
t0=$(now)
"$KVCTL" -e "$SRC" --timeout 60 bench --workload get --preload --keys "$KEYS" \
  --value-size "$VALUE" --duration 1 --concurrency 8 >/dev/null 2>"$TMP/preload.log"
echo "loaded $KEYS keys of $VALUE bytes in $(secs "$t0" "$(now)") s ($(grep -o 'preload: .*' "$TMP/preload.log"))"

# A put load (overwriting the loaded keys) while the snapshot is taken.
"$KVCTL" -e "$SRC" bench --workload put --keys "$KEYS" --value-size "$VALUE" \
  --duration "$LOAD_S" --concurrency 16 --seed 7 >"$TMP/load.txt" 2>&1 &
LOAD_PID=$!
PIDS+=($LOAD_PID)
sleep 2
t0=$(now)
"$KVCTL" -e "$SRC" -o json snapshot save "$TMP/snap" >"$TMP/snap.json"
t1=$(now)
snap_keys=$(json_field key_count <"$TMP/snap.json")
snap_root=$(json_field root_digest <"$TMP/snap.json")
snap_id=$(json_field node_id <"$TMP/snap.json")
echo "kvctl snapshot save: $(secs "$t0" "$t1") s wall (server: $(json_field duration_ms <"$TMP/snap.json") ms)," \
  "$snap_keys keys, $(du -sh "$TMP/snap" | cut -f1) on disk (SST files hard-linked)"
wait "$LOAD_PID" || true
echo "put load meanwhile: $(sed -n 's/^put: \([0-9]* ops\/s\).*, \([0-9]* errors\).*/\1, \2/p' "$TMP/load.txt")"

t0=$(now)
"$KVD" --name restored --listen 127.0.0.1:0 --restore-from "$TMP/snap" \
  --data-dir "$TMP/restored" --ready-file "$TMP/restored.ready" >"$TMP/restored.log" 2>&1 &
RPID=$!
PIDS+=($RPID)
DST=$(wait_ready "$TMP/restored.ready" $RPID)
until "$KVCTL" -e "$DST" --timeout 1 health >/dev/null 2>&1; do sleep 0.02; done
t1=$(now)
echo "kvd --restore-from to serving: $(secs "$t0" "$t1") s"
"$KVCTL" -e "$DST" -o json stats >"$TMP/restored.json"
got_keys=$(json_field key_count <"$TMP/restored.json")
got_root=$(json_field root_digest <"$TMP/restored.json")
got_id=$(json_field node_id <"$TMP/restored.json")
grep -o 'with the NEW node id[^"]*' "$TMP/restored.log" | head -1 || true
echo "restored node: $got_keys keys (manifest $snap_keys), root $got_root (manifest $snap_root)," \
  "node id $got_id (snapshot's $snap_id)"
if [ "$got_keys" != "$snap_keys" ] || [ "$got_root" != "$snap_root" ] || [ "$got_id" = "$snap_id" ]; then
  echo "FAILED: the restored node does not match its snapshot" >&2
  exit 1
fi
[ "$snap_keys" -ge "$KEYS" ] || { echo "FAILED: fewer than $KEYS keys in the snapshot" >&2; exit 1; }
echo "ok"
