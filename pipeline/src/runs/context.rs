//! What a run holds: the [`Context`] built once when it starts (its
//! configuration, storage, run id and rules), never changed, and the
//! [`Totals`] it adds to as it goes (files, rows, rejects, staged files,
//! time per stage). The phases (`execute`, `batches`) read the one and add
//! to the other; an engine sees the part of the context it needs
//! ([`Context::for_engine`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::engine::{RunContext, Tally};
use super::ingested_index::IngestedIndex;
use super::manifest::{FileRecord, LayerRows, UnreadableFile};
use super::options::RunOptions;
use crate::config::PipelineConfig;
use crate::input::ReadStats;
use crate::silver::{self, Counters, Reason, Rules};
use crate::storage::Storage;

/// What a run knows from its start.
pub(super) struct Context<'a> {
    pub(super) config: &'a PipelineConfig,
    pub(super) options: RunOptions,
    pub(super) input: Storage,
    pub(super) output: Storage,
    pub(super) run_id: String,
    pub(super) started_at: DateTime<Utc>,
    /// The run's `ingest_date` partition value: its start date (UTC).
    pub(super) ingest_date: String,
    pub(super) rules: Rules,
}

impl<'a> Context<'a> {
    pub(super) fn new(
        config: &'a PipelineConfig,
        options: RunOptions,
        (input, output): (Storage, Storage),
        run_id: String,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            config,
            options,
            input,
            output,
            run_id,
            started_at,
            ingest_date: started_at.format("%Y-%m-%d").to_string(),
            rules: Rules { timestamps: silver::TimestampParser::new(&config.pipeline.timestamp_formats) },
        }
    }

    /// What an engine needs to know about the run.
    pub(super) fn for_engine(&self) -> RunContext<'_> {
        RunContext {
            output: &self.output,
            run_id: &self.run_id,
            full_refresh: self.options.full_refresh,
            ingest_date: &self.ingest_date,
            rules: &self.rules,
        }
    }
}

/// What a run has read, counted and staged so far.
#[derive(Default)]
pub(super) struct Totals {
    pub(super) files: Vec<FileRecord>,
    pub(super) unreadable: Vec<UnreadableFile>,
    pub(super) files_skipped: u64,
    pub(super) rows: LayerRows,
    pub(super) reject_counts: [u64; Reason::ALL.len()],
    pub(super) counters: Counters,
    /// Staged objects, relative to the output root (not the staging folder).
    pub(super) outputs: Vec<String>,
    /// Batches processed so far; numbers the part files.
    pub(super) batches: usize,
    /// Whether the commit marker is written (the run can no longer fail back).
    pub(super) committed: bool,
    /// Event dates of the clean rows staged so far (before any late duplicate check).
    pub(super) candidate_dates: BTreeSet<i32>,
    /// Dates that received new clean events: their gold is recomputed.
    pub(super) touched_dates: BTreeSet<i32>,
    pub(super) stage_seconds: BTreeMap<String, f64>,
    /// What earlier runs ingested (loaded by `discover`).
    pub(super) ingested: IngestedIndex,
    /// Record counts of files whose pieces are still arriving, by candidate index.
    pub(super) reading: HashMap<usize, ReadStats>,
}

impl Totals {
    /// Adds staged silver rows to the run's counts.
    pub(super) fn count(&mut self, tally: &Tally) {
        self.rows.silver_events += tally.events;
        self.rows.silver_rejects += tally.rejects;
        for (total, count) in self.reject_counts.iter_mut().zip(tally.reject_counts) {
            *total += count;
        }
        self.counters.add(&tally.counters);
    }
}
