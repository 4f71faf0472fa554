#!/usr/bin/env python3
"""Opens every layer of an output folder with DuckDB, pyarrow and polars as
Hive-partitioned datasets and checks they agree on rows and columns.

Usage: scripts/check_readers.py OUTPUT_DIR
"""
import sys

import duckdb
import polars as pl
import pyarrow.dataset as ds

LAYERS = {
    "bronze/events": "ingest_date",
    "silver/events": "event_date",
    "silver/rejects": "ingest_date",
    "gold/service_minute_metrics": "event_date",
}


def main(out):
    for layer, key in LAYERS.items():
        root = f"{out}/{layer}"
        glob = f"{root}/*=*/*.parquet"
        duck = duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning = true)")
        duck_rows = duck.aggregate("count(*)").fetchall()[0][0]
        arrow = ds.dataset(root, format="parquet", partitioning="hive").to_table()
        polars = pl.scan_parquet(glob, hive_partitioning=True).collect()
        assert duck_rows == arrow.num_rows == polars.height > 0, (layer, duck_rows, arrow.num_rows, polars.height)
        for columns in (duck.columns, arrow.column_names, polars.columns):
            assert columns.count(key) == 1, (layer, key, columns)
        assert set(duck.columns) == set(arrow.column_names) == set(polars.columns), layer
        print(f"ok {layer}: {duck_rows} rows, {len(duck.columns)} columns, partitioned by {key}")
    gold = duckdb.sql(
        f"select sum(request_count) from read_parquet('{out}/gold/service_minute_metrics/*=*/*.parquet', hive_partitioning = true)"
    ).fetchall()[0][0]
    events = duckdb.sql(f"select count(*) from read_parquet('{out}/silver/events/*=*/*.parquet')").fetchall()[0][0]
    assert gold == events, (gold, events)
    print(f"ok gold request_count sums to {events} silver events")


if __name__ == "__main__":
    main(sys.argv[1])
