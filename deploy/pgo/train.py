#!/usr/bin/env python3
"""Training workload of the profile-guided release build (deploy/pgo/build.sh).

Runs the `thanos` binary the way a deployment does and exits non-zero if any step fails:

1. generates a dataset with benches/promql/gen_openmetrics.py (other parameters and seed than
   the benchmark's) and turns it into 2h blocks with `promtool tsdb create-blocks-from`;
2. puts the blocks into a FILESYSTEM bucket and into an S3 bucket served by
   `s3-test-server`, and starts `thanos store` on each, `thanos receive`, and
   `thanos query` with all three as endpoints (the two stores hold the same blocks, so the
   querier also merges duplicate series);
3. remote-writes series into receive with `rw-load`;
4. sends every query of deploy/pgo/queries.txt over the blocks and a few over receive's
   head, plus series, label-name and label-value requests, and checks each answer;
5. stops the processes with SIGTERM, so that instrumented binaries write their profiles.

With --component-binaries, each component runs from its own binary beside --thanos
(thanos-store, thanos-receive, thanos-query, which the release images ship) instead of as
`thanos <component>`.

With --profile-dir, the thanos processes write LLVM profiles there
(LLVM_PROFILE_FILE=DIR/thanos-%p-%m.profraw). Instrumented helpers (rw-load, s3-test-server)
always write theirs into WORK/helper-profiles, which the build ignores. Standard library only.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# the PromQL benchmark's query-file format and request building
sys.path.insert(0, os.path.join(ROOT, "benches", "promql"))
import compare as bench  # noqa: E402
# 2026-01-01T00:00:13Z, as in the PromQL benchmark: samples sit 13s past each 30s boundary.
START = 1767225600 + 13


def log(msg):
    print(f"train.py: {msg}", flush=True)


def fail(msg):
    print(f"train.py: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A keep-alive HTTP client for one server's Prometheus-style API."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path, params=()):
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request("GET", url)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def data(self, path, params=()):
        """The `data` of a successful API answer; fails the run on any other answer."""
        status, body = self.get(path, params)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        if status != 200 or doc.get("status") != "success":
            fail(f"{path} {dict(params)}: HTTP {status}: {body[:300]!r}")
        return doc["data"]


class Processes:
    """Child processes, stopped with SIGTERM (then SIGKILL) in reverse order."""

    def __init__(self, work):
        self.work = work
        self.children = []

    def start(self, name, argv, env):
        out = open(os.path.join(self.work, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.children.append((name, proc, signal.SIGTERM))
        return proc

    def add_helper(self, name, proc):
        """A helper stopped with SIGINT (the test servers wait for Ctrl-C)."""
        self.children.append((name, proc, signal.SIGINT))

    def stop(self):
        """Stops every child; returns the names of those that did not exit cleanly."""
        unclean = []
        for name, proc, sig in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                unclean.append(f"{name} (exit {code})")
        self.children = []
        return unclean


def wait_until(what, check, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (ConnectionError, http.client.HTTPException, OSError, ValueError):
            pass
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def metric(port, name):
    """Value of an unlabelled metric on a component's /metrics, None if absent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


