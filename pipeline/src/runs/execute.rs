//! One pipeline run: discover new input, land bronze, clean into silver,
//! recompute gold for touched dates, publish, write the manifest last.
//!
//! Memory is bounded by the batch size: files are streamed in pieces of
//! whole records, parsed on every core in batches of about `batch_rows`
//! rows, and each batch is written out while the next is parsed. What grows with the output is the set of event id
//! fingerprints of touched dates (16 bytes per id, for duplicate detection)
//! and, for gold, the four silver columns of one event date at a time.
//!
//! Everything a run writes goes to `_staging/<run_id>/` first; committing
//! and publishing it is [`super::commit`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::*;
use rayon::prelude::*;
use tracing::{info, info_span, warn};

use super::commit::{CrashPoint, checkpoint, publish, recover_staging};
use super::ingest::{Candidate, Event, FileOutcome, Reader};
use super::ingested::IngestedIndex;
use super::lock::Lock;
use super::manifest::{FileRecord, LayerRows, Manifest, RunStatus, UnreadableFile, new_run_id};
use super::swap;
use crate::bronze::{BronzeBuilder, Lineage};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::input::{self, Limits, ReadStats};
use crate::layout::{self, BRONZE, COMMIT_MARKER, GOLD, GOLD_FILE, SILVER_EVENTS, SILVER_REJECTS, STAGING};
use crate::silver::{self, Counters, Dedupe, Evaluated, Load, Reason, Rules, timestamp::format_date};
use crate::storage::{Entry, Storage};
use crate::{gold, silver::columns::EVENT_ID};

/// How a run was asked to behave.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Ignore earlier runs: re-ingest all input and replace every layer.
    pub full_refresh: bool,
    /// For crash tests: abort the process at this point, as `kill -9` would.
    pub crash_at: Option<CrashPoint>,
    /// For failure tests: fail with an error at this point, as a storage
    /// error would.
    pub fail_at: Option<CrashPoint>,
}

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
    let input = Storage::open(&config.input, false)?;
    let output = Storage::open(&config.output, true)?.with_zstd_level(config.zstd_level);
    let holder = format!("pid {} (started {})", std::process::id(), Utc::now().to_rfc3339());
    let lock = Lock::acquire(&output, &holder, Duration::from_secs(config.lease_secs))?;
    // Minted under the lock, so run ids on one output sort in run order.
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    info!(run_id, input = config.input, output = config.output, full_refresh = options.full_refresh, "Starting run.");

    recover_staging(&output)?;
    let mut run = Run::new(config, options, input, output, run_id, started_at);
    match run.execute(&lock) {
        Ok(outcome) => Ok(outcome),
        Err(error) => {
            run.record_failure(&error);
            Err(error)
        }
    }
}

struct Run<'a> {
    config: &'a PipelineConfig,
    options: RunOptions,
    input: Storage,
    output: Storage,
    run_id: String,
    started_at: DateTime<Utc>,
    rules: Rules,
    dedupe: Dedupe,
    files: Vec<FileRecord>,
    unreadable: Vec<UnreadableFile>,
    files_skipped: u64,
    rows: LayerRows,
    reject_counts: [u64; Reason::ALL.len()],
    counters: Counters,
    /// Staged objects, relative to the output root (not the staging folder).
    outputs: Vec<String>,
    /// Batches processed so far; numbers the part files.
    batches: usize,
    /// Whether the commit marker is written (the run can no longer fail back).
    committed: bool,
    touched_dates: BTreeSet<i32>,
    stage_seconds: BTreeMap<String, f64>,
    /// What earlier runs ingested (loaded by `discover`).
    ingested: IngestedIndex,
    /// Record counts of files whose pieces are still arriving, by candidate index.
    reading: HashMap<usize, ReadStats>,
}

