#!/usr/bin/env python3
"""Writes a deterministic OpenMetrics dataset for the PromQL benchmark to stdout.

Usage: gen_openmetrics.py --instances N --hours H --interval S --start UNIX_SECONDS --seed K

Shape (per instance; instances are spread over the jobs api, web, worker, db):
  http_requests_total{method,code}                 counter, 6 series
  http_request_duration_seconds{handler} histogram  3 handlers x (11 buckets + sum + count)
  node_cpu_seconds_total{cpu,mode}                  counter, 4 cpus x 4 modes
  process_resident_memory_bytes, go_goroutines,
  process_cpu_seconds_total, up                     1 series each
  queue_depth{queue}                                gauge, 3 series (jobs worker only)
Every series carries job, instance and pod. Pods of the `worker` job are replaced every two
hours (a new pod label value), so that job has series churn like a real deployment.
Counters hold integral or fixed-precision values; gauges are pseudo-random floats from a
seeded generator, so the same parameters always produce the same bytes.
"""

import argparse
import bisect
import random
import sys

JOBS = ("api", "web", "worker", "db")
METHODS = ("GET", "POST")
CODES = ("200", "404", "500")
HANDLERS = ("/query", "/write", "/status")
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")
CPU_MODES = ("user", "system", "idle", "iowait")
QUEUES = ("high", "default", "low")


def instances(count):
    """Yields (job, instance address, instance index) for `count` scrape targets."""
    for i in range(count):
        job = JOBS[i % len(JOBS)]
        inst = f"10.0.{i // 250}.{i % 250 + 1}:9100"
        yield job, inst, i


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--hours", type=int, required=True)
    p.add_argument("--interval", type=int, required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    a = p.parse_args()

    steps = a.hours * 3600 // a.interval
    ts = [a.start + k * a.interval for k in range(steps)]
    # Worker pods churn every 2h: segment index per step.
    seg_len = 7200 // a.interval
    out = sys.stdout
    w = out.write

    def pods(job, idx):
        """Yields (pod, first_step, last_step_exclusive) for an instance."""
        if job != "worker":
            yield f"{job}-{idx:04d}-{idx * 7919 % 100000:05x}", 0, steps
            return
        for s0 in range(0, steps, seg_len):
            gen = s0 // seg_len
            yield f"{job}-{idx:04d}-g{gen}-{(idx * 31 + gen) * 7919 % 100000:05x}", s0, min(steps, s0 + seg_len)

    def series(name, labels, values, first):
        prefix = name + "{" + labels + "} "
        w("".join(f"{prefix}{v} {ts[first + k]}\n" for k, v in enumerate(values)))

    rng = random.Random(a.seed)
    insts = list(instances(a.instances))

    # ---- counters: http_requests_total
    w("# TYPE http_requests counter\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            base = f'job="{job}",instance="{inst}",pod="{pod}"'
            for m in METHODS:
                for c in CODES:
                    weight = {"200": 20, "404": 2, "500": 1}[c] * (3 if m == "GET" else 1)
                    total = 0
                    vals = []
                    for _ in range(s0, s1):
                        total += int(rng.random() * weight * a.interval / 10)
                        vals.append(total)
                    series("http_requests_total", f'{base},method="{m}",code="{c}"', vals, s0)

    # ---- classic histogram: http_request_duration_seconds
    w("# TYPE http_request_duration_seconds histogram\n")
    bounds = [float(b) if b != "+Inf" else float("inf") for b in BUCKETS]
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            base = f'job="{job}",instance="{inst}",pod="{pod}"'
            for h in HANDLERS:
                n = s1 - s0
                cum = [[0] * n for _ in BUCKETS]
                sums = [0.0] * n
                counts = [0] * n
                total_sum = 0.0
                running = [0] * len(BUCKETS)
                scale = 0.05 * (1 + HANDLERS.index(h)) * (1 + idx % 5 / 4)
                for k in range(n):
                    reqs = 5 + int(rng.random() * 20)
                    for _ in range(reqs):
                        d = rng.expovariate(1 / scale)
                        total_sum += d
                        running[bisect.bisect_left(bounds, d)] += 1
                    acc = 0
                    for b in range(len(BUCKETS)):
                        acc += running[b]
                        cum[b][k] = acc
                    counts[k] = acc
                    sums[k] = round(total_sum, 3)
                for b, le in enumerate(BUCKETS):
                    series("http_request_duration_seconds_bucket", f'{base},handler="{h}",le="{le}"', cum[b], s0)
                series("http_request_duration_seconds_sum", f'{base},handler="{h}"', sums, s0)
                series("http_request_duration_seconds_count", f'{base},handler="{h}"', counts, s0)

    # ---- node_cpu_seconds_total
    w("# TYPE node_cpu_seconds counter\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            base = f'job="{job}",instance="{inst}",pod="{pod}"'
            for cpu in range(4):
                for mode in CPU_MODES:
                    share = {"user": 0.4, "system": 0.15, "idle": 0.4, "iowait": 0.05}[mode]
                    total = 0.0
                    vals = []
                    for _ in range(s0, s1):
                        total += round(share * a.interval * (0.5 + rng.random()), 2)
                        vals.append(round(total, 2))
                    series("node_cpu_seconds_total", f'{base},cpu="{cpu}",mode="{mode}"', vals, s0)

    # ---- process gauges and counters
    w("# TYPE process_resident_memory_bytes gauge\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            level = 2e8 + (idx % 17) * 1e7
            vals = []
            for _ in range(s0, s1):
                level = max(5e7, level + (rng.random() - 0.5) * 4e6)
                vals.append(int(level))
            series("process_resident_memory_bytes", f'job="{job}",instance="{inst}",pod="{pod}"', vals, s0)

    w("# TYPE go_goroutines gauge\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            vals = [50 + int(rng.random() * 200) for _ in range(s0, s1)]
            series("go_goroutines", f'job="{job}",instance="{inst}",pod="{pod}"', vals, s0)

    w("# TYPE process_cpu_seconds counter\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            total = 0.0
            vals = []
            for _ in range(s0, s1):
                total += round(rng.random() * a.interval * 0.3, 3)
                vals.append(round(total, 3))
            series("process_cpu_seconds_total", f'job="{job}",instance="{inst}",pod="{pod}"', vals, s0)

    w("# TYPE up gauge\n")
    for job, inst, idx in insts:
        for pod, s0, s1 in pods(job, idx):
            vals = [0 if rng.random() < 0.01 else 1 for _ in range(s0, s1)]
            series("up", f'job="{job}",instance="{inst}",pod="{pod}"', vals, s0)

    w("# TYPE queue_depth gauge\n")
    for job, inst, idx in insts:
        if job != "worker":
            continue
        for pod, s0, s1 in pods(job, idx):
            for q in QUEUES:
                vals = [round(rng.random() * 1000, 1) for _ in range(s0, s1)]
                series("queue_depth", f'job="{job}",instance="{inst}",pod="{pod}",queue="{q}"', vals, s0)

    w("# EOF\n")


if __name__ == "__main__":
    main()
