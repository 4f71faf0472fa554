//! One pipeline run: discover new input, land bronze, clean into silver,
//! recompute gold for touched dates, publish, write the manifest last.
//!
//! Reading, cleaning and staging the input batch by batch is
//! [`super::batches`]'s; duplicate detection, silver events and gold are
//! the [`super::engine`]'s (local or Spark).
//! Everything a run writes goes to `_staging/<run_id>/` first; committing
//! and publishing it is [`super::commit`]'s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use super::commit::{checkpoint, commit, recover_staging};
use super::compact::{Scope, compact};
use super::context::{Context, Totals};
use super::engine::{self, Engine};
use super::ingest::Candidate;
use super::ingested_index::IngestedIndex;
use super::lock::Lock;
use super::manifest::{Manifest, RunStatus, StorageRequests, new_run_id};
use super::options::{CrashPoint, RunOptions};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::input;
use crate::layout::STAGING;
use crate::pool;
use crate::silver::{Reason, timestamp::format_date};
use crate::storage::Storage;
use crate::tables;

/// What a run did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No new or changed input file; nothing was written.
    NothingNew { files_skipped: u64 },
    /// Layers were written and published; see the manifest's status.
    Committed(Box<Manifest>),
}

/// Runs the pipeline once on `config`'s input and output.
pub(crate) fn run(config: &PipelineConfig, options: RunOptions) -> Result<Outcome> {
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

    recover_staging(&output, &lock, options.log)?;
    // Kept replaced files whose time is up go before anything reads the
    // layers: all of them when nothing is kept (a spark engine run reads
    // whole layer folders).
    tables::retire(&output, &[], options.log.keep_replaced_hours, started_at)?;
    let ctx = Context::new(config, options, (input, output), run_id, started_at);
    let mut run = Run { ctx, engine, totals: Totals::default() };
    let outcome = run.execute(&lock).inspect_err(|error| run.record_failure(error))?;
    if let Outcome::Committed(manifest) = &outcome {
        // The run is published; its small files and earlier runs' are merged
        // now, a compaction with its own manifest and its own request count.
        let scope = Scope::Holding(&manifest.outputs);
        compact(&run.ctx.output.counted_apart(), &lock, &config.maintenance, scope, &run.ctx.options)?;
    }
    // A run whose index could not be stored leaves its note, so the next
    // one reads the manifests after the stored index.
    if run.totals.ingested.is_stored() {
        lock.release();
    }
    Ok(outcome)
}

/// A run in progress: what it knows from its start, the engine doing its
/// global stages, and what it has counted and staged so far.
pub(super) struct Run<'a> {
    pub(super) ctx: Context<'a>,
    pub(super) engine: Box<dyn Engine>,
    pub(super) totals: Totals,
}

