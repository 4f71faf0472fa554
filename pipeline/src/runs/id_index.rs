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
//! A large index (a merged file's, up to a day of events) is not read
//! whole for a few candidates: only windows around the places their
//! prefixes are expected at ([`index_may_hold`]): tens of KiB per
//! candidate, not megabytes.
//!
//! Indexes are staged and published with their silver files, and deleted
//! with them (a file a full refresh replaced or compaction merged).
//! [`committed_ids`]
//! reads a date's committed ids through them, for both engines' rule 5.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::ops::Range;

use polars::prelude::DataFrame;
use rayon::prelude::*;
use tracing::warn;

use crate::error::{Error, Result};
use crate::layout::{self, EVENT_IDS, SILVER_EVENTS};
use crate::silver::columns::EVENT_ID;
use crate::silver::{self, timestamp::format_date};
use crate::storage::{Entry, Storage};
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

/// Whether the file indexed by `index` may hold one of `probe`'s ids, as
/// [`may_hold`], reading only windows of the index when that is less
/// than half of it.
///
/// An index's entries are sorted prefixes of uniformly spread
/// fingerprints, so a prefix `p` of an index of `n` entries lies near
/// entry `p / 2^64 × n`, within a few √n (its place is binomially spread,
/// with a deviation of at most √n / 2). Around each candidate's expected
/// place [`windows`] of [`margin`] entries either side are read. A window
/// that does not bracket its candidate (its first entry above it, or its
/// last below, away from the index's ends) leaves the answer open, and
/// the index is then read whole: the answer is exact either way.
fn index_may_hold(output: &Storage, index: &Entry, probe: &HashSet<u128, impl BuildHasher>) -> Result<Option<bool>> {
    let header = MAGIC.len() as u64;
    let entries = index.size.checked_sub(header).filter(|bytes| bytes % 8 == 0).map(|bytes| bytes / 8);
    let wanted: Vec<u64> = probe.iter().map(|id| prefix(*id)).collect();
    let Some((n, windows)) = entries.and_then(|n| windows(n, &wanted).map(|w| (n, w))) else {
        return Ok(may_hold(&output.get(&index.relative)?, probe));
    };
    let ranges: Vec<Range<u64>> =
        std::iter::once(0..header).chain(windows.iter().map(|w| header + 8 * w.start..header + 8 * w.end)).collect();
    let parts = output.get_ranges(&index.relative, &ranges)?;
    if parts.first().is_none_or(|magic| magic.as_ref() != MAGIC) {
        return Ok(None);
    }
    let value = |entry: &[u8; 8]| u64::from_le_bytes(*entry);
    let mut read = Vec::with_capacity(windows.len());
    for (window, bytes) in windows.iter().zip(&parts[1..]) {
        let (window_entries, rest) = bytes.as_chunks::<8>();
        if !rest.is_empty() || window_entries.len() as u64 != window.end - window.start {
            return Ok(None);
        }
        if !window_entries.is_sorted_by_key(value) {
            return Ok(None);
        }
        read.push((window.clone(), window_entries));
    }
    for p in wanted {
        let at = expected_place(p, n);
        let Some((window, window_entries)) = read.iter().find(|(w, _)| w.contains(&at)) else {
            return Ok(may_hold(&output.get(&index.relative)?, probe));
        };
        let (Some(first), Some(last)) = (window_entries.first(), window_entries.last()) else { continue };
        if (window.start > 0 && value(first) > p) || (window.end < n && value(last) < p) {
            return Ok(may_hold(&output.get(&index.relative)?, probe));
        }
        if window_entries.binary_search_by_key(&p, value).is_ok() {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

/// The entry where prefix `p` is expected in an index of `n` entries.
fn expected_place(p: u64, n: u64) -> u64 {
    ((u128::from(p) * u128::from(n)) >> 64) as u64
}

/// Entries either side of a prefix's expected place that are read for it:
/// six times the greatest deviation of its place, so that a window fails
/// to bracket its candidate about once in 10^9.
fn margin(n: u64) -> u64 {
    3 * n.isqrt() + 16
}

/// The windows of entries (joined where they meet) to read for prefixes
/// `wanted` in an index of `n` entries, in order; `None` when they would
/// cover half of it or more, and reading it whole costs no more.
fn windows(n: u64, wanted: &[u64]) -> Option<Vec<Range<u64>>> {
    let margin = margin(n);
    let mut around: Vec<Range<u64>> = wanted
        .iter()
        .map(|&p| {
            let at = expected_place(p, n);
            at.saturating_sub(margin)..(at + margin + 1).min(n)
        })
        .collect();
    around.sort_unstable_by_key(|w| w.start);
    let mut joined: Vec<Range<u64>> = Vec::with_capacity(around.len());
    for window in around {
        match joined.last_mut() {
            Some(last) if window.start <= last.end => last.end = last.end.max(window.end),
            _ => joined.push(window),
        }
    }
    let covered: u64 = joined.iter().map(|w| w.end - w.start).sum();
    (covered * 2 < n).then_some(joined)
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
    let indexes: HashMap<String, Entry> = match probe {
        Some(_) => output.list(&dir_of(date))?.into_iter().map(|e| (e.relative.clone(), e)).collect(),
        None => HashMap::new(),
    };
    // A few files per thread at a time: parallel reads, bounded memory.
    for group in files.chunks(4 * rayon::current_num_threads()) {
        let per_file = group
            .par_iter()
            .map(|path| {
                let index = path_of(path).and_then(|index| indexes.get(&index));
                if let (Some(probe), Some(index)) = (probe, index) {
                    match index_may_hold(output, index, probe)? {
                        Some(false) => return Ok(Vec::new()),
                        Some(true) => {}
                        None => warn!(index = index.relative, "Reading the ids of a file whose id index is damaged."),
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

    /// An index of `prefixes` (sorted here) stored in a fresh memory store.
    fn stored_index(prefixes: &mut [u64]) -> (Storage, Entry) {
        prefixes.sort_unstable();
        let bytes: Vec<u8> = MAGIC.iter().copied().chain(prefixes.iter().flat_map(|p| p.to_le_bytes())).collect();
        let output = Storage::open(&format!("memory://ids-{}", uuid::Uuid::new_v4()), true).expect("memory");
        output.put("a.ids", bytes).expect("put");
        let entry = output.list("").expect("list").into_iter().next().expect("the index");
        (output, entry)
    }

    fn ids_with_prefixes(prefixes: &[u64]) -> HashSet<u128> {
        prefixes.iter().map(|p| (u128::from(*p) << 64) | 7).collect()
    }

    #[test]
    fn a_large_index_is_read_by_windows_with_the_same_answers() {
        let all: Vec<u128> = (0..200_000).map(|i| silver::fingerprint(&format!("e{i}"))).collect();
        let mut prefixes: Vec<u64> = all.iter().map(|id| prefix(*id)).collect();
        let (output, entry) = stored_index(&mut prefixes);
        let whole = output.get("a.ids").expect("get");
        let absent: Vec<u128> = (0..20).map(|i| silver::fingerprint(&format!("x{i}"))).collect();
        for ids in
            [vec![all[123_456]], absent.clone(), [absent.clone(), vec![all[7]]].concat(), vec![all[0], all[199_999]]]
        {
            let probe: HashSet<u128> = ids.iter().copied().collect();
            let wanted: Vec<u64> = ids.iter().map(|id| prefix(*id)).collect();
            assert!(windows(200_000, &wanted).is_some(), "read by windows");
            assert_eq!(index_may_hold(&output, &entry, &probe).expect("read"), may_hold(&whole, &probe));
        }
        assert_eq!(
            index_may_hold(&output, &entry, &absent.iter().copied().collect::<HashSet<u128>>()).expect("read"),
            Some(false)
        );
        // Many candidates: the windows would cover most of it; it is read whole.
        let many: Vec<u64> = all[..5_000].iter().map(|id| prefix(*id)).collect();
        assert!(windows(200_000, &many).is_none());
    }

    #[test]
    fn an_index_whose_entries_are_not_where_expected_is_read_whole() {
        // Every entry in the lowest thousandth of the range: a window around
        // a candidate's expected place does not bracket it.
        let mut prefixes: Vec<u64> = (0..100_000u64).map(|i| i * 1_000_003).collect();
        let (output, entry) = stored_index(&mut prefixes);
        for (wanted, held) in [(vec![prefixes[99_000]], true), (vec![prefixes[99_000] + 1, u64::MAX / 2], false)] {
            assert!(windows(100_000, &wanted).is_some());
            assert_eq!(index_may_hold(&output, &entry, &ids_with_prefixes(&wanted)).expect("read"), Some(held));
        }
    }

    #[test]
    fn a_damaged_window_is_not_trusted() {
        let mut prefixes: Vec<u64> = (0..100_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        prefixes.sort_unstable();
        let mut bytes: Vec<u8> = MAGIC.to_vec();
        prefixes.iter().for_each(|p| bytes.extend_from_slice(&p.to_le_bytes()));
        // Two entries in the middle swapped.
        let at = MAGIC.len() + 8 * 50_000;
        let (a, b) = bytes[at..at + 16].split_at_mut(8);
        a.swap_with_slice(b);
        let output = Storage::open(&format!("memory://ids-{}", uuid::Uuid::new_v4()), true).expect("memory");
        output.put("a.ids", bytes).expect("put");
        let entry = output.list("").expect("list").into_iter().next().expect("the index");
        let probe = ids_with_prefixes(&[prefixes[50_000]]);
        assert_eq!(index_may_hold(&output, &entry, &probe).expect("read"), None);
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
