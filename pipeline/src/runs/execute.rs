//! One pipeline run: discover new input, land bronze, clean into silver,
//! recompute gold for touched dates, publish, write the manifest last.
//!
//! Reading, cleaning and staging the input batch by batch is
//! [`super::batches`]'s; duplicate detection, silver events and gold are
//! the [`super::engine`]'s (local or Spark).
//! Everything a run writes goes to `_staging/<run_id>/` first; committing
//! and publishing it is [`super::commit`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use super::commit::{checkpoint, publish, recover_staging};
use super::engine::{self, Engine, RunContext, Tally};
use super::ingest::Candidate;
use super::ingested_index::IngestedIndex;
use super::lock::Lock;
use super::manifest::{FileRecord, LayerRows, Manifest, RunStatus, UnreadableFile, new_run_id};
use super::options::{CrashPoint, RunOptions};
use super::swap;
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::input::{self, ReadStats};
use crate::layout::{self, COMMIT_MARKER, STAGING};
use crate::pool;
use crate::silver::{self, Counters, Reason, Rules, timestamp::format_date};
use crate::storage::Storage;

/// What a run did.
#[derive(Debug)]
pub enum Outcome {
    /// No new or changed input file; nothing was written.
    NothingNew { files_skipped: u64 },
    /// Layers were written and published; see the manifest's status.
    Committed(Box<Manifest>),
}

/// Runs the pipeline once on `config`'s input and output.
pub fn run(config: &PipelineConfig, options: RunOptions) -> Result<Outcome> {
    let input = Storage::open(&config.pipeline.input, false)?;
    let output = Storage::open(&config.pipeline.output, true)?.with_zstd_level(config.pipeline.zstd_level);
    // Before the lock: an engine that cannot be reached stops the run before anything is staged.
    let engine = engine::open(config, &output)?;
    let holder = format!("pid {} (started {})", std::process::id(), Utc::now().to_rfc3339());
    let lock = Lock::acquire(&output, &holder, Duration::from_secs(config.pipeline.lease_secs))?;
    // Minted under the lock, so run ids on one output sort in run order.
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    info!(
        run_id,
        input = config.pipeline.input,
        output = config.pipeline.output,
        full_refresh = options.full_refresh,
        "Starting run."
    );

    recover_staging(&output)?;
    let mut run = Run::new(config, options, (input, output), engine, run_id, started_at);
    match run.execute(&lock) {
        Ok(outcome) => Ok(outcome),
        Err(error) => {
            run.record_failure(&error);
            Err(error)
        }
    }
}

pub(super) struct Run<'a> {
    pub(super) config: &'a PipelineConfig,
    pub(super) options: RunOptions,
    pub(super) input: Storage,
    pub(super) output: Storage,
    pub(super) run_id: String,
    pub(super) started_at: DateTime<Utc>,
    /// The run's `ingest_date` partition value: its start date (UTC).
    pub(super) ingest_date: String,
    pub(super) rules: Rules,
    pub(super) engine: Box<dyn Engine>,
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

