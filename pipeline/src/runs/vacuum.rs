//! Retention (README "Retention"): `pipeline vacuum` removes bronze and
//! rejects partitions whose ingest date is past `bronze_days` and
//! `rejects_days`, and run manifests older than `runs_days`.
//!
//! Expired partitions go as one table version per layer that removes their
//! files, published like a run (commit marker, versions, files deleted,
//! manifest), so a vacuum killed at any point is finished or rolled back
//! by the next run. Manifests go last, after the ingested-files index,
//! folded through the newest run, is stored with its retained copy: an
//! expired manifest never makes its input be ingested again. The newest
//! ingesting run's manifest is always kept (the API serves the gold it
//! names). Only files of the newest table versions are considered, and
//! only under the run lock, so no file of a run in progress is touched.
//!
//! Like a run, it also deletes the replaced files kept for time travel
//! whose `keep_replaced_hours` are up, and a dry run counts them (README
//! "Keeping replaced files").

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};

use super::commit::{commit, recover_staging};
use super::ingested_index::IngestedIndex;
use super::lock::Lock;
use super::manifest::{Manifest, RUNS_DIR, new_run_id};
use super::options::RunOptions;
use crate::config::{PipelineConfig, RetentionSettings};
use crate::error::Result;
use crate::layout::{self, BRONZE, SILVER_REJECTS};
use crate::storage::Storage;
use crate::tables;

/// What a vacuum removes (or, on a dry run, would remove).
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    /// Data files of expired partitions, relative to the output root.
    pub files: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// The expired partition folders.
    pub partitions: BTreeSet<String>,
    /// Run ids whose manifests expire.
    pub runs: Vec<String>,
    /// Replaced files kept for time travel whose time is up (README
    /// "Keeping replaced files"), relative to the output root.
    pub replaced: Vec<String>,
    /// The vacuum's own run id, when it published anything.
    pub run_id: Option<String>,
}

/// `pipeline vacuum`: expires what `config.retention` says is past its
/// time on `today`; with `dry_run`, only says what that is.
pub(crate) fn vacuum(config: &PipelineConfig, today: NaiveDate, dry_run: bool, options: &RunOptions) -> Result<Expiry> {
    let output = Storage::open(&config.pipeline.output, true)?;
    let holder = format!("pid {} vacuuming (started {})", std::process::id(), Utc::now().to_rfc3339());
    let lock = Lock::acquire(&output, &holder, Duration::from_secs(config.pipeline.lease_secs))?;
    recover_staging(&output, &lock, options.log)?;
    let expiry = expire(&output, &lock, config, today, dry_run, options)?;
    lock.release();
    Ok(expiry)
}

/// [`vacuum`]'s work under the lock.
fn expire(
    output: &Storage,
    lock: &Lock,
    config: &PipelineConfig,
    today: NaiveDate,
    dry_run: bool,
    options: &RunOptions,
) -> Result<Expiry> {
    let mut expiry = plan(output, &config.retention, today)?;
    let keep_hours = options.log.keep_replaced_hours;
    expiry.replaced = match dry_run {
        true => tables::expired(output, keep_hours, Utc::now())?,
        false => tables::retire(output, &[], keep_hours, Utc::now())?,
    };
    if dry_run || (expiry.files.is_empty() && expiry.runs.is_empty()) {
        return Ok(expiry);
    }
    if !expiry.runs.is_empty() {
        // Every manifest folded in, listed, before any is deleted.
        IngestedIndex::load(output, false)?.save_retained(output)?;
    }
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    let manifest = Manifest {
        expired: expiry.files.clone(),
        expired_runs: expiry.runs.clone(),
        ..Manifest::maintenance(run_id.clone(), started_at, output.location())
    };
    commit(output, lock, &manifest, options, &mut false)?;
    for run in &expiry.runs {
        output.delete(&Manifest::path(run))?;
    }
    expiry.run_id = Some(run_id);
    Ok(expiry)
}

/// What is past its retention on `today`.
fn plan(output: &Storage, retention: &RetentionSettings, today: NaiveDate) -> Result<Expiry> {
    let mut expiry = Expiry::default();
    for (layer, days) in [(BRONZE, retention.bronze_days), (SILVER_REJECTS, retention.rejects_days)] {
        let Some(days) = days else { continue };
        let cutoff = today - chrono::Days::new(days);
        for entry in tables::live_entries(output, layer)? {
            let date = layout::partition_value(&entry.relative, "ingest_date")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            if date.is_some_and(|d| d < cutoff) {
                if let Some((partition, _)) = entry.relative.rsplit_once('/') {
                    expiry.partitions.insert(partition.to_string());
                }
                expiry.bytes += entry.size;
                expiry.files.push(entry.relative);
            }
        }
    }
    if let Some(days) = retention.runs_days {
        // Run ids start with their UTC start time, so they compare as times.
        let cutoff = (today - chrono::Days::new(days)).format("%Y%m%dT000000000Z").to_string();
        let mut runs: Vec<String> = output
            .list(RUNS_DIR)?
            .into_iter()
            .filter_map(|e| {
                Some(e.relative.strip_prefix(RUNS_DIR)?.strip_prefix('/')?.strip_suffix(".json")?.to_string())
            })
            .collect();
        let kept = newest_ingesting_run(output, &runs)?;
        runs.retain(|run| *run < cutoff && Some(run) != kept.as_ref());
        expiry.runs = runs;
    }
    Ok(expiry)
}

/// The newest committed run that ingested input, reading manifests from
/// the newest back.
fn newest_ingesting_run(output: &Storage, runs: &[String]) -> Result<Option<String>> {
    for run in runs.iter().rev() {
        let path = Manifest::path(run);
        let manifest = Manifest::from_json(&output.get(&path)?, &path)?;
        if manifest.status.committed() && !manifest.is_maintenance() {
            return Ok(Some(run.clone()));
        }
    }
    Ok(None)
}
