//! Helpers for the end-to-end tests: locate and run the real binaries,
//! read layers back from Parquet, start the test servers.
//!
//! Where each kind of test lives (`cargo test --workspace` runs the first
//! four; `.ci/run` runs them all):
//!
//! - **Unit**: next to the code, in `#[cfg(test)] mod tests` of `records/`,
//!   `pipeline/` and `api/`, named as behaviour.
//! - **Property** (proptest): the readers against the `csv` crate and
//!   serde_json (`records/src/input/mod.rs`), the row rules
//!   (`pipeline/src/silver/clean.rs`), the API's answers
//!   (`api/src/tests.rs`), run invariance (`tests/tests/runs.rs`).
//! - **API**: the routes in process with `warp::test` (`api/src/tests.rs`);
//!   the real `api` binary on 127.0.0.1:0 (`tests/tests/api_server.rs`).
//! - **End-to-end**: `tests/tests/`: the real `pipeline` on hand-written
//!   fixtures (`pipeline_layers.rs`), runs (`runs.rs`), the memory budget
//!   (`memory_budget.rs`), S3 on moto (`object_store.rs`) and the spark
//!   engine on Sail (`spark_engine.rs`), the servers started by
//!   [`S3Server`] and [`SparkServer`].
//! - **Outside readers**: DuckDB, pyarrow and polars open every layer
//!   (`scripts/check_readers.py`); the spark engine on Apache Spark
//!   (`MINUTELY_TEST_SPARK=spark`).
//! - **Browser**: the dashboard in headless Chromium
//!   (`tests/browser/dashboard.mjs`, `scripts/browser-test.sh`).
//! - **OpenAPI**: schemathesis against the API's own document
//!   (`scripts/api-schema-test.sh`).
//! - **Soak**: `kill -9` at random points (`scripts/crash-soak.sh`) and
//!   reloads under load (`scripts/reload-soak.sh`); the record limit with
//!   300 MB records (`scripts/record_limit.py`).
//! - **Fuzz**: cargo-fuzz targets over the readers, timestamps and numbers
//!   (`fuzz/fuzz_targets/`, `scripts/fuzz-smoke.sh`).
//! - **Build**: the two README commands compile each crate once
//!   (`scripts/compile-once-test.sh`); no module imports in a circle
//!   (`scripts/module-cycles-test.py`).
//!
//! Benchmarks are scripts that print figures, never tests:
//! `scripts/bench.py`, `scripts/load-test.sh`, `scripts/api-scale.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

mod api;
mod s3;
mod server;
mod spark;
pub use api::ApiServer;
pub use s3::S3Server;
pub use spark::SparkServer;

/// Path of a workspace binary built next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test-exe> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile> folder");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not built: run `cargo test --workspace` (or `cargo build -p {name}`)", path.display());
    path
}

/// Runs `pipeline` with `args` in `cwd` with a clean MINUTELY_* environment.
pub fn pipeline(cwd: &Path, args: &[&str]) -> Output {
    pipeline_env(cwd, args, &[])
}

/// Like [`pipeline`], with extra environment variables.
pub fn pipeline_env(cwd: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(binary("pipeline"));
    command.current_dir(cwd).args(args).env("RUST_LOG", "warn");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MINUTELY_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().expect("pipeline binary runs")
}

/// Text of a process's stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `dir` (recursively), relative to `dir`, sorted by path
/// bytes (the order the pipeline lists input in). A missing `dir` has none.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("inside the walked folder").to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    files
}

/// Every `*.parquet` data file under `dir`, sorted; as Hive readers do, not
/// those under a folder whose name starts with `_` or `.` (a table's
/// `_delta_log/` holds Parquet checkpoints).
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| !p.components().any(|c| c.as_os_str().to_str().is_some_and(|c| c.starts_with(['_', '.']))))
        .map(|p| dir.join(p))
        .collect()
}

/// All files of a layer folder as one frame, with the Hive partition value
/// added as a string column named `partition_key`.
pub fn read_layer(dir: &Path, partition_key: &str) -> DataFrame {
    read_files(&parquet_files(dir), partition_key)
}

