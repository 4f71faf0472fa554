//! What the server answers from: one committed run's gold, pinned, and the
//! run history.
//!
//! Gold is indexed, not held: every partition file is pinned by its
//! version tag and summarized per service (rows, first and last minute, the
//! whole day as one rollup bucket). The newest dates that fit the hot budget
//! are also held decoded; older ones are read on demand (see [`crate::reader`]).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::runs::RunIndex;
use crate::slice::{DaySummary, Slice, day_of};

/// The gold layer of one committed run.
#[derive(Debug, Default)]
pub(crate) struct Gold {
    pub(crate) run_id: String,
    /// When the run finished (how fresh the data is).
    pub(crate) run_finished_at: DateTime<Utc>,
    pub(crate) loaded_at: DateTime<Utc>,
    /// By date (days since 1970-01-01).
    pub(crate) partitions: BTreeMap<i32, Partition>,
    /// By lowercase service name.
    pub(crate) services: BTreeMap<String, ServiceSummary>,
    pub(crate) rows: usize,
    /// Rows held decoded in the hot window.
    pub(crate) hot_rows: usize,
}

/// One `event_date=` partition file, as this snapshot saw it.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    /// Path relative to the output root.
    pub(crate) path: String,
    /// The file's version tag when listed: reads of any other version fail.
    pub(crate) e_tag: Option<String>,
    pub(crate) rows: usize,
    /// By lowercase service name.
    pub(crate) days: BTreeMap<String, DaySummary>,
    /// The decoded slices, when the date is in the hot window.
    pub(crate) hot: Option<Arc<BTreeMap<String, Arc<Slice>>>>,
}

/// One service over all of gold.
#[derive(Debug, Clone)]
pub(crate) struct ServiceSummary {
    pub(crate) service: Arc<str>,
    pub(crate) rows: usize,
    pub(crate) first_minute: i64,
    pub(crate) last_minute: i64,
}

/// The server's state for one moment: gold (once loaded) and the run index.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) gold: Option<Arc<Gold>>,
    pub(crate) runs: Arc<RunIndex>,
}

impl Gold {
    /// Indexes `partitions` for `run_id`.
    pub(crate) fn new(run_id: String, run_finished_at: DateTime<Utc>, partitions: BTreeMap<i32, Partition>) -> Self {
        let mut services: BTreeMap<String, ServiceSummary> = BTreeMap::new();
        for partition in partitions.values() {
            for (key, day) in &partition.days {
                let summary = services.entry(key.clone()).or_insert_with(|| ServiceSummary {
                    service: day.service.clone(),
                    rows: 0,
                    first_minute: day.first_minute,
                    last_minute: day.last_minute,
                });
                summary.rows += day.rows;
                summary.first_minute = summary.first_minute.min(day.first_minute);
                summary.last_minute = summary.last_minute.max(day.last_minute);
            }
        }
        let rows = partitions.values().map(|p| p.rows).sum();
        let hot_rows = partitions.values().filter(|p| p.hot.is_some()).map(|p| p.rows).sum();
        Gold { run_id, run_finished_at, loaded_at: Utc::now(), partitions, services, rows, hot_rows }
    }

    pub(crate) fn first_minute(&self) -> Option<i64> {
        self.services.values().map(|s| s.first_minute).min()
    }

    pub(crate) fn last_minute(&self) -> Option<i64> {
        self.services.values().map(|s| s.last_minute).max()
    }

    /// Partitions whose date meets `[from, to)`, oldest first.
    pub(crate) fn dates(&self, from: i64, to: i64) -> impl Iterator<Item = (i32, &Partition)> {
        let days: RangeInclusive<i32> = day_of(from)..=day_of(to.saturating_sub(1));
        self.partitions.range(days).map(|(d, p)| (*d, p))
    }
}
