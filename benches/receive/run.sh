#!/usr/bin/env bash
# Remote-write ingest benchmark: `thanos receive` (ours, release build) vs Prometheus 2.42's own
# remote-write receiver, fed byte-identical pre-encoded payloads by `rw-load`, back to back.
#
# Usage: benches/receive/run.sh [--full] [--series N[,N...]] [--rounds R] [--warmup W]
#                               [--concurrency C] [--skip-build]
#   --full          also run 1,000,000 series (needs ~8 GB free RAM; Prometheus alone ~5 GB)
#   --series LIST   comma-separated series counts (default 100000; --full adds 1000000)
#   --rounds R      measured rounds (one sample per series each); default 12e6/series
#                   (so every run sends 12 M samples), at least 3
#   --warmup W      warm-up rounds that create the series (default 1)
#   --concurrency C sender shards (default 8)
#   --skip-build    use existing binaries in $TARGET_DIR/release
# Environment:
#   TARGET_DIR   cargo target dir holding release/thanos and release/rw-load (default target/)
#   PROMETHEUS   Prometheus binary (default /usr/bin/prometheus)
#   OUT_DIR      results and scratch data (default target/bench-data/receive)
#   BUILD_DESC   what the binaries were built from, for the report (default: this checkout's
#                short HEAD, marked when the working tree has uncommitted changes)
#
# For each series count: start the server, read VmRSS once ready, run one warm-up round set
# plus the measured rounds, read VmRSS again (RSS per active series = delta / series), read
# prometheus_tsdb_head_series, kill -9, restart on the same data directory and time until
# /-/ready answers 200 (WAL replay time), check the head series again, stop. Prometheus first,
# then ours, with the same payloads. Writes OUT_DIR/results.md (also printed) and raw JSON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET_DIR="${TARGET_DIR:-$ROOT/target}"
PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
OUT_DIR="${OUT_DIR:-$ROOT/target/bench-data/receive}"
SERIES_LIST="100000"
FULL=0
ROUNDS=""
WARMUP=1
CONCURRENCY=8
BUILD=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --full) FULL=1 ;;
    --series) SERIES_LIST="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --concurrency) CONCURRENCY="$2"; shift ;;
    --skip-build) BUILD=0 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $FULL == 1 && ",$SERIES_LIST," != *",1000000,"* ]]; then
  SERIES_LIST="$SERIES_LIST,1000000"
fi

if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release \
    -p thanos-cmd --bin thanos -p thanos-test-support --bin rw-load)
fi
THANOS="$TARGET_DIR/release/thanos"
RW_LOAD="$TARGET_DIR/release/rw-load"
for bin in "$THANOS" "$RW_LOAD" "$PROMETHEUS"; do
  [[ -x $bin ]] || { echo "missing binary: $bin" >&2; exit 1; }
done

mkdir -p "$OUT_DIR"
SCRATCH="$(mktemp -d "$OUT_DIR/run.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now_s() { date +%s.%N; }

# wait_ready URL PID: polls URL every 20 ms until 200; fails if PID dies or after 900 s.
wait_ready() {
  local url="$1" pid="$2" deadline=$((SECONDS + 900))
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || { echo "server $pid died, see logs in $SCRATCH" >&2; return 1; }
    (( SECONDS < deadline )) || { echo "timeout waiting for $url" >&2; return 1; }
    sleep 0.02
  done
}

# head_series METRICS_URL: sum of prometheus_tsdb_head_series over all tenants.
head_series() {
  curl -s "$1" | awk '/^prometheus_tsdb_head_series[{ ]/ {s += $NF} END {printf "%d\n", s}'
}

# start_server KIND DATA_DIR LOG: sets SERVER_PID, WRITE_URL, READY_URL, METRICS_URL.
start_server() {
  local kind="$1" data="$2" log="$3"
  if [[ $kind == prometheus ]]; then
    local port; port="$(free_port)"
    printf 'global:\n  scrape_interval: 15s\n' > "$SCRATCH/prometheus.yml"
    "$PROMETHEUS" --web.enable-remote-write-receiver --storage.tsdb.path="$data" \
      --config.file="$SCRATCH/prometheus.yml" --web.listen-address="127.0.0.1:$port" \
      >>"$log" 2>&1 &
    SERVER_PID=$!
    WRITE_URL="http://127.0.0.1:$port/api/v1/write"
    READY_URL="http://127.0.0.1:$port/-/ready"
    METRICS_URL="http://127.0.0.1:$port/metrics"
  else
    local rw http grpc
    rw="$(free_port)"; http="$(free_port)"; grpc="$(free_port)"
    "$THANOS" receive --label='replica="0"' --tsdb.path="$data" \
      --remote-write.address="127.0.0.1:$rw" --http-address="127.0.0.1:$http" \
      --grpc-address="127.0.0.1:$grpc" >>"$log" 2>&1 &
    SERVER_PID=$!
    WRITE_URL="http://127.0.0.1:$rw/api/v1/receive"
    READY_URL="http://127.0.0.1:$http/-/ready"
    METRICS_URL="http://127.0.0.1:$http/metrics"
  fi
}