/// The files of `paths` as one frame, with the Hive partition value added
/// as a string column named `partition_key`.
pub fn read_files(paths: &[PathBuf], partition_key: &str) -> DataFrame {
    let mut frames = Vec::new();
    for path in paths {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut df = ParquetReader::new(file).finish().expect("read parquet");
        let value = path
            .components()
            .filter_map(|c| c.as_os_str().to_str()?.strip_prefix(partition_key)?.strip_prefix('=').map(str::to_string))
            .next()
            .expect("file inside a key=value folder");
        assert!(
            df.column(partition_key).is_err(),
            "partition column {partition_key} must not be inside {}",
            path.display()
        );
        let height = df.height();
        df.with_column(Column::new_scalar(partition_key.into(), Scalar::from(PlSmallStr::from(value)), height))
            .expect("add partition column");
        frames.push(df);
    }
    let mut all = frames.first().cloned().unwrap_or_default();
    for f in frames.iter().skip(1) {
        all.vstack_mut(f).expect("same schema across files");
    }
    all
}

/// The data files of a layer's Delta table at its newest version (or at
/// `version`), replayed from the JSON commits of `_delta_log/` as the
/// protocol says: adds minus removes, in version order. Empty when the
/// layer has no log.
pub fn table_files(dir: &Path, version: Option<u64>) -> Vec<PathBuf> {
    let mut commits: Vec<PathBuf> = std::fs::read_dir(dir.join("_delta_log"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect())
        .unwrap_or_default();
    commits.sort();
    let mut live = std::collections::BTreeSet::new();
    for (v, commit) in commits.iter().enumerate() {
        assert_eq!(commit.file_stem().and_then(|s| s.to_str()), Some(format!("{v:020}").as_str()), "no gap");
        if version.is_some_and(|want| v as u64 > want) {
            break;
        }
        for line in std::fs::read_to_string(commit).expect("read commit").lines() {
            let action: serde_json::Value = serde_json::from_str(line).expect("a JSON action a line");
            // The pipeline's file names need no URI escaping.
            let path = |kind: &str| action[kind]["path"].as_str().map(str::to_string);
            if let Some(path) = path("add") {
                assert!(live.insert(path.clone()), "{path} added twice in {}", commit.display());
            }
            if let Some(path) = path("remove") {
                // Version 0 may remove a file it did not adopt (replaced by its run).
                assert!(live.remove(&path) || v == 0, "{path} removed but not live in {}", commit.display());
            }
        }
    }
    live.into_iter().map(|p| dir.join(p)).collect()
}

/// Values of a string column, `None` as null.
pub fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    let s = df.column(name).unwrap_or_else(|_| panic!("column {name}")).as_materialized_series().clone();
    s.cast(&DataType::String)
        .expect("castable to string")
        .str()
        .expect("string")
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// Values of a numeric column as f64.
pub fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let s = df.column(name).unwrap_or_else(|_| panic!("column {name}")).as_materialized_series().clone();
    s.cast(&DataType::Float64).expect("castable to f64").f64().expect("f64").iter().collect()
}

/// Values of an integer column as i64.
pub fn i64s(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
    let s = df.column(name).unwrap_or_else(|_| panic!("column {name}")).as_materialized_series().clone();
    s.cast(&DataType::Int64).expect("castable to i64").i64().expect("i64").iter().collect()
}

/// A timestamp column as RFC 3339 text with microseconds and `Z`.
pub fn times(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    let column = df.column(name).unwrap_or_else(|_| panic!("column {name}"));
    let physical = column.datetime().expect("datetime column").physical().clone();
    physical
        .iter()
        .map(|v| {
            v.and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        })
        .collect()
}

/// Sorts a frame by the given columns.
pub fn sorted(df: &DataFrame, by: &[&str]) -> DataFrame {
    df.sort(by.iter().map(|s| s.to_string()).collect::<Vec<_>>(), SortMultipleOptions::default()).expect("sortable")
}

