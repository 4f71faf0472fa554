//! Retention (README "Retention"): `pipeline vacuum` removes expired bronze
//! and rejects partitions as table versions and deletes expired manifests,
//! without ever making old input be ingested again; killed at any point,
//! the next command finishes it.

use std::path::{Path, PathBuf};

use chrono::{Days, Utc};
use tests::*;

/// An output of two runs over `files`, each delivering half of them to
/// `<out>-in`; returns its layers.
fn two_runs(dir: &Path, files: &[PathBuf], out: &str) -> Vec<Vec<String>> {
    let half = files.len() / 2;
    for part in [&files[..half], &files[half..]] {
        deliver(dir, &format!("{out}-in"), part);
        let run = run_into(dir, &format!("{out}-in"), out, &[], &[]);
        assert!(run.status.success(), "{}", text(&run));
    }
    snapshot(&dir.join(out))
}

/// `pipeline vacuum` on `out` as if today were ten days ahead, keeping five
/// days of bronze, rejects and manifests: everything the runs wrote today
/// has expired.
fn vacuum_args(out: &str) -> Vec<String> {
    let later = (Utc::now().date_naive() + Days::new(10)).to_string();
    ["vacuum", "--output", out, "--bronze-days", "5", "--rejects-days", "5", "--runs-days", "5", "--today", &later]
        .map(str::to_string)
        .to_vec()
}

fn vacuum(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vacuum_args(out);
    args.extend(extra.iter().map(|a| a.to_string()));
    pipeline(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn manifest_count(out: &Path) -> usize {
    std::fs::read_dir(out.join("_runs")).expect("_runs").count()
}

/// The layers once bronze and rejects have expired: silver and gold stay.
fn expired(before: &[Vec<String>]) -> Vec<Vec<String>> {
    vec![Vec::new(), before[1].clone(), Vec::new(), before[3].clone()]
}

#[test]
fn vacuum_expires_partitions_as_table_versions_and_old_input_is_never_ingested_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 1500, 3);
    let before = two_runs(dir.path(), &files, "out");
    let out = dir.path().join("out");
    assert!(!before[0].is_empty() && !before[2].is_empty(), "bronze and rejects to expire");
    assert_eq!(manifest_count(&out), 2);

    let dry = vacuum(dir.path(), "out", &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("Would remove") && text(&dry).contains("1 expired run manifests"), "{}", text(&dry));
    assert_eq!(snapshot(&out), before, "a dry run changes nothing");
    assert_eq!(manifest_count(&out), 2);

    let done = vacuum(dir.path(), "out", &[]);
    assert!(done.status.success(), "{}", text(&done));
    let want = expired(&before);
    assert_eq!(snapshot(&out), want, "bronze and rejects are gone, silver and gold stay");
    assert_eq!(table_snapshot(&out), want, "as table versions");
    assert_eq!(operations(&out, "bronze/events").last().map(String::as_str), Some("DELETE"));
    // The newest ingesting run's manifest stays (the API serves its gold), beside the vacuum's.
    assert_eq!(manifest_count(&out), 2, "the first run's manifest expired");
    // Its manifest counts its requests (README "Storage requests").
    let vacuumed = all_manifests(&out).into_iter().find(|m| m.get("expired").is_some()).expect("the vacuum's");
    let requests = &vacuumed["storage_requests"];
    let count = |location: &str, kind: &str| requests[location][kind].as_u64().expect("a count");
    assert_eq!(count("input", "get") + count("input", "list"), 0, "a vacuum reads no input: {requests}");
    let expired_files = vacuumed["expired"].as_array().expect("expired files").len() as u64;
    assert!(expired_files > 0 && count("output", "delete") >= expired_files, "each one deleted: {requests}");

    // Even without the ingested-files index, the expired manifest's input is known.
    std::fs::remove_dir_all(out.join("_state/ingested")).expect("drop the index");
    let again = run_into(dir.path(), "out-in", "out", &[], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("Nothing new"), "no file is ingested again: {}", text(&again));
    assert_eq!(snapshot(&out), want);

    let nothing = vacuum(dir.path(), "out", &[]);
    assert!(nothing.status.success(), "{}", text(&nothing));
    assert!(text(&nothing).contains("Removed 0 files"), "{}", text(&nothing));
}

/// `pipeline vacuum` killed at each point of its publish: each table shows
/// all of its partitions or none of the expired ones, and running it again
/// finishes it.
#[test]
fn vacuum_killed_at_any_point_is_finished_by_the_next_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path(), 1500, 3);
    for point in ["committed", "moved", "tables-committed", "published"] {
        let name = format!("out-{point}");
        let before = two_runs(dir.path(), &files, &name);
        let out = dir.path().join(&name);
        let want = expired(&before);
        let killed = vacuum(dir.path(), &name, &["--crash-at", point]);
        assert!(killed.status.code().is_none(), "{point}: must die by a signal; {}", text(&killed));
        let seen = table_snapshot(&out);
        let expected = if matches!(point, "committed" | "moved") { &before } else { &want };
        assert_eq!(&seen, expected, "{point}: Delta readers see all of one state");

        let again = vacuum(dir.path(), &name, &[]);
        assert!(again.status.success(), "{point}: {}", text(&again));
        assert_eq!(snapshot(&out), want, "{point}: finished");
        assert_eq!(table_snapshot(&out), want, "{point}: the tables too");
        assert!(staging_is_empty(&out), "{point}: staging cleaned up");
    }
}

#[test]
fn a_retention_of_zero_days_is_a_config_error_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let refused = pipeline(dir.path(), &["vacuum", "--output", "out", "--bronze-days", "0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("bronze_days must be at least 1 day"), "{}", text(&refused));
}
