#!/usr/bin/env python3
"""The DuckDB baseline: minutely's three layers (bronze, silver events and
rejects, gold) written by one DuckDB SQL script, as a DuckDB user would.

Usage: scripts/duckdb_baseline.py INPUT_DIR OUTPUT_DIR
(run with target/bench-venv/bin/python; scripts/bench.py does).

It is a performance baseline, not a second implementation: where plain SQL
cannot follow the README's rules, it does the nearest thing a SQL user would do.
  - Line numbers: DuckDB's readers do not report a record's physical line,
    so `_source_line` is the row's position in the scan.
  - Malformed rows: the readers skip CSV rows with the wrong field count
    and invalid JSON lines (`ignore_errors`); they are not in bronze or
    rejects. `_raw` is therefore always null.
  - `_extra`: unknown CSV columns and JSON keys are dropped.
  - Header names and JSON keys: CSV headers are normalized by
    `normalize_names` (case, padding); JSON keys are matched exactly.
  - Whitespace: `trim` removes ASCII whitespace, not all Unicode whitespace.
  - Timestamps: ISO forms via DuckDB's TIMESTAMPTZ cast (which accepts a
    few forms the README's rules reject); epoch numbers through
    DOUBLE, so the last microsecond may differ; one strftime pattern.
  - Numbers: `try_cast` to DOUBLE accepts `inf`-like spellings and
    hexadecimal the README's timestamp rules do not.
  - Duplicates: first by file path, then scan position.
Every layer is Hive-partitioned Parquet (zstd), like minutely's.
"""
import os
import sys

import duckdb

IGNORED = ("_", ".")


def event_files(root):
    """(csv, ndjson) event files under root, by the naming rules of README "Input"."""
    csv, ndjson = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(IGNORED)]
        for name in files:
            if name.startswith(IGNORED):
                continue
            stem = name[:-3] if name.endswith(".gz") else name
            path = os.path.join(folder, name)
            if stem.endswith(".csv"):
                csv.append(path)
            elif stem.endswith((".jsonl", ".ndjson")):
                ndjson.append(path)
    return sorted(csv), sorted(ndjson)


FIELDS = ["event_id", "service", "event_type", "timestamp", "latency_ms", "status_code", "user_id"]


