//! Compaction (README "Compaction"): a bronze, silver or rejects partition
//! that holds small files from `compact_min_files` runs gets them merged
//! into files of up to `target_file_mb`, so the runs that read a date
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
use crate::gold;
use crate::layout::{self, SILVER_EVENTS};
use crate::parquet::ROW_GROUP_ROWS;
use crate::silver::columns::{EVENT_TIME, LATENCY_MS};
use crate::storage::{Entry, Storage};
use crate::tables::{Kept, TABLES};

/// `pipeline compact`: compacts every partition of `config`'s output that
/// needs it, under the run lock, after finishing any run that stopped part
/// way.
pub(crate) fn compact_output(config: &PipelineConfig, options: &RunOptions) -> Result<Option<Manifest>> {
    let output = Storage::open(&config.pipeline.output, true)?.with_zstd_level(config.pipeline.zstd_level);
    let holder = format!("pid {} compacting (started {})", std::process::id(), Utc::now().to_rfc3339());
    let lock = Lock::acquire(&output, &holder, Duration::from_secs(config.pipeline.lease_secs))?;
    recover_staging(&output, &lock, options.log)?;
    let compacted = compact(&output, &lock, &config.maintenance, Scope::All, options)?;
    lock.release();
    Ok(compacted)
}

/// Rows per row group of a merged silver events file. Its events are
/// ordered by minute ([`gold::by_minute`]), so a group spans a few minutes
/// of a busy date (a few thousand events), and gold, which reads a date
/// again for the minutes a run added events to, reads only the groups
/// whose statistics hold one of them (README, "A scheduled pipeline over time").
const SILVER_GROUP_ROWS: usize = 8 * 1024;

/// The plain columns of a merged silver events file that are written in
/// small pages, each with its event times' bounds: of a group, gold
/// decodes only the pages around the minutes a run touched (README,
/// "A scheduled pipeline over time"). The other columns gold reads
/// (`service`, `status_code`) are dictionary keys, a few bits a row.
const SILVER_PAGED: [&str; 2] = [EVENT_TIME, LATENCY_MS];

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
        let (df, group_rows, paged) = match merge.partition.starts_with(&format!("{SILVER_EVENTS}/")) {
            true => (gold::by_minute(df)?, SILVER_GROUP_ROWS, SILVER_PAGED.as_slice()),
            false => (df, ROW_GROUP_ROWS, [].as_slice()),
        };
        output.put_parquet_in_groups(&layout::staged(&run_id, &path), &df, group_rows, paged)?;
        outputs.extend(id_index::stage(output, &run_id, &path, &df)?);
        outputs.push(path);
        compacted.extend(merge.files.iter().map(|f| f.relative.clone()));
    }
    let manifest = Manifest { outputs, compacted, ..Manifest::maintenance(run_id, started_at, output.location()) };
    commit(output, lock, &manifest, options, &mut false)?;
    info!(run_id = manifest.run_id, merged = manifest.compacted.len(), into = merges.len(), "Compacted small files.");
    Ok(Some(manifest))
}

/// The merges `scope` needs: in each partition whose small files (under
/// half of `target_file_mb`) come from at least `compact_min_files` runs,
/// those files (by name, so oldest run first) in groups of up to
/// `target_file_mb`, each of at least two files.
///
/// Half the target, so that a merged file, which ends up near the target,
/// is not merged again and again with each new small one. Runs rather than
/// files, so that a large run's own part files (one per batch and date)
/// are not rewritten right after it wrote them: compaction is for what many
/// small runs leave behind.
fn plan(output: &Storage, settings: &MaintenanceSettings, scope: &Scope) -> Result<Vec<Merge>> {
    let target = settings.target_file_mb << 20;
    let mut merges = Vec::new();
    let kept = Kept::load(output)?;
    for table in TABLES.iter().filter(|t| !t.replaces_partitions) {
        let partitions: BTreeSet<String> = match scope {
            Scope::All => kept.live_entries(output, table.layer)?.iter().filter_map(|e| parent(&e.relative)).collect(),
            Scope::Holding(files) => {
                files.iter().filter(|f| f.starts_with(&format!("{}/", table.layer))).filter_map(|f| parent(f)).collect()
            }
        };
        for partition in partitions {
            let mut small: Vec<Entry> =
                kept.live_entries(output, &partition)?.into_iter().filter(|e| e.size < target / 2).collect();
            let runs: BTreeSet<&str> = small.iter().map(|e| run_of(&e.relative)).collect();
            if runs.len() < settings.compact_min_files {
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

/// The run that wrote a layer file, from its name (`part-<run_id>-<n>.parquet`,
/// a run id being `<UTC time>-<8 hex>`); a name of another shape is a run
/// of its own.
fn run_of(relative: &str) -> &str {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    let id = name.strip_prefix("part-").unwrap_or(name);
    match id.match_indices('-').nth(1) {
        Some((end, _)) => &id[..end],
        None => name,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_run_is_read_off_its_name() {
        let run = "20261205T072256678Z-85ec67bf";
        assert_eq!(run_of(&format!("silver/events/event_date=2026-12-05/part-{run}-00003.parquet")), run);
        assert_eq!(run_of(&format!("bronze/events/ingest_date=2026-12-05/part-{run}-compact-00000.parquet")), run);
        assert_eq!(run_of("bronze/events/ingest_date=2026-12-05/legacy.parquet"), "legacy.parquet");
    }
}
