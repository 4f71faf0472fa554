//! The run history: an index of run ids and statuses (a few dozen bytes a
//! run), with manifests read from `_runs/` when a page needs them.

use chrono::{DateTime, Utc};
use pipeline::runs::{RunStatus, StorageRequests};

/// One run, as the index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunEntry {
    pub(crate) run_id: String,
    pub(crate) status: RunStatus,
    pub(crate) finished_at: DateTime<Utc>,
    /// Rejected / bronze rows of the run.
    pub(crate) reject_ratio: f64,
    /// Input files the run could not read.
    pub(crate) unreadable_files: usize,
    /// The requests the run made to its input and output; kept for the
    /// newest run only, so that a year of runs stays a few dozen bytes each.
    pub(crate) storage_requests: Option<Box<StorageRequests>>,
}

/// Every run of the output, oldest first (run ids sort by start time).
#[derive(Debug, Clone, Default)]
pub(crate) struct RunIndex {
    entries: Vec<RunEntry>,
}

impl RunIndex {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds runs seen after the ones already indexed; keeps id order.
    pub(crate) fn extend(&mut self, runs: impl IntoIterator<Item = RunEntry>) {
        self.entries.extend(runs);
        if !self.entries.is_sorted_by(|a, b| a.run_id <= b.run_id) {
            self.entries.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        }
        self.entries.dedup_by(|a, b| a.run_id == b.run_id);
        if let Some((_, older)) = self.entries.split_last_mut() {
            older.iter_mut().for_each(|e| e.storage_requests = None);
        }
    }

    /// The newest run, whatever its status.
    pub(crate) fn newest(&self) -> Option<&RunEntry> {
        self.entries.last()
    }

    /// The newest run with `status`.
    pub(crate) fn newest_with(&self, status: RunStatus) -> Option<&RunEntry> {
        self.entries.iter().rev().find(|e| e.status == status)
    }

    /// How many runs have `status`.
    pub(crate) fn count(&self, status: RunStatus) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }

    /// The newest run whose layers were published.
    pub(crate) fn newest_committed(&self) -> Option<&RunEntry> {
        self.entries.iter().rev().find(|e| e.status.committed())
    }

    pub(crate) fn find(&self, run_id: &str) -> Option<&RunEntry> {
        self.entries.binary_search_by(|e| e.run_id.as_str().cmp(run_id)).ok().map(|i| &self.entries[i])
    }

    /// One page, newest first, of the runs with `status` (all when `None`),
    /// and how many such runs there are.
    pub(crate) fn page(&self, status: Option<RunStatus>, offset: usize, limit: usize) -> (Vec<&RunEntry>, usize) {
        let matching = || self.entries.iter().rev().filter(|e| status.is_none_or(|s| e.status == s));
        (matching().skip(offset).take(limit).collect(), matching().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, status: RunStatus) -> RunEntry {
        RunEntry {
            run_id: id.into(),
            status,
            finished_at: DateTime::UNIX_EPOCH,
            reject_ratio: 0.0,
            unreadable_files: 0,
            storage_requests: Some(Box::default()),
        }
    }

    #[test]
    fn pages_are_newest_first_filtered_and_counted() {
        let mut index = RunIndex::default();
        index.extend([entry("r1", RunStatus::Succeeded), entry("r3", RunStatus::Failed)]);
        index.extend([entry("r2", RunStatus::QualityGateFailed), entry("r4", RunStatus::Succeeded)]);
        let ids = |page: Vec<&RunEntry>| page.iter().map(|e| e.run_id.clone()).collect::<Vec<_>>();
        let (page, total) = index.page(None, 1, 2);
        assert_eq!((ids(page), total), (vec!["r3".to_string(), "r2".into()], 4));
        let (page, total) = index.page(Some(RunStatus::Succeeded), 0, 10);
        assert_eq!((ids(page), total), (vec!["r4".to_string(), "r1".into()], 2));
        assert_eq!(index.newest_committed().map(|e| e.run_id.as_str()), Some("r4"));
        assert_eq!(index.newest().map(|e| e.run_id.as_str()), Some("r4"));
        assert_eq!(index.newest_with(RunStatus::Failed).map(|e| e.run_id.as_str()), Some("r3"));
        assert_eq!((index.count(RunStatus::Succeeded), index.count(RunStatus::QualityGateFailed)), (2, 1));
        assert_eq!(index.find("r2").map(|e| e.status), Some(RunStatus::QualityGateFailed));
        assert!(index.find("r9").is_none());
        let with_requests: Vec<_> = index.page(None, 0, 10).0.iter().map(|e| e.storage_requests.is_some()).collect();
        assert_eq!(with_requests, [true, false, false, false], "requests are kept for the newest run only");
        let (page, total) = index.page(None, 10, 5);
        assert_eq!((page.len(), total), (0, 4));
    }
}
