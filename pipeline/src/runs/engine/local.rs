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
use crate::error::{Error, Result};
use crate::frames::concat_frames;
use crate::gold;
use crate::layout::{self, GOLD, SILVER_EVENTS};
use crate::parquet::{self, RowGroup};
use crate::runs::id_index;
use crate::silver::columns::{EVENT_TIME, SERVICE};
use crate::silver::{CANDIDATE_COLUMNS, Dedupe, Evaluated, Load, timestamp::format_date};
use crate::storage::{self, Entry, FOOTER_READ, Storage};
use crate::tables;

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
        let dates = finished.gold_dates.par_iter().map(|&date| DateSources::list(run, date)).collect::<Result<_>>()?;
        for (path, rows) in gold_partitions(run, self.budget, dates)? {
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

/// One date's silver event files: committed ones (none on a full refresh)
/// and this run's staged ones.
struct DateSources {
    date: i32,
    committed: Vec<Entry>,
    staged: Vec<Entry>,
}

impl DateSources {
    fn list(run: &RunContext, date: i32) -> Result<Self> {
        let output = run.output;
        let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
        let committed = if run.full_refresh { Vec::new() } else { tables::live_entries(output, &dir)? };
        let staged = output.parquet_entries(&layout::staged(run.run_id, &dir))?;
        Ok(Self { date, committed, staged })
    }

    /// The most gold may hold in memory to aggregate the date in one pass.
    fn most_bytes(&self) -> f64 {
        self.committed.iter().chain(&self.staged).map(|e| e.size).sum::<u64>() as f64 * GOLD_BYTES_PER_SILVER_BYTE
    }
}

/// Stages the dates' gold partitions, returning each one's path and rows
/// in the order of `dates`. When all of them fit the budget at once (a
/// scheduled run's few dates, late data included) they are computed side
/// by side: much of a small date's work (a gold file's decoding, merging
/// and encoding) runs on one core. Else one at a time, each with the whole
/// budget; polars and the file reads parallelize within a date.
fn gold_partitions(run: &RunContext, budget: usize, dates: Vec<DateSources>) -> Result<Vec<(String, u64)>> {
    match dates.iter().map(DateSources::most_bytes).sum::<f64>() <= budget as f64 {
        true => dates.into_par_iter().map(|date| gold_partition(run, budget, date)).collect(),
        false => dates.into_iter().map(|date| gold_partition(run, budget, date)).collect(),
    }
}

/// Stages one date's gold partition, recomputed from all of its clean
/// events: committed ones plus this run's staged ones. When the date
/// already has a gold partition, only its rows (service, minute) that this
/// run added events to are aggregated again, from all of their events; the
/// other rows are kept as they are (their events did not change). The date
/// is read in as many passes as keep the events aggregated within `budget`
/// (assuming they are spread evenly over its rows), each a range of its
/// minutes (a minute's events are never split). Returns its path and rows.
fn gold_partition(run: &RunContext, budget: usize, sources: DateSources) -> Result<(String, u64)> {
    let output = run.output;
    let most_bytes = sources.most_bytes();
    let DateSources { date, committed, staged } = sources;
    let path = layout::gold_file(&format_date(date), run.run_id);
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
    let passes = (most_bytes * kept / budget as f64).ceil().clamp(1.0, MAX_GOLD_PASSES) as i64;
    let span = (MINUTES_PER_DAY + passes - 1) / passes * MINUTE_MICROS;
    let day_start = i64::from(date) * MINUTES_PER_DAY * MINUTE_MICROS;
    // Unless a pass takes every event of the date, a file is read by its
    // row groups, with the event times they span from its footer: a pass
    // reads only the groups with events in its range and, when the date
    // has gold, with a touched row. The footers come first (a range read
    // each), so a file with no group a pass needs is not fetched, and of
    // one that has, only the needed groups' chunks of the gold columns are
    // read: input that arrives roughly in time order (most exports) is
    // read about once, not once per pass, and of a merged silver file
    // (ordered by minute) only the groups of the minutes a run touched.
    // With one pass, a file no larger than a footer read is fetched whole
    // once instead, its footer read from its bytes.
    let whole = passes == 1 && touched.is_none();
    let planned: Vec<Option<Groups>> = match whole {
        true => vec![None; sources.len()],
        false => sources
            .par_iter()
            .map(|e| match passes == 1 && e.size <= FOOTER_READ {
                true => Ok(None),
                false => Ok(Some(groups_of(output.parquet_footer(e)?))),
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
                false => read_groups(output, e, planned[i].as_ref(), needed)
                    .transpose()
                    .map(|df| df.and_then(|df| gold::events_in(&df, keep))),
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

/// A file's footer, and its row groups with the event times they span.
type Groups = (Arc<FileMetadata>, Vec<RowGroup>);

fn groups_of(footer: FileMetadata) -> Groups {
    let groups = parquet::row_groups(&footer, EVENT_TIME);
    (Arc::new(footer), groups)
}

/// The gold input columns of the rows of `entry`'s row groups that are
/// `needed`; `None` when none is. Of those groups, only the pages whose
/// event times are `needed` too are decoded ([`parquet::decode_pages`]; a
/// merged file's pages are small). `planned` is its footer and groups when
/// they were read before: then only the needed chunks are read. Else the
/// file (a small one) is fetched whole once and its groups come from its
/// bytes. polars' reader is not used here: on a file of a few rows, the
/// many a scheduled run reads for a date with late data, setting it up
/// costs several times the decoding.
fn read_groups(
    output: &Storage,
    entry: &Entry,
    planned: Option<&Groups>,
    needed: impl Fn(&RowGroup) -> bool + Sync,
) -> Result<Option<DataFrame>> {
    let unreadable = |source| Error::Parquet { action: "read", path: entry.relative.clone(), source };
    let read_now;
    let (fetched, (footer, groups)) = match planned {
        Some(planned) => (None, planned),
        None => {
            let bytes = output.get(&entry.relative)?;
            read_now = groups_of(parquet::footer(&bytes).map_err(unreadable)?);
            (Some(bytes), &read_now)
        }
    };
    if !groups.iter().any(&needed) {
        return Ok(None);
    }
    let keep = |i: usize| groups.get(i).is_some_and(&needed);
    let columns = &gold::INPUT_COLUMNS;
    match fetched {
        Some(bytes) => {
            let chunk = |range: Range<u64>| {
                let range = usize::try_from(range.start).ok()?..usize::try_from(range.end).ok()?;
                bytes.get(range.clone()).map(|_| bytes.slice(range))
            };
            storage::decode_pages(&entry.relative, footer, columns, keep, EVENT_TIME, &needed, chunk)
        }
        None => output.get_parquet_pages(entry, footer, columns, keep, EVENT_TIME, &needed),
    }
}

/// The gold file a date has now: the newest run's. A partition holds one
/// file whenever no run is publishing, unless replaced files are kept for
/// time travel; should a crash leave two, the newer run's is also the
/// current one.
fn previous_gold(output: &Storage, date: i32) -> Result<Option<String>> {
    let files = output.parquet_files(&layout::partition(GOLD, "event_date", &format_date(date)))?;
    Ok(files.into_iter().max())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` events a minute apart from minute 0, one row group per 10.
    fn stored_events(output: &Storage, n: i64) -> Entry {
        use crate::silver::columns::{LATENCY_MS, STATUS_CODE};
        let times = Int64Chunked::from_vec(EVENT_TIME.into(), (0..n).map(|i| i * MINUTE_MICROS).collect());
        let df = DataFrame::new(
            n as usize,
            vec![
                Column::new(SERVICE.into(), vec!["a"; n as usize]),
                times.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_column(),
                Column::new(LATENCY_MS.into(), (0..n).map(|i| i as f64).collect::<Vec<_>>()),
                Column::new(STATUS_CODE.into(), vec![200i32; n as usize]),
            ],
        )
        .expect("frame");
        output.put_parquet_in_groups("events.parquet", &df, 10, &[EVENT_TIME]).expect("put");
        output.list("").expect("list").into_iter().next().expect("the file")
    }

    #[test]
    fn a_file_is_read_by_its_needed_groups_whether_its_footer_came_first_or_not() {
        let output = Storage::open(&format!("memory://local-{}", uuid::Uuid::new_v4()), true).expect("memory");
        let entry = stored_events(&output, 40);
        let minutes = |df: &DataFrame| -> Vec<i64> {
            let times = df.column(EVENT_TIME).expect("time").datetime().expect("datetime").physical().clone();
            times.iter().flatten().map(|t| t / MINUTE_MICROS).collect()
        };
        // Minutes 12 and 31: the second and fourth groups.
        let needed = |g: &RowGroup| {
            g.bounds.is_some_and(|(first, last)| [12, 31].iter().any(|m| (first..=last).contains(&(m * MINUTE_MICROS))))
        };
        let planned = groups_of(output.parquet_footer(&entry).expect("footer"));
        assert_eq!(planned.1.len(), 4);
        for planned in [Some(&planned), None] {
            let df = read_groups(&output, &entry, planned, needed).expect("read").expect("rows");
            assert_eq!(minutes(&df), (10..20).chain(30..40).collect::<Vec<_>>());
            assert_eq!(df.get_column_names(), gold::INPUT_COLUMNS);
            assert!(read_groups(&output, &entry, planned, |_| false).expect("read").is_none());
        }
    }

    /// Only the second group's chunks are fetched: the first, left zeros,
    /// must not be decoded (polars goes through every group of a file of
    /// few groups column by column, unless its footer lists only the
    /// needed one).
    #[test]
    fn a_later_group_of_a_file_of_two_groups_is_read_alone() {
        let output = Storage::open(&format!("memory://local-{}", uuid::Uuid::new_v4()), true).expect("memory");
        let entry = stored_events(&output, 20);
        let planned = groups_of(output.parquet_footer(&entry).expect("footer"));
        assert_eq!(planned.1.len(), 2);
        let second = |g: &RowGroup| g.rows.start == 10;
        let df = read_groups(&output, &entry, Some(&planned), second).expect("read").expect("rows");
        assert_eq!(df.height(), 10);
        let minutes = df.column(EVENT_TIME).expect("time").datetime().expect("datetime").physical().clone();
        assert_eq!(
            minutes.iter().flatten().map(|t| t / MINUTE_MICROS).collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
    }
}
