#!/usr/bin/env python3
"""A scheduled pipeline over time: N runs at a simulated 5-minute cadence,
each delivering FILES small CSV files of EVENTS events in all, with a share
of late events (up to LATE_DAYS old) and of repeated event ids (a retry:
the same row again, which rule 5 rejects). Each run is `pipeline run` on
the same output, as cron would start it. Each delivery is a folder of its
own, named in delivery order, and runs list the input incrementally
(`incremental_listing`), with a full listing every 288th run: the default
`full_listing_hours` at this cadence (the runs take minutes of real time,
so the pipeline's own clock would never call for one). `--listing full`
lists the whole input every run.

Per window of runs it prints the median and maximum wall, the highest peak
RSS, the median seconds of the stages whose work grows with history (gold
and duplicate detection read the dates a run touches; discovery lists the
input and loads the ingested-files index), the most Parquet files in one
partition of bronze, silver and rejects, the number of table versions and
the size of the Delta logs, of `_state/` and of `_runs/`, how long
python `deltalake` takes to open the gold table, and the median requests
a run made to its output, by kind (from its manifest; on a local folder,
the file operations that stand for an object store's requests). Then
the last window's median wall over the first's; the same comparison paired (PAIRS more runs each on a copy of
the output halfway through the first window and on one of the final
output, taken in turn, so that a shared machine's load, which moves over
the minutes between the windows, weighs on both alike); when the schedule
is long enough, a third copy in the same turns, of the output once every
date a run touches began after the schedule did (LATE_DAYS + 1 simulated
days in: the dates before today that late events reach are full ones,
and today's fills as it will every day), whose runs the late ones are
compared with too: whether runs stop growing once history has filled the
dates they touch; and a check that the
layers equal those of one run over the same files (gold exactly, bronze,
silver and rejects as sets of rows, run ids and ingestion times aside).

With --store s3 the output is a bucket on a local S3 server (moto on
127.0.0.1, started by scripts/s3-server.sh and stopped at the end), so
that a run's requests are an object store's and its wall includes them;
the inbox and the one-run reference stay local.

With --before BIN the paired runs take a third copy, of the final output,
run by BIN (another build): the late runs of the two builds side by side,
on the same state and deliveries. BIN must read the output this build
wrote; a change of a stored format is measured by two whole schedules.

It exits 1 when the layers differ or a partition holds more than twice
`compact_min_files` files; with --max-ratio R also when the last window's
median wall, or the paired median, is above R times the first's; with
--max-settled-ratio R also when the late runs' paired median is above R
times the settled ones' (a guard against runs that grow with history).

Usage: scripts/schedule-bench.sh [--runs N] [--window W] [--files F]
         [--events E] [--late-share S] [--late-days D] [--repeat-share S]
         [--compact-min-files M] [--listing incremental|full] [--max-ratio R] [--max-settled-ratio R]
         [--pairs PAIRS] [--before BIN] [--store local|s3] [--seed S]
Env:   PIPELINE (the binary), SCHEDULE_DIR (default: a temporary folder,
       removed at the end unless KEEP=1; an S3 output goes with its server).
"""
import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import pyarrow.dataset as ds
import pyarrow.fs as pafs
from deltalake import DeltaTable

SERVICES = ["checkout", "search", "auth", "catalog", "payments", "profile", "cart", "shipping"]
LAYERS = {
    "bronze/events": "ingest_date",
    "silver/events": "event_date",
    "silver/rejects": "ingest_date",
    "gold/service_minute_metrics": "event_date",
}
GOLD = "gold/service_minute_metrics"
LINEAGE = {"_run_id", "_ingested_at", "ingest_date"}
CADENCE = datetime.timedelta(minutes=5)
# Runs between full listings: the default full_listing_hours (24) at CADENCE.
FULL_LISTING_EVERY = 288
RUNS_A_DAY = datetime.timedelta(days=1) // CADENCE
S3_BUCKET = "schedule"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


