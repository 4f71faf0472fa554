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
  not skipped silently; a layer with no version left to check fails. Sail
  cannot open a version before a table's newest checkpoint (it lists the
  log from there); those are tried and counted when it fails;
- checkpoints: each table has `_last_checkpoint`, and a copy of it whose
  commits before that checkpoint are deleted (as a log cleanup leaves it)
  still reads as the Hive read, so the checkpoint alone holds the state.

With `kept`, WORK also holds `kept/`, the output of the same deliveries
with replaced files kept for time travel (`keep_replaced_hours`), and
`kept-after-K/`, its copy after run K. Its layer folders also hold files
later versions removed, so a Hive read of them is not the reference: the
same deliveries' Hive reads without kept files are (`out/`, `after-K/`),
compared without the columns that name the run. Every run's version must
still have all of its files.

Usage:
  check_tables.py delta WORK          python deltalake (delta-rs) and polars.scan_delta
  check_tables.py sail WORK REMOTE    spark.read.format("delta") on Sail over Spark Connect
  check_tables.py kept WORK           deltalake and polars on `kept/`
"""
import datetime
import glob
import json
import math
import os
import shutil
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


# Columns that name the run that wrote a row: they differ between two run
# sequences over the same deliveries.
LINEAGE = {"_run_id", "_ingested_at", "ingest_date"}


def rows(table, drop=()):
    """A pyarrow table's rows as sorted tuples of text, columns by name,
    without those in `drop`."""
    if table is None:
        return [], []
    names = sorted(n for n in table.column_names if n not in drop)
    columns = [table.column(n).to_pylist() for n in names]
    return names, sorted(tuple(canonical(c[i]) for c in columns) for i in range(table.num_rows))


def hive(root):
    if not glob.glob(f"{root}/**/*.parquet", recursive=True):
        return None
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def runs(work, prefix="after-"):
    """(K, versions) for each copy `<prefix>K/`, in run order: the version each
    table was at right after run K, read off the copy's `_delta_log/`."""
    found = []
    for path in glob.glob(os.path.join(work, f"{prefix}*")):
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


def last_checkpoint(root):
    """The version `_last_checkpoint` names, or None."""
    hint = os.path.join(root, "_delta_log", "_last_checkpoint")
    if not os.path.exists(hint):
        return None
    with open(hint) as f:
        return json.load(f)["version"]


def checkpointed_copy(root, copy):
    """A copy of the table at `root` without the commits before its newest
    checkpoint; None when it has no `_last_checkpoint`."""
    version = last_checkpoint(root)
    if version is None:
        return None
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    for name in os.listdir(os.path.join(copy, "_delta_log")):
        if name.endswith(".json") and int(name[:20]) < version:
            os.remove(os.path.join(copy, "_delta_log", name))
    return version


def main_kept(work):
    """The `kept` checks (see the module's doc)."""
    failures = []
    history = runs(work, "kept-after-")
    if [k for k, _ in history] != [k for k, _ in runs(work)]:
        sys.exit("kept-after-K/ and after-K/ must come from the same runs")
    for name, reader in readers("delta", None).items():
        for layer in LAYERS:
            root = os.path.join(work, "kept", layer)
            want = rows(hive(os.path.join(work, "out", layer)), LINEAGE)
            if rows(reader(root, None), LINEAGE) != want:
                failures.append(f"{name} {layer}: newest version differs from the Hive read without kept files")
            checked = 0
            for k, versions in history:
                version = versions.get(layer)
                if version is None:
                    continue
                if not files_kept(root, version):
                    failures.append(f"{name} {layer}: version {version} (run {k}) lost a file it needs")
                    continue
                then = rows(hive(os.path.join(work, f"after-{k}", layer)), LINEAGE)
                if rows(reader(root, version), LINEAGE) != then:
                    failures.append(f"{name} {layer}: version {version} differs from the Hive read after run {k}")
                checked += 1
            on_disk = len(glob.glob(f"{root}/*=*/*.parquet"))
            print(f"{'ok' if not failures else '--'} {name} {layer} (files kept): {len(want[1])} rows; "
                  f"time travel to all {checked} run versions equal; {on_disk} files on disk")
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


def main(kind, work, remote=None):
    failures = []
    out = os.path.join(work, "out")
    history = runs(work)
    for name, reader in readers(kind, remote).items():

        def read(root, version, reader=reader):
            """The reader's table, or None (a failure, recorded) when it cannot read it."""
            try:
                return reader(root, version)
            except Exception as e:  # a reader's own error, reported with what it read
                failures.append(f"{name} {root} version {version}: {type(e).__name__}: {str(e)[:300]}")
                return None

        for layer in LAYERS:
            root = os.path.join(out, layer)
            want = rows(hive(root))
            got = rows(read(root, None))
            if got != want:
                failures.append(f"{name} {layer}: newest version differs from the Hive read")
            checked, gone, unopened = 0, 0, 0
            newest_checkpoint = last_checkpoint(root)
            for k, versions in history:
                version = versions.get(layer)
                if version is None:
                    continue
                if not files_kept(root, version):
                    gone += 1
                    continue
                then = hive(os.path.join(work, f"after-{k}", layer))
                if name == "sail" and newest_checkpoint is not None and version < newest_checkpoint:
                    # Sail lists a log from just before min(version, _last_checkpoint), so it
                    # finds no checkpoint for a version before the newest one and fails on
                    # the commits it did not list. Tried, and counted when it cannot open it.
                    try:
                        got = reader(root, version)
                    except Exception:
                        unopened += 1
                        continue
                else:
                    got = read(root, version)
                if rows(got) != rows(then):
                    failures.append(f"{name} {layer}: version {version} differs from the Hive read after run {k}")
                checked += 1
            if checked == 0:
                failures.append(f"{name} {layer}: no run's version could be time-travelled to")
            copy = os.path.join(work, "checkpointed", layer)
            checkpoint = checkpointed_copy(root, copy)
            if checkpoint is None:
                failures.append(f"{name} {layer}: no _last_checkpoint")
            elif rows(read(copy, None)) != want:
                failures.append(f"{name} {layer}: read from checkpoint {checkpoint} on differs from the Hive read")
            note = f", {gone} whose replaced files are deleted not read" if gone else ""
            if unopened:
                note += f", {unopened} before the newest checkpoint that {name} cannot open"
            print(f"{'ok' if not failures else '--'} {name} {layer}: {len(want[1])} rows as the Hive read; "
                  f"time travel to {checked} run versions equal{note}; from checkpoint {checkpoint} on equal")
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("delta", "sail", "kept") or (sys.argv[1] == "sail") != (len(sys.argv) == 4):
        sys.exit(__doc__)
    if sys.argv[1] == "kept":
        main_kept(sys.argv[2])
    else:
        main(*sys.argv[1:])
