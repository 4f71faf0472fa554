//! Keeping replaced files (README "Keeping replaced files"): with
//! `keep_replaced_hours`, the files a table version removed stay for time
//! travel, every version of every table reads back as it was, the pipeline
//! reads only the live files, and `vacuum` deletes them once their time is
//! up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tests::*;

fn env(keep_hours: &str) -> Vec<(&'static str, String)> {
    vec![("MINUTELY_COMPACT_MIN_FILES", "3".to_string()), ("MINUTELY_KEEP_REPLACED_HOURS", keep_hours.to_string())]
}

/// Paths under `out` of the data files on disk that the layers' newest
/// versions no longer hold.
fn replaced_on_disk(out: &Path) -> BTreeSet<PathBuf> {
    let mut replaced = BTreeSet::new();
    for (layer, _) in &LAYERS {
        let live: BTreeSet<PathBuf> = table_files(&out.join(layer), None).into_iter().collect();
        replaced.extend(parquet_files(&out.join(layer)).into_iter().filter(|f| !live.contains(f)));
    }
    replaced
}

/// The files `_state/replaced.json` lists as kept.
fn listed_as_kept(out: &Path) -> BTreeSet<PathBuf> {
    let Ok(bytes) = std::fs::read(out.join("_state/replaced.json")) else { return BTreeSet::new() };
    let kept: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    kept["files"].as_object().expect("files").keys().map(|p| out.join(p)).collect()
}

/// The newest version of each layer's table (`None`: it has no log yet).
fn versions(out: &Path) -> [Option<u64>; 4] {
    LAYERS.map(|(layer, _)| {
        let commits = std::fs::read_dir(out.join(layer).join("_delta_log")).ok()?;
        commits.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok()).max()
    })
}

/// Each layer's rows at `versions`, read through the log; every file they
/// need must still be there.
fn rows_at(out: &Path, versions: &[Option<u64>; 4]) -> Vec<Vec<String>> {
    for ((layer, _), version) in LAYERS.iter().zip(versions) {
        for file in table_files(&out.join(layer), *version) {
            assert!(file.exists(), "{layer} version {version:?} needs {}, which is gone", file.display());
        }
    }
    table_snapshot_at(out, versions)
}

#[test]
fn replaced_files_stay_for_time_travel_and_runs_read_only_the_live_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 3000, 8);
    deliver(dir.path(), "ref-in", &files);
    let reference = run_into(dir.path(), "ref-in", "ref-out", &[], &[]);
    assert!(reference.status.success(), "{}", text(&reference));
    let want = snapshot(&dir.path().join("ref-out"));

    // One file a run, keeping replaced files; what each run left, by version.
    let out = dir.path().join("out");
    let mut after_each = Vec::new();
    for (n, file) in files.iter().enumerate() {
        deliver(dir.path(), "in", std::slice::from_ref(file));
        let run = run_into(dir.path(), "in", "out", &[], &env("24"));
        assert!(run.status.success(), "run {n}: {}", text(&run));
        after_each.push((versions(&out), rows_at(&out, &versions(&out))));
    }
    assert_eq!(table_snapshot(&out), want, "the newest versions hold the rows of one run over the same files");
    let replaced = replaced_on_disk(&out);
    assert!(
        replaced.iter().any(|f| f.to_string_lossy().contains("gold/")),
        "replaced gold files are kept: {replaced:?}"
    );
    assert!(replaced.iter().any(|f| f.to_string_lossy().contains("silver/events/")), "merged silver files are kept");
    assert_eq!(listed_as_kept(&out), replaced, "the kept list names exactly the replaced files on disk");
    for file in replaced.iter().filter_map(|f| f.strip_prefix(out.join("silver/events")).ok()) {
        let index = out.join("_state/event_ids").join(file).with_extension("ids");
        assert!(!index.exists(), "a kept silver file's event id index is gone: {}", index.display());
    }
    // Time travel: each run's versions still read as that run left them.
    for (n, (versions, rows)) in after_each.iter().enumerate() {
        assert_eq!(&rows_at(&out, versions), rows, "time travel to the versions run {n} left");
    }

    // `inspect` counts live rows only.
    let inspect = pipeline(dir.path(), &["inspect", "--output", "out", "gold"]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let live_gold = table_files(&out.join("gold/service_minute_metrics"), None).len();
    assert!(text(&inspect).contains(&format!("({live_gold} files)")), "{}", text(&inspect));

    // With nothing kept, a dry run names the files whose time is up and a vacuum deletes them.
    let vacuum =
        |extra: &[&str]| pipeline_env(dir.path(), &[&["vacuum", "--output", "out"][..], extra].concat(), &env("0"));
    let dry = vacuum(&["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let due = format!("{} replaced files whose time for time travel is up", replaced.len());
    assert!(text(&dry).contains(&due), "{}", text(&dry));
    assert_eq!(replaced_on_disk(&out), replaced, "a dry run deletes nothing");
    let done = vacuum(&[]);
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains(&due), "{}", text(&done));
    assert!(replaced_on_disk(&out).is_empty() && listed_as_kept(&out).is_empty(), "every kept file is gone");
    assert_eq!(snapshot(&out), want, "a plain Hive read is correct again");
    assert_eq!(table_snapshot(&out), want);
}

#[test]
fn a_publish_finished_after_a_crash_keeps_what_its_versions_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 1500, 3);
    let out = dir.path().join("out");
    run_one_file_each(dir.path(), &files[..2], "in", "out", &env("24"));
    let kept_before = listed_as_kept(&out);

    deliver(dir.path(), "in", &files[2..3]);
    let crash = [("MINUTELY_CRASH_AT", "tables-committed".to_string())];
    let killed = run_into(dir.path(), "in", "out", &[], &[env("24"), crash.to_vec()].concat());
    assert!(killed.status.code().is_none(), "must die by a signal; {}", text(&killed));
    let replaced = replaced_on_disk(&out);
    assert!(replaced.len() > kept_before.len(), "the killed run's versions replaced gold files");

    let next = run_into(dir.path(), "in", "out", &[], &env("24"));
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(replaced_on_disk(&out), replaced, "recovery keeps the replaced files");
    assert_eq!(listed_as_kept(&out), replaced, "and lists them");

    deliver(dir.path(), "ref-in", &files[..3]);
    let reference = run_into(dir.path(), "ref-in", "ref-out", &[], &[]);
    assert!(reference.status.success(), "{}", text(&reference));
    let want = snapshot(&dir.path().join("ref-out"));
    assert_eq!(table_snapshot(&out), want, "no row lost or read twice");

    // Keeping nothing again: the next run deletes every kept file before it reads a layer.
    let nothing_new = run_into(dir.path(), "in", "out", &[], &env("0"));
    assert!(nothing_new.status.success(), "{}", text(&nothing_new));
    assert!(replaced_on_disk(&out).is_empty() && listed_as_kept(&out).is_empty(), "every kept file is gone");
    assert_eq!(snapshot(&out), want, "a plain Hive read is correct again");
}
