//! End-to-end run semantics (README "Runs"): incremental runs, invariance over
//! how files are delivered, crash safety, exclusive runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use tests::*;

/// A delivery of files: the basic fixtures plus a small generated set.
fn dataset(dir: &Path) -> Vec<PathBuf> {
    tests::dataset(dir, 1500, 3)
}

fn run(dir: &Path, inbox: &str, out: &str, extra: &[&str]) -> std::process::Output {
    run_into(dir, inbox, out, extra, &[])
}

/// One uninterrupted run over every file: the reference result.
fn reference(dir: &Path, files: &[PathBuf]) -> Vec<Vec<String>> {
    deliver(dir, "ref-in", files);
    let out = run(dir, "ref-in", "ref-out", &[]);
    assert!(out.status.success(), "{}", text(&out));
    snapshot(&dir.join("ref-out"))
}

/// The points `--crash-at` and `--fail-at` can stop a run at.
const STOP_POINTS: [&str; 7] =
    ["staged", "gold-staged", "committed", "mid-publish", "moved", "tables-committed", "published"];

/// The points before a run's table versions: Delta readers still see the previous state.
const BEFORE_TABLES: [&str; 5] = ["staged", "gold-staged", "committed", "mid-publish", "moved"];

/// Delivers the first half of `files` to `inbox` and runs into `out`, then
/// delivers the rest; returns the layers as that first run left them.
fn first_half_ingested(dir: &Path, files: &[PathBuf], inbox: &str, out: &str) -> Vec<Vec<String>> {
    let half = files.len() / 2;
    deliver(dir, inbox, &files[..half]);
    let first = run(dir, inbox, out, &[]);
    assert!(first.status.success(), "{}", text(&first));
    let before = snapshot(&dir.join(out));
    deliver(dir, inbox, &files[half..]);
    before
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The same files delivered in one run or spread over several (in
    /// delivery order) give the same layers, gold identical to the bit.
    #[test]
    fn delivery_split_does_not_change_the_result(cuts in proptest::collection::btree_set(1usize..12, 1..4)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = dataset(dir.path());
        let want = reference(dir.path(), &files);
        let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c < files.len()).collect();
        bounds.push(files.len());
        let mut start = 0;
        for end in bounds {
            deliver(dir.path(), "inbox", &files[start..end]);
            let out = run(dir.path(), "inbox", "split-out", &[]);
            prop_assert!(out.status.success(), "{}", text(&out));
            start = end;
        }
        prop_assert_eq!(snapshot(&dir.path().join("split-out")), want);
    }
}

#[test]
fn crash_at_every_point_is_recovered_by_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let want = reference(dir.path(), &files);
    for point in STOP_POINTS {
        let out_dir = format!("out-{point}");
        let inbox = format!("in-{point}");
        let before = first_half_ingested(dir.path(), &files, &inbox, &out_dir);
        let crashed = run(dir.path(), &inbox, &out_dir, &["--crash-at", point]);
        assert!(
            !crashed.status.success() && crashed.status.code().is_none(),
            "{point}: must die by a signal; {}",
            text(&crashed)
        );
        let out = dir.path().join(&out_dir);
        if matches!(point, "staged" | "gold-staged" | "committed") {
            assert_eq!(snapshot(&out), before, "{point}: Hive readers still see the previous state");
        }
        let tables = table_snapshot(&out);
        if BEFORE_TABLES.contains(&point) {
            assert_eq!(tables, before, "{point}: Delta readers still see the previous state");
        } else {
            assert_eq!(tables, want, "{point}: Delta readers see the whole run");
        }

        let again = run(dir.path(), &inbox, &out_dir, &[]);
        assert!(again.status.success(), "{point}: {}", text(&again));
        assert_eq!(snapshot(&out), want, "{point}: result equals an uninterrupted run");
        assert_eq!(table_snapshot(&out), want, "{point}: the tables too");
        assert!(staging_is_empty(&out), "{point}: staging cleaned up");
    }
}

