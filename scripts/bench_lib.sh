# Sourced by the single-node benchmarks (bench_kv.sh, bench_kvd_ab.sh): a
# temporary directory, one kvd at a time, and kvctl bench runs with kvd's
# CPU time per call. The caller sets KVD and KVCTL (and may set KVD_PIN /
# KVCTL_PIN, taskset prefixes) before calling start_kvd / measure.
TMP=$(mktemp -d)
PID=""
KVD_PIN=()    # taskset prefix for kvd
KVCTL_PIN=()  # and for kvctl
bench_cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap bench_cleanup EXIT

start_kvd() {  # start_kvd NAME [kvd flags...]: a fresh kvd in $TMP/NAME; sets ADDR
  local name=$1
  shift
  rm -rf "$TMP/$name" "$TMP/$name.ready"
  ${KVD_PIN[@]+"${KVD_PIN[@]}"} "$KVD" --listen 127.0.0.1:0 --data-dir "$TMP/$name" \
    --ready-file "$TMP/$name.ready" --log-level warn "$@" >"$TMP/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do [ -s "$TMP/$name.ready" ] && break; sleep 0.05; done
  [ -s "$TMP/$name.ready" ] || { cat "$TMP/$name.log" >&2; exit 2; }
  ADDR=$(head -1 "$TMP/$name.ready")
}
stop_kvd() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

kvctl_bench() {  # kvctl_bench [kvctl bench flags...] against $ADDR
  ${KVCTL_PIN[@]+"${KVCTL_PIN[@]}"} "$KVCTL" --endpoint "$ADDR" bench "$@"
}

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
measure() {  # measure LABEL [kvctl bench flags...]: its line plus kvd's CPU per call
  local label=$1 line t0 t1 ops
  shift
  t0=$(cpu_ticks)
  line=$(kvctl_bench "$@" 2>/dev/null)
  t1=$(cpu_ticks)
  ops=$(echo "$line" | sed -E 's/.* ([0-9]+) ops in .*/\1/')
  echo "$label: ${line#*: } | kvd CPU $(( (t1 - t0) * 1000000 / HZ / (ops > 0 ? ops : 1) )) us/call"
}