impl Run<'_> {
    pub(super) fn timed<T>(&mut self, stage: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let result = f(self);
        *self.totals.stage_seconds.entry(stage.to_string()).or_default() += start.elapsed().as_secs_f64();
        result
    }

    fn execute(&mut self, lock: &Lock) -> Result<Outcome> {
        let candidates = self.timed("discover", |run| run.discover(lock))?;
        let total_bytes = candidates.iter().map(|c| c.entry.size).sum();
        let progress = progress_bar(total_bytes);
        self.ingest(candidates, &progress)?;
        progress.finish_and_clear();
        if self.totals.files.is_empty() && self.totals.unreadable.is_empty() {
            self.save_index();
            info!(files_skipped = self.totals.files_skipped, "Nothing new to ingest.");
            return Ok(Outcome::NothingNew { files_skipped: self.totals.files_skipped });
        }
        checkpoint(&self.ctx.options, CrashPoint::Staged)?;
        self.timed("gold", Self::finish_global_stages)?;
        checkpoint(&self.ctx.options, CrashPoint::GoldStaged)?;
        let manifest = self.manifest(self.status(), None);
        self.commit(lock, &manifest)?;
        Ok(Outcome::Committed(Box::new(manifest)))
    }

    /// What the engine does after the last batch: on the spark engine rule 5
    /// and silver events too, so late duplicates move from events to rejects.
    fn finish_global_stages(&mut self) -> Result<()> {
        let context = self.ctx.for_engine();
        let (engine, outputs, dates) = (&mut self.engine, &mut self.totals.outputs, &self.totals.candidate_dates);
        let finished = pool::install(|| engine.finish(&context, outputs, dates))?;
        self.totals.touched_dates = finished.gold_dates;
        self.totals.rows.gold += finished.gold_rows;
        self.totals.count(&finished.deferred);
        self.totals.rows.silver_events -= finished.late_duplicates;
        self.totals.rows.silver_rejects += finished.late_duplicates;
        self.totals.reject_counts[Reason::DuplicateEventId as usize] += finished.late_duplicates;
        self.totals.counters.subtract(&finished.late_duplicate_counters);
        Ok(())
    }

    /// Event files under the input root not already ingested with this content.
    fn discover(&mut self, lock: &Lock) -> Result<Vec<Candidate>> {
        self.totals.ingested = IngestedIndex::load(&self.ctx.output, lock.after_clean_release())?;
        // Incremental listing (README "Incremental listing"): only the
        // newest part of the input, between full listings.
        let settings = &self.ctx.config.pipeline;
        let incremental = settings.incremental_listing && !self.ctx.options.full_refresh;
        let index = &mut self.totals.ingested;
        let start = match incremental {
            true => index.incremental_start(settings.full_listing_hours, self.ctx.started_at).map(str::to_owned),
            false => None,
        };
        if start.is_none() && settings.incremental_listing {
            index.record_full_listing(self.ctx.started_at);
        }
        let mut candidates = Vec::new();
        for entry in self.ctx.input.list_after("", start.as_deref())? {
            let Some(kind) = input::classify(&entry.relative) else { continue };
            let known = match self.ctx.options.full_refresh {
                true => None,
                false => self.totals.ingested.lookup(&self.ctx.output, &entry.relative)?,
            };
            // Same size and modification time as an ingested file: same content.
            if known.is_some_and(|k| k.size == entry.size && k.last_modified == entry.last_modified) {
                self.totals.files_skipped += 1;
                continue;
            }
            candidates.push(Candidate { known_hash: known.map(|k| k.content_hash.clone()), entry, kind });
        }
        let listed_from = start.as_deref().unwrap_or("the input's root");
        info!(
            candidates = candidates.len(),
            skipped = self.totals.files_skipped,
            listed_from,
            "Discovered input files."
        );
        Ok(candidates)
    }

    fn status(&self) -> RunStatus {
        if self.reject_ratio() > self.ctx.config.pipeline.max_reject_ratio
            || self.totals.unreadable.len() as u64 > self.ctx.config.pipeline.max_unreadable_files
        {
            RunStatus::QualityGateFailed
        } else {
            RunStatus::Succeeded
        }
    }

    fn reject_ratio(&self) -> f64 {
        if self.totals.rows.bronze == 0 {
            0.0
        } else {
            self.totals.rows.silver_rejects as f64 / self.totals.rows.bronze as f64
        }
    }

    fn manifest(&self, status: RunStatus, error: Option<String>) -> Manifest {
        Manifest {
            run_id: self.ctx.run_id.clone(),
            status,
            started_at: self.ctx.started_at,
            finished_at: Utc::now(),
            input: self.ctx.config.pipeline.input.clone(),
            output: self.ctx.config.pipeline.output.clone(),
            full_refresh: self.ctx.options.full_refresh,
            engine: self.ctx.config.engine.kind,
            files: self.totals.files.clone(),
            unreadable_files: self.totals.unreadable.clone(),
            max_unreadable_files: self.ctx.config.pipeline.max_unreadable_files,
            files_skipped: self.totals.files_skipped,
            rows: self.totals.rows,
            rejects_by_reason: Reason::ALL
                .iter()
                .zip(self.totals.reject_counts)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.code().to_string(), n))
                .collect(),
            reject_ratio: self.reject_ratio(),
            max_reject_ratio: self.ctx.config.pipeline.max_reject_ratio,
            counters: self.totals.counters,
            gold_partitions: self.totals.touched_dates.iter().map(|d| format_date(*d)).collect(),
            outputs: self.totals.outputs.clone(),
            stage_seconds: self.totals.stage_seconds.clone(),
            table_versions: BTreeMap::new(),
            compacted: Vec::new(),
            expired: Vec::new(),
            expired_runs: Vec::new(),
            storage_requests: Some(StorageRequests {
                input: self.ctx.input.requests(),
                output: self.ctx.output.requests(),
            }),
            error,
        }
    }

    fn commit(&mut self, lock: &Lock, manifest: &Manifest) -> Result<()> {
        commit(&self.ctx.output, lock, manifest, &self.ctx.options, &mut self.totals.committed)?;
        self.totals.ingested.fold(manifest);
        self.save_index();
        Ok(())
    }

    /// Stores the ingested-files index; a failure only costs the next run
    /// reading more manifests, so it is logged, not fatal.
    fn save_index(&mut self) {
        if let Err(e) = self.totals.ingested.save(&self.ctx.output) {
            warn!(error = %e.chain(), "Could not update the ingested-files index; the next run rebuilds it.");
        }
    }

    /// Best effort: drop what the run staged and leave a failed manifest.
    /// Once the commit marker is written the run is committed: its staging
    /// is left for the next run to finish publishing.
    fn record_failure(&mut self, error: &Error) {
        if self.totals.committed {
            warn!(error = %error.chain(), "Publishing failed after commit; the next run will finish it.");
            return;
        }
        let mut manifest = self.manifest(RunStatus::Failed, Some(error.chain()));
        manifest.outputs.clear();
        if let Err(e) = self.ctx.output.delete_all(&format!("{STAGING}/{}", self.ctx.run_id)) {
            warn!(error = %e.chain(), "Could not remove the failed run's staging; the next run removes it.");
        }
        if let Err(e) = self.ctx.output.put(&Manifest::path(&self.ctx.run_id), manifest.to_json()) {
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
