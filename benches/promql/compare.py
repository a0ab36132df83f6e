#!/usr/bin/env python3
"""Runs the PromQL query set against Prometheus and our querier and compares them.

Usage:
  compare.py --prom http://127.0.0.1:PORT --ours http://127.0.0.1:PORT \
             --queries queries.txt --end UNIX_SECONDS [--runs 5] [--warmup 1] \
             [--markdown results.md] [--json results.json] [--header TEXT]

For every query (queries.txt format is described at the top of that file) it sends
`warmup` untimed requests to each system, checks the two answers agree, then sends `runs`
timed requests to each system alternately (the system going first alternates too) over
one keep-alive HTTP connection per system. Latency is the wall-clock time from sending the
request to having read the whole response body. It reports the median per query and
system, the ratio ours/prometheus and the geometric mean of the ratios.

Answers agree when both succeed with the same result type, the same set of label sets and,
per series, the same timestamps and values within a relative tolerance of 1e-6 (NaN equals
NaN). Standard library only.
"""

import argparse
import http.client
import json
import math
import statistics
import sys
import time
import urllib.parse

REL_TOL = 1e-6
ABS_TOL = 1e-9


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def load_queries(path):
    queries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, sep, expr = line.partition("|")
            if not sep:
                sys.exit(f"{path}:{lineno}: expected `KIND | QUERY`")
            words = kind.split()
            if words == ["instant"]:
                queries.append({"kind": "instant", "expr": expr.strip()})
            elif len(words) == 3 and words[0] == "range":
                queries.append({
                    "kind": "range",
                    "range": words[1],
                    "step": words[2],
                    "expr": expr.strip(),
                })
            else:
                sys.exit(f"{path}:{lineno}: unknown kind {kind.strip()!r}")
    return queries


class Client:
    """One keep-alive HTTP connection to a Prometheus-compatible query API."""

    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.host = url.hostname
        self.port = url.port
        self.prefix = url.path.rstrip("/")
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)

    def get(self, path, params):
        """Returns (seconds, status, body bytes)."""
        target = f"{self.prefix}{path}?{urllib.parse.urlencode(params)}"
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                start = time.perf_counter()
                self.conn.request("GET", target)
                resp = self.conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - start
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return elapsed, resp.status, body
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def request_for(query, end):
    if query["kind"] == "instant":
        return "/api/v1/query", {"query": query["expr"], "time": f"{end:.3f}"}
    start = end - parse_duration(query["range"])
    return "/api/v1/query_range", {
        "query": query["expr"],
        "start": f"{start:.3f}",
        "end": f"{end:.3f}",
        "step": query["step"],
    }


def to_float(text):
    return float(text)  # handles "NaN", "+Inf", "-Inf"


def values_equal(a, b):
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def normalise(payload):
    """Maps an API answer onto (result type, {labels: [(t, v), ...]}) or raises ValueError."""
    if payload.get("status") != "success":
        raise ValueError(f"{payload.get('errorType')}: {payload.get('error')}")
    data = payload["data"]
    rtype = data["resultType"]
    result = data["result"]
    series = {}
    if rtype == "vector":
        for s in result:
            key = tuple(sorted(s["metric"].items()))
            series.setdefault(key, []).append((float(s["value"][0]), to_float(s["value"][1])))
    elif rtype == "matrix":
        for s in result:
            key = tuple(sorted(s["metric"].items()))
            series.setdefault(key, []).extend((float(t), to_float(v)) for t, v in s.get("values", []))
    elif rtype == "scalar":
        series[()] = [(float(result[0]), to_float(result[1]))]
    elif rtype == "string":
        series[()] = [(float(result[0]), result[1])]
    else:
        raise ValueError(f"unknown result type {rtype}")
    return rtype, series


def compare(prom, ours):
    """Returns None when equal, else a short description of the first difference."""
    ptype, pseries = prom
    otype, oseries = ours
    if ptype != otype:
        return f"result type {otype} vs prometheus {ptype}"
    if len(pseries) != len(oseries):
        missing = sorted(set(pseries) - set(oseries))
        extra = sorted(set(oseries) - set(pseries))
        detail = ""
        if missing:
            detail += f"; missing e.g. {dict(missing[0])}"
        if extra:
            detail += f"; extra e.g. {dict(extra[0])}"
        return f"{len(oseries)} series vs prometheus {len(pseries)}{detail}"
    for key, points in pseries.items():
        other = oseries.get(key)
        if other is None:
            return f"series {dict(key)} missing"
        if len(points) != len(other):
            return f"series {dict(key)}: {len(other)} points vs prometheus {len(points)}"
        for (pt, pv), (ot, ov) in zip(points, other):
            if pt != ot:
                return f"series {dict(key)}: timestamp {ot} vs prometheus {pt}"
            if isinstance(pv, str) or isinstance(ov, str):
                if pv != ov:
                    return f"string {ov!r} vs prometheus {pv!r}"
            elif not values_equal(pv, ov):
                return f"series {dict(key)} at {pt}: {ov!r} vs prometheus {pv!r}"
    return None


def run_one(client, path, params):
    elapsed, status, body = client.get(path, params)
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        payload = {"status": "error", "errorType": f"http {status}", "error": body[:200].decode(errors="replace")}
    return elapsed, status, body, payload


