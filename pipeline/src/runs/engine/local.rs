//! The local engine: the global stages on this machine, with polars.
//!
//! Rule 5 runs batch by batch as the batches come ([`Dedupe`]), so clean
//! rows are staged straight into silver. Gold is recomputed at the end,
//! one date at a time.
//!
//! Memory is bounded by the batch size, except for the event id
//! fingerprints of the dates a run touches (16 bytes an id), which grow
//! with the data, and one date's gold input columns.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;

use polars::prelude::*;
use rayon::prelude::*;
use tracing::info;

use super::{Engine, Finished, RunContext, StagedWrite};
use crate::error::{Error, Result};
use crate::gold;
use crate::layout::{self, GOLD, GOLD_FILE, SILVER_EVENTS};
use crate::runs::execute::{concat_frames, parquet_files};
use crate::silver::{self, CANDIDATE_COLUMNS, Dedupe, Evaluated, Load, columns::EVENT_ID, timestamp::format_date};
use crate::storage::Storage;

#[derive(Default)]
pub struct LocalEngine {
    dedupe: Dedupe,
}

impl Engine for LocalEngine {
    fn check_batch(&mut self, run: &RunContext, batch: &mut [Evaluated]) -> Result<()> {
        for (date, load) in self.dedupe.dates_to_load(batch) {
            if run.full_refresh {
                self.dedupe.preload(date, Load::Full, []);
                continue;
            }
            let probe = (load == Load::Probe).then(|| Dedupe::candidate_ids(batch, date));
            let ids = committed_ids(run.output, date, probe.as_ref())?;
            self.dedupe.preload(date, load, ids);
        }
        self.dedupe.apply(batch);
        Ok(())
    }

    fn stage_events(&self, date: &str, part: &str, frames: Vec<DataFrame>) -> StagedWrite {
        // Duplicates are already out: the rows are silver events as they are.
        let frames = frames.into_iter().map(|df| df.drop_many(CANDIDATE_COLUMNS)).collect();
        (format!("{}/{part}", layout::partition(SILVER_EVENTS, "event_date", date)), frames)
    }

    fn finish(&mut self, run: &RunContext, outputs: &mut Vec<String>, dates: &BTreeSet<i32>) -> Result<Finished> {
        // Duplicate detection is done: free its ids before gold needs memory.
        self.dedupe = Dedupe::default();
        let mut finished = Finished { gold_dates: dates.clone(), ..Finished::default() };
        // One date at a time (bounds memory to one date's events); polars
        // and the file reads parallelize within it.
        for &date in dates {
            let (path, rows) = gold_partition(run, outputs, date)?;
            finished.gold_rows += rows;
            outputs.push(path);
        }
        info!(partitions = dates.len(), rows = finished.gold_rows, "Wrote gold.");
        Ok(finished)
    }
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

/// Stages one date's gold partition, recomputed from all of its clean
/// events: committed ones plus this run's staged ones. When the date
/// already has a gold partition, only the minutes this run added events to
/// are aggregated again, from all of their events; the other rows are kept
/// as they are (their events did not change). Returns its path and rows.
fn gold_partition(run: &RunContext, staged: &[String], date: i32) -> Result<(String, u64)> {
    let output = run.output;
    let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
    let path = format!("{}/{GOLD_FILE}", layout::partition(GOLD, "event_date", &format_date(date)));
    let committed = if run.full_refresh { Vec::new() } else { parquet_files(output, &dir)? };
    let staged_prefix = format!("{dir}/");
    let staged: Vec<String> =
        staged.iter().filter(|p| p.starts_with(&staged_prefix)).map(|p| layout::staged(run.run_id, p)).collect();
    let read = |path: &String| output.get_parquet(path, Some(&gold::INPUT_COLUMNS));
    let previous = if committed.is_empty() { None } else { output.get_parquet_opt(&path)? };
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
    output.put_parquet(&layout::staged(run.run_id, &path), &mut metrics)?;
    Ok((path, metrics.height() as u64))
}
