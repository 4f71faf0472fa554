#!/usr/bin/env python3
"""Reload soak: the API under load while pipeline runs commit new gold.

Two `api` servers watch one output: one with the default memory budget (gold
in the hot window) and one with 1 MiB (every read goes to the layer files,
racing the runs that replace them). The first run also ingests 200k
generated background events of 200 services on the same two dates, so each
date's gold is far larger than 1 MiB. wrk keeps 64 connections of load on the
first; a checker thread per server requests the same window over and over.
Then RUNS pipeline runs commit one after another, each waiting until both
servers serve it.

Run k adds one event per minute, for two services, over an hour that crosses
midnight (so every answer spans two gold partition files). After run k every
row of the window has request_count k, and the ETag names run k. A response
is "wholly from one run" when all its rows agree with each other and with
the run its ETag names.

Pass: wrk saw no socket errors and no non-2xx; no checked response was
non-2xx or mixed; each server's RSS at the end is within 10% of its RSS after
the first reload, i.e. once run 2 has replaced the gold it started with (both
measured under load). The first load is lower: a reload builds the new
snapshot while the old one is still served, so from then on the process
also holds that peak. Prints the figures; exits 1 on
failure.

Usage: scripts/reload_soak.py [RUNS]   (default 24; needs wrk, built binaries)
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PIPELINE = os.path.join(TARGET, "debug", "pipeline")
API = os.path.join(TARGET, "debug", "api")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 24
SERVICES = ["soak-a", "soak-b"]
FIRST_MINUTE = 1768260600  # 2026-01-12T23:30:00Z
WINDOW = "/metrics?service=soak-a,soak-b&from=2026-01-12T23:30:00Z&to=2026-01-13T00:30:00Z"


def deliver(inbox, k):
    """Run k's file: one event per service and minute of the window."""
    lines = ["event_id,service,event_type,timestamp,latency_ms,status_code"]
    for service in SERVICES:
        for m in range(60):
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIRST_MINUTE + 60 * m + 7))
            lines.append(f"run{k}-{service}-{m},{service},request,{ts},{10 + k},200")
    with open(os.path.join(inbox, f"soak-{k:03}.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def run_pipeline(inbox, out):
    env = {**os.environ, "RUST_LOG": "warn"}
    args = [PIPELINE, "run", "--input", inbox, "--output", out, "--max-reject-ratio", "1"]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pipeline run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return re.search(r"Run (\S+) succeeded", done.stdout).group(1)


def start_api(out, log, extra):
    env = {**os.environ, "RUST_LOG": "warn,warp::server=off"}
    args = [API, "--output", out, "--bind", "127.0.0.1:0", "--reload-interval-secs", "1", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "w"), env=env, text=True)
    line = proc.stdout.readline()
    return proc, line.strip().removeprefix("Listening on http://")


def get(addr, path, conn=None):
    conn = conn or http.client.HTTPConnection(*addr.split(":"), timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.getheader("etag") or "", r.read(), conn


def serving(addr):
    status, _, body, _ = get(addr, "/health")
    return json.loads(body)["gold"]["run_id"] if status == 200 else None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


class Checker(threading.Thread):
    """Requests the window until stopped; checks each answer is one run's."""

    def __init__(self, addr, run_index):
        super().__init__(daemon=True)
        self.addr, self.run_index = addr, run_index
        self.checked = self.failed = self.mixed = 0
        self.problems = []
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                status, etag, body, conn = get(self.addr, WINDOW, conn)
            except (OSError, http.client.HTTPException) as e:
                self.failed += 1
                self.problems.append(f"request failed: {e}")
                conn = None
                continue
            self.checked += 1
            if status != 200:
                self.failed += 1
                self.problems.append(f"HTTP {status}: {body[:200]!r}")
                continue
            counts = {row["request_count"] for row in json.loads(body)["data"]}
            run_id = etag.removeprefix('W/"').rsplit("-", 1)[0]
            expected = self.run_index.get(run_id)
            if len(counts) != 1 or expected is None or counts != {expected}:
                self.mixed += 1
                self.problems.append(f"{etag}: request counts {sorted(counts)}, expected {expected}")


def main():
    work = tempfile.mkdtemp(prefix="reload-soak-")
    inbox, out = os.path.join(work, "in"), os.path.join(work, "out")
    os.makedirs(inbox)
    background = [PIPELINE, "generate", "--events", "200000", "--services", "200", "--seed", "5",
                  "--start", "2026-01-12", "--span-minutes", "2880", "--out", os.path.join(inbox, "background")]
    subprocess.run(background, check=True, capture_output=True)
    run_index = {}  # run id -> k
    deliver(inbox, 1)
    run_index[run_pipeline(inbox, out)] = 1
    servers = {
        "hot (256 MiB)": start_api(out, os.path.join(work, "hot.log"), []),
        "cold (1 MiB)": start_api(out, os.path.join(work, "cold.log"), ["--memory-budget-mb", "1"]),
    }
    wrk = None
    try:
        for _, addr in servers.values():
            while serving(addr) is None:
                time.sleep(0.1)
        hot_addr = servers["hot (256 MiB)"][1]
        seconds = 10 + RUNS * 3
        wrk = subprocess.Popen(
            ["wrk", "--threads", "1", "--connections", "64", "--duration", f"{seconds}s", f"http://{hot_addr}{WINDOW}"],
            stdout=subprocess.PIPE, text=True)
        checkers = {name: Checker(addr, run_index) for name, (_, addr) in servers.items()}
        for c in checkers.values():
            c.start()
        started = time.time()
        rss_first = {}
        for k in range(2, RUNS + 1):
            deliver(inbox, k)
            run_id = run_pipeline(inbox, out)
            run_index[run_id] = k
            for _, addr in servers.values():
                deadline = time.time() + 30
                while serving(addr) != run_id:
                    if time.time() > deadline:
                        sys.exit(f"a server did not pick up run {run_id} within 30 s")
                    time.sleep(0.05)
            if k == 2:
                time.sleep(2)
                rss_first = {name: rss_mib(proc.pid) for name, (proc, _) in servers.items()}
        runs_seconds = time.time() - started
        time.sleep(1)
        rss_last = {name: rss_mib(proc.pid) for name, (proc, _) in servers.items()}
        for c in checkers.values():
            c.stop.set()
            c.join()
        # wrk prints its summary when interrupted.
        wrk.send_signal(signal.SIGINT)
        wrk_out = wrk.communicate()[0]
        served = {}
        for name, (_, addr) in servers.items():
            text = get(addr, "/-/metrics")[2].decode()
            pick = lambda metric: re.search(rf"^minutely_api_{metric} (\S+)", text, re.M).group(1)
            served[name] = f"cache misses {pick('cache_misses_total')}, reloads {pick('reloads_total')}, reload failures {pick('reload_failures_total')}"
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()

    requests = re.search(r"(\d+) requests in", wrk_out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out)
    socket = re.search(r"Socket errors: (.*)", wrk_out)
    rate = re.search(r"Requests/sec:\s+(\S+)", wrk_out)
    ok = non2xx is None and socket is None
    print(f"{RUNS} runs committed in {runs_seconds:.1f} s, each served by both servers before the next.")
    print(f"wrk on the hot server: {requests.group(1) if requests else '?'} requests, {rate.group(1) if rate else '?'} req/s, "
          f"non-2xx {non2xx.group(1) if non2xx else 0}, socket errors {socket.group(1) if socket else 'none'}")
    for name, c in checkers.items():
        growth = (rss_last[name] - rss_first[name]) / rss_first[name] * 100
        fine = c.failed == 0 and c.mixed == 0 and c.checked > 0 and abs(growth) <= 10
        ok = ok and fine
        print(f"{name}: {c.checked} answers checked, {c.failed} failed, {c.mixed} not wholly from one run; "
              f"RSS {rss_first[name]:.1f} MiB after the first reload, {rss_last[name]:.1f} MiB after the soak "
              f"({growth:+.1f}%); {served[name]} {'ok' if fine else 'FAIL'}")
        for p in c.problems[:5]:
            print(f"   {p}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