impl<'a> Run<'a> {
    fn new(
        config: &'a PipelineConfig,
        options: RunOptions,
        input: Storage,
        output: Storage,
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
            rules: Rules { timestamps: silver::TimestampParser::new(&config.timestamp_formats) },
            dedupe: Dedupe::default(),
            files: Vec::new(),
            unreadable: Vec::new(),
            files_skipped: 0,
            rows: LayerRows::default(),
            reject_counts: [0; Reason::ALL.len()],
            counters: Counters::default(),
            outputs: Vec::new(),
            batches: 0,
            committed: false,
            touched_dates: BTreeSet::new(),
            stage_seconds: BTreeMap::new(),
            ingested: IngestedIndex::default(),
            reading: HashMap::new(),
        }
    }

    fn timed<T>(&mut self, stage: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
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
        self.timed("gold", Self::write_gold)?;
        checkpoint(&self.options, CrashPoint::GoldStaged)?;
        let mut manifest = self.manifest(self.status(), None);
        lock.ensure_held()?;
        self.commit(&mut manifest)?;
        Ok(Outcome::Committed(Box::new(manifest)))
    }

    /// Reads, parses, cleans and stages every candidate file. Three things
    /// overlap: one thread reads files in order and cuts them into pieces,
    /// this one parses and cleans a batch of pieces on every core, and one
    /// thread encodes and writes the previous batch's Parquet.
    fn ingest(&mut self, candidates: Vec<Candidate>, progress: &ProgressBar) -> Result<()> {
        let budget = self.config.batch_rows.saturating_mul(BATCH_BYTES_PER_ROW);
        let reader = Reader {
            input: self.input.clone(),
            limits: Limits {
                max_record_bytes: self.config.max_record_bytes,
                chunk_bytes: (budget / PIECES_PER_BATCH).clamp(64 << 10, 8 << 20),
            },
            window: budget,
            progress: progress.clone(),
        };
        let entries: Vec<Entry> = candidates.iter().map(|c| c.entry.clone()).collect();
        let (output, run_id) = (self.output.clone(), self.run_id.clone());
        std::thread::scope(|scope| {
            let (events_tx, events) = sync_channel(PIECES_PER_BATCH);
            scope.spawn(move || reader.run(&candidates, &events_tx));
            let (writes_tx, writes) = sync_channel::<Vec<StagedWrite>>(0);
            let writer = scope.spawn(move || {
                let (mut paths, mut seconds) = (Vec::new(), 0.0);
                for batch in writes {
                    let start = Instant::now();
                    paths.extend(write_staged(&output, &run_id, batch)?);
                    seconds += start.elapsed().as_secs_f64();
                }
                Ok::<_, Error>((paths, seconds))
            });
            let batches = self.take_batches(events, &entries, budget, &writes_tx);
            drop(writes_tx);
            let written = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // A failed write ends the writer first and the batches after it.
            let (paths, seconds) = written?;
            batches?;
            self.outputs.extend(paths);
            *self.stage_seconds.entry("write".to_string()).or_default() += seconds;
            Ok(())
        })
    }

    /// Gathers the reader's events into batches of about `budget` decoded
    /// bytes, processes each and hands its files to the writer.
    fn take_batches(
        &mut self,
        events: Receiver<Result<Event>>,
        entries: &[Entry],
        budget: usize,
        writes: &SyncSender<Vec<StagedWrite>>,
    ) -> Result<()> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        loop {
            let waited = Instant::now();
            let event = events.recv();
            *self.stage_seconds.entry("input_wait".to_string()).or_default() += waited.elapsed().as_secs_f64();
            let end = match event {
                Ok(event) => {
                    let event = event?;
                    bytes += event.len();
                    batch.push(event);
                    false
                }
                Err(_) => true,
            };
            if (end && !batch.is_empty()) || bytes >= budget {
                let staged = self.process_batch(std::mem::take(&mut batch), entries)?;
                bytes = 0;
                if !staged.is_empty() {
                    writes.send(staged).map_err(|_| Error::ReadStopped)?;
                }
            }
            if end {
                return Ok(());
            }
        }
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

    /// Parses, cleans and deduplicates one batch of pieces (and records
    /// the files that ended in it); returns the layer files to stage for it.
    fn process_batch(&mut self, batch: Vec<Event>, entries: &[Entry]) -> Result<Vec<StagedWrite>> {
        let span = info_span!("batch", events = batch.len());
        let _enter = span.enter();
        let lineage_time = self.started_at.timestamp_micros();
        let parsed: Vec<Parsed> = self.timed("bronze", |run| {
            let (rules, run_id) = (&run.rules, run.run_id.as_str());
            batch
                .into_par_iter()
                .map(|event| match event {
                    Event::Piece { file, piece } => {
                        let mut builder = BronzeBuilder::with_capacity(piece.len() / 96 + 16);
                        let stats = input::read_piece(&piece, &mut builder);
                        drop(piece);
                        let lineage =
                            Lineage { source_file: &entries[file].relative, ingested_at_micros: lineage_time, run_id };
                        let evaluated = silver::evaluate(builder.finish(lineage)?, rules)?;
                        Ok(Parsed::Piece { file, evaluated, stats })
                    }
                    Event::Done { file, outcome } => Ok(Parsed::Done { file, outcome }),
                })
                .collect::<Result<_>>()
        })?;
        let mut evaluated = Vec::new();
        for parsed in parsed {
            match parsed {
                Parsed::Piece { file, evaluated: piece, stats } => {
                    self.reading.entry(file).or_default().add(stats);
                    evaluated.push(piece);
                }
                Parsed::Done { file, outcome } => self.file_done(&entries[file], file, outcome),
            }
        }
        if evaluated.is_empty() {
            return Ok(Vec::new());
        }

        self.timed("dedupe", |run| {
            for (date, load) in run.dedupe.dates_to_load(&evaluated) {
                if run.options.full_refresh {
                    run.dedupe.preload(date, Load::Full, []);
                    continue;
                }
                let probe = (load == Load::Probe).then(|| Dedupe::candidate_ids(&evaluated, date));
                let ids = committed_ids(&run.output, date, probe.as_ref())?;
                run.dedupe.preload(date, load, ids);
            }
            run.dedupe.apply(&mut evaluated);
            Ok(())
        })?;

        let cleaned = self.timed("silver", |_| {
            evaluated
                .into_par_iter()
                .map(|evaluated| {
                    let bronze = evaluated.bronze().clone();
                    Ok((bronze, silver::split(evaluated)?))
                })
                .collect::<Result<Vec<_>>>()
        })?;

        // Gather the batch into one file per layer partition.
        let batch_no = self.batches;
        self.batches += 1;
        let ingest_date = self.started_at.format("%Y-%m-%d").to_string();
        let part = format!("part-{}-{batch_no:05}.parquet", self.run_id);
        let mut bronze_frames = Vec::new();
        let mut reject_frames = Vec::new();
        let mut event_frames: BTreeMap<i32, Vec<DataFrame>> = BTreeMap::new();
        for (bronze, cleaned) in cleaned {
            self.rows.bronze += bronze.height() as u64;
            self.rows.silver_rejects += cleaned.rejects.height() as u64;
            for (count, total) in cleaned.reject_counts.iter().zip(self.reject_counts.iter_mut()) {
                *total += count;
            }
            self.counters.add(&cleaned.counters);
            for (date, events) in cleaned.events {
                self.rows.silver_events += events.height() as u64;
                event_frames.entry(date).or_default().push(events);
            }
            bronze_frames.push(bronze);
            reject_frames.push(cleaned.rejects);
        }
        let mut writes = vec![
            (format!("{}/{part}", layout::partition(BRONZE, "ingest_date", &ingest_date)), bronze_frames),
            (format!("{}/{part}", layout::partition(SILVER_REJECTS, "ingest_date", &ingest_date)), reject_frames),
        ];
        for (date, frames) in event_frames {
            self.touched_dates.insert(date);
            writes.push((
                format!("{}/{part}", layout::partition(SILVER_EVENTS, "event_date", &format_date(date))),
                frames,
            ));
        }
        info!(bronze_rows = self.rows.bronze, silver_events = self.rows.silver_events, "Processed batch.");
        Ok(writes)
    }

    /// Records how reading candidate `file` ended, after all its pieces.
    fn file_done(&mut self, entry: &Entry, file: usize, outcome: FileOutcome) {
        let stats = self.reading.remove(&file).unwrap_or_default();
        match outcome {
            FileOutcome::Unchanged => self.files_skipped += 1,
            FileOutcome::Read { content_hash } => self.files.push(FileRecord {
                path: entry.relative.clone(),
                size: entry.size,
                content_hash,
                last_modified: entry.last_modified,
                rows: stats.records,
                malformed: stats.malformed,
            }),
            FileOutcome::Unreadable(file) => {
                warn!(path = file.path, error = file.error, "Skipping an unreadable input file.");
                self.unreadable.push(file);
            }
        }
    }

    /// Recomputes the gold partition of every touched date from all of its
    /// clean events: committed ones plus this run's staged ones. When the
    /// date already has a gold partition, only the minutes this run added
    /// events to are aggregated again, from all of their events; the other
    /// rows are kept as they are (their events did not change).
    fn write_gold(&mut self) -> Result<()> {
        let dates: Vec<i32> = self.touched_dates.iter().copied().collect();
        // One date at a time (bounds memory to one date's events); polars
        // and the file reads parallelize within it.
        let results = dates.iter().map(|&date| self.gold_partition(date)).collect::<Result<Vec<_>>>()?;
        for (path, rows) in results {
            self.rows.gold += rows;
            self.outputs.push(path);
        }
        info!(partitions = dates.len(), rows = self.rows.gold, "Wrote gold.");
        Ok(())
    }

    /// Stages one date's gold partition; returns its path and row count.
    fn gold_partition(&self, date: i32) -> Result<(String, u64)> {
        let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
        let path = format!("{}/{GOLD_FILE}", layout::partition(GOLD, "event_date", &format_date(date)));
        let committed = if self.options.full_refresh { Vec::new() } else { parquet_files(&self.output, &dir)? };
        let staged_prefix = format!("{dir}/");
        let staged: Vec<String> = self
            .outputs
            .iter()
            .filter(|p| p.starts_with(&staged_prefix))
            .map(|p| layout::staged(&self.run_id, p))
            .collect();
        let read = |path: &String| self.output.get_parquet(path, Some(&gold::INPUT_COLUMNS));
        let previous = if committed.is_empty() { None } else { self.output.get_parquet_opt(&path)? };
        // Committed events first, then this run's: the order a single run sees.
        let mut metrics = match previous {
            None => {
                let sources: Vec<&String> = committed.iter().chain(&staged).collect();
                let frames = sources.par_iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
                gold::aggregate(concat_frames(frames)?.lazy())?
            }
            Some(previous) => {
                let added = staged.par_iter().map(read).collect::<Result<Vec<_>>>()?;
                let minutes = gold::minutes_of(&added)?;
                let mut frames =
                    committed.par_iter().map(|p| gold::events_in(&read(p)?, &minutes)).collect::<Result<Vec<_>>>()?;
                frames.extend(added);
                let fresh = gold::aggregate(concat_frames(frames)?.lazy())?;
                gold::replace_minutes(previous, fresh, &minutes)?
            }
        };
        self.output.put_parquet(&layout::staged(&self.run_id, &path), &mut metrics)?;
        Ok((path, metrics.height() as u64))
    }

    fn status(&self) -> RunStatus {
        if self.reject_ratio() > self.config.max_reject_ratio
            || self.unreadable.len() as u64 > self.config.max_unreadable_files
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
            input: self.config.input.clone(),
            output: self.config.output.clone(),
            full_refresh: self.options.full_refresh,
            files: self.files.clone(),
            unreadable_files: self.unreadable.clone(),
            max_unreadable_files: self.config.max_unreadable_files,
            files_skipped: self.files_skipped,
            rows: self.rows,
            rejects_by_reason: Reason::ALL
                .iter()
                .zip(self.reject_counts)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.code().to_string(), n))
                .collect(),
            reject_ratio: self.reject_ratio(),
            max_reject_ratio: self.config.max_reject_ratio,
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

