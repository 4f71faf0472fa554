//! Gold for the dates a run touched, recomputed from all of their clean
//! events: committed ones plus this run's staged ones.

use polars::prelude::*;
use rayon::prelude::*;
use tracing::info;

use super::execute::{Run, concat_frames, parquet_files};
use crate::error::Result;
use crate::gold;
use crate::layout::{self, GOLD, GOLD_FILE, SILVER_EVENTS};
use crate::silver::timestamp::format_date;

impl Run<'_> {
    /// Recomputes the gold partition of every touched date from all of its
    /// clean events: committed ones plus this run's staged ones. When the
    /// date already has a gold partition, only the minutes this run added
    /// events to are aggregated again, from all of their events; the other
    /// rows are kept as they are (their events did not change).
    pub(super) fn write_gold(&mut self) -> Result<()> {
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
}
