//! Indexing gold and the run history of an output location, and reloading
//! when a newer committed run appears. Reads are lock-free: the snapshot is
//! an `Arc` swapped atomically; requests in flight keep the one they
//! started with.
//!
//! A reload reads only what changed: manifests listed after the last one
//! seen, and partition files whose version tag differs from the previous
//! snapshot's. It never builds a snapshot while a run is publishing (a
//! commit marker is in `_staging/`) or when a run committed during the
//! build: the next poll tries again, so a snapshot is always one run's gold.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::NaiveDate;
use pipeline::layout::{COMMIT_MARKER, GOLD, STAGING, after_log, partition_value};
use pipeline::runs::{Manifest, RUNS_DIR};
use pipeline::storage::{Entry, Storage};
use tracing::{info, warn};

use crate::reader::{Budget, Reader};
use crate::runs::{RunEntry, RunIndex};
use crate::slice::ROW_BYTES;
use crate::snapshot::{Gold, Partition, Snapshot};

/// What has been read of `_runs/` so far.
pub(crate) struct Reloader {
    output: Storage,
    runs: RunIndex,
    /// The last manifest listed: the next listing starts after it.
    listed_to: Option<String>,
}

impl Reloader {
    pub(crate) fn new(output: Storage) -> Self {
        Self { output, runs: RunIndex::default(), listed_to: None }
    }

    /// Indexes new manifests; builds gold when the newest committed run
    /// differs from the snapshot's. Returns whether the snapshot changed. A
    /// failed build keeps the old snapshot.
    pub(crate) fn poll(
        &mut self,
        snapshot: &ArcSwap<Snapshot>,
        reader: &Reader,
        budget: &Budget,
    ) -> pipeline::Result<bool> {
        let new_runs = self.read_new_runs()?;
        let runs_changed = !new_runs.is_empty();
        self.runs.extend(new_runs);
        let current = snapshot.load_full();
        let mut gold = current.gold.clone();
        if let Some(run) = self.runs.newest_committed().cloned()
            && current.gold.as_ref().is_none_or(|g| g.run_id != run.run_id)
            && let Some(built) = self.build_gold(&run, current.gold.as_deref(), reader, budget)?
        {
            info!(
                run_id = run.run_id,
                rows = built.rows,
                hot_rows = built.hot_rows,
                partitions = built.partitions.len(),
                services = built.services.len(),
                "Loaded gold snapshot."
            );
            gold = Some(Arc::new(built));
        }
        let gold_changed = gold.as_ref().map(|g| &g.run_id) != current.gold.as_ref().map(|g| &g.run_id);
        if runs_changed || gold_changed {
            snapshot.store(Arc::new(Snapshot { gold, runs: Arc::new(self.runs.clone()) }));
        }
        Ok(runs_changed || gold_changed)
    }

    /// Manifests written since the last listing.
    fn read_new_runs(&mut self) -> pipeline::Result<Vec<RunEntry>> {
        let listing = self.output.list_after(RUNS_DIR, self.listed_to.as_deref())?;
        let mut runs = Vec::new();
        for entry in listing.iter().filter(|e| e.relative.ends_with(".json")) {
            let manifest = Manifest::from_json(&self.output.get(&entry.relative)?, &entry.relative)?;
            if manifest.is_maintenance() {
                // A compaction or vacuum ingests nothing and leaves gold as
                // it was: not a run for /runs, health or the overview.
                continue;
            }
            runs.push(RunEntry {
                run_id: manifest.run_id,
                status: manifest.status,
                finished_at: manifest.finished_at,
                reject_ratio: manifest.reject_ratio,
                unreadable_files: manifest.unreadable_files.len(),
                storage_requests: manifest.storage_requests.map(Box::new),
            });
        }
        if let Some(last) = listing.last() {
            self.listed_to = Some(last.relative.clone());
        }
        Ok(runs)
    }

    /// Whether a committed run is moving its files into place.
    fn publishing(&self) -> pipeline::Result<Option<String>> {
        let marker = format!("/{COMMIT_MARKER}");
        Ok(self.output.list(STAGING)?.into_iter().find(|e| e.relative.ends_with(&marker)).map(|e| e.relative))
    }

