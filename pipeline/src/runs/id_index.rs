//! Event id indexes: beside each silver events file a local run writes,
//! the sorted 64-bit prefixes of its rows' event id fingerprints, at
//! `_state/event_ids/event_date=D/<file stem>.ids` (8 bytes an event).
//!
//! Rule 5 for a small run only asks which of its own ids were committed
//! before ([`crate::silver::Load::Probe`]). An index answers that for a
//! whole file without decoding its event id column: a file whose index
//! holds none of the candidates' prefixes holds none of their ids. A file
//! with a hit (a true duplicate, or a prefix collision, about one in
//! 2^64 / rows per candidate) has its ids read as before, so the outcome
//! stays exact. A file without an index (staged by the spark engine, or
//! written before indexes existed) is read as before, as is one whose
//! index cannot be decoded.
//!
//! Indexes are staged and published with their silver files, and deleted
//! with them (a file a full refresh replaced or compaction merged).
//! [`committed_ids`]
//! reads a date's committed ids through them, for both engines' rule 5.

use std::collections::HashSet;
use std::hash::BuildHasher;

use polars::prelude::DataFrame;
use rayon::prelude::*;
use tracing::warn;

use crate::error::{Error, Result};
use crate::layout::{self, EVENT_IDS, SILVER_EVENTS};
use crate::silver::columns::EVENT_ID;
use crate::silver::{self, timestamp::format_date};
use crate::storage::Storage;
use crate::tables;

/// The first bytes of an index file (format version 1).
const MAGIC: &[u8; 8] = b"mnids01\n";

/// The index path of a silver events file (relative to the output root),
/// or `None` for any other path.
pub(crate) fn path_of(silver_file: &str) -> Option<String> {
    let rest = silver_file.strip_prefix(SILVER_EVENTS)?.strip_suffix(".parquet")?;
    Some(format!("{EVENT_IDS}{rest}.ids"))
}

/// The folder of `date`'s indexes.
pub(crate) fn dir_of(date: i32) -> String {
    layout::partition(EVENT_IDS, "event_date", &format_date(date))
}

/// Stages the index of the silver events file at `path` with rows `df`;
/// returns its path, or `None` when `path` is not a silver events file.
pub(crate) fn stage(output: &Storage, run_id: &str, path: &str, df: &DataFrame) -> Result<Option<String>> {
    let Some(index) = path_of(path) else { return Ok(None) };
    output.put(&layout::staged(run_id, &index), encode(df)?)?;
    Ok(Some(index))
}

/// The index bytes of silver events `df`.
fn encode(df: &DataFrame) -> Result<Vec<u8>> {
    let ids = df.column(EVENT_ID).and_then(|c| c.str()).map_err(Error::polars("indexing event ids"))?;
    let mut prefixes: Vec<u64> = ids.iter().flatten().map(|id| prefix(silver::fingerprint(id))).collect();
    prefixes.sort_unstable();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 * prefixes.len());
    bytes.extend_from_slice(MAGIC);
    prefixes.iter().for_each(|p| bytes.extend_from_slice(&p.to_le_bytes()));
    Ok(bytes)
}

/// Whether the file indexed by `bytes` may hold one of `probe`'s ids:
/// `None` when `bytes` is not an index, or a damaged one (the file must be
/// read). Searches the index where it lies, after checking its entries are
/// in order, as they were written.
pub(crate) fn may_hold(bytes: &[u8], probe: &HashSet<u128, impl BuildHasher>) -> Option<bool> {
    let (prefixes, rest) = bytes.strip_prefix(MAGIC)?.as_chunks::<8>();
    let value = |entry: &[u8; 8]| u64::from_le_bytes(*entry);
    if !rest.is_empty() || !prefixes.is_sorted_by_key(value) {
        return None;
    }
    Some(probe.iter().any(|id| prefixes.binary_search_by_key(&prefix(*id), value).is_ok()))
}

fn prefix(fingerprint: u128) -> u64 {
    (fingerprint >> 64) as u64
}

/// Event id fingerprints committed on `date` by earlier runs, handed to
/// `each` a file at a time (a date's ids are never all in memory at once);
/// with `probe`, only those in it (a small incremental batch need not hold
/// millions), and a file whose id index holds none of them is not read.
pub(crate) fn committed_ids(
    output: &Storage,
    date: i32,
    probe: Option<&HashSet<u128, impl BuildHasher + Sync>>,
    mut each: impl FnMut(Vec<u128>),
) -> Result<()> {
    let dir = layout::partition(SILVER_EVENTS, "event_date", &format_date(date));
    let files = tables::live_files(output, &dir)?;
    let indexes: HashSet<String> = match probe {
        Some(_) => output.list(&dir_of(date))?.into_iter().map(|e| e.relative).collect(),
        None => HashSet::new(),
    };
    // A few files per thread at a time: parallel reads, bounded memory.
    for group in files.chunks(4 * rayon::current_num_threads()) {
        let per_file = group
            .par_iter()
            .map(|path| {
                let index = path_of(path).filter(|index| indexes.contains(index));
                if let (Some(probe), Some(index)) = (probe, index) {
                    match may_hold(&output.get(&index)?, probe) {
                        Some(false) => return Ok(Vec::new()),
                        Some(true) => {}
                        None => warn!(index, "Reading the ids of a file whose id index is damaged."),
                    }
                }
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
        per_file.into_iter().for_each(&mut each);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    fn events(ids: &[&str]) -> DataFrame {
        DataFrame::new(ids.len(), vec![Column::new(EVENT_ID.into(), ids)]).expect("frame")
    }

    fn probe(ids: &[&str]) -> HashSet<u128> {
        ids.iter().map(|id| silver::fingerprint(id)).collect()
    }

    #[test]
    fn an_index_holds_exactly_its_files_ids() {
        let bytes = encode(&events(&["b", "a", "c", "a"])).expect("encode");
        assert_eq!(bytes.len(), 8 + 4 * 8);
        assert_eq!(may_hold(&bytes, &probe(&["a"])), Some(true));
        assert_eq!(may_hold(&bytes, &probe(&["x", "c"])), Some(true));
        assert_eq!(may_hold(&bytes, &probe(&["x", "y", "A"])), Some(false));
        assert_eq!(may_hold(&bytes, &probe(&[])), Some(false));
        assert_eq!(may_hold(&encode(&events(&[])).expect("encode"), &probe(&["a"])), Some(false));
    }

    #[test]
    fn a_damaged_index_is_not_trusted() {
        let bytes = encode(&events(&["a", "b"])).expect("encode");
        assert_eq!(may_hold(&bytes[..bytes.len() - 1], &probe(&["x"])), None, "truncated");
        assert_eq!(may_hold(b"PAR1\0\0\0\0", &probe(&["x"])), None, "not an index");
        let unsorted = [MAGIC.as_slice(), &2u64.to_le_bytes(), &1u64.to_le_bytes()].concat();
        assert_eq!(may_hold(&unsorted, &probe(&["x"])), None, "out of order");
    }

    #[test]
    fn only_silver_event_files_are_indexed() {
        assert_eq!(
            path_of("silver/events/event_date=2026-01-12/part-r-00001.parquet").as_deref(),
            Some("_state/event_ids/event_date=2026-01-12/part-r-00001.ids")
        );
        assert_eq!(path_of("silver/rejects/ingest_date=2026-01-12/part-r-00001.parquet"), None);
        assert_eq!(path_of("gold/service_minute_metrics/event_date=2026-01-12/data.parquet"), None);
        assert_eq!(dir_of(20_465), "_state/event_ids/event_date=2026-01-12");
    }
}
