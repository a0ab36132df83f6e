#!/usr/bin/env bash
# Store gateway benchmark (not part of `cargo test` or CI). See benches/store/README.md.
#
# (a) 100 blocks × 1000 series (2h of 15s samples each) in a FILESYSTEM bucket: latency
#     and bytes fetched from the bucket per Series call, cold and warm
#     (crates/thanos-store/examples/store_bench.rs).
# (b) 1,000 blocks (the 100 unique ones plus 9 hard-linked copies each under new ULIDs):
#     `thanos store` start-up time until /-/ready and RSS, first start (index-headers
#     built) and restart (index-headers reused).
#
# Everything generated lives under target/store-bench/. Usage: benches/store/run.sh [a|b|all]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/target/store-bench"
WHAT="${1:-all}"
WARM="${WARM:-5}"
cd "$ROOT"
mkdir -p "$OUT"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"

# NO_BUILD=1 reuses the release binaries already in target/release.
[[ "${NO_BUILD:-}" == 1 ]] || cargo build --release -p thanos-store --example store_bench
BENCH="$ROOT/target/release/examples/store_bench"

if [[ ! -d "$OUT/b100" ]]; then
  "$BENCH" gen "$OUT/b100.tmp" 100 1000 1 && mv "$OUT/b100.tmp" "$OUT/b100"
fi

if [[ "$WHAT" == a || "$WHAT" == all ]]; then
  echo "== (a) 100 blocks: Series latency and bytes fetched"
  du -sh --apparent-size "$OUT/b100" | sed 's/^/bucket size: /'
  rm -rf "$OUT/data-a"
  "$BENCH" query "$OUT/b100" "$OUT/data-a" "$WARM"
  echo "index-header bytes on disk for 100 blocks: $(du -cb "$OUT"/data-a/*/index-header | tail -1 | cut -f1)"
fi

if [[ "$WHAT" == b || "$WHAT" == all ]]; then
  [[ "${NO_BUILD:-}" == 1 ]] || cargo build --release -p thanos-cmd --bin thanos
  THANOS="$ROOT/target/release/thanos"
  if [[ ! -d "$OUT/b1000" ]]; then
    "$BENCH" gen "$OUT/b1000.tmp" 100 1000 10 && mv "$OUT/b1000.tmp" "$OUT/b1000"
  fi
  echo "== (b) 1,000 blocks: start-up time and RSS of thanos store"
  rm -rf "$OUT/data-b"
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
  for run in first-start restart; do
    HTTP="$(port)"; GRPC="$(port)"
    start=$(date +%s.%N)
    "$THANOS" store \
      --objstore.config="type: FILESYSTEM
config:
  directory: $OUT/b1000" \
      --data-dir="$OUT/data-b" \
      --http-address="127.0.0.1:$HTTP" --grpc-address="127.0.0.1:$GRPC" \
      --log.level=warn >"$OUT/store-$run.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 6000); do
      if curl -fs "http://127.0.0.1:$HTTP/-/ready" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$PID" 2>/dev/null; then echo "thanos store exited; see $OUT/store-$run.log"; exit 1; fi
      sleep 0.05
    done
    ready=$(date +%s.%N)
    loaded=$(curl -fs "http://127.0.0.1:$HTTP/metrics" | awk '/^thanos_bucket_store_blocks_loaded / {print $2}')
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
    sleep 1
    rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
    kill -TERM "$PID"; wait "$PID" || true
    printf '%s: ready after %.2fs, blocks loaded %s, RSS at ready %d MiB (peak %d MiB, 1s later %d MiB)\n' \
      "$run" "$(awk "BEGIN {print $ready - $start}")" "$loaded" $((rss/1024)) $((hwm/1024)) $((rss_idle/1024))
  done
  echo "index-header bytes on disk for 1000 blocks: $(du -cb "$OUT"/data-b/*/index-header | tail -1 | cut -f1)"
fi