class Store:
    """Where outputs live: local folders, or (with an S3 server's
    endpoint) keys of S3_BUCKET. A location is a folder path or an
    `s3://` URL, as the pipeline takes it."""

    def __init__(self, endpoint=None):
        self.endpoint = endpoint
        self.fs = pafs.LocalFileSystem()
        if endpoint:
            self.fs = pafs.S3FileSystem(endpoint_override=endpoint.split("://", 1)[1], scheme="http",
                                        access_key=S3_KEYS["AWS_ACCESS_KEY_ID"],
                                        secret_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"], region=S3_KEYS["AWS_REGION"])

    def location(self, work, name):
        return f"s3://{S3_BUCKET}/{name}" if self.endpoint else os.path.join(work, name)

    def path(self, location):
        """A location as `self.fs` names it."""
        return location.split("://", 1)[1] if self.endpoint else os.path.abspath(location)

    def files(self, location):
        """(path relative to `location`, size) of every file under it."""
        root = self.path(location)
        selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
        return [(i.path[len(root):].lstrip("/"), i.size) for i in self.fs.get_file_info(selector)
                if i.type == pafs.FileType.File]

    def read_json(self, location):
        with self.fs.open_input_stream(self.path(location)) as f:
            return json.loads(f.read())

    def copy(self, source, to):
        if not self.endpoint:
            shutil.copytree(source, to, symlinks=True)
            return
        for relative, _ in self.files(source):
            self.fs.copy_file(f"{self.path(source)}/{relative}", f"{self.path(to)}/{relative}")

    def delete(self, location):
        # S3 objects go with the server, which holds them in memory: moto
        # lists a bucket by walking every key, and a listing that meets a
        # key being deleted fails, so the copies are left until the end.
        if not self.endpoint:
            shutil.rmtree(location, ignore_errors=True)

    def env(self):
        """What a pipeline process needs to reach the store."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true", **S3_KEYS} if self.endpoint else {}

    def open_table(self, location):
        options = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", **S3_KEYS} if self.endpoint else None
        return DeltaTable(location, storage_options=options)


def start_s3_server():
    """moto on 127.0.0.1 with S3_BUCKET (scripts/s3-server.sh, which
    installs it on first use); it serves until its standard input closes."""
    server = subprocess.Popen([os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3-server.sh"), S3_BUCKET],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("ready "):
        server.kill()
        sys.exit(f"the S3 server did not start: {line!r}")
    # Whatever else it prints is read, so that it never blocks on a full pipe.
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server, line.split()[1]


def stop(server):
    server.stdin.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--files", type=int, default=2, help="files a run")
    p.add_argument("--events", type=int, default=2000, help="events a run")
    p.add_argument("--late-share", type=float, default=0.02)
    p.add_argument("--late-days", type=float, default=2.0)
    p.add_argument("--repeat-share", type=float, default=0.01)
    p.add_argument("--compact-min-files", type=int, default=16)
    p.add_argument("--listing", choices=["incremental", "full"], default="incremental")
    p.add_argument("--max-ratio", type=float)
    p.add_argument("--max-settled-ratio", type=float)
    p.add_argument("--pairs", type=int, default=48, help="paired runs at the end (0: none)")
    p.add_argument("--before", help="another build's binary, for late runs paired with this build's")
    p.add_argument("--store", choices=["local", "s3"], default="local", help="where the output is")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def deliver(inbox, run, now, args, rng, recent):
    """Writes run `run`'s files; `recent` holds earlier rows to repeat."""
    rows = []
    for i in range(args.events):
        if recent and rng.random() < args.repeat_share:
            rows.append(rng.choice(recent))
            continue
        if rng.random() < args.late_share:
            t = now - datetime.timedelta(seconds=rng.uniform(300, args.late_days * 86400))
        else:
            t = now - datetime.timedelta(seconds=rng.uniform(0, 300))
        status = 500 if rng.random() < 0.02 else 200
        row = f"r{run}-{i},{rng.choice(SERVICES)},request,{stamp(t)},{rng.lognormvariate(3.5, 0.6):.2f},{status},u{rng.randrange(5000)}"
        rows.append(row)
    recent.extend(rows[-200:])
    del recent[:-2000]
    folder = os.path.join(inbox, f"{run:06d}")
    os.makedirs(folder)
    per_file = (len(rows) + args.files - 1) // args.files
    for f in range(args.files):
        with open(os.path.join(folder, f"events-{f}.csv"), "w") as out:
            out.write("event_id,service,event_type,timestamp,latency_ms,status_code,user_id\n")
            out.write("\n".join(rows[f * per_file:(f + 1) * per_file]) + "\n")


def run_pipeline(pipeline, inbox, out, env):
    """`pipeline run`; returns (wall seconds, peak RSS MiB, the run's manifest location)."""
    start = time.perf_counter()
    proc = subprocess.Popen([pipeline, "run", "--input", inbox, "--output", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"pipeline run failed: {proc.stderr.read().decode(errors='replace')}")
    stdout = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    manifest = next((line.split("manifest: ", 1)[1].strip() for line in stdout.splitlines() if "manifest: " in line), None)
    return wall, usage.ru_maxrss / 1024, manifest


REQUEST_KINDS = ("get", "put", "list", "rename", "delete")


def stage(manifest, name):
    """Seconds a run's manifest (None: the run wrote none) records for one of its stages."""
    return (manifest or {}).get("stage_seconds", {}).get(name, 0.0)


def output_requests(manifest):
    """The requests a run's manifest records it made to its output, by kind."""
    counts = manifest["storage_requests"]["output"] if manifest else {}
    return {kind: counts.get(kind, 0) for kind in REQUEST_KINDS}


def open_ms(store, location):
    """Milliseconds python deltalake takes to open a table's newest version
    and list its files: the best of three (the first also starts its runtime)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        store.open_table(location).file_uris()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def most_files_in_a_partition(store, out):
    counts = {}
    for layer in list(LAYERS)[:3]:
        for relative, _ in store.files(f"{out}/{layer}"):
            partition, _, name = relative.rpartition("/")
            if "=" in partition and "/" not in partition and name.endswith(".parquet"):
                counts[(layer, partition)] = counts.get((layer, partition), 0) + 1
    return max(counts.values(), default=0)


def sizes(store, out):
    logs = [(r, n) for layer in LAYERS for r, n in store.files(f"{out}/{layer}/_delta_log") if "/" not in r]
    versions = sum(1 for r, _ in logs if r.endswith(".json"))
    state = sum(n for _, n in store.files(f"{out}/_state"))
    runs = [n for r, n in store.files(f"{out}/_runs") if "/" not in r and r.endswith(".json")]
    return versions, sum(n for _, n in logs), state, len(runs), sum(runs)


def rows(store, root):
    """A layer's rows as a sorted list of tuples, lineage columns aside."""
    if not any(r.endswith(".parquet") for r, _ in store.files(root)):
        return []
    table = ds.dataset(store.path(root), filesystem=store.fs, format="parquet", partitioning="hive").to_table()
    names = sorted(n for n in table.column_names if n not in LINEAGE)
    columns = [table.column(n).to_pylist() for n in names]
    return sorted(zip(*columns), key=repr)


def compare(store, out, reference):
    """Names of the layers that differ from the reference (a local folder)."""
    differ = []
    for layer in LAYERS:
        if rows(store, f"{out}/{layer}") != rows(Store(), os.path.join(reference, layer)):
            differ.append(layer)
    return differ


def mib(n):
    return f"{n / 2**20:.1f}"


def settled_run(args):
    """The run after which every date a run touches began after the
    schedule did, LATE_DAYS + 1 simulated days in: the dates before today
    that late events reach are full ones, and today's fills as on any day."""
    return round(RUNS_A_DAY * (args.late_days + 1))


def takes_settled(args):
    """Whether the paired runs take the settled copy: there are paired
    runs, and it comes before the last window."""
    return args.pairs > 0 and settled_run(args) <= args.runs - args.window


def paired_walls(store, work, env, args, states):
    """Walls of `args.pairs` more scheduled runs on a copy of each of
    `states` (an output, the simulated time it was at, its recent rows
    and the binary that runs it), the copies' runs taken in turn so that
    all see the machine as it is at the same moment. All get the same
    deliveries (the same seeds, each at its own time) into an inbox of
    their own, and each continues its schedule, compactions included, as
    it would have."""
    walls = [[] for _ in states]
    copies = []
    for i, (output, now, recent, binary) in enumerate(states):
        inbox, out = os.path.join(work, f"paired-{i}", "inbox"), store.location(work, f"paired-{i}/out")
        shutil.rmtree(os.path.dirname(inbox), ignore_errors=True)
        store.delete(out)
        store.copy(output, out)
        copies.append((inbox, out, now, list(recent), binary))
    env = dict(env, MINUTELY_INCREMENTAL_LISTING="true")
    for pair in range(args.pairs):
        for i, (inbox, out, now, recent, binary) in enumerate(copies):
            deliver(inbox, 900_000 + pair, now + CADENCE * pair, args, random.Random(pair), recent)
            walls[i].append(run_pipeline(binary, inbox, out, env)[0])
    for inbox, out, _, _, _ in copies:
        shutil.rmtree(os.path.dirname(inbox))
        store.delete(out)
    return walls


def main():
    args = parse_args()
    if args.before and not (os.path.isfile(args.before) and os.access(args.before, os.X_OK)):
        sys.exit(f"--before {args.before}: not an executable file")
    if args.before and (args.pairs <= 0 or min(args.window, args.runs) < 2):
        sys.exit("--before compares paired runs: it needs --pairs above 0, and --runs and --window of 2 or more")
    if args.max_settled_ratio is not None and not takes_settled(args):
        sys.exit(f"--max-settled-ratio compares the late runs with those after run {settled_run(args) - 1} "
                 f"({args.late_days:g} + 1 simulated days): it needs --pairs above 0 and --runs of at least "
                 f"{settled_run(args) + args.window} with --window {args.window}")
    pipeline = os.environ.get("PIPELINE", "target/debug/pipeline")
    work = os.environ.get("SCHEDULE_DIR") or tempfile.mkdtemp(prefix="schedule-")
    server, store = None, Store()
    if args.store == "s3":
        server, endpoint = start_s3_server()
        store = Store(endpoint)
    inbox, out = os.path.join(work, "inbox"), store.location(work, "out")
    env = dict(os.environ, RUST_LOG="warn", MINUTELY_COMPACT_MIN_FILES=str(args.compact_min_files),
               MINUTELY_MAX_REJECT_RATIO="1", **store.env())
    rng = random.Random(args.seed)
    clock = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = clock - CADENCE * args.runs
    print(f"{args.runs} runs at a 5-minute cadence, {args.files} CSV files and {args.events} events a run, "
          f"{args.late_share:.0%} late by up to {args.late_days:g} days, {args.repeat_share:.0%} repeated ids; "
          f"compact_min_files {args.compact_min_files}; {args.listing} listing"
          f"{f' (in full every {FULL_LISTING_EVERY} runs)' if args.listing == 'incremental' else ''}; "
          f"work in {work}" + (f"; output on S3 at {store.endpoint} (moto)" if server else ""), flush=True)
    header = ("runs", "median wall s", "max wall s", "peak RSS MiB", "median gold / dedupe / discover s",
              "most files in a partition", "table versions", "logs MiB", "_state MiB", "manifests", "_runs MiB",
              "open gold table ms", "median output requests get / put / list / rename / delete")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header), flush=True)
    recent, window, medians, worst_files = [], [], [], 0
    # The output halfway through the first window, and when it was, for
    # the paired runs at the end.
    early_run = min(args.window, args.runs) // 2
    early = (store.location(work, "early"), start + CADENCE * early_run, [], pipeline)
    # The output once the dates late events reach are full ones.
    settled = None
    if takes_settled(args):
        settled = (store.location(work, "settled"), start + CADENCE * settled_run(args), [], pipeline)
    for run in range(args.runs):
        deliver(inbox, run, start + CADENCE * run, args, rng, recent)
        incremental = args.listing == "incremental" and run % FULL_LISTING_EVERY != 0
        run_env = dict(env, MINUTELY_INCREMENTAL_LISTING=str(incremental).lower())
        wall, rss, manifest = run_pipeline(pipeline, inbox, out, run_env)
        window.append((wall, rss, manifest and store.read_json(manifest)))
        for state, at in ((early, early_run), (settled, settled_run(args))):
            if state and args.pairs > 0 and run + 1 == at:
                store.copy(out, state[0])
                state[2].extend(recent)
        worst_files = max(worst_files, most_files_in_a_partition(store, out))
        if len(window) == args.window or run == args.runs - 1:
            walls = [w for w, _, _ in window]
            medians.append(statistics.median(walls))
            stages = " / ".join(f"{statistics.median(stage(m, name) for _, _, m in window):.3f}"
                                for name in ("gold", "dedupe", "discover"))
            requests = [output_requests(m) for _, _, m in window]
            requests = " / ".join(f"{statistics.median(r[kind] for r in requests):.0f}" for kind in REQUEST_KINDS)
            versions, logs, state, manifests, runs_size = sizes(store, out)
            first = run + 1 - len(window)
            print(f"| {first}–{run} | {medians[-1]:.3f} | {max(walls):.3f} | {max(r for _, r, _ in window):.0f} | "
                  f"{stages} | {most_files_in_a_partition(store, out)} | {versions} | {mib(logs)} | {mib(state)} | "
                  f"{manifests} | {mib(runs_size)} | {open_ms(store, f'{out}/{GOLD}'):.0f} | {requests} |", flush=True)
            window = []

    failures = []
    ratio = medians[-1] / medians[0]
    print(f"last window's median wall / first window's: {ratio:.2f}")
    if args.max_ratio is not None and ratio > args.max_ratio:
        failures.append(f"median wall ratio {ratio:.2f} is above {args.max_ratio}")
    if args.pairs > 0 and early_run > 0:
        late = (out, start + CADENCE * args.runs, recent, pipeline)
        before = (out, late[1], recent, args.before) if args.before else None
        states = {"early": early, "late": late, "settled": settled, "before": before}
        states = {name: state for name, state in states.items() if state}
        paired = dict(zip(states, map(statistics.median, paired_walls(store, work, env, args, list(states.values())))))
        for state in (early, settled):
            if state:
                store.delete(state[0])
        ratio = paired["late"] / paired["early"]
        print(f"paired: {args.pairs} more runs each on a copy of the output after run {early_run - 1} and one "
              f"after run {args.runs - 1}, in turn: median wall {paired['early']:.3f} s and "
              f"{paired['late']:.3f} s, ratio {ratio:.2f}")
        if settled:
            settled_ratio = paired["late"] / paired["settled"]
            print(f"settled: in the same turns, a copy of the output after run {settled_run(args) - 1}, "
                  f"the dates late events reach full: "
                  f"median wall {paired['settled']:.3f} s; the late runs' / its: {settled_ratio:.2f}")
            if args.max_settled_ratio is not None and settled_ratio > args.max_settled_ratio:
                failures.append(f"late / settled paired median wall ratio {settled_ratio:.2f} "
                                f"is above {args.max_settled_ratio}")
        if before:
            print(f"late runs paired with {args.before}: median wall {paired['before']:.3f} s, "
                  f"this build {paired['late']:.3f} s, ratio {paired['late'] / paired['before']:.2f}")
        if args.max_ratio is not None and ratio > args.max_ratio:
            failures.append(f"paired median wall ratio {ratio:.2f} is above {args.max_ratio}")
    print(f"most files in one partition after any run: {worst_files} "
          f"(bound: 2 × compact_min_files = {2 * args.compact_min_files})")
    if worst_files > 2 * args.compact_min_files:
        failures.append(f"a partition held {worst_files} files")

    reference = os.path.join(work, "reference")
    started = time.perf_counter()
    wall, rss, _ = run_pipeline(pipeline, inbox, reference, dict(env, MINUTELY_COMPACT_MIN_FILES="100000"))
    print(f"one run over all {args.files * args.runs} files: {wall:.2f} s, peak RSS {rss:.0f} MiB "
          f"(compared in {time.perf_counter() - started:.0f} s)")
    differ = compare(store, out, reference)
    print("layers vs one run over the same files: " + (f"DIFFER: {', '.join(differ)}" if differ else
          "equal (gold exactly; bronze, silver and rejects as sets of rows)"))
    failures += [f"{layer} differs from one run over the same files" for layer in differ]
    if server:
        stop(server)  # the S3 output goes with it
    if os.environ.get("KEEP") != "1" and not os.environ.get("SCHEDULE_DIR"):
        shutil.rmtree(work)
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
