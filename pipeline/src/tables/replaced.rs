//! Replaced files kept for time travel (`[maintenance] keep_replaced_hours`,
//! README "Keeping replaced files").
//!
//! A data file a table version removes (a replaced gold partition, files
//! compaction merged, everything a full refresh replaced, an expired
//! partition) is deleted once that version is committed, unless replaced
//! files are kept: then it stays where it is for `keep_replaced_hours`, so
//! that the earlier versions referencing it can still be read, and
//! [`KEPT_FILE`] lists it with the time its version removed it.
//!
//! The pipeline reads its own layers through [`live_entries`], which
//! leaves kept files out, as a Delta reader of the newest version does. A
//! plain Hive reader of a layer folder sees them: with files kept, only
//! Delta readers (and the API, which reads each gold partition's newest
//! file) read the current rows.
//!
//! A publish calls [`retire`] after committing its versions: it adds what
//! they removed to the list (or deletes it, when nothing is kept), and
//! deletes listed files whose time is up. A run also retires when it
//! starts, before it reads any layer, and so does `pipeline vacuum`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::error::{Error, Result};
use crate::storage::{Entry, Storage};

/// The kept files, relative to the output root, with when they were removed.
pub(crate) const KEPT_FILE: &str = "_state/replaced.json";

/// What [`KEPT_FILE`] holds: the kept files, read once for as many
/// listings as a step makes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Kept {
    /// Removal time (milliseconds since the epoch) by path relative to the
    /// output root.
    files: BTreeMap<String, i64>,
}

impl Kept {
    pub(crate) fn load(output: &Storage) -> Result<Self> {
        match output.get_opt(KEPT_FILE)? {
            None => Ok(Self::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| Error::State { path: output.describe(KEPT_FILE), source }),
        }
    }

    /// The data files under `relative` that the tables' newest versions
    /// hold: every Parquet file there except kept ones.
    pub(crate) fn live_entries(&self, output: &Storage, relative: &str) -> Result<Vec<Entry>> {
        Ok(self.live(output.parquet_entries(relative)?))
    }

    /// `entries` less the kept ones.
    fn live(&self, mut entries: Vec<Entry>) -> Vec<Entry> {
        entries.retain(|e| !self.files.contains_key(&e.relative));
        entries
    }

    fn save(&self, output: &Storage) -> Result<()> {
        match self.files.is_empty() {
            true => output.delete(KEPT_FILE),
            // Paths and numbers always serialize.
            false => output.put(KEPT_FILE, serde_json::to_vec(self).unwrap_or_default()),
        }
    }
}

/// [`Kept::live_entries`] for one listing: the kept list is read only
/// when the folder holds data files.
pub(crate) fn live_entries(output: &Storage, relative: &str) -> Result<Vec<Entry>> {
    let entries = output.parquet_entries(relative)?;
    if entries.is_empty() {
        return Ok(entries);
    }
    Ok(Kept::load(output)?.live(entries))
}

/// [`live_entries`], as paths relative to the output root.
pub(crate) fn live_files(output: &Storage, relative: &str) -> Result<Vec<String>> {
    Ok(live_entries(output, relative)?.into_iter().map(|e| e.relative).collect())
}

/// Kept files whose time is up at `now`, with `keep_hours`.
pub(crate) fn expired(output: &Storage, keep_hours: u64, now: DateTime<Utc>) -> Result<Vec<String>> {
    let cutoff = cutoff(keep_hours, now);
    Ok(Kept::load(output)?.files.into_iter().filter(|(_, removed)| *removed <= cutoff).map(|(p, _)| p).collect())
}

fn cutoff(keep_hours: u64, now: DateTime<Utc>) -> i64 {
    now.timestamp_millis().saturating_sub(i64::try_from(keep_hours).unwrap_or(i64::MAX).saturating_mul(3_600_000))
}

