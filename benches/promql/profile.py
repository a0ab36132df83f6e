#!/usr/bin/env python3
"""Splits our querier's latency for chosen queries into store-gateway time and the rest.

Usage (with `SERVE=1 benches/promql/run.sh` running; it writes target/bench-data/promql/serve.env):
  profile.py --env target/bench-data/promql/serve.env [--runs 20] [--queries queries.txt] N [N ...]

N are 1-based query numbers as printed by compare.py. For each query it runs the query
`runs` times against Prometheus and against our querier and reads the store gateway's
/metrics before and after our runs. It prints per query (medians / averages per query):
  prom      Prometheus latency
  ours      our querier's latency (HTTP round trip incl. body)
  store     time the store gateway spent in Series (thanos_bucket_store_series_get_all_duration_seconds)
  calls     Series calls per query (count of that histogram)
  rest      ours - store: gRPC transfer and decoding, PromQL evaluation, JSON encoding
  fetched   bytes the store read from the bucket per query (postings, series, chunks)
  body      size of our JSON answer
Standard library only.
"""

import argparse
import statistics
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from compare import Client, load_queries, request_for  # noqa: E402


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for word in f.read().split():
            key, _, value = word.partition("=")
            env[key] = value
    return env


def store_metrics(client):
    _, _, body = client.get("/metrics", {})
    values = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("thanos_bucket_store_series_get_all_duration_seconds_sum"):
            values["store_s"] = float(value)
        elif name.startswith("thanos_bucket_store_series_get_all_duration_seconds_count"):
            values["calls"] = float(value)
        elif name.startswith("thanos_bucket_store_series_data_fetched_bytes_total"):
            values["fetched"] = values.get("fetched", 0.0) + float(value)
    return values


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--queries", default=__file__.rsplit("/", 1)[0] + "/queries.txt")
    p.add_argument("numbers", type=int, nargs="+")
    a = p.parse_args()

    env = read_env(a.env)
    end = float(env["END"])
    prom, ours, store = Client(env["PROM"]), Client(env["OURS"]), Client(env["STORE_HTTP"])
    queries = load_queries(a.queries)
    print(f"{'#':>3} {'prom ms':>8} {'ours ms':>8} {'store ms':>8} {'calls':>5} {'rest ms':>8} {'fetched KiB':>11} {'body KiB':>8}  query")
    for n in a.numbers:
        q = queries[n - 1]
        path, params = request_for(q, end)
        prom.get(path, params)
        ours.get(path, params)
        prom_times = [prom.get(path, params)[0] for _ in range(a.runs)]
        before = store_metrics(store)
        ours_times = []
        body = 0
        for _ in range(a.runs):
            elapsed, _, data = ours.get(path, params)
            ours_times.append(elapsed)
            body = len(data)
        after = store_metrics(store)
        store_ms = (after["store_s"] - before["store_s"]) / a.runs * 1000
        calls = (after["calls"] - before["calls"]) / a.runs
        fetched = (after.get("fetched", 0) - before.get("fetched", 0)) / a.runs / 1024
        ours_ms = statistics.median(ours_times) * 1000
        prom_ms = statistics.median(prom_times) * 1000
        print(
            f"{n:>3} {prom_ms:>8.1f} {ours_ms:>8.1f} {store_ms:>8.1f} {calls:>5.1f} {ours_ms - store_ms:>8.1f} "
            f"{fetched:>11.0f} {body / 1024:>8.0f}  {q['expr']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
