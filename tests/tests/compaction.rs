//! Compaction (README "Compaction"): after each run and with `pipeline
//! compact`, a partition's small files are merged; every reader sees the
//! same rows, event id indexes follow their files, and a compaction killed
//! at any point is finished or rolled back by the next command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use tests::*;

/// Files a run may leave in one partition before it is compacted.
const MIN_FILES: &str = "3";

fn env(min_files: &str) -> Vec<(&'static str, String)> {
    vec![("MINUTELY_COMPACT_MIN_FILES", min_files.to_string())]
}

/// Delivers `files` one per run into `out`, with `compact_min_files` = `min_files`.
fn one_run_per_file(dir: &Path, files: &[PathBuf], out: &str, min_files: &str) {
    run_one_file_each(dir, files, &format!("{out}-in"), out, &env(min_files));
}

/// The most Parquet files in one partition of the layers that only add
/// files (bronze, silver events, rejects).
fn most_files_in_a_partition(out: &Path) -> usize {
    let mut per_partition: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (layer, _) in &LAYERS[..3] {
        for file in parquet_files(&out.join(layer)) {
            *per_partition.entry(file.parent().expect("partition").to_path_buf()).or_default() += 1;
        }
    }
    per_partition.into_values().max().unwrap_or_default()
}

/// Each silver events file has its event id index and each index its file.
fn assert_indexes_follow_files(out: &Path) {
    let stems = |dir: &Path, ext: &str| -> Vec<PathBuf> {
        let mut stems: Vec<PathBuf> = files_under(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| p.with_extension(""))
            .collect();
        stems.sort();
        stems
    };
    assert_eq!(stems(&out.join("_state/event_ids"), "ids"), stems(&out.join("silver/events"), "parquet"));
}

/// Each merged silver events file holds its events ordered by minute (gold
/// reads only the row groups of the minutes a run touched).
fn assert_merged_silver_is_ordered_by_minute(out: &Path) -> usize {
    let merged: Vec<PathBuf> = parquet_files(&out.join("silver/events"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("-compact-")))
        .collect();
    for file in &merged {
        let df = ParquetReader::new(std::fs::File::open(file).expect("open")).finish().expect("read");
        let times = df.column("event_time").expect("event_time").datetime().expect("a timestamp").physical();
        let minutes: Vec<i64> = times.iter().map(|t| t.expect("clean events have a time") / 60_000_000).collect();
        assert!(minutes.is_sorted(), "{}: events ordered by minute", file.display());
        assert!(minutes.first() < minutes.last(), "{}: events of more than one minute", file.display());
    }
    merged.len()
}

/// Each compaction's manifest counts its own requests (README "Storage
/// requests"): none to the input, a read of each merged file, and a rename
/// of each file it staged only, though a run made requests through the
/// same location just before. Returns how many compactions there were.
fn assert_compactions_count_their_own_requests(out: &Path) -> usize {
    let mut compactions = 0;
    for manifest in all_manifests(out) {
        let Some(compacted) = manifest.get("compacted").and_then(|c| c.as_array()) else { continue };
        compactions += 1;
        let requests = &manifest["storage_requests"];
        let count = |location: &str, kind: &str| requests[location][kind].as_u64().expect("a count");
        let input: u64 = ["get", "put", "list", "rename", "delete"].iter().map(|kind| count("input", kind)).sum();
        assert_eq!(input, 0, "{requests}");
        assert!(count("output", "get") >= compacted.len() as u64, "each merged file read: {requests}");
        let outputs = manifest["outputs"].as_array().expect("outputs").len() as u64;
        assert_eq!(count("output", "rename"), outputs, "only its own files moved into place: {requests}");
    }
    compactions
}

