#!/usr/bin/env python3
"""Crash soak: `pipeline run` killed with SIGKILL at random moments.

Input: deliveries of generated, dirty events (3 files each); runs compact
a partition once it holds 4 small files, and write a checkpoint every 5
table versions that deletes the log files below it, so kills land in
compactions, checkpoints and log cleanups too. On a local
folder and on S3 (moto on 127.0.0.1), until KILLS kills have landed: deliver
the next one, start `pipeline run`, SIGKILL it after a random delay within
the time such a run takes (a run that finished first is not counted), then
run again; that run must succeed. On S3 the killed run's lease must
expire first (the runs use --lease-secs 1), so the next run waits it out.
At the end every layer must equal one uninterrupted run over the same
input: the same rows with the same values, run ids and ingestion times
aside, read as a Hive folder and read through its Delta log.

Prints the counts (kills that landed mid-run, runs that finished before the
kill, recoveries) and exits 1 on any failure.

Usage: scripts/crash_soak.py [KILLS] [local|s3 ...]   (default 50 local s3)
Needs: the built binaries, and the reader venv (duckdb) this script runs in;
scripts/crash-soak.sh sets all of that up.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PIPELINE = os.path.join(TARGET, "debug", "pipeline")
KILLS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
PLACES = sys.argv[2:] or ["local", "s3"]
LAYERS = {
    "bronze/events": ["_run_id", "_ingested_at", "ingest_date"],
    "silver/events": ["_run_id"],
    "silver/rejects": ["_run_id", "_ingested_at", "ingest_date"],
    "gold/service_minute_metrics": [],
}
S3_ENV = {"AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


def pipeline(args, env=None, wait=True):
    full_env = {**os.environ, "RUST_LOG": "warn", **(env or {})}
    cmd = [PIPELINE, "run", "--max-reject-ratio", "1", "--lease-secs", "1",
           "--timestamp-format", "%d/%m/%Y %H:%M:%S", *args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env)


def layer_rows(root, layer, exclude):
    """A layer's rows without run-dependent columns, sorted."""
    path = os.path.join(root, layer)
    if not os.path.isdir(path):
        return []
    columns = ", ".join(f'"{c}"' for c in exclude)
    selected = f"* EXCLUDE ({columns})" if exclude else "*"
    # Every value as text: exact for equality, and no timezone library needed.
    query = f"SELECT COLUMNS({selected})::VARCHAR FROM read_parquet('{path}/*=*/*.parquet', hive_partitioning = true) ORDER BY ALL"
    return duckdb.sql(query).fetchall()


def table_rows(root, layer, exclude):
    """A layer's rows as its Delta table's newest version holds them: the
    checkpoint `_last_checkpoint` names (its `add` paths), then the JSON
    commits after it replayed (adds minus removes), then those files read."""
    log = os.path.join(root, layer, "_delta_log")
    live, since = set(), -1
    hint = os.path.join(log, "_last_checkpoint")
    if os.path.exists(hint):
        with open(hint) as f:
            since = json.load(f)["version"]
        checkpoint = os.path.join(log, f"{since:020}.checkpoint.parquet")
        live = {path for (path,) in duckdb.sql(
            f"SELECT add.path FROM read_parquet('{checkpoint}') WHERE add IS NOT NULL").fetchall()}
    for name in sorted(os.listdir(log)) if os.path.isdir(log) else []:
        if name.endswith(".json") and int(name[:-5]) > since:
            with open(os.path.join(log, name)) as commit:
                for action in map(json.loads, filter(str.strip, commit)):
                    if "add" in action:
                        live.add(action["add"]["path"])
                    if "remove" in action:
                        live.discard(action["remove"]["path"])
    if not live:
        return []
    files = ", ".join(f"'{os.path.join(root, layer, path)}'" for path in sorted(live))
    columns = ", ".join(f'"{c}"' for c in exclude)
    selected = f"* EXCLUDE ({columns})" if exclude else "*"
    query = f"SELECT COLUMNS({selected})::VARCHAR FROM read_parquet([{files}], hive_partitioning = true) ORDER BY ALL"
    return duckdb.sql(query).fetchall()


def download(endpoint, bucket, prefix, dest):
    """Copies an S3 prefix to a local folder (boto3, in moto's venv)."""
    venv_python = os.path.join(TARGET, "s3-venv", "bin", "python")
    code = (
        "import boto3, os, sys\n"
        "s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n"
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3] + '/'):\n"
        "    for o in page.get('Contents', []):\n"
        "        to = os.path.join(sys.argv[4], o['Key'][len(sys.argv[3]) + 1:])\n"
        "        os.makedirs(os.path.dirname(to), exist_ok=True)\n"
        "        s3.download_file(sys.argv[2], o['Key'], to)\n"
    )
    subprocess.run([venv_python, "-c", code, endpoint, bucket, prefix, dest], check=True)


