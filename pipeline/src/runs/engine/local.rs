//! The local engine: the global stages on this machine, with polars.
//!
//! Rule 5 runs batch by batch as the batches come ([`Dedupe`]), so clean
//! rows are staged straight into silver. Committed ids are probed through
//! the silver files' id indexes ([`id_index`]). Gold is recomputed at the
//! end, for the (service, minute) rows the run touched.
//!
//! Memory beyond the batches is bounded by the run's memory budget. Event
//! ids are held exactly up to half of it; beyond that, rows the Bloom
//! filter cannot decide are deferred and decided after the last batch
//! ([`deferred`](super::deferred)). Gold reads a date in as many passes
//! (each a range of its minutes) as keep its input within the budget.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use polars::prelude::*;
use polars_parquet::parquet::metadata::FileMetadata;
use rayon::prelude::*;
use tracing::info;

use super::deferred::{Deferred, Spill};
use super::{Engine, Finished, RunContext, StagedWrite};
use crate::error::Result;
use crate::frames::concat_frames;
use crate::gold;
use crate::layout::{self, GOLD, SILVER_EVENTS};
use crate::parquet::{self, RowGroup};
use crate::runs::id_index;
use crate::silver::columns::{EVENT_TIME, SERVICE};
use crate::silver::{CANDIDATE_COLUMNS, Dedupe, Evaluated, Load, timestamp::format_date};
use crate::storage::{Entry, Storage};

pub(crate) struct LocalEngine {
    dedupe: Dedupe,
    budget: usize,
    spill: Spill,
    deferred: Deferred,
}

impl LocalEngine {
    /// An engine that holds at most `budget` bytes beyond the batches.
    pub fn new(budget: usize) -> Self {
        Self { dedupe: Dedupe::with_budget(budget), budget, spill: Spill::default(), deferred: Deferred::default() }
    }
}

impl Engine for LocalEngine {
    fn check_batch(&mut self, run: &RunContext, batch: &mut [Evaluated]) -> Result<()> {
        for (date, load) in self.dedupe.dates_to_load(batch) {
            if run.full_refresh {
                self.dedupe.preload(date, Load::Full, []);
                continue;
            }
            let probe = (load == Load::Probe).then(|| Dedupe::candidate_ids(batch, date));
            self.dedupe.preload(date, load, []);
            id_index::committed_ids(run.output, date, probe.as_ref(), |ids| self.dedupe.preload(date, load, ids))?;
        }
        let was_bounded = self.dedupe.is_bounded();
        self.dedupe.apply(batch);
        if !self.dedupe.is_bounded() {
            return Ok(());
        }
        if !was_bounded {
            let ids = self.dedupe.spilled_len();
            info!(budget_mib = self.budget >> 20, ids, "Event ids outgrew half the memory budget: spilling them.");
        }
        self.spill.add(run, self.dedupe.take_spilled())?;
        let deferred = batch.iter().filter_map(|file| file.deferred_bronze().transpose()).collect::<Result<_>>()?;
        self.deferred.add(run, deferred)
    }

    fn stage_events(&self, date: &str, part: &str, frames: Vec<DataFrame>) -> StagedWrite {
        // Duplicates are already out: the rows are silver events as they are.
        let frames = frames.into_iter().map(|df| df.drop_many(CANDIDATE_COLUMNS)).collect();
        (format!("{}/{part}", layout::partition(SILVER_EVENTS, "event_date", date)), frames)
    }