kill9() {
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# bench KIND SERIES ROUNDS START_MS: appends one JSON line to $OUT_DIR/raw.jsonl.
bench() {
  local kind="$1" series="$2" rounds="$3" start_ms="$4"
  local data="$SCRATCH/$kind-$series" log="$OUT_DIR/$kind-$series.log"
  rm -rf "$data"; : > "$log"
  start_server "$kind" "$data" "$log"
  wait_ready "$READY_URL" "$SERVER_PID"
  sleep 2
  local rss0 load_before; rss0="$(rss_kb "$SERVER_PID")"; load_before="$(loadavg)"
  local load_json
  load_json="$("$RW_LOAD" --url "$WRITE_URL" --series "$series" --warmup-rounds "$WARMUP" \
    --rounds "$rounds" --concurrency "$CONCURRENCY" --start-ms "$start_ms")"
  local rss1 hwm load_after heads
  rss1="$(rss_kb "$SERVER_PID")"; hwm="$(hwm_kb "$SERVER_PID")"; load_after="$(loadavg)"
  heads="$(head_series "$METRICS_URL")"
  kill9
  local t0 t1 replay_heads replay_rss
  t0="$(now_s)"
  start_server "$kind" "$data" "$log"
  wait_ready "$READY_URL" "$SERVER_PID"
  t1="$(now_s)"
  replay_heads="$(head_series "$METRICS_URL")"
  replay_rss="$(rss_kb "$SERVER_PID")"
  kill9
  local wal_bytes; wal_bytes="$(du -sb "$data" | cut -f1)"
  rm -rf "$data"
  python3 - "$kind" "$series" "$rss0" "$rss1" "$hwm" "$heads" "$t0" "$t1" "$replay_heads" \
    "$replay_rss" "$load_before" "$load_after" "$wal_bytes" "$load_json" <<'EOF' >> "$OUT_DIR/raw.jsonl"
import json, sys
(kind, series, rss0, rss1, hwm, heads, t0, t1, rheads, rrss, lb, la, walb, load) = sys.argv[1:]
load = json.loads(load)
series = int(series)
print(json.dumps({
    "kind": kind, "series": series,
    "rss_before_kb": int(rss0), "rss_after_kb": int(rss1), "hwm_kb": int(hwm),
    "rss_per_series_bytes": (int(rss1) - int(rss0)) * 1024 / series,
    "head_series": int(heads), "replay_s": float(t1) - float(t0),
    "head_series_after_replay": int(rheads), "rss_after_replay_kb": int(rrss),
    "wal_bytes": int(walb), "load_before": lb, "load_after": la, "rw_load": load,
}))
EOF
  python3 - "$OUT_DIR/raw.jsonl" <<'EOF' >&2
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
m = r["rw_load"]["measured"]
print(f"{r['kind']:>10} series={r['series']} samples/s={m['samples_per_s']:.0f} "
      f"non2xx={m['non_2xx']} err={m['transport_errors']} p50={m['latency_ms']['p50']:.1f}ms "
      f"p99={m['latency_ms']['p99']:.1f}ms rss/series={r['rss_per_series_bytes']:.0f}B "
      f"head_series={r['head_series']} replay={r['replay_s']:.2f}s load={r['load_after']}")
if m["first_error"]:
    print(f"  first error: {m['first_error']}")
EOF
}

: > "$OUT_DIR/raw.jsonl"
IFS=',' read -r -a SERIES_ARR <<< "$SERIES_LIST"
for series in "${SERIES_ARR[@]}"; do
  rounds="$ROUNDS"
  if [[ -z $rounds ]]; then
    rounds=$(( 12000000 / series ))
    (( rounds >= 3 )) || rounds=3
  fi
  # Same timestamps for both servers: the last round lands at "now".
  start_ms=$(( $(date +%s) * 1000 - (WARMUP + rounds - 1) * 15000 ))
  echo "== $series series, $WARMUP warm-up + $rounds measured rounds" >&2
  bench prometheus "$series" "$rounds" "$start_ms"
  bench thanos "$series" "$rounds" "$start_ms"
done

python3 - "$OUT_DIR/raw.jsonl" "$ROOT" "${BUILD_DESC:-}" <<'EOF' | tee "$OUT_DIR/results.md"
import json, subprocess, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
root = sys.argv[2]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=root).stdout.strip()
    except Exception:
        return "?"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("awk '/MemTotal/ {printf \"%.1f GB\", $2/1048576}' /proc/meminfo")