/// One layer file to stage: its path relative to the output root and the
/// frames (one per piece of input) it is made of.
type StagedWrite = (String, Vec<DataFrame>);

/// A batch is about `batch_rows` rows of this many decoded bytes each.
const BATCH_BYTES_PER_ROW: usize = 100;
/// Pieces a batch is cut into, so that every core has work.
const PIECES_PER_BATCH: usize = 8;

/// One reader event after parsing.
enum Parsed {
    Piece { file: usize, evaluated: Evaluated, stats: ReadStats },
    Done { file: usize, outcome: FileOutcome },
}

/// Encodes and stages one batch's files in parallel; returns the staged paths.
fn write_staged(output: &Storage, run_id: &str, writes: Vec<StagedWrite>) -> Result<Vec<String>> {
    let written = writes
        .into_par_iter()
        .map(|(path, frames)| {
            let mut df = concat_frames(frames)?;
            if df.height() == 0 {
                return Ok(None);
            }
            output.put_parquet(&layout::staged(run_id, &path), &mut df)?;
            Ok(Some(path))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(written.into_iter().flatten().collect())
}

/// Event id fingerprints committed on `date` by earlier runs; with `probe`,
/// only those in it (a small incremental batch need not hold millions).
fn committed_ids(
    output: &Storage,
    date: i32,
    probe: Option<&HashSet<u128, impl BuildHasher + Sync>>,
) -> Result<Vec<u128>> {
    let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
    let per_file = parquet_files(output, &dir)?
        .par_iter()
        .map(|path| {
            let df = output.get_parquet(path, Some(&[EVENT_ID]))?;
            let column =
                df.column(EVENT_ID).and_then(|c| c.str()).map_err(Error::polars("reading committed event ids"))?;
            let ids = column.iter().flatten().map(silver::fingerprint);
            Ok(match probe {
                Some(probe) => ids.filter(|id| probe.contains(id)).collect(),
                None => ids.collect::<Vec<u128>>(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(per_file.concat())
}

/// Published `*.parquet` objects under `dir`.
fn parquet_files(output: &Storage, dir: &str) -> Result<Vec<String>> {
    Ok(output.list(dir)?.into_iter().map(|e| e.relative).filter(|p| p.ends_with(".parquet")).collect())
}

fn concat_frames(mut frames: Vec<DataFrame>) -> Result<DataFrame> {
    let Some(mut first) = frames.first().cloned() else {
        return Ok(DataFrame::empty());
    };
    for frame in frames.drain(1..) {
        first.vstack_mut_owned(frame).map_err(Error::polars("concatenating frames"))?;
    }
    first.rechunk_mut();
    Ok(first)
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