/// `Some(s.to_string())` for building expected rows.
pub fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// Copies a fixture folder into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create dir");
    for entry in std::fs::read_dir(src).expect("read fixture dir").flatten() {
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy fixture");
        }
    }
}

/// The basic fixtures plus `events` generated events (`--seed seed`), under
/// `dir/all`; returns their paths relative to it, in path order.
pub fn dataset(dir: &Path, events: u64, seed: u64) -> Vec<PathBuf> {
    let all = dir.join("all");
    copy_dir(&fixture("basic"), &all);
    let (events, seed) = (events.to_string(), seed.to_string());
    let out = pipeline(dir, &["generate", "--events", &events, "--seed", &seed, "--out", "all/gen"]);
    assert!(out.status.success(), "{}", text(&out));
    files_under(&all)
}

/// Copies the given files (relative to `dir/all`) into `dir/<inbox>`.
pub fn deliver(dir: &Path, inbox: &str, files: &[PathBuf]) {
    for f in files {
        let to = dir.join(inbox).join(f);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(dir.join("all").join(f), to).expect("copy");
    }
}

/// `pipeline run` from `inbox` into `out` (under `dir`) as the run tests
/// do it: the fixtures' extra timestamp pattern, no reject gate, then
/// `extra` flags, with `env`.
pub fn run_into(dir: &Path, inbox: &str, out: &str, extra: &[&str], env: &[(&str, String)]) -> Output {
    let mut args = vec![
        "run",
        "--input",
        inbox,
        "--output",
        out,
        "--max-reject-ratio",
        "1",
        "--timestamp-format",
        "%d/%m/%Y %H:%M:%S",
    ];
    args.extend_from_slice(extra);
    pipeline_env(dir, &args, env)
}

/// Delivers `files` (relative to `dir/all`) into `dir/<inbox>` one at a
/// time, each followed by [`run_into`] `out` with `env`; a run that fails
/// fails the test, naming it.
pub fn run_one_file_each(dir: &Path, files: &[PathBuf], inbox: &str, out: &str, env: &[(&str, String)]) {
    for (n, file) in files.iter().enumerate() {
        deliver(dir, inbox, std::slice::from_ref(file));
        let run = run_into(dir, inbox, out, &[], env);
        assert!(run.status.success(), "run {n} into {out}: {}", text(&run));
    }
}

/// Folder of a named fixture set.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A layer as sorted row texts, without the columns in `exclude`: a value
/// to compare whole layers across runs.
pub fn layer_rows(root: &Path, layer: &str, key: &str, exclude: &[&str]) -> Vec<String> {
    rows_of(&read_layer(&root.join(layer), key), exclude)
}

fn rows_of(df: &DataFrame, exclude: &[&str]) -> Vec<String> {
    if df.height() == 0 {
        return Vec::new();
    }
    let columns: Vec<Vec<String>> = df
        .columns()
        .iter()
        .filter(|c| !exclude.contains(&c.name().as_str()))
        .map(|c| {
            let s = c.as_materialized_series();
            (0..s.len()).map(|i| format!("{}", s.get(i).expect("in bounds"))).collect()
        })
        .collect();
    let mut rows: Vec<String> =
        (0..df.height()).map(|i| columns.iter().map(|c| c[i].as_str()).collect::<Vec<_>>().join("|")).collect();
    rows.sort();
    rows
}

/// The layer folders and their partition keys, bronze to gold.
pub const LAYERS: [(&str, &str); 4] = [
    ("bronze/events", "ingest_date"),
    ("silver/events", "event_date"),
    ("silver/rejects", "ingest_date"),
    ("gold/service_minute_metrics", "event_date"),
];

/// Run ids and ingest times, which differ between runs by design.
const LINEAGE: [&str; 3] = ["_run_id", "_ingested_at", "ingest_date"];

/// Every layer of an output as comparable rows, read as Hive-partitioned
/// folders; run ids and ingest times are left out.
pub fn snapshot(root: &Path) -> Vec<Vec<String>> {
    LAYERS.iter().map(|(layer, key)| layer_rows(root, layer, key, &LINEAGE)).collect()
}

