//! The local engine's rule 5 beyond its memory budget (see
//! [`crate::silver::Dedupe`]): the ids of rows decided new are spilled, the
//! bronze rows of deferred rows are staged, and after the last batch the
//! deferred rows are evaluated again and decided in processing order.
//!
//! Both live under `_staging/<run_id>/_local/`, which the run's commit (or
//! the next run, after a crash) removes with the rest of its staging.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use polars::prelude::DataFrame;
use rayon::prelude::*;
use tracing::info;

use super::{RunContext, Tally};
use crate::error::Result;
use crate::frames::concat_frames;
use crate::layout::{self, SILVER_EVENTS, SILVER_REJECTS, STAGING};
use crate::runs::id_index;
use crate::silver::{self, CANDIDATE_COLUMNS, FingerprintSet, Resolver, timestamp::format_date};

/// The engine's scratch folder inside the run's staging.
const SCRATCH: &str = "_local";
/// Spilled ids buffered before they are written (16 bytes each: 32 MiB).
const SPILL_BUFFER_IDS: usize = 2 << 20;
/// Deferred bronze rows buffered before they are written as one file.
const DEFERRED_FILE_ROWS: usize = 64 << 10;

/// Ids of rows decided new, by date, in chunk files of 16-byte fingerprints.
#[derive(Default)]
pub(super) struct Spill {
    buffered: BTreeMap<i32, Vec<u128>>,
    buffered_ids: usize,
    chunks: BTreeMap<i32, Vec<String>>,
    written: usize,
}

impl Spill {
    pub fn add(&mut self, run: &RunContext, ids: BTreeMap<i32, Vec<u128>>) -> Result<()> {
        for (date, ids) in ids {
            self.buffered_ids += ids.len();
            match self.buffered.entry(date) {
                // The switch hands over millions at once: take them, do not copy them.
                Entry::Vacant(slot) => drop(slot.insert(ids)),
                Entry::Occupied(mut slot) => slot.get_mut().extend(ids),
            }
        }
        if self.buffered_ids >= SPILL_BUFFER_IDS { self.flush(run) } else { Ok(()) }
    }

    pub(crate) fn flush(&mut self, run: &RunContext) -> Result<()> {
        for (date, ids) in std::mem::take(&mut self.buffered) {
            let path = format!("{}/ids/event_date={}/chunk-{:05}.bin", scratch(run), format_date(date), self.written);
            self.written += 1;
            let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            run.output.put(&path, bytes)?;
            self.chunks.entry(date).or_default().push(path);
        }
        self.buffered_ids = 0;
        Ok(())
    }

    /// The spilled ids of `date` that are in `probe`.
    fn find(&self, run: &RunContext, date: i32, probe: &FingerprintSet) -> Result<FingerprintSet> {
        let mut found = FingerprintSet::default();
        for path in self.chunks.get(&date).into_iter().flatten() {
            let bytes = run.output.get(path)?;
            let ids = bytes.chunks_exact(16).map(|b| u128::from_le_bytes(b.try_into().unwrap_or_default()));
            found.extend(ids.filter(|id| probe.contains(id)));
        }
        Ok(found)
    }
}

/// Bronze rows of deferred rows, in processing order, in files of about
/// [`DEFERRED_FILE_ROWS`] rows.
#[derive(Default)]
pub(super) struct Deferred {
    buffered: Vec<DataFrame>,
    buffered_rows: usize,
    files: Vec<String>,
}

impl Deferred {
    pub fn add(&mut self, run: &RunContext, frames: Vec<DataFrame>) -> Result<()> {
        self.buffered_rows += frames.iter().map(DataFrame::height).sum::<usize>();
        self.buffered.extend(frames);
        if self.buffered_rows >= DEFERRED_FILE_ROWS { self.flush(run) } else { Ok(()) }
    }

    fn flush(&mut self, run: &RunContext) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let df = concat_frames(std::mem::take(&mut self.buffered))?;
        let path = format!("{}/deferred/part-{:05}.parquet", scratch(run), self.files.len());
        run.output.put_parquet(&path, &df)?;
        self.files.push(path);
        self.buffered_rows = 0;
        Ok(())
    }

    /// Decides the deferred rows, whose ids are `ids` by date, and stages
    /// them as silver events or `duplicate_event_id` rejects. An id comes
    /// before them if it was spilled, committed (unless a full refresh) or
    /// on an earlier deferred row. Returns what was staged, counted, and
    /// the dates that received events.
    pub fn resolve(
        mut self,
        run: &RunContext,
        mut spill: Spill,
        ids: HashMap<i32, FingerprintSet>,
        outputs: &mut Vec<String>,
    ) -> Result<(Tally, BTreeSet<i32>)> {
        spill.flush(run)?;
        self.flush(run)?;
        let earlier = ids
            .into_par_iter()
            .map(|(date, probe)| {
                let mut found = spill.find(run, date, &probe)?;
                if !run.full_refresh {
                    id_index::committed_ids(run.output, date, Some(&probe), |ids| found.extend(ids))?;
                }
                Ok((date, found))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        let mut resolver = Resolver::new(earlier);
        let (mut tally, mut dates) = (Tally::default(), BTreeSet::new());
        for (k, path) in self.files.iter().enumerate() {
            let mut evaluated = silver::evaluate(run.output.get_parquet(path, None)?, run.rules)?;
            resolver.apply(&mut evaluated);
            let mut cleaned = silver::split(evaluated)?;
            tally.add(&cleaned);
            let part = format!("part-{}-deferred-{k:05}.parquet", run.run_id);
            let rejects = (format!("{}/{part}", layout::partition(SILVER_REJECTS, "ingest_date", run.ingest_date)), {
                std::mem::take(&mut cleaned.rejects)
            });
            dates.extend(cleaned.events.iter().map(|(date, _)| *date));
            let events = cleaned.events.into_iter().map(|(date, df)| {
                let path = format!("{}/{part}", layout::partition(SILVER_EVENTS, "event_date", &format_date(date)));
                (path, df.drop_many(CANDIDATE_COLUMNS))
            });
            for (path, df) in std::iter::once(rejects).chain(events) {
                if df.height() > 0 {
                    run.output.put_parquet(&layout::staged(run.run_id, &path), &df)?;
                    let index = id_index::stage(run.output, run.run_id, &path, &df)?;
                    outputs.push(path);
                    outputs.extend(index);
                }
            }
        }
        info!(files = self.files.len(), events = tally.events, duplicates = tally.rejects, "Decided deferred rows.");
        run.output.delete_all(&scratch(run))?;
        Ok((tally, dates))
    }
}

fn scratch(run: &RunContext) -> String {
    format!("{STAGING}/{}/{SCRATCH}", run.run_id)
}