    fn finish(&mut self, run: &RunContext, outputs: &mut Vec<String>, dates: &BTreeSet<i32>) -> Result<Finished> {
        let bounded = self.dedupe.is_bounded();
        let (deferred_ids, _) = self.dedupe.take_deferred();
        // Duplicate detection is done: free its ids before gold needs memory.
        self.dedupe = Dedupe::default();
        let mut finished = Finished { gold_dates: dates.clone(), ..Finished::default() };
        if bounded {
            let (spill, deferred) = (std::mem::take(&mut self.spill), std::mem::take(&mut self.deferred));
            let (tally, dates) = deferred.resolve(run, spill, deferred_ids, outputs)?;
            finished.deferred = tally;
            finished.gold_dates.extend(dates);
        }
        // One date at a time; polars and the file reads parallelize within it.
        for &date in &finished.gold_dates {
            let (path, rows) = gold_partition(run, self.budget, date)?;
            finished.gold_rows += rows;
            outputs.push(path);
        }
        info!(partitions = finished.gold_dates.len(), rows = finished.gold_rows, "Wrote gold.");
        Ok(finished)
    }
}

/// Bytes gold may hold in memory per byte of silver Parquet it aggregates:
/// the four columns decoded, gathered and grouped. An upper bound: a
/// 100M-event run under glibc's malloc peaked at 2.2 GB while aggregating
/// dates of 198 MB of silver (13.8M events) in one pass, arenas included.
const GOLD_BYTES_PER_SILVER_BYTE: f64 = 11.0;
/// Passes over a date at most (each reads all of its files): an hour each.
const MAX_GOLD_PASSES: f64 = 24.0;
const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTE_MICROS: i64 = 60_000_000;

