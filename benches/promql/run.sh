#!/usr/bin/env bash
# PromQL latency benchmark: our `thanos store` + `thanos query` against Prometheus 2.42
# (Debian's /usr/bin/prometheus) on the same TSDB blocks, through the HTTP query API.
#
# Usage: benches/promql/run.sh
#
# Environment (all optional):
#   INSTANCES=200   scrape targets in the dataset (about 65 series each; ~20k series total)
#   HOURS=6         span of the dataset (whole 2h blocks)
#   INTERVAL=30     seconds between samples
#   SEED=1          seed of the value generator
#   RUNS=5          timed runs per query and system (median reported)
#   WARMUP=1        untimed runs per query and system before timing (answers compared here)
#   QUERIES=benches/promql/queries.txt
#   THANOS_BIN=target/release/thanos   skip the build and use this binary instead
#   PGO=1           measure the profile-guided, BOLT-optimised build: build it with
#                   deploy/pgo/build.sh --thanos-only (about 25 minutes; needs llvm-bolt,
#                   Debian bolt-22) unless THANOS_BIN is given
#   BUILD_DESC      how the binary was built, for the report (PGO=1 sets it)
#   KEEP=1          leave the processes' data and logs in target/bench-data/promql/run
#   BENCH_DIR=target/bench-data/promql   where the dataset cache, run data, serve.env and
#                   results go (several people benchmarking at once each use their own)
#   SERVE=1         set everything up, print the URLs and wait (Ctrl-C stops) instead of
#                   running the queries: for profiling or poking at single queries
#
# What it does:
#   1. generates a deterministic OpenMetrics file (gen_openmetrics.py) and turns it into 2h
#      blocks with `promtool tsdb create-blocks-from openmetrics`; the blocks are cached in
#      target/bench-data/promql/data-<parameters>-<generator hash>/blocks;
#   2. copies the blocks into a FILESYSTEM bucket and into a Prometheus data directory;
#   3. starts Prometheus (retention 100y, min = max block duration 2h, so it neither
#      compacts nor deletes the blocks), `thanos store` on the bucket and `thanos query
#      --endpoint=<store>` on free loopback ports, waits until Prometheus and the store
#      report every block loaded and the querier answers from the store;
#   4. runs compare.py: per query, warm-up, answer comparison, RUNS alternating timed
#      requests to each system; writes target/bench-data/promql/results.md (+ results.json).
# Needs: bash, python3, curl, promtool, prometheus, cargo (unless THANOS_BIN is set).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

INSTANCES="${INSTANCES:-200}"
HOURS="${HOURS:-6}"
INTERVAL="${INTERVAL:-30}"
SEED="${SEED:-1}"
RUNS="${RUNS:-5}"
WARMUP="${WARMUP:-1}"
QUERIES="${QUERIES:-$here/queries.txt}"
KEEP="${KEEP:-0}"
SERVE="${SERVE:-0}"
PGO="${PGO:-0}"
if [[ "$PGO" == 1 ]]; then
  BUILD_DESC="${BUILD_DESC:-profile-guided, BOLT-optimised build (deploy/pgo/build.sh)}"
fi
# 2026-01-01T00:00:00Z plus 13s: samples sit 13s past each 30s boundary, so no sample lies
# on a range-selector boundary of the queries (see queries.txt).
START=$((1767225600 + 13))
# Queries end about 2 minutes before the last sample, 7s past a 30s boundary: subquery steps
# and range-query steps are multiples of 30s, so no subquery evaluation point lies on the
# boundary of the subquery range either.
END=$((1767225600 + HOURS * 3600 - 120 + 7))

if (( HOURS % 2 != 0 )); then
  echo "run.sh: HOURS must be even (whole 2h blocks)" >&2
  exit 2
fi
for tool in python3 curl promtool prometheus; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found on PATH" >&2; exit 2; }
done

base="${BENCH_DIR:-$root/target/bench-data/promql}"
gen_hash="$(sha256sum "$here/gen_openmetrics.py" | cut -c1-10)"
data="$base/data-i${INSTANCES}-h${HOURS}-s${INTERVAL}-seed${SEED}-${gen_hash}"
run="$base/run"
mkdir -p "$base"

# ---- 1. dataset
if [[ ! -f "$data/done" ]]; then
  echo "run.sh: generating dataset in $data"
  rm -rf "$data"
  mkdir -p "$data"
  t0=$(date +%s)
  python3 "$here/gen_openmetrics.py" --instances "$INSTANCES" --hours "$HOURS" \
    --interval "$INTERVAL" --start "$START" --seed "$SEED" >"$data/data.om"
  promtool tsdb create-blocks-from openmetrics -q "$data/data.om" "$data/blocks" >"$data/promtool.log"
  rm -f "$data/data.om"
  echo "run.sh: dataset generated in $(( $(date +%s) - t0 ))s"
  touch "$data/done"
fi
nblocks=$(find "$data/blocks" -mindepth 1 -maxdepth 1 -type d | wc -l)
echo "run.sh: $nblocks blocks, $(du -sh "$data/blocks" | cut -f1)"

# ---- binary
if [[ -n "${THANOS_BIN:-}" ]]; then
  thanos="$THANOS_BIN"
elif [[ "$PGO" == 1 ]]; then
  echo "run.sh: profile-guided, BOLT-optimised build (deploy/pgo/build.sh)"
  nice deploy/pgo/build.sh --thanos-only
  thanos="${CARGO_TARGET_DIR:-$root/target}/pgo/$(rustc -vV | sed -n 's/^host: //p')/release/thanos"
else
  echo "run.sh: building thanos (release)"
  nice cargo build --release --quiet -p thanos-cmd --bin thanos
  thanos="$root/target/release/thanos"