build = sys.argv[3]
if not build:
    build = sh("git rev-parse --short HEAD") or "?"
    if sh("git status --porcelain --untracked-files=no"):
        build += " (+ uncommitted changes)"
prom_ver = sh("/usr/bin/prometheus --version 2>&1 | head -1")
print(f"# Remote-write ingest: thanos receive vs Prometheus 2.42\n")
print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
print(f"- build: {build}")
print(f"- machine: {os.cpu_count()} CPUs, {cpu}, {mem} RAM")
print(f"- prometheus: {prom_ver}")
if rows:
    l = rows[0]["rw_load"]
    print(f"- load: rw-load, RW {l['protocol']}, {l['labels_per_series']} labels "
          f"({l['label_bytes_per_series']:.0f} B)/series, {l['batch']} samples/request, "
          f"{l['concurrency']} shards; each round = one sample per series, 15 s after the previous")
print()
print("| series | metric | Prometheus 2.42 | thanos receive | ours/Prometheus |")
print("|---:|---|---:|---:|---:|")
by = {}
for r in rows:
    by.setdefault(r["series"], {})[r["kind"]] = r
for series in sorted(by):
    p, t = by[series].get("prometheus"), by[series].get("thanos")
    if not p or not t:
        continue
    def ratio(a, b):
        return f"{a / b:.2f}×" if b else "n/a"
    ps, ts = p["rw_load"]["measured"], t["rw_load"]["measured"]
    pl = p["rw_load"]
    lines = [
        ("rounds warm-up + measured (samples measured)",
         f"{pl['warmup_rounds']} + {pl['rounds']} ({ps['samples_acked']:,})",
         f"{t['rw_load']['warmup_rounds']} + {t['rw_load']['rounds']} ({ts['samples_acked']:,})", ""),
        ("samples/s (measured rounds)", f"{ps['samples_per_s']:,.0f}", f"{ts['samples_per_s']:,.0f}",
         ratio(ts["samples_per_s"], ps["samples_per_s"])),
        ("samples/s (warm-up, series creation)", f"{p['rw_load']['warmup']['samples_per_s']:,.0f}",
         f"{t['rw_load']['warmup']['samples_per_s']:,.0f}",
         ratio(t['rw_load']['warmup']['samples_per_s'], p['rw_load']['warmup']['samples_per_s'])),
        ("request latency p50 / p99 (ms)", f"{ps['latency_ms']['p50']:.1f} / {ps['latency_ms']['p99']:.1f}",
         f"{ts['latency_ms']['p50']:.1f} / {ts['latency_ms']['p99']:.1f}", ""),
        ("non-2xx / transport errors", f"{sum(ps['non_2xx'].values())} / {ps['transport_errors']}",
         f"{sum(ts['non_2xx'].values())} / {ts['transport_errors']}", ""),
        ("RSS per active series (bytes)", f"{p['rss_per_series_bytes']:,.0f}", f"{t['rss_per_series_bytes']:,.0f}",
         ratio(t["rss_per_series_bytes"], p["rss_per_series_bytes"])),
        ("RSS after ingest / peak (MB)", f"{p['rss_after_kb']/1024:,.0f} / {p['hwm_kb']/1024:,.0f}",
         f"{t['rss_after_kb']/1024:,.0f} / {t['hwm_kb']/1024:,.0f}", ""),
        ("head series after ingest / after replay", f"{p['head_series']:,} / {p['head_series_after_replay']:,}",
         f"{t['head_series']:,} / {t['head_series_after_replay']:,}", ""),
        ("WAL replay after kill -9 (s, until /-/ready)", f"{p['replay_s']:.2f}", f"{t['replay_s']:.2f}",
         ratio(t["replay_s"], p["replay_s"])),
        ("data dir on disk after ingest (MB)", f"{p['wal_bytes']/1e6:,.0f}", f"{t['wal_bytes']/1e6:,.0f}", ""),
        ("load average after ingest (1/5/15 min)", p["load_after"], t["load_after"], ""),
    ]
    for name, a, b, c in lines:
        print(f"| {series:,} | {name} | {a} | {b} | {c} |")
print()
print("Caveats: thanos receive acknowledges a request only after its WAL records are fsynced "
      "(group commit); Prometheus 2.42's receiver acknowledges after appending to its WAL buffer "
      "and does not fsync per request. Both ran on the same shared machine, back to back, "
      "with rw-load on the same cores.")
EOF
