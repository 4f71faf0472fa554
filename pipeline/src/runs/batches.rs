//! The batches of a run: the input is streamed in pieces of whole records
//! ([`super::ingest`]), parsed and cleaned on every core in batches of
//! about `batch_rows` rows, handed to the engine for duplicate checks, and
//! each batch's Parquet is written while the next batch is parsed.
//!
//! Memory is bounded by the batch size (and whatever the engine holds
//! for duplicate detection; see [`super::engine`]).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use indicatif::ProgressBar;
use polars::prelude::*;
use rayon::prelude::*;
use tracing::{info, info_span, warn};

use super::context::Context;
use super::engine::{StagedWrite, Tally};
use super::execute::Run;
use super::id_index;
use super::ingest::{Candidate, Event, FileOutcome, Reader};
use super::manifest::FileRecord;
use crate::bronze::{BronzeBuilder, Lineage};
use crate::error::{Error, Result};
use crate::frames::concat_frames;
use crate::input::{self, Limits, ReadStats};
use crate::layout::{self, BRONZE, SILVER_REJECTS};
use crate::pool;
use crate::silver::{self, Cleaned, Evaluated, timestamp::format_date};
use crate::storage::{Entry, Storage};

impl Run<'_> {
    /// Reads, parses, cleans and stages every candidate file. Three things
    /// overlap: one thread reads files in order and cuts them into pieces,
    /// this one parses and cleans a batch of pieces on every core, and one
    /// thread encodes and writes the previous batch's Parquet.
    pub(super) fn ingest(&mut self, candidates: Vec<Candidate>, progress: &ProgressBar) -> Result<()> {
        let budget = self.ctx.config.pipeline.batch_rows.saturating_mul(BATCH_BYTES_PER_ROW);
        let reader = Reader {
            input: self.ctx.input.clone(),
            limits: Limits {
                max_record_bytes: self.ctx.config.pipeline.max_record_bytes,
                chunk_bytes: (budget / PIECES_PER_BATCH).clamp(64 << 10, 8 << 20),
            },
            window: budget * 4,
            progress: progress.clone(),
        };
        let entries: Vec<Entry> = candidates.iter().map(|c| c.entry.clone()).collect();
        let (output, run_id) = (self.ctx.output.clone(), self.ctx.run_id.clone());
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
            self.totals.outputs.extend(paths);
            *self.totals.stage_seconds.entry("write".to_string()).or_default() += seconds;
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
            *self.totals.stage_seconds.entry("input_wait".to_string()).or_default() += waited.elapsed().as_secs_f64();
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

    /// Parses, cleans and deduplicates one batch of pieces (and records
    /// the files that ended in it); returns the layer files to stage for it.
    fn process_batch(&mut self, batch: Vec<Event>, entries: &[Entry]) -> Result<Vec<StagedWrite>> {
        let span = info_span!("batch", events = batch.len());
        let _enter = span.enter();
        let parsed = self.timed("bronze", |run| parse(&run.ctx, batch, entries))?;
        let mut evaluated = self.record_reads(parsed, entries);
        if evaluated.is_empty() {
            return Ok(Vec::new());
        }
        self.timed("dedupe", |run| {
            let context = run.ctx.for_engine();
            pool::install(|| run.engine.check_batch(&context, &mut evaluated))
        })?;
        let cleaned = self.timed("silver", |_| clean(evaluated))?;
        Ok(self.gather(cleaned))
    }

    /// Adds each piece's record counts to its file's, and records the files
    /// that ended in this batch; returns the pieces' evaluated rows.
    fn record_reads(&mut self, parsed: Vec<Parsed>, entries: &[Entry]) -> Vec<Evaluated> {
        let mut evaluated = Vec::new();
        for parsed in parsed {
            match parsed {
                Parsed::Piece { file, evaluated: piece, stats } => {
                    self.totals.reading.entry(file).or_default().add(stats);
                    evaluated.push(piece);
                }
                Parsed::Done { file, outcome } => self.file_done(&entries[file], file, outcome),
            }
        }
        evaluated
    }

    /// Gathers a cleaned batch into one file per layer partition and counts it.
    fn gather(&mut self, cleaned: Vec<(DataFrame, Cleaned)>) -> Vec<StagedWrite> {
        let batch_no = self.totals.batches;
        self.totals.batches += 1;
        let part = format!("part-{}-{batch_no:05}.parquet", self.ctx.run_id);
        let mut bronze_frames = Vec::new();
        let mut reject_frames = Vec::new();
        let mut event_frames: BTreeMap<i32, Vec<DataFrame>> = BTreeMap::new();
        let mut tally = Tally::default();
        for (bronze, cleaned) in cleaned {
            self.totals.rows.bronze += bronze.height() as u64;
            tally.add(&cleaned);
            for (date, events) in cleaned.events {
                event_frames.entry(date).or_default().push(events);
            }
            bronze_frames.push(bronze);
            reject_frames.push(cleaned.rejects);
        }
        self.totals.count(&tally);
        let ingest_date = &self.ctx.ingest_date;
        let mut writes = vec![
            (format!("{}/{part}", layout::partition(BRONZE, "ingest_date", ingest_date)), bronze_frames),
            (format!("{}/{part}", layout::partition(SILVER_REJECTS, "ingest_date", ingest_date)), reject_frames),
        ];
        for (date, frames) in event_frames {
            self.totals.candidate_dates.insert(date);
            writes.push(self.engine.stage_events(&format_date(date), &part, frames));
        }
        info!(
            bronze_rows = self.totals.rows.bronze,
            silver_events = self.totals.rows.silver_events,
            "Processed batch."
        );
        writes
    }

    /// Records how reading candidate `file` ended, after all its pieces.
    fn file_done(&mut self, entry: &Entry, file: usize, outcome: FileOutcome) {
        let stats = self.totals.reading.remove(&file).unwrap_or_default();
        match outcome {
            FileOutcome::Unchanged => self.totals.files_skipped += 1,
            FileOutcome::Read { content_hash } => self.totals.files.push(FileRecord {
                path: entry.relative.clone(),
                size: entry.size,
                content_hash,
                last_modified: entry.last_modified,
                rows: stats.records,
                malformed: stats.malformed,
            }),
            FileOutcome::Unreadable(file) => {
                warn!(path = file.path, error = file.error, "Skipping an unreadable input file.");
                self.totals.unreadable.push(file);
            }
        }
    }
}