/// A storage error (injected) before the commit marker fails the run with
/// exit 1, a failed manifest and nothing published; after it, the run still
/// exits 1 but leaves its committed staging, which the next run publishes.
#[test]
fn failure_at_every_point_is_reported_and_recovered_by_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let want = reference(dir.path(), &files);
    for point in STOP_POINTS {
        let out_dir = dir.path().join(format!("out-fail-{point}"));
        let out = format!("out-fail-{point}");
        let inbox = format!("in-fail-{point}");
        let before = first_half_ingested(dir.path(), &files, &inbox, &out);
        let failed = run(dir.path(), &inbox, &out, &["--fail-at", point]);
        assert_eq!(failed.status.code(), Some(1), "{point}: {}", text(&failed));
        assert!(String::from_utf8_lossy(&failed.stderr).contains("injected"), "{point}: {}", text(&failed));
        let committed = dir.path().join(&out).join("_staging");
        let has_marker = std::fs::read_dir(&committed)
            .map(|runs| runs.flatten().any(|r| r.path().join("_commit.json").exists()))
            .unwrap_or(false);
        if matches!(point, "staged" | "gold-staged") {
            assert_eq!(snapshot(&out_dir), before, "{point}: nothing published");
            assert!(staging_is_empty(&out_dir) && !has_marker, "{point}: staging removed");
            let last = all_manifests(&out_dir).pop().expect("a manifest");
            let error = last["error"].as_str().unwrap_or_default();
            assert!(last["status"] == "failed" && error.contains("injected"), "{point}: {last}");
        } else {
            assert!(has_marker, "{point}: the committed run's staging is kept for the next run");
            assert_eq!(all_manifests(&out_dir).len(), 1, "{point}: no manifest until published");
        }

        let again = run(dir.path(), &inbox, &out, &[]);
        assert!(again.status.success(), "{point}: {}", text(&again));
        assert_eq!(snapshot(&out_dir), want, "{point}: result equals an uninterrupted run");
        assert!(staging_is_empty(&out_dir), "{point}: staging cleaned up");
    }
}

#[test]
fn kill_9_at_any_moment_is_recovered_by_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let generated = pipeline(dir.path(), &["generate", "--events", "400000", "--seed", "9", "--out", "in"]);
    assert!(generated.status.success(), "{}", text(&generated));
    let reference = run(dir.path(), "in", "ref", &[]);
    assert!(reference.status.success(), "{}", text(&reference));
    let want = snapshot(&dir.path().join("ref"));
    for (i, delay_ms) in [30u64, 150, 300, 500, 700].into_iter().enumerate() {
        let out = format!("out-{i}");
        let mut child = Command::new(binary("pipeline"))
            .current_dir(dir.path())
            .args([
                "run",
                "--input",
                "in",
                "--output",
                &out,
                "--max-reject-ratio",
                "1",
                "--timestamp-format",
                "%d/%m/%Y %H:%M:%S",
                "--batch-rows",
                "50000",
            ])
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pipeline");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; the run may also have finished already
        let _ = child.wait();
        let again = run(dir.path(), "in", &out, &[]);
        assert!(again.status.success(), "after kill at {delay_ms} ms: {}", text(&again));
        assert_eq!(snapshot(&dir.path().join(&out)), want, "after kill at {delay_ms} ms");
    }
}

/// A process killed while writing a manifest, a log commit or the
/// ingested-files index on a local folder leaves object_store's temporary
/// `<name>#<n>` file beside it, and its note in `_lock`; the next run
/// removes every one and changes no layer. A run that finishes empties
/// `_lock`.
#[test]
fn temporary_files_of_interrupted_writes_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    deliver(dir.path(), "in", &dataset(dir.path()));
    let first = run(dir.path(), "in", "out", &[]);
    assert!(first.status.success(), "{}", text(&first));
    let out = dir.path().join("out");
    assert_eq!(std::fs::read(out.join("_lock")).expect("read _lock"), b"", "released cleanly");
    let want = snapshot(&out);
    std::fs::write(out.join("_lock"), "pid 4242 (killed mid-run)").expect("leave a holder's note");
    let planted = [
        "_lock#1",
        "_runs/20260101T000000000Z-00000000.json#2",
        "_state/ingested/recent.msgpack#3",
        "_state/ingested-retained.msgpack#6",
        "gold/service_minute_metrics/_delta_log/00000000000000000009.json#4",
        "silver/events/_delta_log/_last_checkpoint#5",
    ];
    for temp in planted {
        std::fs::write(out.join(temp), "").expect("plant a temporary file");
    }
    let again = run(dir.path(), "in", "out", &[]);
    assert!(again.status.success(), "{}", text(&again));
    let left: Vec<PathBuf> = files_under(&out).into_iter().filter(|p| p.to_string_lossy().contains('#')).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(snapshot(&out), want);
    assert_eq!(std::fs::read(out.join("_lock")).expect("read _lock"), b"");
}

