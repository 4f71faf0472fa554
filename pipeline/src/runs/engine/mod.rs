//! The global stages of a run (README "Scaling out"): rule 5 (the first clean
//! row with an event id on a date wins, in run, file, line order, committed
//! silver first), the silver events partitions and gold for the dates that
//! received new events.
//!
//! The run reads, lands bronze and applies rules 1–4 itself, batch by
//! batch; an [`Engine`] does the rest. [`local`] does it on this machine
//! with polars, duplicates checked batch by batch as they come; [`spark`]
//! sends Spark plans over Spark Connect once every batch is staged. Both
//! write only into the run's staging; the run's commit publishes.

mod deferred;
mod local;
mod spark;

use std::collections::BTreeSet;

use polars::prelude::DataFrame;

use crate::config::{EngineKind, PipelineConfig};
use crate::error::Result;
use crate::silver::{Cleaned, Counters, Evaluated, Reason, Rules};
use crate::storage::Storage;

pub(super) use local::LocalEngine;
pub(super) use spark::SparkEngine;

/// One layer file to stage: its path relative to the output root and the
/// frames (one per piece of input) it is made of.
pub(super) type StagedWrite = (String, Vec<DataFrame>);

/// What an engine needs to know about the run it works for.
pub(super) struct RunContext<'a> {
    pub output: &'a Storage,
    pub run_id: &'a str,
    pub full_refresh: bool,
    /// The run's `ingest_date` partition value (`YYYY-MM-DD`).
    pub ingest_date: &'a str,
    pub rules: &'a Rules,
}

/// The global stages, on one machine or on Spark.
pub(super) trait Engine: Send {
    /// Rule 5 for one batch of rows that passed rules 1–4, in processing
    /// order, before the batch is split into silver. An engine that finds
    /// duplicates later ([`Engine::finish`]) leaves the batch alone.
    fn check_batch(&mut self, run: &RunContext, batch: &mut [Evaluated]) -> Result<()>;

    /// Where a batch's clean rows of `date` are staged, and the frames to
    /// write there (clean events with [`crate::silver::CANDIDATE_COLUMNS`]).
    fn stage_events(&self, date: &str, part: &str, frames: Vec<DataFrame>) -> StagedWrite;

    /// After the last batch: whatever rule 5 is left, the silver events
    /// and gold. `outputs` lists what the run has staged so far (paths
    /// relative to the output root), the files it will publish: the engine
    /// adds what it stages and drops its own scratch files. `dates` are the
    /// event dates of the clean rows staged.
    fn finish(&mut self, run: &RunContext, outputs: &mut Vec<String>, dates: &BTreeSet<i32>) -> Result<Finished>;
}

/// What [`Engine::finish`] did.
#[derive(Debug, Default)]
pub(super) struct Finished {
    /// Dates that received new clean events; their gold partitions were staged.
    pub gold_dates: BTreeSet<i32>,
    pub gold_rows: u64,
    /// Staged clean rows found to be duplicates at the end: they are
    /// rejects, not events, and leave the optional-field counters.
    pub late_duplicates: u64,
    pub late_duplicate_counters: Counters,
    /// Rows held back from the batches (not counted there) and staged by
    /// `finish`: events or duplicate rejects.
    pub deferred: Tally,
}

/// Silver rows staged, counted as the run report counts them.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub events: u64,
    pub rejects: u64,
    /// Rejects by their first reason, indexed like [`Reason::ALL`].
    pub reject_counts: [u64; Reason::ALL.len()],
    pub counters: Counters,
}

impl Tally {
    pub fn add(&mut self, cleaned: &Cleaned) {
        self.events += cleaned.events.iter().map(|(_, df)| df.height() as u64).sum::<u64>();
        self.rejects += cleaned.rejects.height() as u64;
        for (total, count) in self.reject_counts.iter_mut().zip(cleaned.reject_counts) {
            *total += count;
        }
        self.counters.add(&cleaned.counters);
    }
}

/// The engine `config` asks for; the spark engine is connected (and fails
/// here, before anything is staged, when it cannot be reached).
pub(super) fn open(config: &PipelineConfig, output: &Storage) -> Result<Box<dyn Engine>> {
    Ok(match config.engine.kind {
        EngineKind::Local => Box::new(LocalEngine::new(config.memory_budget())),
        EngineKind::Spark => Box::new(SparkEngine::connect(config, output)?),
    })
}