/// Stages one date's gold partition, recomputed from all of its clean
/// events: committed ones plus this run's staged ones. When the date
/// already has a gold partition, only its rows (service, minute) that this
/// run added events to are aggregated again, from all of their events; the
/// other rows are kept as they are (their events did not change). The date
/// is read in as many passes as keep the events aggregated within `budget`
/// (assuming they are spread evenly over its rows), each a range of its
/// minutes (a minute's events are never split). Returns its path and rows.
fn gold_partition(run: &RunContext, budget: usize, date: i32) -> Result<(String, u64)> {
    let output = run.output;
    let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
    let path = layout::gold_file(&format_date(date), run.run_id);
    let committed = if run.full_refresh { Vec::new() } else { output.parquet_entries(&dir)? };
    let staged = output.parquet_entries(&layout::staged(run.run_id, &dir))?;
    let previous = match committed.is_empty() {
        true => None,
        false => previous_gold(output, date)?.map(|p| output.get_parquet(&p, None)).transpose()?,
    };
    let read = |entry: &Entry, columns: &[&str]| output.get_parquet(&entry.relative, Some(columns));
    // Only the rows this run added events to, when the date has gold already.
    let touched = match previous {
        None => None,
        Some(_) => {
            let frames = staged.par_iter().map(|e| read(e, &[SERVICE, EVENT_TIME])).collect::<Result<Vec<_>>>()?;
            Some(gold::Touched::of(&frames)?)
        }
    };
    // Committed events first, then this run's: the order a single run sees.
    let sources: Vec<&Entry> = committed.iter().chain(&staged).collect();
    // What a pass holds: its share of the date's events, of the touched rows only if any.
    let kept = match (&previous, &touched) {
        (Some(previous), Some(touched)) => touched.len() as f64 / previous.height().max(touched.len()) as f64,
        _ => 1.0,
    };
    let bytes = sources.iter().map(|e| e.size).sum::<u64>() as f64 * GOLD_BYTES_PER_SILVER_BYTE * kept;
    let passes = (bytes / budget as f64).ceil().clamp(1.0, MAX_GOLD_PASSES) as i64;
    let span = (MINUTES_PER_DAY + passes - 1) / passes * MINUTE_MICROS;
    let day_start = i64::from(date) * MINUTES_PER_DAY * MINUTE_MICROS;
    // Unless a pass takes every event of the date, each file's row groups
    // with the event times they span, from its footer: a pass reads only
    // the groups with events in its range and, when the date has gold, with
    // a touched row. Input that arrives roughly in time order (most
    // exports) is then read about once, not once per pass; a merged silver
    // file (ordered by minute) only for the minutes a run touched.
    let whole = passes == 1 && touched.is_none();
    let footers: Vec<(Arc<FileMetadata>, Vec<RowGroup>)> = match whole {
        true => Vec::new(),
        false => sources
            .par_iter()
            .map(|e| {
                let footer = output.parquet_footer(e)?;
                let groups = parquet::row_groups(&footer, EVENT_TIME);
                Ok((Arc::new(footer), groups))
            })
            .collect::<Result<_>>()?,
    };
    let (mut parts, mut reads) = (Vec::new(), 0);
    for pass in 0..passes {
        let range = day_start + pass * span..day_start + (pass + 1) * span;
        let keep = |service: &str, minute: i64| {
            range.contains(&minute) && touched.as_ref().is_none_or(|t| t.contains(service, minute))
        };
        let needed = |group: &RowGroup| match group.bounds {
            None => true,
            Some((first, last)) => {
                first < range.end && range.start <= last && touched.as_ref().is_none_or(|t| t.any_between(first, last))
            }
        };
        let frames = sources
            .par_iter()
            .enumerate()
            .filter_map(|(i, e)| match whole {
                true => Some(read(e, &gold::INPUT_COLUMNS)),
                false => {
                    let (footer, groups) = &footers[i];
                    let rows = row_ranges(groups, needed);
                    let read = || output.get_parquet_rows(&e.relative, footer, &gold::INPUT_COLUMNS, &rows);
                    let df = (!rows.is_empty()).then(read);
                    df.map(|df| df.and_then(|df| gold::events_in(&df, keep)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        reads += frames.len();
        parts.push(gold::aggregate(frames)?);
    }
    let fresh = if parts.len() == 1 { parts.swap_remove(0) } else { gold::sorted(concat_frames(parts)?)? };
    let metrics = match (previous, &touched) {
        (Some(previous), Some(touched)) => gold::replace_rows(previous, fresh, touched)?,
        _ => fresh,
    };
    if passes > 1 {
        info!(date = format_date(date), passes, files = sources.len(), reads, "Read a date for gold in passes.");
    }
    output.put_parquet(&layout::staged(run.run_id, &path), &metrics)?;
    Ok((path, metrics.height() as u64))
}

/// The rows of the `groups` that are `needed`, adjacent groups joined.
fn row_ranges(groups: &[RowGroup], needed: impl Fn(&RowGroup) -> bool) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for group in groups.iter().filter(|g| needed(g)) {
        match ranges.last_mut() {
            Some(last) if last.end == group.rows.start => last.end = group.rows.end,
            _ => ranges.push(group.rows.clone()),
        }
    }
    ranges
}

/// The gold file a date has now. A partition holds one file whenever no run
/// is publishing (publishing deletes the file a new one replaced); should
/// a crash leave two, the newer run's is the current one.
fn previous_gold(output: &Storage, date: i32) -> Result<Option<String>> {
    let files = output.parquet_files(&layout::partition(GOLD, "event_date", &format_date(date)))?;
    Ok(files.into_iter().max())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_needed_row_groups_are_read_as_few_ranges() {
        let groups: Vec<RowGroup> =
            [(0, 10, Some((0, 5))), (10, 20, None), (20, 25, Some((6, 9))), (25, 40, Some((10, 12)))]
                .map(|(start, end, bounds)| RowGroup { rows: start..end, bounds })
                .to_vec();
        let below = |limit: i64| move |g: &RowGroup| g.bounds.is_none_or(|(first, _)| first < limit);
        let rows = |start: usize, end: usize| start..end;
        assert_eq!(row_ranges(&groups, below(100)), [rows(0, 40)]);
        assert_eq!(row_ranges(&groups, below(6)), [rows(0, 20)]);
        assert_eq!(row_ranges(&groups, |g| g.bounds.is_some_and(|(first, _)| first != 6)), [0..10, 25..40]);
        assert_eq!(row_ranges(&groups, |_| false), Vec::<Range<usize>>::new());
    }
}
