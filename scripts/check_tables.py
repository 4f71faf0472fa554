#!/usr/bin/env python3
"""Reads every layer of a run sequence's output as a Delta table and checks
it against the plain Hive read of the same folder (pyarrow.dataset), with
readers that share no code with the pipeline.

WORK holds `out/` (the output after the last run) and `after-K/`, a copy of
the output taken right after run K. Checks:

- the newest version of each table has exactly the rows of the Hive read;
- time travel: the version run K left each table at (the newest commit in
  `after-K/`'s log; the run's manifest records it as `table_versions`) has
  exactly the rows of `after-K/`'s Hive read, for every version whose
  files are still kept. Versions whose files were
  deleted (a replaced gold partition's, or files compaction merged,
  deleted when their replacement is published) are counted and reported,
  not skipped silently; a layer with no version left to check fails.

Usage:
  check_tables.py delta WORK          python deltalake (delta-rs) and polars.scan_delta
  check_tables.py sail WORK REMOTE    spark.read.format("delta") on Sail over Spark Connect
"""
import datetime
import glob
import json
import math
import os
import sys

import pyarrow.dataset as ds

LAYERS = {
    "bronze/events": "ingest_date",
    "silver/events": "event_date",
    "silver/rejects": "ingest_date",
    "gold/service_minute_metrics": "event_date",
}


def canonical(value):
    """One value as comparable text, whatever reader produced it."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # a reader that dropped the zone gives UTC wall time
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    return "null" if value is None else str(value)


def rows(table):
    """A pyarrow table's rows as sorted tuples of text, columns by name."""
    if table is None:
        return [], []
    names = sorted(table.column_names)
    columns = [table.column(n).to_pylist() for n in names]
    return names, sorted(tuple(canonical(c[i]) for c in columns) for i in range(table.num_rows))


def hive(root):
    if not glob.glob(f"{root}/**/*.parquet", recursive=True):
        return None
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def runs(work):
    """(K, versions) for each copy `after-K/`, in run order: the version each
    table was at right after run K, read off the copy's `_delta_log/`."""
    found = []
    for path in glob.glob(os.path.join(work, "after-*")):
        versions = {}
        for layer in LAYERS:
            commits = glob.glob(os.path.join(path, layer, "_delta_log", "*.json"))
            if commits:
                versions[layer] = len(commits) - 1
        found.append((int(path.rsplit("-", 1)[1]), versions))
    return sorted(found, key=lambda r: r[0])


def readers(kind, remote):
    """name → read(root, version or None) → pyarrow table."""
    if kind == "delta":
        import polars as pl
        from deltalake import DeltaTable

        return {
            "deltalake": lambda root, v: DeltaTable(root, version=v).to_pyarrow_table(),
            "polars.scan_delta": lambda root, v: pl.scan_delta(root, version=v).collect().to_arrow(),
        }
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).getOrCreate()

    def read(root, v):
        reader = spark.read.format("delta")
        if v is not None:
            reader = reader.option("versionAsOf", v)
        return reader.load(root).toArrow()

    return {"sail": read}


def files_kept(root, version):
    """Whether every data file of `version` still exists (replayed from the log)."""
    live = set()
    for name in sorted(os.listdir(os.path.join(root, "_delta_log"))):
        if not name.endswith(".json") or int(name[:20]) > version:
            continue
        with open(os.path.join(root, "_delta_log", name)) as commit:
            for action in map(json.loads, filter(str.strip, commit)):
                if "add" in action:
                    live.add(action["add"]["path"])
                if "remove" in action:
                    live.discard(action["remove"]["path"])
    return all(os.path.exists(os.path.join(root, p)) for p in live)


def main(kind, work, remote=None):
    failures = []
    out = os.path.join(work, "out")
    history = runs(work)
    for name, read in readers(kind, remote).items():
        for layer in LAYERS:
            root = os.path.join(out, layer)
            want = rows(hive(root))
            got = rows(read(root, None))
            if got != want:
                failures.append(f"{name} {layer}: newest version differs from the Hive read")
            checked, gone = 0, 0
            for k, versions in history:
                version = versions.get(layer)
                if version is None:
                    continue
                if not files_kept(root, version):
                    gone += 1
                    continue
                then = hive(os.path.join(work, f"after-{k}", layer))
                if rows(read(root, version)) != rows(then):
                    failures.append(f"{name} {layer}: version {version} differs from the Hive read after run {k}")
                checked += 1
            if checked == 0:
                failures.append(f"{name} {layer}: no run's version could be time-travelled to")
            note = f", {gone} whose replaced files are deleted not read" if gone else ""
            print(f"{'ok' if not failures else '--'} {name} {layer}: {len(want[1])} rows as the Hive read; "
                  f"time travel to {checked} run versions equal{note}")
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("delta", "sail") or (sys.argv[1] == "sail") != (len(sys.argv) == 4):
        sys.exit(__doc__)
    main(*sys.argv[1:])