/// Like [`snapshot`], read through each layer's Delta log instead: what a
/// Delta reader sees at the newest versions.
pub fn table_snapshot(root: &Path) -> Vec<Vec<String>> {
    table_snapshot_at(root, &[None; 4])
}

/// Like [`table_snapshot`], with each layer's table at the given version
/// (`None`: its newest): what time travel reads.
pub fn table_snapshot_at(root: &Path, versions: &[Option<u64>; 4]) -> Vec<Vec<String>> {
    LAYERS
        .iter()
        .zip(versions)
        .map(|((layer, key), version)| rows_of(&read_files(&table_files(&root.join(layer), *version), key), &LINEAGE))
        .collect()
}

/// Bronze, silver events and rejects exactly; gold with its computed
/// floats within 1e-9 relative (sums may be added in another order).
pub fn assert_same_layers(got: &Path, want: &Path, what: &str) {
    let (got_layers, want_layers) = (snapshot(got), snapshot(want));
    for (i, layer) in ["bronze", "silver events", "rejects"].iter().enumerate() {
        assert!(!want_layers[i].is_empty(), "{what}: the reference {layer} is empty");
        assert_eq!(got_layers[i], want_layers[i], "{what}: {layer} differ");
    }
    let gold = |root: &Path| {
        let df = read_layer(&root.join("gold/service_minute_metrics"), "event_date");
        sorted(&df, &["event_date", "service", "minute"])
    };
    let (got_gold, want_gold) = (gold(got), gold(want));
    assert!(want_gold.height() > 0, "{what}: the reference gold is empty");
    assert_eq!(got_gold.height(), want_gold.height(), "{what}: gold rows differ");
    for column in want_gold.columns() {
        let name = column.name().as_str();
        if column.dtype() == &DataType::Float64 {
            for (row, (g, w)) in f64s(&got_gold, name).into_iter().zip(f64s(&want_gold, name)).enumerate() {
                let close = match (g, w) {
                    (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(g.abs()),
                    (g, w) => g == w,
                };
                assert!(close, "{what}: gold {name} row {row}: {g:?} != {w:?}");
            }
        } else {
            assert_eq!(strs(&got_gold, name), strs(&want_gold, name), "{what}: gold {name} differs");
        }
    }
}

/// Every manifest of `out`, oldest run first.
pub fn all_manifests(out: &Path) -> Vec<serde_json::Value> {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(out.join("_runs"))
        .expect("_runs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    manifests.sort();
    manifests
        .iter()
        .map(|path| serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).expect("read")).expect("json"))
        .collect()
}

/// The newest ingesting run's manifest (compactions and vacuums ingest nothing).
pub fn newest_manifest(out: &Path) -> serde_json::Value {
    all_manifests(out)
        .into_iter()
        .rev()
        .find(|m| ["compacted", "expired", "expired_runs"].iter().all(|key| m.get(key).is_none()))
        .expect("an ingesting run's manifest")
}

/// The newest manifest's counts (rows per layer, rejects, counters).
pub fn counts(out: &Path) -> serde_json::Value {
    let m = newest_manifest(out);
    serde_json::json!({
        "rows": m["rows"], "rejects": m["rejects_by_reason"], "counters": m["counters"],
        "gold_partitions": m["gold_partitions"], "status": m["status"],
    })
}

/// Nothing under `_staging/`: no files, and (regression: recovery used to
/// leave one emptied folder tree per crashed run) no folders.
pub fn staging_is_empty(out: &Path) -> bool {
    std::fs::read_dir(out.join("_staging")).map_or(true, |mut entries| entries.next().is_none())
}

/// The `commitInfo.operation` of every version of a layer's table, oldest first.
pub fn operations(out: &Path, layer: &str) -> Vec<String> {
    let log = out.join(layer).join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log).expect("log").flatten().map(|e| e.path()).collect();
    commits.sort();
    commits
        .iter()
        .filter_map(|commit| {
            let text = std::fs::read_to_string(commit).expect("commit");
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|a| a["commitInfo"]["operation"].as_str().map(str::to_string))
        })
        .collect()
}