def sql_list(paths):
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def script(csv, ndjson, out):
    sources = []
    if csv:
        columns = ", ".join(f'"{f}"' for f in FIELDS)
        sources.append(
            f"SELECT {columns}, filename AS _source_file FROM read_csv({sql_list(csv)}, all_varchar = true, "
            "union_by_name = true, normalize_names = true, filename = true, ignore_errors = true)"
        )
    if ndjson:
        columns = ", ".join(f"json_extract_string(json, '$.{f}') AS \"{f}\"" for f in FIELDS)
        sources.append(
            f"SELECT {columns}, filename AS _source_file FROM read_ndjson_objects({sql_list(ndjson)}, "
            "filename = true, ignore_errors = true)"
        )
    union = "\nUNION ALL BY NAME\n".join(sources)
    return f"""
SET TimeZone = 'UTC';
CREATE MACRO ws() AS ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13);
-- trim(v, chars) is slow: run it only on values that start or end in a space or control character.
CREATE MACRO tr(v) AS CASE WHEN ascii(v) <= 32 OR ascii(v[-1]) <= 32 THEN trim(v, ws()) ELSE v END;
CREATE MACRO nul(v) AS CASE WHEN lower(v) IN ('', 'null', 'none', 'nan', 'n/a', '-') THEN NULL ELSE v END;
CREATE MACRO epoch_us(v) AS CASE
    WHEN abs(v) < 1e11 THEN floor(v * 1e6) WHEN abs(v) < 1e14 THEN floor(v * 1e3) ELSE floor(v) END::BIGINT;
CREATE MACRO parse_ts(v) AS CASE
    WHEN regexp_full_match(v, '[+-]?[0-9]+(\\.[0-9]+)?') THEN make_timestamptz(epoch_us(try_cast(v AS DOUBLE)))
    ELSE coalesce(try_cast(v AS TIMESTAMPTZ),
                  try_cast(regexp_replace(v, '^([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})[tT ]', '\\1 ') AS TIMESTAMPTZ),
                  try_strptime(v, '%d/%m/%Y %H:%M:%S')::TIMESTAMPTZ) END;

CREATE TEMP TABLE bronze AS
SELECT *, row_number() OVER () AS _source_line, now()::TIMESTAMPTZ AS _ingested_at, 'duckdb' AS _run_id,
       NULL::VARCHAR AS _extra, NULL::VARCHAR AS _raw
FROM ({union});

-- One table of bronze rows with their clean values and reasons. Each field
-- is trimmed, normalized and parsed once, a step per subquery (DuckDB
-- inlines macros, so a macro over a macro would repeat the work).
CREATE TEMP TABLE ranked AS
WITH evaluated AS (
    SELECT *, list_filter([
            CASE WHEN id IS NULL THEN 'missing_event_id' END,
            CASE WHEN svc IS NULL THEN 'missing_service' END,
            CASE WHEN et IS NULL THEN 'missing_event_type' END,
            CASE WHEN ts IS NULL THEN 'missing_timestamp' END,
            CASE WHEN ts IS NOT NULL AND t IS NULL THEN 'invalid_timestamp' END,
            CASE WHEN t < TIMESTAMPTZ '2000-01-01' OR t >= TIMESTAMPTZ '2100-01-01' THEN 'timestamp_out_of_range' END
        ], lambda r: r IS NOT NULL) AS reasons
    FROM (
        SELECT * EXCLUDE (id_t, svc_t, et_t, ts_t, lat_t, status_t, user_t, lat, status),
               parse_ts(ts) AS t, try_cast(lat AS DOUBLE) AS lat_d, try_cast(status AS DOUBLE) AS status_d
        FROM (
            SELECT *, nul(id_t) AS id, lower(nul(svc_t)) AS svc, lower(nul(et_t)) AS et, nul(ts_t) AS ts,
                   nul(lat_t) AS lat, nul(status_t) AS status, nul(user_t) AS uid
            FROM (
                SELECT *, tr(event_id) AS id_t, tr(service) AS svc_t, tr(event_type) AS et_t,
                       tr("timestamp") AS ts_t, tr(latency_ms) AS lat_t,
                       tr(status_code) AS status_t, tr(user_id) AS user_t
                FROM bronze
            )
        )
    )
)
SELECT *, CASE WHEN len(reasons) = 0 AND row_number() OVER (
        PARTITION BY id, CAST(t AS DATE), len(reasons) = 0 ORDER BY _source_file, _source_line) > 1
    THEN ['duplicate_event_id'] ELSE reasons END AS all_reasons
FROM evaluated;

COPY (SELECT {", ".join(f'"{f}"' for f in FIELDS)}, _extra, _raw, _source_file, _source_line, _ingested_at, _run_id,
             strftime(current_date, '%Y-%m-%d') AS ingest_date FROM bronze)
TO '{out}/bronze/events' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (ingest_date));

COPY (SELECT id AS event_id, svc AS service, et AS event_type, t AS event_time,
             CASE WHEN isfinite(lat_d) AND lat_d >= 0 THEN lat_d END AS latency_ms,
             CASE WHEN status_d BETWEEN 100 AND 599 AND status_d = floor(status_d)
                  THEN status_d::INTEGER END AS status_code,
             uid AS user_id, _source_file, _source_line, _run_id,
             strftime(t, '%Y-%m-%d') AS event_date
      FROM ranked WHERE len(all_reasons) = 0)
TO '{out}/silver/events' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date));

COPY (SELECT {", ".join(f'"{f}"' for f in FIELDS)}, _extra, _raw, _source_file, _source_line, _ingested_at, _run_id,
             all_reasons[1] AS reject_reason, all_reasons AS reject_reasons,
             strftime(current_date, '%Y-%m-%d') AS ingest_date
      FROM ranked WHERE len(all_reasons) > 0)
TO '{out}/silver/rejects' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (ingest_date));

COPY (SELECT service, time_bucket(INTERVAL 1 MINUTE, event_time) AS minute,
             count(*) AS request_count, count(latency_ms) AS latency_count, avg(latency_ms) AS avg_latency_ms,
             quantile_cont(latency_ms, 0.5) AS p50_latency_ms, quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
             quantile_cont(latency_ms, 0.99) AS p99_latency_ms, max(latency_ms) AS max_latency_ms,
             count(status_code) AS status_count,
             count_if(status_code < 200 OR status_code > 299) AS error_count,
             count_if(status_code < 200 OR status_code > 299) / nullif(count(status_code), 0) AS error_rate,
             any_value(event_date) AS event_date
      FROM read_parquet('{out}/silver/events/*=*/*.parquet', hive_partitioning = true)
      GROUP BY service, minute ORDER BY service, minute)
TO '{out}/gold/service_minute_metrics' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date));
"""


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, out = sys.argv[1], os.path.abspath(sys.argv[2])
    csv, ndjson = event_files(root)
    if not csv and not ndjson:
        sys.exit(f"no event files under {root}")
    for layer in ("bronze", "silver", "gold"):
        os.makedirs(os.path.join(out, layer), exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{out}/_duckdb_tmp'")
    con.execute(script(csv, ndjson, out))
    rows = con.execute("SELECT count(*), count(*) FILTER (len(all_reasons) > 0) FROM ranked").fetchone()
    print(f"bronze {rows[0]} rows, rejects {rows[1]}")


if __name__ == "__main__":
    main()