#[test]
fn second_run_fails_fast_naming_the_holder_and_a_dead_holder_blocks_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir");
    std::fs::write(
        dir.path().join("in/a.csv"),
        "event_id,service,event_type,timestamp\ne1,api,request,2026-01-12T10:00:00Z\n",
    )
    .expect("write");
    std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
    std::fs::write(dir.path().join("out/_lock"), "pid 4242 (started earlier)").expect("write holder");
    // Another process holds the OS lock, as a running pipeline would.
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--no-fork", "out/_lock", "sleep", "60"])
        .current_dir(dir.path())
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(300));
    let blocked = run(dir.path(), "in", "out", &[]);
    assert_eq!(blocked.status.code(), Some(1), "{}", text(&blocked));
    assert!(text(&blocked).contains("pid 4242"), "the message names the holder: {}", text(&blocked));
    assert!(parquet_files(&dir.path().join("out")).is_empty());

    holder.kill().expect("kill -9 the holder");
    holder.wait().expect("reap");
    let after = run(dir.path(), "in", "out", &[]);
    assert!(after.status.success(), "a dead holder's lock is gone: {}", text(&after));
}

#[test]
fn late_events_correct_earlier_minutes_and_only_touched_dates_are_rewritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture("basic"), &dir.path().join("in"));
    let first = run(dir.path(), "in", "out", &[]);
    assert!(first.status.success(), "{}", text(&first));
    let gold_dir = |date: &str| dir.path().join(format!("out/gold/service_minute_metrics/event_date={date}"));
    let [gold_13] = parquet_files(&gold_dir("2026-01-13")).try_into().expect("one gold file");
    let [gold_12] = parquet_files(&gold_dir("2026-01-12")).try_into().expect("one gold file");
    let untouched = std::fs::read(&gold_13).expect("gold of 2026-01-13");

    std::fs::write(
        dir.path().join("in/e_late.csv"),
        "event_id,service,event_type,timestamp,latency_ms,status_code\n\
         late1,checkout,request,2026-01-12T10:15:45Z,1.5,200\n\
         r1,auth,login,2026-01-12T12:00:00Z,1,200\n",
    )
    .expect("write late file");
    let second = run(dir.path(), "in", "out", &[]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("1 ingested, 4 already ingested"), "{}", text(&second));

    let gold = sorted(
        &read_layer(&dir.path().join("out/gold/service_minute_metrics"), "event_date"),
        &["event_date", "service", "minute"],
    );
    let checkout_1015 = 1; // auth 10:15, then checkout 10:15
    assert_eq!(strs(&gold, "service")[checkout_1015], s("checkout"));
    assert_eq!(i64s(&gold, "request_count")[checkout_1015], Some(3));
    assert_eq!(f64s(&gold, "avg_latency_ms")[checkout_1015], Some(7.0), "(12.5 + 7 + 1.5) / 3");
    assert_eq!(f64s(&gold, "p50_latency_ms")[checkout_1015], Some(7.0));
    assert_eq!(std::fs::read(&gold_13).expect("gold of 2026-01-13"), untouched, "2026-01-13 got no new events");
    let [new_12] = parquet_files(&gold_dir("2026-01-12")).try_into().expect("one gold file");
    assert!(new_12 != gold_12 && !gold_12.exists(), "a replaced gold partition is a new file, the old one deleted");

    let rejects = read_layer(&dir.path().join("out/silver/rejects"), "ingest_date");
    let late_dups: Vec<_> = strs(&rejects, "_source_file")
        .into_iter()
        .zip(strs(&rejects, "reject_reason"))
        .filter(|(f, _)| f.as_deref() == Some("e_late.csv"))
        .collect();
    assert_eq!(late_dups, [(s("e_late.csv"), s("duplicate_event_id"))], "r1 was committed by the first run");

    // A changed file is ingested again; its already-known ids are duplicates.
    std::fs::write(
        dir.path().join("in/b_missing_columns.csv"),
        "timestamp,service,event_id,event_type\n1768213020,payments,p1,request\n1768213030,payments,p2,request\n",
    )
    .expect("rewrite file");
    let third = run(dir.path(), "in", "out", &[]);
    assert!(third.status.success(), "{}", text(&third));
    let events = read_layer(&dir.path().join("out/silver/events"), "event_date");
    let ids: Vec<_> = strs(&events, "event_id")
        .into_iter()
        .flatten()
        .filter(|id| id.starts_with('p'))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ids, ["p1", "p2"]);
    assert_eq!(strs(&events, "event_id").iter().filter(|id| id.as_deref() == Some("p1")).count(), 1);
}