def make_blocks(args, data):
    om = os.path.join(data, "data.om")
    with open(om, "wb") as out:
        subprocess.run(
            [sys.executable, args.generator, "--instances", str(args.instances),
             "--hours", str(args.hours), "--interval", "30", "--start", str(START),
             "--seed", str(args.seed)],
            stdout=out, check=True)
    blocks = os.path.join(data, "blocks")
    subprocess.run([args.promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", om, blocks],
                   stdout=subprocess.DEVNULL, check=True)
    os.remove(om)
    names = sorted(os.listdir(blocks))
    if not names:
        fail("promtool wrote no blocks")
    return blocks, names


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--thanos", required=True, help="the thanos binary to train")
    p.add_argument("--component-binaries", action="store_true",
                   help="run thanos-store, thanos-receive and thanos-query from beside --thanos")
    p.add_argument("--rw-load", required=True, help="the rw-load binary (thanos-test-support)")
    p.add_argument("--s3-server", required=True,
                   help="the s3-test-server binary (thanos-test-support)")
    p.add_argument("--work", required=True, help="scratch directory (created, must be empty)")
    p.add_argument("--profile-dir", help="directory for the thanos processes' LLVM profiles")
    p.add_argument("--promtool", default="promtool")
    p.add_argument("--generator", default=os.path.join(ROOT, "benches/promql/gen_openmetrics.py"))
    p.add_argument("--queries", default=os.path.join(HERE, "queries.txt"))
    p.add_argument("--instances", type=int, default=60, help="scrape targets in the dataset")
    p.add_argument("--hours", type=int, default=6, help="span of the dataset (even)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--series", type=int, default=20000, help="series remote-written to receive")
    p.add_argument("--rounds", type=int, default=20, help="samples per remote-written series")
    p.add_argument("--repeat", type=int, default=3, help="times every query is sent")
    args = p.parse_args()
    if args.hours % 2:
        fail("--hours must be even (whole 2h blocks)")

    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    if os.listdir(work):
        fail(f"{work} is not empty")
    env = dict(os.environ)
    # the helpers come from the instrumented build of deploy/pgo/build.sh: their profiles
    # are not wanted
    helper_env = dict(os.environ)
    helper_env["LLVM_PROFILE_FILE"] = os.path.join(work, "helper-profiles", "%p-%m.profraw")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
        env["LLVM_PROFILE_FILE"] = os.path.join(
            os.path.abspath(args.profile_dir), "thanos-%p-%m.profraw")
    t0 = time.time()

    data = os.path.join(work, "data")
    os.makedirs(data)
    blocks, block_names = make_blocks(args, data)
    log(f"{len(block_names)} blocks generated in {time.time() - t0:.0f}s")
    end = START + args.hours * 3600 - 120 + 7

    fs_bucket = os.path.join(work, "bucket")
    shutil.copytree(blocks, fs_bucket)
    s3_root = os.path.join(work, "s3")
    shutil.copytree(blocks, os.path.join(s3_root, "pgo"))
    with open(os.path.join(work, "fs.yml"), "w", encoding="utf-8") as f:
        f.write(f"type: FILESYSTEM\nconfig:\n  directory: {fs_bucket}\n")

    def component(name):
        """The command line start of one component."""
        if args.component_binaries:
            return [os.path.join(os.path.dirname(os.path.abspath(args.thanos)), f"thanos-{name}")]
        return [args.thanos, name]

    procs = Processes(work)
    try:
        s3 = subprocess.Popen(
            [args.s3_server, "--data-dir", s3_root, "--bucket", "pgo"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "s3.log"), "wb"),
            env=helper_env)
        procs.add_helper("s3-test-server", s3)
        s3_addr = s3.stdout.readline().decode().strip()
        if not s3_addr:
            fail("s3-test-server printed no address")
        with open(os.path.join(work, "s3.yml"), "w", encoding="utf-8") as f:
            f.write("type: S3\nconfig:\n"
                    f"  bucket: pgo\n  endpoint: \"{s3_addr}\"\n  region: us-east-1\n"
                    "  access_key: thanos-test-access-key\n"
                    "  secret_key: thanos-test-secret-key\n"
                    "  insecure: true\n  bucket_lookup_type: path\n")

        ports = {}
        for name, objstore in (("store-fs", "fs.yml"), ("store-s3", "s3.yml")):
            grpc, http_port = free_port(), free_port()
            ports[name] = (grpc, http_port)
            procs.start(name, component("store") + [
                f"--data-dir={os.path.join(work, name)}",
                f"--objstore.config-file={os.path.join(work, objstore)}",
                f"--grpc-address=127.0.0.1:{grpc}", f"--http-address=127.0.0.1:{http_port}",
            ], env)
        rw, r_grpc, r_http = free_port(), free_port(), free_port()
        procs.start("receive", component("receive") + [
            "--label=replica=\"0\"",
            f"--tsdb.path={os.path.join(work, 'receive')}",
            f"--remote-write.address=127.0.0.1:{rw}", f"--grpc-address=127.0.0.1:{r_grpc}",
            f"--http-address=127.0.0.1:{r_http}",
        ], env)
        q_grpc, q_http = free_port(), free_port()
        procs.start("query", component("query") + [
            f"--endpoint=127.0.0.1:{ports['store-fs'][0]}",
            f"--endpoint=127.0.0.1:{ports['store-s3'][0]}", f"--endpoint=127.0.0.1:{r_grpc}",
            f"--grpc-address=127.0.0.1:{q_grpc}", f"--http-address=127.0.0.1:{q_http}",
        ], env)

        for name in ("store-fs", "store-s3"):
            wait_until(f"{name} to load {len(block_names)} blocks",
                       lambda port=ports[name][1]: metric(port, "thanos_bucket_store_blocks_loaded")
                       == len(block_names))
        wait_until("receive to be ready",
                   lambda: Api(r_http).get("/-/ready")[0] == 200)
        api = Api(q_http)

        def endpoints_up():
            status, body = api.get("/api/v1/stores")
            kinds = (json.loads(body).get("data") or {}) if status == 200 else {}
            return len(kinds.get("store", [])) == 2 and len(kinds.get("receive", [])) == 1

        wait_until("the querier to see both stores and receive", endpoints_up)
        log(f"processes ready after {time.time() - t0:.0f}s")

        t_load = time.time()
        load = subprocess.run(
            [args.rw_load, "--url", f"http://127.0.0.1:{rw}/api/v1/receive",
             "--series", str(args.series), "--warmup-rounds", "1", "--rounds", str(args.rounds),
             "--concurrency", "4"],
            capture_output=True, env=helper_env, check=False)
        if load.returncode != 0:
            fail(f"rw-load failed: {load.stderr.decode()[-500:]}")
        report = json.loads(load.stdout)
        sent = report["warmup"]["requests"] + report["measured"]["requests"]
        ok = report["warmup"]["requests_ok"] + report["measured"]["requests_ok"]
        if ok != sent or sent == 0:
            fail(f"receive accepted {ok} of {sent} remote-write requests: {report['measured']}")
        log(f"remote-wrote {args.series} series x {args.rounds + 1} samples in "
            f"{time.time() - t_load:.1f}s")

        t_q = time.time()
        queries = bench.load_queries(args.queries)
        answered = 0
        for _ in range(args.repeat):
            for query in queries:
                api.data(*bench.request_for(query, end))
                answered += 1
        # the same label APIs over blocks and over receive's head
        now = int(time.time())
        for t_end in (end, now):
            span = {"start": t_end - 3600, "end": t_end}
            api.data("/api/v1/labels", span)
            api.data("/api/v1/label/job/values", span)
            api.data("/api/v1/series", {"match[]": "up", **span})
            answered += 3
        span = {"start": now - 600, "end": now}

        def written_names():
            # the querier learns receive's time range at its next info refresh
            status, body = api.get("/api/v1/label/__name__/values", span)
            names = (json.loads(body).get("data") or []) if status == 200 else []
            return [n for n in names if n.startswith(("http_server", "node_", "container_"))]

        wait_until("the querier to see receive's series", written_names)
        written = written_names()
        for _ in range(args.repeat):
            for name in written[:6]:
                for query in (name, f"rate({name}[2m])", f"sum by (job) (rate({name}[2m]))",
                              f"count by (instance) ({name})"):
                    api.data("/api/v1/query", {"query": query, "time": now})
                    api.data("/api/v1/query_range",
                             {"query": query, "start": now - 300, "end": now, "step": 15})
                    answered += 2
        log(f"{answered} API requests answered in {time.time() - t_q:.1f}s")
    finally:
        unclean = procs.stop()
    if unclean:
        fail("did not exit cleanly (their profiles may be missing): " + ", ".join(unclean))
    log(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
