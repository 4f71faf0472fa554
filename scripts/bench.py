#!/usr/bin/env python3
"""Benchmark `pipeline run`: events/s and peak RSS for N generated events,
plus an incremental run adding one 10k-event file to that output.

Usage: scripts/bench.py [N ...]        (default: 1000000 10000000)
Env:   BENCH_DIR (default target/bench), KEEP=1 to keep the data.
"""
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "pipeline")


def measure(args):
    """Runs a command; returns (seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{' '.join(args)} exited {code}:\n{out}")
    return seconds, usage.ru_maxrss / 1024, out


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1_000_000, 10_000_000]
    subprocess.run(["cargo", "build", "-q", "-p", "pipeline"], cwd=ROOT, check=True)
    base = os.environ.get("BENCH_DIR", os.path.join(ROOT, "target", "bench"))
    print(f"{'events':>10} {'input MB':>9} {'run s':>7} {'events/s':>11} {'peak RSS MiB':>13} {'incr s':>7} {'incr RSS MiB':>13}")
    for n in sizes:
        work = os.path.join(base, str(n))
        shutil.rmtree(work, ignore_errors=True)
        inp, out = os.path.join(work, "in"), os.path.join(work, "out")
        subprocess.run([BIN, "generate", "--events", str(n), "--seed", "1", "--out", inp], check=True, stdout=subprocess.DEVNULL)
        run = [BIN, "run", "--config", os.path.join(ROOT, "config", "minutely.toml"), "--input", inp, "--output", out]
        seconds, rss, _ = measure(run)
        # One new 10k-event file covering five minutes, as a scheduled run would see.
        extra = os.path.join(inp, "zz-incremental")
        subprocess.run([BIN, "generate", "--events", "10000", "--seed", "2", "--start", "2026-01-13", "--span-minutes", "5", "--out", extra],
                       check=True, stdout=subprocess.DEVNULL)
        for name in os.listdir(extra):
            path = os.path.join(extra, name)
            if os.path.isdir(path):
                for f in os.listdir(path):
                    os.replace(os.path.join(path, f), os.path.join(extra, f"{name}-{f}"))
                shutil.rmtree(path)
        incr_s, incr_rss, incr_out = measure(run)
        print(f"{n:>10} {du(inp) / 1e6:>9.0f} {seconds:>7.2f} {n / seconds:>11,.0f} {rss:>13.0f} {incr_s:>7.2f} {incr_rss:>13.0f}")
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
