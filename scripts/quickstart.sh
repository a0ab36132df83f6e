#!/usr/bin/env bash
# Quick start: receive, store gateway and querier on a local FILESYSTEM bucket.
# - a Prometheus scrapes all three components and remote-writes to receive (durable in its WAL);
# - the bucket is seeded with a demo block written by promtool (6h of `demo_requests_total`),
#   which the store gateway serves and the querier answers PromQL over.
# The querier reads both: receive's heads (the live scrapes) and the bucket (the demo block).
# Receive cuts 2h blocks and uploads them into the same bucket (and flushes its head into a
# block on Ctrl-C). Everything lives under ./quickstart-data
# (QUICKSTART_DIR); Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${QUICKSTART_DIR:-$PWD/quickstart-data}"
mkdir -p "$dir/bucket" "$dir/receive" "$dir/store" "$dir/prometheus"

if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "quickstart: installing Debian's prometheus (the sample-data sender)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
  else
    echo "quickstart: needs a 'prometheus' binary on PATH to send sample data (Debian: apt-get install prometheus)" >&2
    exit 1
  fi
fi

echo "quickstart: building thanos"
cargo build --quiet --bin thanos
thanos="$PWD/target/debug/thanos"

if [ -z "$(ls -A "$dir/bucket")" ]; then
  echo "quickstart: writing a demo block into the bucket with promtool"
  now=$(date +%s)
  python3 - "$now" >"$dir/demo.om" <<'PY'
import sys
now = int(sys.argv[1])
start = now - 6 * 3600
print("# TYPE demo_requests counter")
for job, rate in (("api", 5.0), ("web", 2.0)):
    for instance in ("a", "b"):
        total = 0.0
        for t in range(start, now, 15):
            total += rate * 15
            print(f'demo_requests_total{{job="{job}",instance="{instance}"}} {total} {t}')
print("# EOF")
PY
  promtool tsdb create-blocks-from openmetrics "$dir/demo.om" "$dir/bucket" >/dev/null
fi

cat >"$dir/bucket.yml" <<YAML
type: FILESYSTEM
config:
  directory: $dir/bucket
YAML

cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  external_labels:
    cluster: quickstart
scrape_configs:
  - job_name: thanos
    static_configs:
      - targets: ['127.0.0.1:10909']
        labels: {component: receive}
      - targets: ['127.0.0.1:10906']
        labels: {component: store}
      - targets: ['127.0.0.1:10904']
        labels: {component: query}
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:9099']
remote_write:
  - url: http://127.0.0.1:19291/api/v1/receive
    queue_config: {batch_send_deadline: 1s}
YAML

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "quickstart: stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$thanos" receive \
  --tsdb.path="$dir/receive" --label='receive_replica="0"' \
  --objstore.config-file="$dir/bucket.yml" \
  --remote-write.address=127.0.0.1:19291 --grpc-address=127.0.0.1:10907 --http-address=127.0.0.1:10909 \
  >"$dir/receive.log" 2>&1 &
pids+=($!)
"$thanos" store \
  --data-dir="$dir/store" --objstore.config-file="$dir/bucket.yml" \
  --grpc-address=127.0.0.1:10905 --http-address=127.0.0.1:10906 --sync-block-duration=1m \
  >"$dir/store.log" 2>&1 &
pids+=($!)
"$thanos" query \
  --endpoint=127.0.0.1:10907 --endpoint=127.0.0.1:10905 --query.replica-label=receive_replica \
  --grpc-address=127.0.0.1:10903 --http-address=127.0.0.1:10904 \
  >"$dir/query.log" 2>&1 &
pids+=($!)
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prometheus" \
  --web.listen-address=127.0.0.1:9099 \
  >"$dir/prometheus.log" 2>&1 &
pids+=($!)

for url in http://127.0.0.1:10909/-/ready http://127.0.0.1:10906/-/ready http://127.0.0.1:10904/-/ready; do
  for _ in $(seq 1 100); do
    curl -fs "$url" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fs "$url" >/dev/null || { echo "quickstart: $url did not become ready; logs in $dir" >&2; exit 1; }
done

cat <<MSG
quickstart: running (logs in $dir)
  query UI     : http://127.0.0.1:10904/graph
  remote write : http://127.0.0.1:19291/api/v1/receive
  query API    : http://127.0.0.1:10904/api/v1/query?query=sum(rate(demo_requests_total[5m]))
  live data    : http://127.0.0.1:10904/api/v1/query?query=up
  stores       : http://127.0.0.1:10904/api/v1/stores
Prometheus remote-writes its scrapes of the three components to receive every 5s.
Press Ctrl-C to stop.
MSG
wait