fi

# ---- 2. bucket and Prometheus data dir
rm -rf "$run"
mkdir -p "$run/bucket" "$run/prometheus" "$run/store"
cp -r "$data/blocks/." "$run/bucket/"
cp -r "$data/blocks/." "$run/prometheus/"
cat >"$run/bucket.yml" <<YAML
type: FILESYSTEM
config:
  directory: $run/bucket
YAML
printf 'global: {}\nscrape_configs: []\n' >"$run/prometheus.yml"

# ---- 3. processes
read -r p_prom p_store_grpc p_store_http p_query_grpc p_query_http < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)

pids=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ "$KEEP" != 1 && $status -eq 0 ]]; then
    rm -rf "$run"
  else
    echo "run.sh: logs and data kept in $run"
  fi
  exit "$status"
}
trap cleanup INT TERM EXIT

prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/prometheus" \
  --storage.tsdb.retention.time=100y \
  --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
  --web.listen-address="127.0.0.1:$p_prom" --log.level=warn \
  >"$run/prometheus.log" 2>&1 &
pids+=($!)
"$thanos" store --data-dir="$run/store" --objstore.config-file="$run/bucket.yml" \
  --grpc-address="127.0.0.1:$p_store_grpc" --http-address="127.0.0.1:$p_store_http" \
  >"$run/store.log" 2>&1 &
pids+=($!)
"$thanos" query --endpoint="127.0.0.1:$p_store_grpc" \
  --grpc-address="127.0.0.1:$p_query_grpc" --http-address="127.0.0.1:$p_query_http" \
  >"$run/query.log" 2>&1 &
pids+=($!)

prom="http://127.0.0.1:$p_prom"
ours="http://127.0.0.1:$p_query_http"
metric() { # URL NAME -> value of an unlabelled metric, empty if absent
  curl -fsS "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; exit }'
}
wait_for() { # DESCRIPTION COMMAND...
  local what="$1"
  shift
  for _ in $(seq 1 600); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  echo "run.sh: timed out waiting for $what; logs in $run" >&2
  KEEP=1
  exit 1
}
prom_blocks_loaded() { [[ "$(metric "$prom" prometheus_tsdb_blocks_loaded)" == "$nblocks" ]]; }
store_blocks_loaded() {
  [[ "$(metric "http://127.0.0.1:$p_store_http" thanos_bucket_store_blocks_loaded)" == "$nblocks" ]]
}
ours_answers() {
  curl -fsS "$ours/api/v1/query?query=count(up)&time=$END" 2>/dev/null | grep -q '"value"'
}
wait_for "Prometheus to load $nblocks blocks" prom_blocks_loaded
wait_for "the store gateway to load $nblocks blocks" store_blocks_loaded
wait_for "the querier to answer from the store" ours_answers
echo "run.sh: Prometheus on $prom, our querier on $ours (store gRPC 127.0.0.1:$p_store_grpc)"

# Sanity: both see every series of every block.
count_of() {
  python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'
}
for t in $((START + 3600)) $((START + 3 * 3600)) "$END"; do
  q='count({__name__=~".+"})'
  a=$(curl -fsS --data-urlencode "query=$q" --data-urlencode "time=$t" "$prom/api/v1/query" | count_of)
  b=$(curl -fsS --data-urlencode "query=$q" --data-urlencode "time=$t" "$ours/api/v1/query" | count_of)
  echo "run.sh: series at $t: prometheus $a, ours $b"
done

if [[ "$SERVE" == 1 ]]; then
  echo "run.sh: serving; PROM=$prom OURS=$ours STORE_GRPC=127.0.0.1:$p_store_grpc STORE_HTTP=http://127.0.0.1:$p_store_http END=$END"
  echo "PROM=$prom OURS=$ours STORE_GRPC=127.0.0.1:$p_store_grpc STORE_HTTP=http://127.0.0.1:$p_store_http END=$END" >"$base/serve.env"
  wait
fi

# ---- 4. queries
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --short 2>/dev/null | wc -l)"
binary_note=""
if [[ -n "${THANOS_BIN:-}" ]]; then
  binary_note=" (THANOS_BIN given: the binary may have been built from another tree)"
fi
samples_total=$(cat "$data"/blocks/*/meta.json | python3 -c '
import json, sys
text = sys.stdin.read()
dec = json.JSONDecoder(); i = 0; total = 0
while i < len(text):
    obj, i = dec.raw_decode(text, i)
    total += obj["stats"]["numSamples"]
    while i < len(text) and text[i].isspace(): i += 1
print(total)')
header="# PromQL latency: thanos query + store vs Prometheus 2.42

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree: commit $commit with $dirty uncommitted paths$binary_note
- load average before the queries: $(cut -d' ' -f1-3 /proc/loadavg)
- machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)
- thanos binary: $thanos (built $(date -u -r "$thanos" '+%Y-%m-%d %H:%M UTC')${BUILD_DESC:+; $BUILD_DESC})
- prometheus: $(prometheus --version 2>&1 | head -1)
- dataset: $INSTANCES instances, ${HOURS}h at ${INTERVAL}s, $nblocks blocks, $samples_total samples, seed $SEED
- query end time: $END ($(date -u -d "@$END" '+%Y-%m-%dT%H:%M:%SZ'))"

python3 "$here/compare.py" --prom "$prom" --ours "$ours" --queries "$QUERIES" --end "$END" \
  --runs "$RUNS" --warmup "$WARMUP" --markdown "$base/results.md" --json "$base/results.json" \
  --header "$header"
echo "run.sh: wrote $base/results.md"
