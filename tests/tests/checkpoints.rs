//! Table checkpoints (README "Tables"): every `checkpoint_interval` versions
//! a table gets a Parquet checkpoint of its state and `_last_checkpoint`;
//! runs open a table from its newest checkpoint on, so a log whose older
//! commits are gone (as a log cleanup leaves it) still takes new runs.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use tests::*;

fn env() -> Vec<(&'static str, String)> {
    vec![("MINUTELY_CHECKPOINT_INTERVAL", "2".into()), ("MINUTELY_COMPACT_MIN_FILES", "3".into())]
}

fn runs(dir: &Path, files: &[PathBuf]) {
    run_one_file_each(dir, files, "in", "out", &env());
}

/// The version `_last_checkpoint` names.
fn last_checkpoint(table: &Path) -> u64 {
    let hint = std::fs::read_to_string(table.join("_delta_log/_last_checkpoint")).expect("_last_checkpoint");
    serde_json::from_str::<serde_json::Value>(&hint).expect("JSON")["version"].as_u64().expect("a version")
}

/// The rows of a checkpoint file (one an action), from its footer.
fn checkpoint_rows(table: &Path, version: u64) -> usize {
    let path = table.join(format!("_delta_log/{version:020}.checkpoint.parquet"));
    let file = std::fs::File::open(&path).expect("checkpoint file");
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().expect("a Parquet file");
    let columns: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
    assert_eq!(columns, ["txn", "add", "remove", "metaData", "protocol"], "{}", path.display());
    reader.num_rows().expect("rows")
}

#[test]
fn tables_get_checkpoints_and_runs_go_on_from_them_after_older_commits_are_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 3000, 8);
    assert!(files.len() >= 8, "enough deliveries: {}", files.len());
    deliver(dir.path(), "ref-in", &files);
    let reference = run_into(dir.path(), "ref-in", "ref-out", &[], &[]);
    assert!(reference.status.success(), "{}", text(&reference));
    let want = snapshot(&dir.path().join("ref-out"));
    let out = dir.path().join("out");
    let (first, rest) = files.split_at(files.len() / 2);

    runs(dir.path(), first);
    for (layer, _) in &LAYERS {
        let table = out.join(layer);
        let version = last_checkpoint(&table);
        assert!(version >= 2, "{layer}: checkpointed at {version}");
        let live = table_files(&table, Some(version)).len();
        assert_eq!(checkpoint_rows(&table, version), live + 2, "{layer}: protocol, metadata and {live} adds");
    }
    assert_eq!(table_snapshot(&out), snapshot(&out), "the tables are the Hive read");

    // A log cleanup: the commits before each checkpoint are deleted. Runs
    // read the log from the checkpoint on, and checkpoint again from the
    // state they saved with the last one.
    let mut before = Vec::new();
    for (layer, _) in &LAYERS {
        let table = out.join(layer);
        let version = last_checkpoint(&table);
        for v in 0..version {
            std::fs::remove_file(table.join(format!("_delta_log/{v:020}.json"))).expect("an older commit");
        }
        before.push(version);
    }
    runs(dir.path(), rest);
    assert_eq!(snapshot(&out), want, "the rows of one run over the same files");
    for ((layer, _), version) in LAYERS.iter().zip(before) {
        let table = out.join(layer);
        assert!(last_checkpoint(&table) > version, "{layer}: checkpointed again after {version}");
    }

    // A table whose log this writer did not check is refused: here the
    // checkpoint `_last_checkpoint` names is gone.
    let gold = out.join("gold/service_minute_metrics");
    let version = last_checkpoint(&gold);
    std::fs::remove_file(gold.join(format!("_delta_log/{version:020}.checkpoint.parquet"))).expect("checkpoint");
    let late = "event_id,service,event_type,timestamp,latency_ms,status_code\nlate1,checkout,request,2026-01-12T10:15:00Z,1,200\n";
    std::fs::write(dir.path().join("in/late.csv"), late).expect("input");
    let refused = run_into(dir.path(), "in", "out", &[], &env());
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains(&format!("version {version}")) && message.contains("checkpoint"), "{message}");
}

/// The log files of a table, as (version, is a checkpoint), in order.
fn log_files(table: &Path) -> Vec<(u64, bool)> {
    let mut files: Vec<(u64, bool)> = std::fs::read_dir(table.join("_delta_log"))
        .expect("a log")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (version, checkpoint) = match name.strip_suffix(".checkpoint.parquet") {
                Some(version) => (version.to_string(), true),
                None => (name.strip_suffix(".json")?.to_string(), false),
            };
            Some((version.parse().ok()?, checkpoint))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn checkpoints_delete_the_log_files_past_the_retention_and_runs_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 3000, 8);
    deliver(dir.path(), "ref-in", &files);
    let reference = run_into(dir.path(), "ref-in", "ref-out", &[], &[]);
    assert!(reference.status.success(), "{}", text(&reference));

    // The default retention (30 days) keeps the whole log.
    run_one_file_each(dir.path(), &files, "kept-in", "kept", &env());
    for (layer, _) in &LAYERS {
        let log = log_files(&dir.path().join("kept").join(layer));
        assert_eq!(log.first(), Some(&(0, false)), "{layer}: version 0 kept");
        assert!(log.iter().filter(|(_, checkpoint)| *checkpoint).count() >= 2, "{layer}: checkpoints {log:?}");
    }

    // No retention: each checkpoint deletes every log file below it.
    let mut none = env();
    none.push(("MINUTELY_LOG_RETENTION_HOURS", "0".into()));
    run_one_file_each(dir.path(), &files, "in", "out", &none);
    let out = dir.path().join("out");
    assert_same_layers(&out, &dir.path().join("ref-out"), "runs with log cleanup");
    for (layer, _) in &LAYERS {
        let table = out.join(layer);
        let checkpoint = last_checkpoint(&table);
        let log = log_files(&table);
        assert!(checkpoint >= 2, "{layer}: checkpointed at {checkpoint}");
        assert_eq!(log.first(), Some(&(checkpoint, false)), "{layer}: the log starts at its checkpoint: {log:?}");
        assert!(log.contains(&(checkpoint, true)), "{layer}: the checkpoint is kept: {log:?}");
        let versions: Vec<u64> = log.iter().filter(|(_, c)| !c).map(|(v, _)| *v).collect();
        assert_eq!(versions, (checkpoint..checkpoint + versions.len() as u64).collect::<Vec<_>>(), "{layer}: no gap");
    }
}