#[test]
fn runs_compact_the_partitions_they_write_and_every_reader_sees_the_same_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 3000, 8);
    assert!(files.len() >= 8, "enough deliveries to compact: {}", files.len());
    deliver(dir.path(), "ref-in", &files);
    let reference = run_into(dir.path(), "ref-in", "ref-out", &[], &[]);
    assert!(reference.status.success(), "{}", text(&reference));
    let want = snapshot(&dir.path().join("ref-out"));

    one_run_per_file(dir.path(), &files, "out", MIN_FILES);
    let out = dir.path().join("out");
    assert_eq!(snapshot(&out), want, "Hive readers: the rows of one run over the same files");
    assert_eq!(table_snapshot(&out), want, "Delta readers too");
    let most = most_files_in_a_partition(&out);
    assert!(most < 3, "a partition keeps fewer than compact_min_files files, got {most}");
    assert_indexes_follow_files(&out);
    assert!(assert_merged_silver_is_ordered_by_minute(&out) > 0, "merged silver files");
    let silver = operations(&out, "silver/events");
    assert!(silver.iter().any(|o| o == "OPTIMIZE"), "compactions are table versions: {silver:?}");
    assert!(staging_is_empty(&out));
    assert!(assert_compactions_count_their_own_requests(&out) > 0, "compaction manifests");

    // Without compaction the same deliveries leave a file a run in a partition.
    one_run_per_file(dir.path(), &files, "plain", "100000");
    let plain = dir.path().join("plain");
    assert_eq!(snapshot(&plain), want);
    assert!(most_files_in_a_partition(&plain) >= 3, "the deliveries make small files to compact");
    assert!(!operations(&plain, "silver/events").iter().any(|o| o == "OPTIMIZE"));
}

/// `pipeline compact` killed at each point of its publish: Delta readers
/// see the same rows throughout (a compaction changes no data), and running
/// it again finishes the work; nothing is lost or duplicated.
#[test]
fn compact_killed_at_any_point_is_finished_by_the_next_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 1500, 3);
    for point in ["committed", "mid-publish", "moved", "tables-committed", "published"] {
        let name = format!("out-{point}");
        one_run_per_file(dir.path(), &files[..6], &name, "100000");
        let out = dir.path().join(&name);
        let want = snapshot(&out);
        let before = most_files_in_a_partition(&out);
        assert!(before >= 3, "{point}: small files to compact, got {before}");

        let compact = ["compact", "--output", &name, "--compact-min-files", "2"];
        let killed = pipeline_env(dir.path(), &[&compact[..], &["--crash-at", point][..]].concat(), &[]);
        assert!(killed.status.code().is_none(), "{point}: must die by a signal; {}", text(&killed));
        assert_eq!(table_snapshot(&out), want, "{point}: Delta readers see the same rows");

        let again = pipeline(dir.path(), &compact);
        assert!(again.status.success(), "{point}: {}", text(&again));
        assert_eq!(snapshot(&out), want, "{point}: no row lost or duplicated");
        assert_eq!(table_snapshot(&out), want, "{point}: the tables too");
        assert!(most_files_in_a_partition(&out) < before, "{point}: compacted");
        assert_indexes_follow_files(&out);
        assert!(staging_is_empty(&out), "{point}: staging cleaned up");

        let nothing = pipeline(dir.path(), &compact);
        assert!(nothing.status.success(), "{point}: {}", text(&nothing));
        assert!(text(&nothing).contains("Nothing to compact"), "{point}: {}", text(&nothing));
    }
}

/// A large run's own part files (one per batch and date) are left as it
/// wrote them: compaction counts the runs that left small files, not the
/// files.
#[test]
fn a_runs_own_part_files_are_not_merged_right_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 3000, 5);
    deliver(dir.path(), "in", &files);
    let run = run_into(dir.path(), "in", "out", &["--batch-rows", "200"], &env("2"));
    assert!(run.status.success(), "{}", text(&run));
    let out = dir.path().join("out");
    assert!(most_files_in_a_partition(&out) >= 3, "small batches write several files to a partition");
    assert!(!operations(&out, "silver/events").iter().any(|o| o == "OPTIMIZE"), "no compaction after one run");
}
