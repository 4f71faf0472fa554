//! Committing a run: the commit marker, moving staged files into place,
//! the manifest written last, and recovery of runs that stopped part way.
//! Also where a run stops when a test asks it to (`--crash-at`, `--fail-at`).
//!
//! Everything a run writes goes to `_staging/<run_id>/` first. Commit
//! writes `_staging/<run_id>/_commit.json`, moves each file into place,
//! commits a version to each changed layer's table, retires the files those
//! versions removed, then writes `_runs/<run_id>.json`. A run that dies before the commit marker
//! leaves only staging, which the next run deletes; one that dies after it
//! is finished by the next run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use tracing::{info, warn};

use super::lock::{LOCK_FILE, Lock};
use super::manifest::{Manifest, RUNS_DIR, StorageRequests};
use super::options::{CrashPoint, RunOptions};
use super::{id_index, ingested_index};
use crate::error::{Error, Result};
use crate::layout::{self, COMMIT_MARKER, STAGING};
use crate::storage::Storage;
use crate::tables::{self, Change, Heads, LogPolicy};

/// Aborts or fails here when a test asked for it.
pub(super) fn checkpoint(options: &RunOptions, point: CrashPoint) -> Result<()> {
    if options.crash_at == Some(point) {
        tracing::error!(?point, "Crash point reached: aborting as requested by MINUTELY_CRASH_AT.");
        std::process::abort();
    }
    if options.fail_at == Some(point) {
        return Err(Error::Injected(format!("{point:?}")));
    }
    Ok(())
}

/// Commits a run whose files are staged (an ingesting run, a compaction or
/// a vacuum): checks the tables' logs, so that one this writer must not
/// extend stops the run before anything is published; writes the commit
/// marker, after which the run is committed (`marked` turns true) and the
/// next run finishes a publish that fails; then publishes.
pub(super) fn commit(
    output: &Storage,
    lock: &Lock,
    manifest: &Manifest,
    options: &RunOptions,
    marked: &mut bool,
) -> Result<()> {
    let heads = tables::check(output)?;
    lock.ensure_held()?;
    output.put(&layout::staged(&manifest.run_id, COMMIT_MARKER), manifest.to_json())?;
    *marked = true;
    checkpoint(options, CrashPoint::Committed)?;
    publish(output, manifest, options, Some(heads))
}

/// Moves a committed run's staged files into place, commits them to the
/// layers' tables, retires the files those versions removed (a replaced
/// gold partition's, everything a full refresh replaced: deleted, or kept
/// for time travel, see [`tables::retire`]), then writes the run's
/// manifest. Idempotent: files already moved and tables already at the
/// run's version are skipped, so a crash here is finished by the next run.
/// `heads` are the tables' logs as [`commit`] checked them (`None`: read them).
fn publish(output: &Storage, manifest: &Manifest, options: &RunOptions, heads: Option<Heads>) -> Result<()> {
    let run_id = &manifest.run_id;
    let staged: BTreeSet<String> =
        output.list(&format!("{STAGING}/{run_id}"))?.into_iter().map(|e| e.relative).collect();
    for (i, path) in manifest.outputs.iter().enumerate() {
        if i == manifest.outputs.len() / 2 {
            checkpoint(options, CrashPoint::MidPublish)?;
        }
        let from = layout::staged(run_id, path);
        if staged.contains(&from) {
            output.rename(&from, path)?;
        }
    }
    checkpoint(options, CrashPoint::Moved)?;
    let change = Change {
        run_id,
        added: &manifest.outputs,
        compacted: &manifest.compacted,
        expired: &manifest.expired,
        full_refresh: manifest.full_refresh,
        log: options.log,
    };
    let committed = tables::commit_run(output, &change, heads)?;
    checkpoint(options, CrashPoint::TablesCommitted)?;
    tables::retire(output, &committed.removed, options.log.keep_replaced_hours, Utc::now())?;
    // A removed silver file's event id index goes with it at once, even
    // when the file is kept: the pipeline no longer reads that file.
    for index in committed.removed.iter().filter_map(|path| id_index::path_of(path)) {
        output.delete(&index)?;
    }
    let manifest = Manifest { table_versions: committed.versions, ..manifest.clone() };
    finish_publish(output, &manifest, options)
}

/// Writes the manifest of a run whose files are all in place and drops its
/// commit marker (and, on a local folder, its emptied staging folder).
fn finish_publish(output: &Storage, manifest: &Manifest, options: &RunOptions) -> Result<()> {
    let run_id = &manifest.run_id;
    checkpoint(options, CrashPoint::Published)?;
    // Publishing's requests too, when the run's own command publishes it.
    let requests = manifest.storage_requests.map(|r| StorageRequests { output: output.requests(), ..r });
    let manifest = &Manifest { storage_requests: requests, ..manifest.clone() };
    output.put(&Manifest::path(run_id), manifest.to_json())?;
    output.delete(&layout::staged(run_id, COMMIT_MARKER))?;
    // Published: what is left is an emptied folder (local outputs).
    if let Err(e) = output.delete_all(&format!("{STAGING}/{run_id}")) {
        warn!(error = %e.chain(), run_id, "Could not remove an emptied staging folder.");
    }
    info!(run_id, files = manifest.outputs.len(), "Published run.");
    Ok(())
}

/// Finishes runs that crashed after committing and deletes the staging of
/// runs that crashed before, and the temporary files of writes a killed
/// process left outside staging (local outputs; see
/// [`Storage::remove_interrupted_writes`]), unless `lock`'s last holder
/// released it cleanly. Called under `lock`; `log` is the command's (a
/// finished publish keeps replaced files as it says).
pub(super) fn recover_staging(output: &Storage, lock: &Lock, log: LogPolicy) -> Result<()> {
    // Only a holder that stopped mid-run can have left a write half done.
    let dirs = if lock.after_clean_release() { Vec::new() } else { direct_write_dirs() };
    for dir in dirs {
        let removed = output.remove_interrupted_writes(&dir)?;
        if removed > 0 {
            warn!(folder = dir, files = removed, "Removed the temporary files of interrupted writes.");
        }
    }
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in output.list(STAGING)? {
        let run_id =
            entry.relative.trim_start_matches(STAGING).trim_start_matches('/').split('/').next().unwrap_or_default();
        by_run.entry(run_id.to_string()).or_default().push(entry.relative.clone());
    }
    for (run_id, files) in by_run {
        let marker = layout::staged(&run_id, COMMIT_MARKER);
        match output.get_opt(&marker)? {
            Some(bytes) => {
                warn!(run_id, "Finishing the publish of a run that stopped after committing.");
                let options = RunOptions { log, ..RunOptions::default() };
                // This command's requests are not the stopped run's.
                let manifest = Manifest { storage_requests: None, ..Manifest::from_json(&bytes, &marker)? };
                publish(output, &manifest, &options, None)?;
            }
            None => {
                warn!(run_id, files = files.len(), "Removing files of a run that stopped before committing.");
                output.delete_all(&format!("{STAGING}/{run_id}"))?;
            }
        }
    }
    Ok(())
}

/// The folders written directly rather than through staging: the lock,
/// manifests, the ingested-files index, and the tables' logs and saved
/// states. Staged files are moved into place whole.
fn direct_write_dirs() -> Vec<String> {
    let parent = |file: &str| file.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
    let mut dirs = vec![
        parent(LOCK_FILE),
        RUNS_DIR.to_string(),
        parent(ingested_index::RETAINED_FILE),
        ingested_index::INDEX_DIR.to_string(),
    ];
    dirs.extend(tables::log_dirs());
    dirs
}