impl<'a> Run<'a> {
    fn new(
        config: &'a PipelineConfig,
        options: RunOptions,
        (input, output): (Storage, Storage),
        engine: Box<dyn Engine>,
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
            engine,
            files: Vec::new(),
            unreadable: Vec::new(),
            files_skipped: 0,
            rows: LayerRows::default(),
            reject_counts: [0; Reason::ALL.len()],
            counters: Counters::default(),
            outputs: Vec::new(),
            batches: 0,
            committed: false,
            candidate_dates: BTreeSet::new(),
            touched_dates: BTreeSet::new(),
            stage_seconds: BTreeMap::new(),
            ingested: IngestedIndex::default(),
            reading: HashMap::new(),
        }
    }

    pub(super) fn timed<T>(&mut self, stage: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let result = f(self);
        *self.stage_seconds.entry(stage.to_string()).or_default() += start.elapsed().as_secs_f64();
        result
    }

    fn execute(&mut self, lock: &Lock) -> Result<Outcome> {
        let candidates = self.timed("discover", Self::discover)?;
        let total_bytes = candidates.iter().map(|c| c.entry.size).sum();
        let progress = progress_bar(total_bytes);
        self.ingest(candidates, &progress)?;
        progress.finish_and_clear();
        if self.files.is_empty() && self.unreadable.is_empty() {
            self.save_index();
            info!(files_skipped = self.files_skipped, "Nothing new to ingest.");
            return Ok(Outcome::NothingNew { files_skipped: self.files_skipped });
        }
        checkpoint(&self.options, CrashPoint::Staged)?;
        self.timed("gold", Self::finish_global_stages)?;
        checkpoint(&self.options, CrashPoint::GoldStaged)?;
        let mut manifest = self.manifest(self.status(), None);
        lock.ensure_held()?;
        self.commit(&mut manifest)?;
        Ok(Outcome::Committed(Box::new(manifest)))
    }

    /// What the engine does after the last batch: on the spark engine rule 5
    /// and silver events too, so late duplicates move from events to rejects.
    fn finish_global_stages(&mut self) -> Result<()> {
        let context = RunContext {
            output: &self.output,
            run_id: &self.run_id,
            full_refresh: self.options.full_refresh,
            ingest_date: &self.ingest_date,
            rules: &self.rules,
        };
        let (engine, outputs, dates) = (&mut self.engine, &mut self.outputs, &self.candidate_dates);
        let finished = pool::install(|| engine.finish(&context, outputs, dates))?;
        self.touched_dates = finished.gold_dates;
        self.rows.gold += finished.gold_rows;
        self.count(&finished.deferred);
        self.rows.silver_events -= finished.late_duplicates;
        self.rows.silver_rejects += finished.late_duplicates;
        self.reject_counts[Reason::DuplicateEventId as usize] += finished.late_duplicates;
        self.counters.subtract(&finished.late_duplicate_counters);
        Ok(())
    }

    /// Adds staged silver rows to the run's counts.
    pub(super) fn count(&mut self, tally: &Tally) {
        self.rows.silver_events += tally.events;
        self.rows.silver_rejects += tally.rejects;
        for (total, count) in self.reject_counts.iter_mut().zip(tally.reject_counts) {
            *total += count;
        }
        self.counters.add(&tally.counters);
    }

    /// Event files under the input root not already ingested with this content.
    fn discover(&mut self) -> Result<Vec<Candidate>> {
        self.ingested = IngestedIndex::load(&self.output)?;
        let mut candidates = Vec::new();
        for entry in self.input.list("")? {
            let Some(kind) = input::classify(&entry.relative) else { continue };
            let known = if self.options.full_refresh { None } else { self.ingested.get(&entry.relative) };
            // Same size and modification time as an ingested file: same content.
            if known.is_some_and(|k| k.size == entry.size && k.last_modified == entry.last_modified) {
                self.files_skipped += 1;
                continue;
            }
            candidates.push(Candidate { known_hash: known.map(|k| k.content_hash.clone()), entry, kind });
        }
        info!(candidates = candidates.len(), skipped = self.files_skipped, "Discovered input files.");
        Ok(candidates)
    }

    fn status(&self) -> RunStatus {
        if self.reject_ratio() > self.config.pipeline.max_reject_ratio
            || self.unreadable.len() as u64 > self.config.pipeline.max_unreadable_files
        {
            RunStatus::QualityGateFailed
        } else {
            RunStatus::Succeeded
        }
    }

    fn reject_ratio(&self) -> f64 {
        if self.rows.bronze == 0 { 0.0 } else { self.rows.silver_rejects as f64 / self.rows.bronze as f64 }
    }

    fn manifest(&self, status: RunStatus, error: Option<String>) -> Manifest {
        Manifest {
            run_id: self.run_id.clone(),
            status,
            started_at: self.started_at,
            finished_at: Utc::now(),
            input: self.config.pipeline.input.clone(),
            output: self.config.pipeline.output.clone(),
            full_refresh: self.options.full_refresh,
            engine: self.config.engine.kind,
            files: self.files.clone(),
            unreadable_files: self.unreadable.clone(),
            max_unreadable_files: self.config.pipeline.max_unreadable_files,
            files_skipped: self.files_skipped,
            rows: self.rows,
            rejects_by_reason: Reason::ALL
                .iter()
                .zip(self.reject_counts)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.code().to_string(), n))
                .collect(),
            reject_ratio: self.reject_ratio(),
            max_reject_ratio: self.config.pipeline.max_reject_ratio,
            counters: self.counters,
            gold_partitions: self.touched_dates.iter().map(|d| format_date(*d)).collect(),
            outputs: self.outputs.clone(),
            stage_seconds: self.stage_seconds.clone(),
            layer_folders: BTreeMap::new(),
            error,
        }
    }

    fn commit(&mut self, manifest: &mut Manifest) -> Result<()> {
        if let (true, Some(root)) = (self.options.full_refresh, self.output.local_root()) {
            manifest.layer_folders = swap::prepare(root, &self.run_id)?;
        }
        self.output.put(&layout::staged(&self.run_id, COMMIT_MARKER), manifest.to_json())?;
        self.committed = true;
        checkpoint(&self.options, CrashPoint::Committed)?;
        publish(&self.output, manifest, &self.options)?;
        self.ingested.fold(manifest);
        self.save_index();
        Ok(())
    }

    /// Stores the ingested-files index; a failure only costs the next run
    /// reading more manifests, so it is logged, not fatal.
    fn save_index(&mut self) {
        if let Err(e) = self.ingested.save(&self.output) {
            warn!(error = %e.chain(), "Could not update the ingested-files index; the next run rebuilds it.");
        }
    }

    /// Best effort: drop what the run staged and leave a failed manifest.
    /// Once the commit marker is written the run is committed: its staging
    /// is left for the next run to finish publishing.
    fn record_failure(&mut self, error: &Error) {
        if self.committed {
            warn!(error = %error.chain(), "Publishing failed after commit; the next run will finish it.");
            return;
        }
        let mut manifest = self.manifest(RunStatus::Failed, Some(error.chain()));
        manifest.outputs.clear();
        if let Err(e) = self.output.delete_all(&format!("{STAGING}/{}", self.run_id)) {
            warn!(error = %e.chain(), "Could not remove the failed run's staging; the next run removes it.");
        }
        if let Err(e) = self.output.put(&Manifest::path(&self.run_id), manifest.to_json()) {
            warn!(error = %e, "Could not write the failed run's manifest.");
        }
    }
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
