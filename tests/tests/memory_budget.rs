//! A run's memory budget (`memory_budget_mb`): with a budget far too small
//! for the input, duplicate detection outgrows its exact ids mid-run and
//! continues with a Bloom filter, spilled ids and deferred rows, and gold
//! reads each date in several passes. The layers must equal those of a run
//! with the default budget, in one run, in incremental runs and in a full
//! refresh.

use std::path::{Path, PathBuf};

use tests::*;

/// The basic fixtures plus 120,000 generated events: far more ids than a
/// 1 MiB budget holds exactly (about 15,000), 1% of them duplicates.
fn dataset(dir: &Path) -> Vec<PathBuf> {
    tests::dataset(dir, 120_000, 11)
}

/// Small batches, so the budget is outgrown after several of them.
const BOUNDED: [&str; 4] = ["--batch-rows", "4000", "--memory-budget-mb", "1"];

fn run(dir: &Path, inbox: &str, out: &str, extra: &[&str]) -> String {
    let output = run_into(dir, inbox, out, extra, &[("RUST_LOG", "info".to_string())]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    text(&output)
}

/// The number a log line's `key=` field says, from the first line with `message`.
fn logged(log: &str, message: &str, key: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(message))?;
    let plain: String = line.split('\u{1b}').map(|part| part.split_once('m').map_or(part, |(_, rest)| rest)).collect();
    let value = plain.split_once(&format!("{key}="))?.1;
    value.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
fn a_tiny_memory_budget_gives_the_layers_of_the_default_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    deliver(dir.path(), "in", &files);
    let reference = run(dir.path(), "in", "ref", &[]);
    assert!(!reference.contains("outgrew"), "the default budget holds these ids exactly");

    let log = run(dir.path(), "in", "bounded", &BOUNDED);
    assert!(log.contains("Event ids outgrew half the memory budget"), "{log}");
    let deferred_events = logged(&log, "Decided deferred rows", "events").expect("deferred rows were decided");
    let deferred_duplicates = logged(&log, "Decided deferred rows", "duplicates").expect("deferred rows were decided");
    assert!(deferred_duplicates > 100, "duplicates after the switch are decided late: {log}");
    assert!(deferred_events > 0, "some rows the filter could not tell were new events: {log}");
    let gold = |key| logged(&log, "Read a date for gold in passes", key).expect("gold was read in passes");
    let (passes, silver_files, reads) = (gold("passes"), gold("files"), gold("reads"));
    assert!(passes > 1, "{log}");
    // The generated files are in time order: a pass skips the files with no events in its minutes.
    assert!(reads < passes * silver_files, "a pass read every file: {log}");
    assert_same_layers(&dir.path().join("bounded"), &dir.path().join("ref"), "one bounded run");
    assert_eq!(counts(&dir.path().join("bounded")), counts(&dir.path().join("ref")));
    assert!(std::fs::read_dir(dir.path().join("bounded/_staging")).is_ok_and(|mut d| d.next().is_none()));

    // The same files in three bounded runs: committed ids come through the
    // filter too, and gold replaces touched minutes in passes.
    let thirds = files.len() / 3;
    for (i, cut) in [thirds, 2 * thirds, files.len()].into_iter().enumerate() {
        deliver(dir.path(), "inc", &files[..cut]);
        let log = run(dir.path(), "inc", "incremental", &BOUNDED);
        if i > 0 {
            assert!(logged(&log, "Decided deferred rows", "duplicates").is_some(), "run {i}: {log}");
        }
    }
    assert_same_layers(&dir.path().join("incremental"), &dir.path().join("ref"), "three bounded runs");

    let log = run(dir.path(), "inc", "incremental", &[&BOUNDED[..], &["--full-refresh"]].concat());
    assert!(log.contains("Decided deferred rows"), "{log}");
    assert_same_layers(&dir.path().join("incremental"), &dir.path().join("ref"), "a bounded full refresh");
    assert_eq!(counts(&dir.path().join("incremental")), counts(&dir.path().join("ref")));
}

#[test]
fn a_memory_budget_out_of_range_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir");
    let out = pipeline(dir.path(), &["run", "--input", "in", "--output", "out", "--memory-budget-mb", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("memory_budget_mb must be within 1..=1048576, got 0"), "{}", text(&out));
    assert!(!dir.path().join("out").exists(), "nothing written");
}
