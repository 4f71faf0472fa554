#!/usr/bin/env python3
"""The record limit of README "Input", measured: one 300 MB CSV record and one 300 MB
NDJSON line, each between good records, must become malformed rows holding
their first `max_record_bytes` (1 MiB by default) bytes, the good records
must be read normally, and `pipeline run` must stay under 300 MiB peak RSS.

Usage: scripts/record_limit.py [PIPELINE_BIN]   (run with a Python that has duckdb:
       target/ci-venv/bin/python, as .ci/run does). Exits 1 on a failed check.
"""
import json
import os
import subprocess
import sys
import tempfile

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "pipeline")
LONG = 300 * 1024 * 1024
LIMIT = 1024 * 1024
RSS_LIMIT_MIB = 300


def write_repeated(f, char, count):
    """Writes `count` copies of `char` in 1 MiB blocks: this process stays
    small, and so does the peak RSS its child inherits at fork."""
    block = char * (1 << 20)
    for _ in range(count >> 20):
        f.write(block)
    f.write(char * (count & ((1 << 20) - 1)))


def write_inputs(folder):
    os.makedirs(folder)
    row = "e{0},api,request,2026-01-12T10:{1:02}:00Z\n"
    with open(os.path.join(folder, "big.csv"), "w") as f:
        f.write("event_id,service,event_type,timestamp\n")
        f.writelines(row.format(i, i) for i in range(10))
        f.write('long-csv,"')
        write_repeated(f, "x", LONG - 60)
        f.write('",request,2026-01-12T10:00:00Z\n')
        f.writelines(row.format(i, i) for i in range(10, 20))
    good = '{{"event_id":"n{0}","service":"api","event_type":"request","timestamp":"2026-01-12T11:{1:02}:00Z"}}\n'
    with open(os.path.join(folder, "big.ndjson"), "w") as f:
        f.writelines(good.format(i, i) for i in range(10))
        f.write('{"event_id":"long-json","user_id":"')
        write_repeated(f, "y", LONG - 40)
        f.write('"}\n')
        f.writelines(good.format(i, i) for i in range(10, 20))


def main():
    failures = []
    with tempfile.TemporaryDirectory() as work:
        inp, out = os.path.join(work, "in"), os.path.join(work, "out")
        write_inputs(inp)
        proc = subprocess.Popen([BIN, "run", "--input", inp, "--output", out], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
        text = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        code, rss = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
        print(f"input: two {LONG / 2**20:.0f} MiB records among 40 good ones; exit {code}; peak RSS {rss:.0f} MiB")
        if code != 0:
            failures.append(f"exit {code}:\n{text}")
        if rss >= RSS_LIMIT_MIB:
            failures.append(f"peak RSS {rss:.0f} MiB, limit {RSS_LIMIT_MIB} MiB")
        con = duckdb.connect()
        layer = lambda name: f"read_parquet('{out}/{name}/*=*/*.parquet', hive_partitioning = true)"
        events = con.execute(f"SELECT count(*) FROM {layer('silver/events')}").fetchone()[0]
        rejects = con.execute(
            f"SELECT _source_file, _source_line, reject_reason, strlen(_raw), _extra FROM {layer('silver/rejects')} "
            "ORDER BY _source_file").fetchall()
        print(f"silver events: {events}; rejects: {[r[:4] + (json.loads(r[4]),) for r in rejects]}")
        expected = [("big.csv", 12, "malformed_row", LIMIT), ("big.ndjson", 11, "malformed_row", LIMIT)]
        if events != 40:
            failures.append(f"{events} clean events, expected 40")
        if [r[:4] for r in rejects] != expected:
            failures.append(f"rejects {[r[:4] for r in rejects]}, expected {expected}")
        sizes = [json.loads(r[4]).get("_record_bytes") for r in rejects]
        if sizes != [LONG - 60 + len('long-csv,"",request,2026-01-12T10:00:00Z'), LONG - 40 + len('{"event_id":"long-json","user_id":""}')]:
            failures.append(f"record lengths noted as {sizes}")
    for failure in failures:
        print(f"FAIL: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