    /// Indexes the gold of `run`, reusing `previous`'s partitions whose file
    /// is unchanged. `None` when a run published meanwhile (try again later).
    fn build_gold(
        &self,
        run: &RunEntry,
        previous: Option<&Gold>,
        reader: &Reader,
        budget: &Budget,
    ) -> pipeline::Result<Option<Gold>> {
        if let Some(marker) = self.publishing()? {
            warn!(marker, "A run is publishing; keeping the current snapshot until it has finished.");
            return Ok(None);
        }
        // A partition's current file is its newest run's: replaced files kept
        // for time travel stay beside it (README "Keeping replaced files").
        // The table's log, a commit a run, is not listed.
        let mut newest: BTreeMap<i32, Entry> = BTreeMap::new();
        let listed = self.output.list_after(GOLD, Some(&after_log(GOLD)))?;
        for entry in listed.into_iter().filter(|e| e.relative.ends_with(".parquet")) {
            if let Some(date) = partition_date(&entry.relative)
                && newest.get(&date).is_none_or(|current| current.relative < entry.relative)
            {
                newest.insert(date, entry);
            }
        }
        let mut files: Vec<(i32, Entry)> = newest.into_iter().collect();
        // Newest first: the hot window is the newest dates that fit.
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut hot_left = budget.hot_bytes as usize;
        let mut partitions = BTreeMap::new();
        for (date, entry) in files {
            let reused = previous
                .and_then(|g| g.partitions.get(&date))
                .filter(|p| p.e_tag.is_some() && p.path == entry.relative && p.e_tag == entry.e_tag);
            let fits = |rows: usize| rows * ROW_BYTES <= hot_left;
            let partition = match reused {
                // Unchanged file, and it stays in (or out of) the hot window.
                Some(p) if fits(p.rows) == p.hot.is_some() => p.clone(),
                // Unchanged, but it has left the hot window.
                Some(p) if !fits(p.rows) => Partition { hot: None, ..p.clone() },
                // New or changed, or it has entered the hot window: read it.
                _ => match index_file(reader, &entry, &fits)? {
                    Some(p) => p,
                    None => {
                        info!(path = entry.relative, "A gold file changed while it was indexed; indexing again later.");
                        return Ok(None);
                    }
                },
            };
            if partition.hot.is_some() {
                hot_left -= partition.rows * ROW_BYTES;
            } else {
                hot_left = 0;
            }
            partitions.insert(date, partition);
        }
        let newer = self.output.list_after(RUNS_DIR, self.listed_to.as_deref())?;
        if !newer.is_empty() || self.publishing()?.is_some() {
            info!("A run committed while gold was being indexed; indexing again at the next poll.");
            return Ok(None);
        }
        Ok(Some(Gold::new(run.run_id.clone(), run.finished_at, partitions)))
    }
}

/// Reads one partition file: its per-service summaries, and its slices when
/// `fits` says the date belongs in the hot window. `None` when the file
/// changed since it was listed.
fn index_file(reader: &Reader, entry: &Entry, fits: &dyn Fn(usize) -> bool) -> pipeline::Result<Option<Partition>> {
    let Some(services) = reader.decode(&entry.relative, entry.e_tag.as_deref(), None)? else { return Ok(None) };
    let rows = services.iter().map(|s| s.slice.len()).sum();
    let days = services.iter().map(|s| (s.key.clone(), s.slice.summary(s.file_rows.clone()))).collect();
    let hot = fits(rows).then(|| Arc::new(services.into_iter().map(|s| (s.key, Arc::new(s.slice))).collect()));
    Ok(Some(Partition { path: entry.relative.clone(), e_tag: entry.e_tag.clone(), rows, days, hot }))
}

/// The date of a gold file from its `event_date=` folder.
fn partition_date(relative: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(partition_value(relative, "event_date")?, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dates_come_from_the_hive_folder() {
        assert_eq!(partition_date("gold/service_minute_metrics/event_date=1970-01-02/data.parquet"), Some(1));
        assert_eq!(partition_date("gold/x/event_date=2026-13-01/data.parquet"), None);
        assert_eq!(partition_date("gold/x/data.parquet"), None);
    }
}