def soak(place, work, batches, endpoint):
    inbox = os.path.join(work, f"in-{place}")
    os.makedirs(inbox)
    if place == "s3":
        output, env = f"s3://soak/{place}", {**S3_ENV, "AWS_ENDPOINT": endpoint}
    else:
        output, env = os.path.join(work, f"out-{place}"), {}
    # Compaction after every fourth small file of a partition, and a
    # checkpoint every 5 versions that deletes the log files below it, so
    # kills land in compactions, checkpoints and log cleanups too.
    env["MINUTELY_COMPACT_MIN_FILES"] = "4"
    env["MINUTELY_CHECKPOINT_INTERVAL"] = "5"
    env["MINUTELY_LOG_RETENTION_HOURS"] = "0"
    random.seed(f"crash-soak-{place}")
    # Kill moments are drawn within the longest run so far (runs grow with
    # the output; a run after a kill that landed late finds nothing new).
    duration, durations = 0.2, []
    landed = finished = left_staging = left_committed = 0
    for batch in batches:
        if landed == KILLS:
            break
        shutil.copytree(batch, os.path.join(inbox, os.path.basename(batch)))
        proc = pipeline(["--input", inbox, "--output", output], env, wait=False)
        time.sleep(random.uniform(0.0, duration))
        if proc.poll() is None:
            proc.kill()
            landed += 1
        else:
            finished += 1
        proc.wait()
        if place == "local":
            staged = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(output, "_staging")) for f in fs]
            left_staging += bool(staged)
            left_committed += any(f.endswith("_commit.json") for f in staged)
        if place == "s3":
            time.sleep(1.2)  # the killed run's 1 s lease expires
        started = time.time()
        done = pipeline(["--input", inbox, "--output", output], env)
        durations.append(time.time() - started)
        if place == "local" and any(fs for _, _, fs in os.walk(os.path.join(output, "_staging"))):
            sys.exit("local: the run after a kill left files in _staging")
        if place == "local":
            # object_store writes `<name>#<n>` and renames it: a kill mid-write
            # leaves one, which the next run must remove.
            temps = [os.path.join(d, f) for d, _, fs in os.walk(output) for f in fs if re.search(r"#\d+$", f)]
            if temps:
                sys.exit(f"local: the run after a kill left temporary files of interrupted writes: {temps}")
        duration = max(durations)
        if done.returncode != 0:
            sys.exit(f"{place}: the run after a kill failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    if landed < KILLS:
        sys.exit(f"{place}: only {landed} kills landed; generate more deliveries")
    # The reference: one uninterrupted run over the same input.
    done = pipeline(["--input", inbox, "--output", os.path.join(work, f"ref-{place}")])
    if done.returncode != 0:
        sys.exit(f"the reference run failed:\n{done.stdout}{done.stderr}")
    reference = {layer: layer_rows(os.path.join(work, f"ref-{place}"), layer, ex) for layer, ex in LAYERS.items()}
    delivered = landed + finished

    local = output
    if place == "s3":
        local = os.path.join(work, "from-s3")
        download(endpoint, "soak", place, local)
    equal = {layer: layer_rows(local, layer, ex) == reference[layer] for layer, ex in LAYERS.items()}
    tables = {layer: table_rows(local, layer, ex) == reference[layer] for layer, ex in LAYERS.items()}
    rows = {layer: len(reference[layer]) for layer in LAYERS}
    compactions = 0
    for name in os.listdir(os.path.join(local, "_runs")):
        with open(os.path.join(local, "_runs", name)) as manifest:
            compactions += bool(json.load(manifest).get("compacted"))
    print(f"{place}: {delivered} deliveries, {landed} kills landed mid-run, {finished} runs finished before "
          f"their kill; all {delivered} follow-up runs succeeded (full runs took "
          f"{min(durations):.2f}-{max(durations):.2f} s); {compactions} compactions published")
    if place == "local":
        print(f"   kills that left staging behind: {left_staging}, of them after the commit marker: {left_committed}")
    for layer, same in equal.items():
        table = "so is its Delta table" if tables[layer] else "its Delta table is DIFFERENT"
        print(f"   {layer}: {rows[layer]} rows, {'equal to' if same else 'DIFFERENT FROM'} one uninterrupted run; {table}")
    return all(equal.values()) and all(tables.values())


def main():
    work = tempfile.mkdtemp(prefix="crash-soak-")
    batches = []
    # Enough deliveries for KILLS kills: a run that finishes before its kill
    # moment is not counted (with checkpoints every 5 versions, 100
    # deliveries once gave only 28 kills on a local folder).
    for i in range(KILLS * 4):
        batch = os.path.join(work, "all", f"batch-{i:03}")
        subprocess.run([PIPELINE, "generate", "--events", "600", "--seed", str(100 + i), "--out", batch],
                       check=True, capture_output=True)
        batches.append(batch)

    ok = True
    server = None
    try:
        for place in PLACES:
            endpoint = None
            if place == "s3":
                server = subprocess.Popen([os.path.join(ROOT, "scripts", "s3-server.sh"), "soak"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                endpoint = server.stdout.readline().strip().removeprefix("ready ")
            ok = soak(place, work, batches, endpoint) and ok
    finally:
        if server:
            server.stdin.close()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
