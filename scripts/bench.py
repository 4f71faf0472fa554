#!/usr/bin/env python3
"""Benchmark `pipeline run` against the DuckDB baseline (scripts/duckdb_baseline.py)
on the same generated input, in the same run, for two shapes of input:

  large  N events in 8 plain CSV files (about 100 MB each at 10M events)
  small  N events in files of 50,000 events (200 files at 10M), every kind:
         CSV, NDJSON, gzipped or not

Both are 20 services over 7 days. For each it prints wall seconds, CPU
seconds, cores busy (CPU / wall) and peak RSS of both tools, the ratio of
minutely's wall time to DuckDB's, and two incremental runs on minutely's
output: +10k events in five minutes, and +10k spread over all 7 dates.

With --before BIN it also runs another build of `pipeline` (e.g. an earlier
commit's) on the same input, with only the shipped timestamp pattern
configured, and prints its wall, CPU, cores and RSS first, and last the
same two incremental runs on its own output (each right after minutely's).

With --zstd-levels L,L,... it instead runs minutely on the large shape at
each zstd level and prints wall, CPU and the size of bronze and silver.

With --engines it instead runs minutely on each shape with the local engine
and with the spark engine on Sail (local-cluster mode, two workers, started
by scripts/spark-server.sh on this machine), and prints wall seconds and
peak RSS of the driver (`pipeline run`) and of the Sail server, then the
+10k-over-7-dates incremental run on each.

With --repeat K each full run of minutely (and of --before) is made K times,
alternating, and reported as the median wall and CPU seconds (each taken on
its own; cores is the one over the other) and the highest peak RSS: on a
shared VM one run of a build can differ from the next by a fifth. DuckDB
still runs once; the ratio is minutely's median over it. Each incremental
step is also run K times, each from a copy of the same output, and
reported the same way.

Usage: scripts/bench.py [--shapes large,small] [--no-duckdb] [--before BIN] [--repeat K] [--zstd-levels 1,3] [--engines] [N ...]
       (default N: 10000000)
Env:   BENCH_DIR (default target/bench), KEEP=1 keeps the data.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "debug", "pipeline")
VENV = os.path.join(TARGET, "bench-venv")
SHAPES = {
    "large": ["--files", "8", "--kinds", "csv"],
    "small": [],
}
SPAN = ["--services", "20", "--start", "2026-01-12", "--span-minutes", str(7 * 24 * 60)]


def measure(args):
    """Runs a command; returns (wall s, CPU s, peak RSS MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{' '.join(args)} exited {code}:\n{out}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def summary(runs):
    """Median wall and CPU seconds and the highest peak RSS of repeated runs."""
    middle = lambda values: sorted(values)[len(values) // 2]
    return middle([r[0] for r in runs]), middle([r[1] for r in runs]), max(r[2] for r in runs)


def incremental(run, out, repeat):
    """Times an incremental run on `out` `repeat` times, each from the same
    starting output (a copy), and leaves `out` as one run leaves it; returns
    the median wall and CPU seconds and the highest peak RSS. One run swings
    by far more than its own time on this kind of VM."""
    if repeat == 1:
        return measure(run)
    start = out + ".start"
    shutil.rmtree(start, ignore_errors=True)
    shutil.copytree(out, start, symlinks=True)
    runs = []
    for _ in range(repeat):
        shutil.rmtree(out)
        shutil.copytree(start, out, symlinks=True)
        settle()
        runs.append(measure(run))
    shutil.rmtree(start)
    return summary(runs)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def generate(out, events, extra):
    subprocess.run([BIN, "generate", "--events", str(events), "--seed", "1", "--out", out, *SPAN, *extra],
                   check=True, stdout=subprocess.DEVNULL)
    settle()


def settle():
    """Flushes written files to disk first, so their writeback does not land in a timed run."""
    os.sync()
    time.sleep(2)


def add_increment(inp, name, span_args):
    """Generates 10k new events and moves them into one new folder of the input."""
    scratch = os.path.join(os.path.dirname(inp), "scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run([BIN, "generate", "--events", "10000", "--seed", "2", "--out", scratch, "--services", "20", *span_args],
                   check=True, stdout=subprocess.DEVNULL)
    target = os.path.join(inp, name)
    os.makedirs(target)
    for folder, _, files in os.walk(scratch):
        for f in files:
            if not f.startswith((".", "_")) and f != "README.txt" and "_incoming" not in folder:
                os.replace(os.path.join(folder, f), os.path.join(target, f"{os.path.basename(folder)}-{f}"))
    shutil.rmtree(scratch)
    settle()


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-r", os.path.join(ROOT, "scripts", "bench-requirements.txt")], check=True)
    return python


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="*", type=int, default=[10_000_000])
    parser.add_argument("--shapes", default="large,small")
    parser.add_argument("--no-duckdb", action="store_true", help="only minutely (e.g. for 100M events)")
    parser.add_argument("--zstd-levels", help="compare these zstd levels instead (large shape)")
    parser.add_argument("--before", help="another pipeline binary to run on the same input first")
    parser.add_argument("--repeat", type=int, default=1,
                        help="full runs of each build (alternating with --before), reported as the median wall"
                             " and CPU and the highest peak RSS, and as many runs of each incremental step,"
                             " each from the same output; DuckDB runs once")
    parser.add_argument("--engines", action="store_true", help="compare the local and spark (Sail) engines instead")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.repeat != 1 and (args.zstd_levels or args.engines):
        parser.error("--repeat applies to the DuckDB comparison, not to --zstd-levels or --engines")
    subprocess.run(["cargo", "build", "-q", "-p", "pipeline"], cwd=ROOT, check=True)
    python = None if args.no_duckdb else ensure_venv()
    base = os.environ.get("BENCH_DIR", os.path.join(TARGET, "bench"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"machine: {os.cpu_count()} cores, {cpu}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    header = (f"{'shape':>6} {'events':>11} {'files':>5} {'MB in':>6} | {'minutely s':>10} {'CPU s':>6} {'cores':>5} {'RSS MiB':>7}"
              f" | {'duckdb s':>8} {'CPU s':>6} {'cores':>5} {'RSS MiB':>7} | {'ratio':>5}"
              f" | {'+10k 5min s':>11} {'RSS':>5} | {'+10k 7d s':>9} {'RSS':>5}")
    if args.zstd_levels:
        return zstd_levels(base, args.events, [int(l) for l in args.zstd_levels.split(",")])
    if args.engines:
        return engines(base, args.events, args.shapes.split(","))
    if args.before:
        header = (f"{'shape':>6} {'events':>11} | {'before s':>8} {'CPU s':>6} {'cores':>5} {'RSS MiB':>7} |"
                  + header[header.index("|") + 1:] + f" | {'before +10k 5min s':>18} {'+10k 7d s':>9}")
        before_config = os.path.join(base, "before.toml")
        os.makedirs(base, exist_ok=True)
        with open(before_config, "w") as f:
            f.write('[pipeline]\ntimestamp_formats = ["%d/%m/%Y %H:%M:%S"]\n')
    print(header)
    for n in args.events:
        for shape in args.shapes.split(","):
            work = os.path.join(base, f"{shape}-{n}")
            shutil.rmtree(work, ignore_errors=True)
            inp, out, duck = (os.path.join(work, d) for d in ("in", "out", "duckdb"))
            generate(inp, n, SHAPES[shape])
            files = sum(1 for d, _, fs in os.walk(inp) for f in fs
                        if (".csv" in f or "json" in f) and not f.startswith(".") and "_incoming" not in d)
            size = du(inp) / 1e6
            before_cols = ""
            run = [BIN, "run", "--config", os.path.join(ROOT, "config", "minutely.toml"), "--input", inp, "--output", out]
            before_out = os.path.join(work, "before")
            before_run = args.before and [args.before, "run", "--config", before_config, "--input", inp, "--output", before_out]
            # Full runs alternate (before, minutely) --repeat times, each on
            # a new output; the last outputs stay for the incremental runs.
            b_runs, runs = [], []
            for _ in range(args.repeat):
                if args.before:
                    shutil.rmtree(before_out, ignore_errors=True)
                    b_runs.append(measure(before_run))
                    settle()
                shutil.rmtree(out, ignore_errors=True)
                runs.append(measure(run))
                settle()
            wall, cpu_s, rss = summary(runs)
            if args.before:
                b_wall, b_cpu, b_rss = summary(b_runs)
                before_cols = f" | {b_wall:>8.1f} {b_cpu:>6.1f} {b_cpu / b_wall:>5.2f} {b_rss:>7.0f} |"
            if python:
                d_wall, d_cpu, d_rss = measure([python, os.path.join(ROOT, "scripts", "duckdb_baseline.py"), inp, duck])
                duck_cols = f"{d_wall:>8.1f} {d_cpu:>6.1f} {d_cpu / d_wall:>5.2f} {d_rss:>7.0f} | {wall / d_wall:>5.2f}"
                shutil.rmtree(duck, ignore_errors=True)
                settle()
            else:
                duck_cols = f"{'-':>8} {'-':>6} {'-':>5} {'-':>7} | {'-':>5}"
            # The same increments on the before build's output too, right after minutely's.
            add_increment(inp, "zz-incr-5min", ["--start", "2026-01-13", "--span-minutes", "5"])
            i1, _, i1_rss = incremental(run, out, args.repeat)
            b_i1 = incremental(before_run, before_out, args.repeat)[0] if args.before else None
            add_increment(inp, "zz-incr-7d", ["--start", "2026-01-12", "--span-minutes", str(7 * 24 * 60)])
            i2, _, i2_rss = incremental(run, out, args.repeat)
            b_i2 = incremental(before_run, before_out, args.repeat)[0] if args.before else None
            lead = f"{shape:>6} {n:>11,}{before_cols}" if args.before else f"{shape:>6} {n:>11,} {files:>5} {size:>6.0f} |"
            tail = f" | {b_i1:>18.2f} {b_i2:>9.2f}" if args.before else ""
            print(f"{lead} {wall:>10.1f} {cpu_s:>6.1f} {cpu_s / wall:>5.2f} {rss:>7.0f}"
                  f" | {duck_cols} | {i1:>11.2f} {i1_rss:>5.0f} | {i2:>9.2f} {i2_rss:>5.0f}{tail}", flush=True)
            if not os.environ.get("KEEP"):
                shutil.rmtree(work, ignore_errors=True)


def peak_rss_mib(pid):
    """Peak RSS (VmHWM) of a running process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024


def sail_pid(port):
    """The PID of the Sail server listening on `port` (a grandchild of the launcher)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and str(port).encode() in argv and any(a.endswith(b"sail") for a in argv):
            return int(pid)
    sys.exit(f"no Sail server process on port {port}")


def engines(base, sizes, shapes):
    config = os.path.join(ROOT, "config", "minutely.toml")
    print(f"{'shape':>6} {'events':>11} | {'local s':>7} {'RSS MiB':>7} | {'spark s':>7} {'driver RSS':>10}"
          f" {'Sail RSS':>8} | {'+10k 7d local s':>15} {'spark s':>7}")
    for n in sizes:
        for shape in shapes:
            work = os.path.join(base, f"engines-{shape}-{n}")
            shutil.rmtree(work, ignore_errors=True)
            inp = os.path.join(work, "in")
            generate(inp, n, SHAPES[shape])
            local = [BIN, "run", "--config", config, "--input", inp, "--output", os.path.join(work, "local")]
            l_wall, _, l_rss = measure(local)
            settle()
            # A fresh server per shape, so its peak RSS is this input's.
            server = subprocess.Popen([os.path.join(ROOT, "scripts", "spark-server.sh"), "sail"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = server.stdout.readline().decode().strip()
            if not line.startswith("ready "):
                sys.exit(f"Sail did not start: {line!r}")
            remote = line.split()[1]
            sail = sail_pid(remote.rsplit(":", 1)[1])
            spark = [BIN, "run", "--config", config, "--input", inp, "--output", os.path.join(work, "spark"),
                     "--engine", "spark", "--spark-remote", remote]
            s_wall, _, s_rss = measure(spark)
            sail_rss = peak_rss_mib(sail)
            settle()
            add_increment(inp, "zz-incr-7d", ["--start", "2026-01-12", "--span-minutes", str(7 * 24 * 60)])
            i_local, _, _ = measure(local)
            i_spark, _, _ = measure(spark)
            server.stdin.close()
            server.wait()
            print(f"{shape:>6} {n:>11,} | {l_wall:>7.1f} {l_rss:>7.0f} | {s_wall:>7.1f} {s_rss:>10.0f} {sail_rss:>8.0f}"
                  f" | {i_local:>15.2f} {i_spark:>7.2f}", flush=True)
            if not os.environ.get("KEEP"):
                shutil.rmtree(work, ignore_errors=True)


def zstd_levels(base, sizes, levels):
    print(f"{'events':>11} {'zstd':>4} | {'wall s':>6} {'CPU s':>6} | {'bronze MB':>9} {'silver MB':>9} {'gold MB':>7}")
    for n in sizes:
        work = os.path.join(base, f"zstd-{n}")
        shutil.rmtree(work, ignore_errors=True)
        inp, out = os.path.join(work, "in"), os.path.join(work, "out")
        generate(inp, n, SHAPES["large"])
        for level in levels:
            shutil.rmtree(out, ignore_errors=True)
            settle()
            wall, cpu_s, _ = measure([BIN, "run", "--input", inp, "--output", out, "--zstd-level", str(level)])
            sizes_mb = [du(os.path.join(out, layer)) / 1e6 for layer in ("bronze", "silver", "gold")]
            print(f"{n:>11,} {level:>4} | {wall:>6.1f} {cpu_s:>6.1f} | {sizes_mb[0]:>9.0f} {sizes_mb[1]:>9.0f} {sizes_mb[2]:>7.0f}", flush=True)
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