/// Retires `removed`, files table versions just removed (relative to the
/// output root): keeps them for `keep_hours`, or deletes them when that is
/// 0; then deletes the kept files whose time is up. Returns the files it
/// deleted. Idempotent, as a publish finished after a crash calls it again:
/// a file already kept keeps its first removal time. Listed files are
/// deleted before the list is written without them, so a crash between
/// leaves only names of missing files, which the next call drops. The
/// list is written only when it changed.
pub(crate) fn retire(output: &Storage, removed: &[String], keep_hours: u64, now: DateTime<Utc>) -> Result<Vec<String>> {
    let mut kept = Kept::load(output)?;
    let mut deleted = Vec::new();
    let mut changed = false;
    for path in removed {
        match keep_hours {
            0 => deleted.push(path.clone()),
            _ if kept.files.contains_key(path) => {}
            _ => {
                kept.files.insert(path.clone(), now.timestamp_millis());
                changed = true;
            }
        }
    }
    let cutoff = cutoff(keep_hours, now);
    let (due, left): (BTreeMap<_, _>, BTreeMap<_, _>) = kept.files.into_iter().partition(|(_, at)| *at <= cutoff);
    if !due.is_empty() {
        info!(files = due.len(), keep_hours, "Deleting replaced files whose time for time travel is up.");
        changed = true;
    }
    deleted.extend(due.into_keys());
    for path in &deleted {
        output.delete(path)?;
    }
    kept.files = left;
    if changed {
        kept.save(output)?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_with(files: &[&str]) -> Storage {
        let output = Storage::open(&format!("memory://kept-{}", uuid::Uuid::new_v4()), true).expect("memory");
        for file in files {
            output.put(file, "x").expect("put");
        }
        output
    }

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + chrono::Duration::hours(hours)
    }

    #[test]
    fn kept_files_stay_for_their_hours_out_of_the_live_listing_then_go() {
        let (a, b, c) = ("t/d=1/a.parquet", "t/d=1/b.parquet", "t/d=1/c.parquet");
        let output = output_with(&[a, b, c]);
        assert!(retire(&output, &[a.to_string()], 2, at(0)).expect("retire").is_empty());
        assert_eq!(live_files(&output, "t").expect("live"), [b, c]);
        assert_eq!(output.parquet_files("t").expect("all"), [a, b, c], "a kept file stays in place");

        // Retired again (a publish finished after a crash): its first time holds.
        assert!(retire(&output, &[a.to_string(), b.to_string()], 2, at(1)).expect("retire").is_empty());
        assert_eq!(expired(&output, 2, at(2)).expect("expired"), [a]);
        assert_eq!(retire(&output, &[], 2, at(2)).expect("retire"), [a]);
        assert_eq!(output.parquet_files("t").expect("all"), [b, c]);
        assert_eq!(live_files(&output, "t").expect("live"), [c]);

        // Keeping nothing deletes the removed files now, and any still kept.
        assert_eq!(retire(&output, &[c.to_string()], 0, at(2)).expect("retire"), [c, b]);
        assert!(output.parquet_files("t").expect("all").is_empty());
        assert!(output.get_opt(KEPT_FILE).expect("get").is_none(), "an empty list is not stored");
    }

    #[test]
    fn a_name_of_a_missing_file_is_dropped_and_a_damaged_list_stops_with_its_name() {
        let output = output_with(&["t/d=1/a.parquet"]);
        retire(&output, &["t/d=1/gone.parquet".to_string()], 1, at(0)).expect("retire");
        assert_eq!(retire(&output, &[], 1, at(1)).expect("retire"), ["t/d=1/gone.parquet"]);
        assert!(output.get_opt(KEPT_FILE).expect("get").is_none());

        output.put(KEPT_FILE, "{").expect("put");
        let error = live_entries(&output, "t").expect_err("a damaged list").to_string();
        assert!(error.contains(KEPT_FILE), "{error}");
    }
}