/// The id index files of an output with the silver events file each
/// should index, as (index, silver) stems relative to their folders.
fn id_indexes_and_silver_files(out: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let stems = |dir: &Path, ext: &str| -> Vec<PathBuf> {
        files_under(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| p.with_extension(""))
            .collect()
    };
    (stems(&out.join("_state/event_ids"), "ids"), stems(&out.join("silver/events"), "parquet"))
}

/// Rule 5 against committed silver reads a committed file's event ids
/// only when its id index may hold one of the run's: a re-delivered copy
/// of a file is all duplicates. An index that cannot be decoded, or none,
/// means reading the file, with the same result; and an index that says
/// "no ids" is believed, which shows the indexes are what decides.
#[test]
fn rule_5_reads_committed_files_by_their_id_indexes_and_reads_those_without_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = dataset(dir.path());
    let half = files.len() / 2;
    let copied = files[..half].iter().find(|f| f.to_string_lossy().ends_with(".csv")).expect("a CSV file").clone();
    std::fs::copy(dir.path().join("all").join(&copied), dir.path().join("all/zz-redelivered.csv")).expect("copy");
    files.push(PathBuf::from("zz-redelivered.csv"));
    let want = reference(dir.path(), &files);
    for mode in ["intact", "damaged", "missing", "empty"] {
        let (inbox, out) = (format!("in-{mode}"), format!("out-{mode}"));
        deliver(dir.path(), &inbox, &files[..half]);
        let first = run(dir.path(), &inbox, &out, &[]);
        assert!(first.status.success(), "{}", text(&first));
        let (indexes, silver) = id_indexes_and_silver_files(&dir.path().join(&out));
        assert!(!indexes.is_empty(), "{mode}: indexes written");
        assert_eq!(indexes, silver, "{mode}: one index per silver events file");
        for index in &indexes {
            let path = dir.path().join(&out).join("_state/event_ids").join(index).with_extension("ids");
            match mode {
                "damaged" => std::fs::write(&path, b"mnids03\nabc").expect("damage"),
                "missing" => std::fs::remove_file(&path).expect("remove"),
                // The header of an index of no entries: magic and count.
                "empty" => std::fs::write(&path, b"mnids03\n\0\0\0\0\0\0\0\0").expect("empty"),
                _ => {}
            }
        }
        deliver(dir.path(), &inbox, &files[half..]);
        let second = run(dir.path(), &inbox, &out, &[]);
        assert!(second.status.success(), "{}", text(&second));
        let got = snapshot(&dir.path().join(&out));
        if mode == "empty" {
            assert_ne!(got, want, "indexes that hold no ids hide the copy's duplicates");
        } else {
            assert_eq!(got, want, "{mode}: the layers of one run");
        }
    }
}

#[test]
fn full_refresh_rebuilds_every_layer_from_all_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let want = reference(dir.path(), &files);
    deliver(dir.path(), "inbox", &files[..3]);
    assert!(run(dir.path(), "inbox", "out", &[]).status.success());
    deliver(dir.path(), "inbox", &files[3..]);
    assert!(run(dir.path(), "inbox", "out", &[]).status.success());
    let refreshed = run(dir.path(), "inbox", "out", &["--full-refresh"]);
    assert!(refreshed.status.success(), "{}", text(&refreshed));
    assert_eq!(snapshot(&dir.path().join("out")), want);
    let (indexes, silver) = id_indexes_and_silver_files(&dir.path().join("out"));
    assert_eq!(indexes, silver, "the refreshed silver's id indexes, and no stale ones");
    let nothing_new = run(dir.path(), "inbox", "out", &[]);
    assert!(String::from_utf8_lossy(&nothing_new.stdout).contains("Nothing new"), "{}", text(&nothing_new));
}

