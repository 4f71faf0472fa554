//! Compaction (README "Compaction"): a bronze, silver or rejects partition
//! that holds `compact_min_files` files smaller than `target_file_mb` gets
//! them merged into files of up to that size, so the runs that read a date
//! (duplicate detection, gold) read a few files instead of one per run.
//!
//! A compaction is published like a run: its files are staged, a commit
//! marker is written, then [`publish`] moves them into place, commits one
//! version to each table that changes no data (the merged files out, the
//! new ones in), deletes the merged files and their event id indexes, and
//! writes its manifest. So a compaction killed at any point is rolled back
//! or finished by the next run, like a run. It runs under the run lock:
//! after every run, on the partitions the run added files to, and over
//! every partition with `pipeline compact`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use polars::prelude::DataFrame;
use tracing::info;

use super::commit::{commit, recover_staging};
use super::id_index;
use super::lock::Lock;
use super::manifest::{Manifest, new_run_id};
use super::options::RunOptions;
use crate::config::{MaintenanceSettings, PipelineConfig};
use crate::error::Result;
use crate::frames::concat_frames;
use crate::layout;
use crate::storage::{Entry, Storage};
use crate::tables::TABLES;

/// `pipeline compact`: compacts every partition of `config`'s output that
/// needs it, under the run lock, after finishing any run that stopped part
/// way.
pub(crate) fn compact_output(config: &PipelineConfig, options: &RunOptions) -> Result<Option<Manifest>> {
    let output = Storage::open(&config.pipeline.output, true)?.with_zstd_level(config.pipeline.zstd_level);
    let holder = format!("pid {} compacting (started {})", std::process::id(), Utc::now().to_rfc3339());
    let lock = Lock::acquire(&output, &holder, Duration::from_secs(config.pipeline.lease_secs))?;
    recover_staging(&output)?;
    compact(&output, &lock, &config.maintenance, Scope::All, options)
}

/// Which partitions a compaction looks at.
pub(crate) enum Scope<'a> {
    /// Every partition of every table that only adds files.
    All,
    /// The partitions holding these files (relative to the output root):
    /// a run's outputs.
    Holding(&'a [String]),
}

/// Files of one partition that become one file.
struct Merge {
    partition: String,
    files: Vec<Entry>,
}

/// Compacts the partitions of `scope` that need it and publishes the
/// result; `None` when none needs it. The caller holds the run lock and
/// has recovered earlier runs.
pub(super) fn compact(
    output: &Storage,
    lock: &Lock,
    settings: &MaintenanceSettings,
    scope: Scope,
    options: &RunOptions,
) -> Result<Option<Manifest>> {
    let merges = plan(output, settings, &scope)?;
    if merges.is_empty() {
        return Ok(None);
    }
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    info!(run_id, merges = merges.len(), "Compacting small files.");
    let (mut outputs, mut compacted) = (Vec::new(), Vec::new());
    for (n, merge) in merges.iter().enumerate() {
        let path = format!("{}/part-{run_id}-compact-{n:05}.parquet", merge.partition);
        let df = read_all(output, &merge.files)?;
        output.put_parquet(&layout::staged(&run_id, &path), &df)?;
        outputs.extend(id_index::stage(output, &run_id, &path, &df)?);
        outputs.push(path);
        compacted.extend(merge.files.iter().map(|f| f.relative.clone()));
    }
    let manifest = Manifest { outputs, compacted, ..Manifest::maintenance(run_id, started_at, output.location()) };
    commit(output, lock, &manifest, options, &mut false)?;
    info!(run_id = manifest.run_id, merged = manifest.compacted.len(), into = merges.len(), "Compacted small files.");
    Ok(Some(manifest))
}

/// The merges `scope` needs: in each partition with at least
/// `compact_min_files` small files, those files (by name, so oldest run
/// first) in groups of up to `target_file_mb`, each of at least two files.
fn plan(output: &Storage, settings: &MaintenanceSettings, scope: &Scope) -> Result<Vec<Merge>> {
    let target = settings.target_file_mb << 20;
    let mut merges = Vec::new();
    for table in TABLES.iter().filter(|t| !t.replaces_partitions) {
        let partitions: BTreeSet<String> = match scope {
            Scope::All => output.parquet_entries(table.layer)?.iter().filter_map(|e| parent(&e.relative)).collect(),
            Scope::Holding(files) => {
                files.iter().filter(|f| f.starts_with(&format!("{}/", table.layer))).filter_map(|f| parent(f)).collect()
            }
        };
        for partition in partitions {
            let mut small: Vec<Entry> =
                output.parquet_entries(&partition)?.into_iter().filter(|e| e.size < target).collect();
            if small.len() < settings.compact_min_files {
                continue;
            }
            small.sort_by(|a, b| a.relative.cmp(&b.relative));
            let mut group: Vec<Entry> = Vec::new();
            let mut bytes = 0;
            for entry in small {
                if bytes + entry.size > target && !group.is_empty() {
                    push_merge(&mut merges, &partition, std::mem::take(&mut group));
                    bytes = 0;
                }
                bytes += entry.size;
                group.push(entry);
            }
            push_merge(&mut merges, &partition, group);
        }
    }
    Ok(merges)
}

fn push_merge(merges: &mut Vec<Merge>, partition: &str, files: Vec<Entry>) {
    if files.len() >= 2 {
        merges.push(Merge { partition: partition.to_string(), files });
    }
}

/// The folder a file is in: its partition.
fn parent(relative: &str) -> Option<String> {
    relative.rsplit_once('/').map(|(folder, _)| folder.to_string())
}

/// The rows of `files`, one after another.
fn read_all(output: &Storage, files: &[Entry]) -> Result<DataFrame> {
    concat_frames(files.iter().map(|f| output.get_parquet(&f.relative, None)).collect::<Result<_>>()?)
}