def fmt_ms(seconds):
    if seconds is None:
        return "—"
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prom", required=True)
    p.add_argument("--ours", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--end", type=float, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--markdown")
    p.add_argument("--json")
    p.add_argument("--header", default="")
    a = p.parse_args()

    queries = load_queries(a.queries)
    clients = {"prom": Client(a.prom), "ours": Client(a.ours)}
    rows = []
    for i, q in enumerate(queries, 1):
        path, params = request_for(q, a.end)
        row = {"n": i, "query": q, "prom": [], "ours": [], "error": {}, "mismatch": None, "series": {}, "bytes": {}}
        answers = {}
        for _ in range(max(1, a.warmup)):
            for name, client in clients.items():
                _, status, body, payload = run_one(client, path, params)
                row["bytes"][name] = len(body)
                try:
                    answers[name] = normalise(payload)
                    row["series"][name] = len(answers[name][1])
                except (ValueError, KeyError, TypeError) as err:
                    row["error"][name] = f"{err}"[:300]
        if "prom" in answers and "ours" in answers:
            row["mismatch"] = compare(answers["prom"], answers["ours"])
        order = ["prom", "ours"]
        for r in range(a.runs):
            for name in order if r % 2 == 0 else reversed(order):
                if name in row["error"]:
                    continue
                elapsed, _, _, _ = run_one(clients[name], path, params)
                row[name].append(elapsed)
        for name in order:
            row[f"{name}_median"] = statistics.median(row[name]) if row[name] else None
            row[f"{name}_min"] = min(row[name]) if row[name] else None
        pm, om = row["prom_median"], row["ours_median"]
        row["ratio"] = om / pm if pm and om else None
        row["ratio_min"] = row["ours_min"] / row["prom_min"] if pm and om else None
        rows.append(row)
        label = f"{q['kind']}" + (f" {q['range']}/{q['step']}" if q["kind"] == "range" else "")
        status = "ok" if row["mismatch"] is None and not row["error"] else ("ERROR" if row["error"] else "MISMATCH")
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "—"
        print(f"[{i:3d}/{len(queries)}] prom {fmt_ms(pm):>7} ms  ours {fmt_ms(om):>7} ms  ratio {ratio:>6}  {status:8} {label} {q['expr']}", flush=True)

    ratios = [r["ratio"] for r in rows if r["ratio"]]
    ok_ratios = [r["ratio"] for r in rows if r["ratio"] and r["mismatch"] is None]
    geo = math.exp(statistics.fmean(math.log(x) for x in ratios)) if ratios else None
    geo_ok = math.exp(statistics.fmean(math.log(x) for x in ok_ratios)) if ok_ratios else None
    min_ratios = [r["ratio_min"] for r in rows if r["ratio_min"]]
    geo_min = math.exp(statistics.fmean(math.log(x) for x in min_ratios)) if min_ratios else None
    prom_total = sum(r["prom_median"] for r in rows if r["ratio"])
    ours_total = sum(r["ours_median"] for r in rows if r["ratio"])

    lines = [a.header.rstrip(), ""] if a.header else []
    lines += [
        f"Queries: {len(rows)}; timed runs per query and system: {a.runs} (after {a.warmup} warm-up); "
        f"latency = median wall-clock of one HTTP request incl. reading the body.",
        "",
        f"**Geometric mean of ratios (ours / Prometheus), all {len(ratios)} queries answered by both: "
        f"{geo:.3f}**" if geo else "**No query answered by both.**",
        "",
        f"Geometric mean over the {len(ok_ratios)} queries whose answers agree: {geo_ok:.3f}" if geo_ok else "",
        "",
        f"Geometric mean of the ratios of the fastest runs (less sensitive to other load on the "
        f"machine): {geo_min:.3f}" if geo_min else "",
        "",
        f"Sum of medians: Prometheus {prom_total * 1000:.0f} ms, ours {ours_total * 1000:.0f} ms "
        f"(ratio {ours_total / prom_total:.3f})" if prom_total else "",
        "",
        "| # | kind | query | series | Prometheus ms | ours ms | ratio | ratio of fastest runs | answers |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        q = r["query"]
        kind = "instant" if q["kind"] == "instant" else f"range {q['range']}/{q['step']}"
        if r["error"]:
            verdict = "error: " + "; ".join(f"{k}: {v}" for k, v in r["error"].items())
        elif r["mismatch"]:
            verdict = "MISMATCH: " + r["mismatch"]
        else:
            verdict = "equal"
        verdict = verdict.replace("|", "\\|")
        expr = q["expr"].replace("|", "\\|")
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "—"
        ratio_min = f"{r['ratio_min']:.2f}" if r["ratio_min"] else "—"
        series = r["series"].get("prom", r["series"].get("ours", "—"))
        lines.append(
            f"| {r['n']} | {kind} | `{expr}` | {series} | {fmt_ms(r['prom_median'])} | "
            f"{fmt_ms(r['ours_median'])} | {ratio} | {ratio_min} | {verdict} |"
        )
    worst = sorted((r for r in rows if r["ratio"]), key=lambda r: r["ratio"], reverse=True)[:10]
    lines += ["", "Ten worst ratios:", ""]
    for r in worst:
        lines.append(f"- #{r['n']} {r['ratio']:.2f} (ours {fmt_ms(r['ours_median'])} ms, Prometheus {fmt_ms(r['prom_median'])} ms): `{r['query']['expr']}`")
    mismatches = [r for r in rows if r["mismatch"] or r["error"]]
    lines += ["", f"Queries with errors or differing answers: {len(mismatches)}", ""]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"geomean": geo, "geomean_equal": geo_ok, "geomean_min": geo_min, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