/// `--full-refresh` commits one table version per layer that replaces every
/// file: killed at any point, each table is wholly old or wholly new (never
/// a mix of old and new files), and the next run finishes it.
#[test]
fn full_refresh_replaces_each_table_in_one_version_even_when_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let want = reference(dir.path(), &files);
    deliver(dir.path(), "inbox", &files);
    for point in ["gold-staged", "committed", "mid-publish", "moved", "tables-committed", "published"] {
        let out = format!("out-refresh-{point}");
        let out_dir = dir.path().join(&out);
        // Without the custom timestamp format: some rows are rejects, so silver differs.
        let first = pipeline(dir.path(), &["run", "--input", "inbox", "--output", &out, "--max-reject-ratio", "1"]);
        assert!(first.status.success(), "{}", text(&first));
        let before = snapshot(&out_dir);
        assert!(before != want, "the refresh must change something");
        assert_eq!(table_snapshot(&out_dir), before);

        let killed = run(dir.path(), "inbox", &out, &["--full-refresh", "--crash-at", point]);
        assert!(killed.status.code().is_none(), "{point}: must die by a signal; {}", text(&killed));
        let seen = table_snapshot(&out_dir);
        for (layer, ((seen, old), new)) in seen.iter().zip(&before).zip(&want).enumerate() {
            assert!(seen == old || seen == new, "{point}: table {layer} mixes old and new files");
        }
        let expected = if BEFORE_TABLES.contains(&point) { &before } else { &want };
        assert_eq!(&seen, expected, "{point}: Delta readers see all of one state");

        // The operator runs the same command again (before the commit marker
        // the killed refresh rolled back; after it, it is finished first).
        let again = run(dir.path(), "inbox", &out, &["--full-refresh"]);
        assert!(again.status.success(), "{point}: {}", text(&again));
        assert!(snapshot(&out_dir) == want, "{point}: result differs from an uninterrupted run");
        assert!(table_snapshot(&out_dir) == want, "{point}: the tables differ from an uninterrupted run");
        assert!(staging_is_empty(&out_dir), "{point}: staging cleaned up");
    }
}

/// An output written before the layers were tables (no `_delta_log`, gold
/// files named `data.parquet`) becomes a table on its next run: version 0
/// holds its files, minus the gold partitions the run replaces.
#[test]
fn an_output_from_before_tables_becomes_a_table_on_its_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let want = reference(dir.path(), &files);
    let before = first_half_ingested(dir.path(), &files, "inbox", "out");
    let out = dir.path().join("out");
    for (layer, _) in LAYERS {
        std::fs::remove_dir_all(out.join(layer).join("_delta_log")).expect("drop the log");
    }
    for file in parquet_files(&out.join("gold/service_minute_metrics")) {
        std::fs::rename(&file, file.with_file_name("data.parquet")).expect("old gold name");
    }
    assert_eq!(snapshot(&out), before);

    let again = run(dir.path(), "inbox", "out", &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(snapshot(&out), want);
    assert_eq!(table_snapshot(&out), want, "the tables hold the old files and the run's");
    let versions = newest_manifest(&out)["table_versions"].clone();
    assert_eq!(versions["bronze/events"], 0, "{versions}");
}

/// A `_delta_log` this writer must not extend (here: a newest version that
/// another writer committed) stops the run with exit 1, naming the table
/// and the version, and nothing is published.
#[test]
fn a_log_another_writer_extended_stops_the_run_and_publishes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    let before = first_half_ingested(dir.path(), &files, "inbox", "out");
    let out = dir.path().join("out");
    let log = out.join("gold/service_minute_metrics/_delta_log");
    let versions = std::fs::read_dir(&log).expect("gold log").count();
    let foreign = log.join(format!("{versions:020}.json"));
    std::fs::write(&foreign, "{\"commitInfo\":{\"operation\":\"OPTIMIZE\",\"engineInfo\":\"delta-rs:py-1.6.6\"}}\n")
        .expect("foreign version");

    let refused = run(dir.path(), "inbox", "out", &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("gold/service_minute_metrics") && stderr.contains(&format!("version {versions}")),
        "{stderr}"
    );
    assert!(stderr.contains("delta-rs"), "{stderr}");
    assert_eq!(snapshot(&out), before, "nothing published");
    assert!(staging_is_empty(&out));
    assert_eq!(all_manifests(&out).pop().expect("a manifest")["status"], "failed");
}