/// A batch is about `batch_rows` rows of this many decoded bytes each.
const BATCH_BYTES_PER_ROW: usize = 100;
/// Pieces a batch is cut into, so that every core has work.
const PIECES_PER_BATCH: usize = 16;

/// One reader event after parsing.
enum Parsed {
    Piece { file: usize, evaluated: Evaluated, stats: ReadStats },
    Done { file: usize, outcome: FileOutcome },
}

/// Lands each piece of a batch in bronze and applies rules 1–4 to it, on
/// every core.
fn parse(ctx: &Context, batch: Vec<Event>, entries: &[Entry]) -> Result<Vec<Parsed>> {
    let lineage_time = ctx.started_at.timestamp_micros();
    let (rules, run_id) = (&ctx.rules, ctx.run_id.as_str());
    pool::install(|| {
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
    })
}

/// Splits each piece's rows into clean events and rejects (rules 6–7), on
/// every core; keeps each piece's bronze frame beside them.
fn clean(evaluated: Vec<Evaluated>) -> Result<Vec<(DataFrame, Cleaned)>> {
    pool::install(|| {
        evaluated
            .into_par_iter()
            .map(|evaluated| {
                let bronze = evaluated.bronze().clone();
                Ok((bronze, silver::split(evaluated)?))
            })
            .collect::<Result<Vec<_>>>()
    })
}

/// Encodes and stages one batch's files in parallel (silver events files
/// with their id indexes); returns the staged paths.
fn write_staged(output: &Storage, run_id: &str, writes: Vec<StagedWrite>) -> Result<Vec<String>> {
    let written = pool::install(|| {
        writes
            .into_par_iter()
            .map(|(path, frames)| {
                let df = concat_frames(frames)?;
                if df.height() == 0 {
                    return Ok(Vec::new());
                }
                output.put_parquet(&layout::staged(run_id, &path), &df)?;
                let index = id_index::stage(output, run_id, &path, &df)?;
                Ok(std::iter::once(path).chain(index).collect())
            })
            .collect::<Result<Vec<Vec<_>>>>()
    })?;
    Ok(written.into_iter().flatten().collect())
}