/// The input paths a run's manifest lists as ingested.
fn ingested_paths(manifest: &serde_json::Value) -> Vec<String> {
    let files = manifest["files"].as_array().expect("files");
    files.iter().map(|f| f["path"].as_str().expect("path").to_string()).collect()
}

/// With incremental listing a run lists the input from the folder of the
/// greatest path ingested on: a file delivered under a folder that sorts
/// before it waits for the next full listing (here: a run without it),
/// and a file delivered into that newest folder is still found.
#[test]
fn incremental_listing_reads_from_the_newest_folder_and_a_full_listing_finds_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    // Delivers file `n` into `folder`, under a name no other file has.
    let deliver_into = |folder: &str, n: usize| {
        let name = format!("f{n}-{}", files[n].file_name().expect("a file name").to_string_lossy());
        let to = dir.path().join("inbox").join(folder).join(&name);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(dir.path().join("all").join(&files[n]), to).expect("copy");
        format!("{folder}/{name}")
    };
    let incremental = ["--incremental-listing", "true"];
    let first = [deliver_into("d002", 0), deliver_into("d003", 1)];
    let out = run(dir.path(), "inbox", "out", &incremental);
    assert!(out.status.success(), "{}", text(&out));
    let mut want = first.to_vec();
    want.sort();
    assert_eq!(ingested_paths(&newest_manifest(&dir.path().join("out"))), want, "the first run lists everything");

    let newest = deliver_into("d003", 2);
    let later = deliver_into("d004", 3);
    let before = deliver_into("d001", 4);
    let out = run(dir.path(), "inbox", "out", &incremental);
    assert!(out.status.success(), "{}", text(&out));
    let mut want = vec![newest, later];
    want.sort();
    assert_eq!(ingested_paths(&newest_manifest(&dir.path().join("out"))), want, "d001 is not listed");

    let out = run(dir.path(), "inbox", "out", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ingested_paths(&newest_manifest(&dir.path().join("out"))), [before], "a full listing finds d001");
    let out = run(dir.path(), "inbox", "out", &incremental);
    assert!(text(&out).contains("Nothing new"), "{}", text(&out));
}

/// A run's manifest counts the requests it made to its input and output,
/// publishing included (README "Storage requests"); a run whose publish
/// a later run finished has no count, that run's requests being others.
#[test]
fn a_manifest_counts_its_runs_storage_requests_unless_another_run_published_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture("basic"), &dir.path().join("in"));
    let first = run(dir.path(), "in", "out", &[]);
    assert!(first.status.success(), "{}", text(&first));
    let [manifest] = all_manifests(&dir.path().join("out")).try_into().expect("one manifest");
    let requests = &manifest["storage_requests"];
    let count = |location: &str, kind: &str| requests[location][kind].as_u64().expect("a count");
    let listed = |key: &str| manifest[key].as_array().expect("a list").len() as u64;
    assert_eq!(count("input", "list"), 1, "{requests}");
    assert_eq!(count("input", "get"), listed("files"), "each ingested file read once: {requests}");
    assert_eq!(count("input", "put") + count("input", "rename") + count("input", "delete"), 0, "{requests}");
    assert_eq!(count("output", "rename"), listed("outputs"), "each staged file moved into place: {requests}");
    assert!(count("output", "put") > listed("outputs"), "staged files, logs and the index: {requests}");

    std::fs::write(
        dir.path().join("in/e_late.csv"),
        "event_id,service,event_type,timestamp,latency_ms,status_code\nlate1,checkout,request,2026-01-12T10:15:45Z,1.5,200\n",
    )
    .expect("write a new file");
    let crashed = run(dir.path(), "in", "out", &["--crash-at", "tables-committed"]);
    assert!(!crashed.status.success(), "{}", text(&crashed));
    let finisher = run(dir.path(), "in", "out", &[]);
    assert!(finisher.status.success(), "{}", text(&finisher));
    let manifests = all_manifests(&dir.path().join("out"));
    let [_, recovered] = manifests.as_slice() else { panic!("two manifests: {manifests:?}") };
    assert_eq!(recovered["files"][0]["path"], "e_late.csv", "{recovered}");
    assert!(recovered.get("storage_requests").is_none(), "{recovered}");
}
