//! Event id indexes: beside each silver events file a local run writes,
//! the sorted 64-bit prefixes of its rows' event id fingerprints, and the
//! row each came from, at `_state/event_ids/event_date=D/<file stem>.ids`
//! (12 bytes an event, and about 1.4 more for a filter and fences).
//!
//! Rule 5 for a small run only asks which of its own ids were committed
//! before ([`crate::silver::Load::Probe`]). An index answers that for a
//! whole file without decoding its event id column: a file whose index
//! holds none of the candidates' prefixes holds none of their ids. A file
//! with a hit (a true duplicate, or a prefix collision, about one in
//! 2^64 / rows per candidate) has the ids of the row groups holding the
//! hit rows read, so the outcome stays exact and a repeated id costs a
//! group of the file, not all of it. A file without an index (staged by
//! the spark engine, or written before indexes existed) is read as
//! before, as is one whose index cannot be decoded; an index of the first
//! format (prefixes without rows) sends a hit to the whole column.
//!
//! A large index (a merged file's, up to a day of events) is not read
//! whole for a run's candidates. Its head holds a membership [`filter`]
//! and every [`FENCE_EVERY`]th prefix: the head is read, and only for the
//! candidates the filter passes (their duplicates, and about 1% of the
//! others) the entries between the fences around them
//! ([`filtered_lookup`]). An index of the second format, which has no
//! head, is read by windows around the places its candidates' prefixes
//! are expected at ([`windowed_lookup`]), or whole when those would cover
//! half of it.
//!
//! Indexes are staged and published with their silver files, and deleted
//! with them (a file a full refresh replaced or compaction merged).
//! [`committed_ids`]
//! reads a date's committed ids through them, for both engines' rule 5.

mod filter;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::ops::Range;

use polars::prelude::{DataFrame, IdxSize};
use rayon::prelude::*;
use tracing::warn;

use crate::error::{Error, Result};
use crate::layout::{self, EVENT_IDS, SILVER_EVENTS};
use crate::parquet;
use crate::silver::columns::EVENT_ID;
use crate::silver::{self, timestamp::format_date};
use crate::storage::{Entry, FOOTER_READ, Storage};
use crate::tables;

/// The first bytes of an index file of the first format: the magic, then
/// the sorted prefixes (8 bytes each, little-endian).
const MAGIC_V1: &[u8; 8] = b"mnids01\n";
/// The first bytes of an index file of the second format: the magic, the
/// sorted prefixes, then each prefix's row in its file (4 bytes each, in
/// the prefixes' order).
const MAGIC_V2: &[u8; 8] = b"mnids02\n";
const HEADER_V2: u64 = MAGIC_V2.len() as u64;
/// The first bytes of an index file of the format written now; see
/// [`Layout`].
const MAGIC: &[u8; 8] = b"mnids03\n";
/// The magic and the number of entries.
const HEADER: u64 = MAGIC.len() as u64 + 8;
/// Entries from one fence (a prefix repeated in the index's head) to the
/// next. Part of the format, as the [`filter`]'s constants are: changing
/// one needs a new magic.
const FENCE_EVERY: u64 = 64;

/// Where the sections of an index of the format written now begin (all
/// numbers little-endian): after the [`HEADER`], the [`filter`] of its
/// prefixes, the fences (the prefix of every [`FENCE_EVERY`]th entry,
/// from the first), the sorted prefixes (8 bytes each), then each
/// prefix's row in its file (4 bytes each, in the prefixes' order).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    n: u64,
    fences: u64,
    prefixes: u64,
    rows: u64,
    size: u64,
}

impl Layout {
    /// The layout of an index of `n` entries.
    fn of(n: u64) -> Self {
        let fences = HEADER + filter::bytes_for(n);
        let prefixes = fences + 8 * n.div_ceil(FENCE_EVERY);
        let rows = prefixes + 8 * n;
        Self { n, fences, prefixes, rows, size: rows + 4 * n }
    }

    /// The layout of an index of `size` bytes, if one has that size: an
    /// index grows with its entries, so their number is bisected.
    fn of_size(size: u64) -> Option<Self> {
        let (mut low, mut high) = (0, size / 12 + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            match Self::of(mid).size < size {
                true => low = mid + 1,
                false => high = mid,
            }
        }
        Some(Self::of(low)).filter(|layout| layout.size == size)
    }
}

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
    // A frame's rows are numbered by polars' 32-bit index type, so a row
    // number fits the index's 4 bytes.
    const _: () = assert!(size_of::<IdxSize>() == 4);
    let mut entries: Vec<(u64, u32)> =
        ids.iter().enumerate().filter_map(|(row, id)| Some((prefix(silver::fingerprint(id?)), row as u32))).collect();
    entries.sort_unstable();
    Ok(bytes_of(&entries))
}

/// The index bytes of `entries`, (prefix, row) sorted.
fn bytes_of(entries: &[(u64, u32)]) -> Vec<u8> {
    let layout = Layout::of(entries.len() as u64);
    let mut bytes = Vec::with_capacity(layout.size as usize);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&layout.n.to_le_bytes());
    bytes.extend(filter::build(entries.iter().map(|(p, _)| *p), layout.n));
    let fences = entries.iter().step_by(FENCE_EVERY as usize);
    fences.for_each(|(p, _)| bytes.extend_from_slice(&p.to_le_bytes()));
    entries.iter().for_each(|(p, _)| bytes.extend_from_slice(&p.to_le_bytes()));
    entries.iter().for_each(|(_, row)| bytes.extend_from_slice(&row.to_le_bytes()));
    bytes
}

fn prefix(fingerprint: u128) -> u64 {
    (fingerprint >> 64) as u64
}

/// What an index tells of its file for some candidate ids.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    /// None of them is in the file.
    Nothing,
    /// Some may be: in these rows of it (sorted), or anywhere when the
    /// index does not number rows (the first format).
    Rows(Option<Vec<u32>>),
}

/// Consecutive entries of an index, from entry `start`: their prefixes,
/// and their rows when the index has them.
struct Window<'a> {
    start: u64,
    prefixes: &'a [[u8; 8]],
    rows: Option<&'a [[u8; 4]]>,
}

impl<'a> Window<'a> {
    /// The entries in `prefixes` (and `rows`) from entry `start`; `None`
    /// when they are not whole entries, or not in order, as they were
    /// written (a damaged index).
    fn new(start: u64, prefixes: &'a [u8], rows: Option<&'a [u8]>) -> Option<Self> {
        let (prefixes, rest) = prefixes.as_chunks::<8>();
        if !rest.is_empty() || !prefixes.is_sorted_by_key(|e| u64::from_le_bytes(*e)) {
            return None;
        }
        let rows = match rows.map(|rows| rows.as_chunks::<4>()) {
            Some((rows, [])) if rows.len() == prefixes.len() => Some(rows),
            Some(_) => return None,
            None => None,
        };
        Some(Self { start, prefixes, rows })
    }

    fn end(&self) -> u64 {
        self.start + self.prefixes.len() as u64
    }

    /// The positions (in this window) of the entries equal to `p`; `None`
    /// when some may lie outside it, in an index of `n` entries: it does not
    /// bracket `p` (its first entry is not below `p`, or its last not
    /// above, away from the index's ends).
    fn entries_of(&self, p: u64, n: u64) -> Option<Range<usize>> {
        let value = |e: &[u8; 8]| u64::from_le_bytes(*e);
        let first = self.prefixes.partition_point(|e| value(e) < p);
        let past = self.prefixes.partition_point(|e| value(e) <= p);
        let open_below = first == 0 && self.start > 0;
        let open_above = past == self.prefixes.len() && self.end() < n;
        (!open_below && !open_above).then_some(first..past)
    }
}

/// Looks the prefixes `wanted` up in `windows` of an index of `n` entries,
/// each in the window that holds entry `place(p)`; `None` when one of them
/// is not settled there (see [`Window::entries_of`]).
fn lookup(windows: &[Window], n: u64, wanted: &[u64], place: impl Fn(u64) -> u64) -> Option<Found> {
    let (mut hit, mut rows) = (false, Some(Vec::new()));
    for &p in wanted {
        let at = place(p);
        let window = windows.iter().find(|w| (w.start..w.end()).contains(&at))?;
        let entries = window.entries_of(p, n)?;
        if entries.is_empty() {
            continue;
        }
        hit = true;
        match (window.rows, &mut rows) {
            (Some(numbers), Some(rows)) => rows.extend(numbers[entries].iter().map(|r| u32::from_le_bytes(*r))),
            _ => rows = None,
        }
    }
    Some(match hit {
        false => Found::Nothing,
        true => Found::Rows(rows.map(|mut rows| {
            rows.sort_unstable();
            rows.dedup();
            rows
        })),
    })
}

/// Looks prefixes `wanted` up in a whole index, `bytes`: `None` when they
/// are not an index, or a damaged one (the file must be read).
fn find(bytes: &[u8], wanted: &[u64]) -> Option<Found> {
    let (magic, rest) = bytes.split_at_checked(MAGIC.len())?;
    let (prefixes, rows) = match magic {
        m if m == MAGIC => {
            let layout = Layout::of_size(bytes.len() as u64)?;
            let n = rest.first_chunk::<8>().map(|n| u64::from_le_bytes(*n));
            if n != Some(layout.n) {
                return None;
            }
            let rows = &bytes[layout.rows as usize..];
            (&bytes[layout.prefixes as usize..layout.rows as usize], Some(rows))
        }
        m if m == MAGIC_V2 && rest.len().is_multiple_of(12) => {
            let (prefixes, rows) = rest.split_at(8 * (rest.len() / 12));
            (prefixes, Some(rows))
        }
        m if m == MAGIC_V1 => (rest, None),
        _ => return None,
    };
    let whole = Window::new(0, prefixes, rows)?;
    let n = whole.prefixes.len() as u64;
    match n {
        0 => Some(Found::Nothing),
        _ => lookup(&[whole], n, wanted, |p| expected_place(p, n)),
    }
}

/// What the index `index` tells of its file for `probe`'s ids, as
/// [`find`] on the whole index: reading only its head and the entries
/// around the candidates the filter passes ([`filtered_lookup`]), or, for
/// an index of the second format, windows of it ([`windowed_lookup`]),
/// unless it is no larger than a footer read (then it is read whole, in one
/// request).
fn index_lookup(output: &Storage, index: &Entry, probe: &HashSet<u128, impl BuildHasher>) -> Result<Option<Found>> {
    let wanted: Vec<u64> = probe.iter().map(|id| prefix(*id)).collect();
    let whole = || -> Result<Option<Found>> { Ok(find(&output.get(&index.relative)?, &wanted)) };
    if index.size <= FOOTER_READ {
        return whole();
    }
    if let Some(layout) = Layout::of_size(index.size) {
        let head = output.get_range(&index.relative, 0..layout.prefixes)?;
        if head.starts_with(MAGIC) {
            return match filtered_lookup(output, index, layout, &head, &wanted)? {
                Some(found) => Ok(Some(found)),
                None => whole(),
            };
        }
    }
    windowed_lookup(output, index, &wanted, whole)
}

/// Looks prefixes `wanted` up in an index of the format written now,
/// `layout`, whose head (header, filter and fences) is `head`: only the
/// prefixes the filter passes, each among the entries from the last fence
/// below it to the first above it (one more, so that they bracket it; see
/// [`Window::entries_of`]), read in one ranged request. `None` when that
/// does not settle them (a damaged index: it must be read whole).
fn filtered_lookup(
    output: &Storage,
    index: &Entry,
    layout: Layout,
    head: &[u8],
    wanted: &[u64],
) -> Result<Option<Found>> {
    let n = head.get(MAGIC.len()..HEADER as usize).and_then(|n| n.try_into().ok()).map(u64::from_le_bytes);
    let (Some(filter), Some(fences)) =
        (head.get(HEADER as usize..layout.fences as usize), head.get(layout.fences as usize..))
    else {
        return Ok(None);
    };
    let (fences, []) = fences.as_chunks::<8>() else { return Ok(None) };
    if n != Some(layout.n) || fences.len() as u64 != layout.n.div_ceil(FENCE_EVERY) {
        return Ok(None);
    }
    let passed: Vec<u64> = wanted.iter().copied().filter(|&p| filter::may_hold(filter, p)).collect();
    if passed.is_empty() {
        return Ok(Some(Found::Nothing));
    }
    let around = |p: u64| {
        let below = fences.partition_point(|f| u64::from_le_bytes(*f) < p).saturating_sub(1) as u64;
        let above = fences.partition_point(|f| u64::from_le_bytes(*f) <= p) as u64;
        below * FENCE_EVERY..(above * FENCE_EVERY + 1).min(layout.n)
    };
    let windows = joined(passed.iter().map(|&p| around(p)).collect());
    let ranges: Vec<Range<u64>> = windows
        .iter()
        .flat_map(|w| {
            [
                layout.prefixes + 8 * w.start..layout.prefixes + 8 * w.end,
                layout.rows + 4 * w.start..layout.rows + 4 * w.end,
            ]
        })
        .collect();
    let parts = output.get_ranges(&index.relative, &ranges)?;
    let Some(read) = read_windows(&windows, &parts) else { return Ok(None) };
    Ok(lookup(&read, layout.n, &passed, |p| around(p).start))
}

/// The windows `windows` of an index from their prefixes and rows, read
/// in pairs as `parts`; `None` when they are not the entries asked for,
/// or not in order (a damaged index).
fn read_windows<'a>(windows: &[Range<u64>], parts: &'a [bytes::Bytes]) -> Option<Vec<Window<'a>>> {
    let pairs = parts.chunks(2);
    if pairs.len() != windows.len() {
        return None;
    }
    let read = windows.iter().zip(pairs).map(|(w, part)| {
        let [prefixes, rows] = part else { return None };
        Window::new(w.start, prefixes, Some(rows)).filter(|window| window.end() == w.end)
    });
    read.collect()
}

/// [`index_lookup`] on an index of the second format (or of the first,
/// read whole by `whole`), reading only windows of it when that is less
/// than half of it.
///
/// An index's entries are sorted prefixes of uniformly spread
/// fingerprints, so a prefix `p` of an index of `n` entries lies near
/// entry `p / 2^64 × n`, within a few √n (its place is binomially spread,
/// with a deviation of at most √n / 2). Around each candidate's expected
/// place [`windows`] of [`margin`] entries either side are read, with
/// their rows. A window that does not settle its candidate (see
/// [`Window::entries_of`]) sends the index to a whole read: the answer is
/// exact either way.
fn windowed_lookup(
    output: &Storage,
    index: &Entry,
    wanted: &[u64],
    whole: impl Fn() -> Result<Option<Found>>,
) -> Result<Option<Found>> {
    let entries = index.size.checked_sub(HEADER_V2).filter(|bytes| bytes % 12 == 0).map(|bytes| bytes / 12);
    let Some((n, windows)) = entries.and_then(|n| windows(n, wanted).map(|w| (n, w))) else { return whole() };
    let rows_at = HEADER_V2 + 8 * n;
    let entries_and_rows = windows
        .iter()
        .flat_map(|w| [HEADER_V2 + 8 * w.start..HEADER_V2 + 8 * w.end, rows_at + 4 * w.start..rows_at + 4 * w.end]);
    let ranges: Vec<Range<u64>> = std::iter::once(0..HEADER_V2).chain(entries_and_rows).collect();
    let parts = output.get_ranges(&index.relative, &ranges)?;
    let Some((magic, parts)) = parts.split_first() else { return Ok(None) };
    if magic.as_ref() != MAGIC_V2 {
        return whole();
    }
    let Some(read) = read_windows(&windows, parts) else { return Ok(None) };
    match lookup(&read, n, wanted, |p| expected_place(p, n)) {
        Some(found) => Ok(Some(found)),
        None => whole(),
    }
}

/// The entry where prefix `p` is expected in an index of `n` entries.
fn expected_place(p: u64, n: u64) -> u64 {
    ((u128::from(p) * u128::from(n)) >> 64) as u64
}

/// Entries either side of a prefix's expected place that are read for it:
/// six times the greatest deviation of its place, so that a window fails
/// to settle its candidate about once in 10^9.
fn margin(n: u64) -> u64 {
    3 * n.isqrt() + 16
}

/// The windows of entries (joined where they meet) to read for prefixes
/// `wanted` in an index of `n` entries, in order; `None` when they would
/// cover half of it or more, and reading it whole costs no more.
fn windows(n: u64, wanted: &[u64]) -> Option<Vec<Range<u64>>> {
    let margin = margin(n);
    let around = wanted.iter().map(|&p| {
        let at = expected_place(p, n);
        at.saturating_sub(margin)..(at + margin + 1).min(n)
    });
    let joined = joined(around.collect());
    let covered: u64 = joined.iter().map(|w| w.end - w.start).sum();
    (covered * 2 < n).then_some(joined)
}

/// Ranges of entries joined where they meet or overlap, in order.
fn joined(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_unstable_by_key(|w| w.start);
    let mut joined: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match joined.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => joined.push(range),
        }
    }
    joined
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
    let files = tables::live_entries(output, &dir)?;
    let indexes: HashMap<String, Entry> = match probe {
        Some(_) => output.list(&dir_of(date))?.into_iter().map(|e| (e.relative.clone(), e)).collect(),
        None => HashMap::new(),
    };
    // A few files per thread at a time: parallel reads, bounded memory.
    for group in files.chunks(4 * rayon::current_num_threads()) {
        let per_file = group
            .par_iter()
            .map(|file| {
                let index = path_of(&file.relative).and_then(|index| indexes.get(&index));
                let mut rows = None;
                if let (Some(probe), Some(index)) = (probe, index) {
                    match index_lookup(output, index, probe)? {
                        Some(Found::Nothing) => return Ok(Vec::new()),
                        Some(Found::Rows(hit)) => rows = hit,
                        None => warn!(index = index.relative, "Reading the ids of a file whose id index is damaged."),
                    }
                }
                let df = match rows {
                    Some(rows) => ids_of_rows(output, file, &rows)?,
                    None => output.get_parquet(&file.relative, Some(&[EVENT_ID]))?,
                };
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

/// The event ids of the row groups of silver events file `file` that hold
/// one of `rows`: only their chunks are read, unless the file is no larger
/// than a footer read (then it is read whole).
fn ids_of_rows(output: &Storage, file: &Entry, rows: &[u32]) -> Result<DataFrame> {
    if file.size <= FOOTER_READ {
        return output.get_parquet(&file.relative, Some(&[EVENT_ID]));
    }
    let footer = output.parquet_footer(file)?;
    let groups = parquet::group_rows(&footer);
    let holds_one = |i: usize| {
        groups.get(i).is_some_and(|group| {
            let first = rows.partition_point(|&r| (r as usize) < group.start);
            rows.get(first).is_some_and(|&r| group.contains(&(r as usize)))
        })
    };
    output.get_parquet_groups(file, &footer, &[EVENT_ID], holds_one)
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

    fn wanted(probe: &HashSet<u128>) -> Vec<u64> {
        probe.iter().map(|id| prefix(*id)).collect()
    }

    /// Index bytes of the second format, from entries as given.
    fn index_bytes(prefixes: &[u64], rows: &[u32]) -> Vec<u8> {
        let mut bytes = MAGIC_V2.to_vec();
        prefixes.iter().for_each(|p| bytes.extend_from_slice(&p.to_le_bytes()));
        rows.iter().for_each(|r| bytes.extend_from_slice(&r.to_le_bytes()));
        bytes
    }

    fn memory() -> Storage {
        Storage::open(&format!("memory://ids-{}", uuid::Uuid::new_v4()), true).expect("memory")
    }

    /// `bytes` stored as `name` in `output`, and its listed entry.
    fn stored(output: &Storage, name: &str, bytes: Vec<u8>) -> Entry {
        output.put(name, bytes).expect("put");
        output.list("").expect("list").into_iter().find(|e| e.relative == name).expect("listed")
    }

    /// `n` entries (prefix, row) with prefixes spread over the range, sorted.
    fn spread_entries(n: u32) -> Vec<(u64, u32)> {
        let mut entries: Vec<(u64, u32)> =
            (0..n).map(|i| (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15), i)).collect();
        entries.sort_unstable();
        entries
    }

    fn ids_with_prefixes(prefixes: &[u64]) -> HashSet<u128> {
        prefixes.iter().map(|p| (u128::from(*p) << 64) | 7).collect()
    }

    #[test]
    fn an_index_holds_exactly_its_files_ids_and_their_rows() {
        let bytes = encode(&events(&["b", "a", "c", "a"])).expect("encode");
        assert_eq!(bytes.len(), 16 + 64 + 8 + 4 * 12, "header, a filter block, a fence, the entries");
        assert_eq!(find(&bytes, &wanted(&probe(&["a"]))), Some(Found::Rows(Some(vec![1, 3]))));
        assert_eq!(find(&bytes, &wanted(&probe(&["x", "c"]))), Some(Found::Rows(Some(vec![2]))));
        assert_eq!(find(&bytes, &wanted(&probe(&["x", "y", "A"]))), Some(Found::Nothing));
        assert_eq!(find(&bytes, &wanted(&probe(&[]))), Some(Found::Nothing));
        assert_eq!(find(&encode(&events(&[])).expect("encode"), &wanted(&probe(&["a"]))), Some(Found::Nothing));
    }

    #[test]
    fn an_index_of_the_first_format_answers_without_rows() {
        let mut prefixes: Vec<u64> = ["b", "a", "c"].iter().map(|id| prefix(silver::fingerprint(id))).collect();
        prefixes.sort_unstable();
        let mut bytes = MAGIC_V1.to_vec();
        prefixes.iter().for_each(|p| bytes.extend_from_slice(&p.to_le_bytes()));
        assert_eq!(find(&bytes, &wanted(&probe(&["a"]))), Some(Found::Rows(None)));
        assert_eq!(find(&bytes, &wanted(&probe(&["x"]))), Some(Found::Nothing));
        let output = memory();
        let entry = stored(&output, "a.ids", bytes);
        assert_eq!(index_lookup(&output, &entry, &probe(&["c"])).expect("read"), Some(Found::Rows(None)));
    }

    #[test]
    fn a_damaged_index_is_not_trusted() {
        let bytes = encode(&events(&["a", "b"])).expect("encode");
        assert_eq!(find(&bytes[..bytes.len() - 1], &wanted(&probe(&["x"]))), None, "truncated");
        assert_eq!(find(b"PAR1\0\0\0\0", &wanted(&probe(&["x"]))), None, "not an index");
        assert_eq!(find(&index_bytes(&[2, 1], &[0, 1]), &wanted(&probe(&["x"]))), None, "out of order");
    }

    #[test]
    fn every_entry_of_a_prefix_is_found_and_a_window_that_may_not_hold_them_all_settles_nothing() {
        assert_eq!(
            find(&index_bytes(&[1, 5, 5, 5, 7], &[4, 0, 9, 2, 3]), &[5]),
            Some(Found::Rows(Some(vec![0, 2, 9])))
        );
        let prefixes: Vec<u8> = [5u64, 5, 6].iter().flat_map(|p| p.to_le_bytes()).collect();
        let window = super::Window::new(10, &prefixes, None).expect("window");
        assert_eq!(window.entries_of(5, 100), None, "entries of 5 may come before entry 10");
        assert_eq!(window.entries_of(6, 100), None, "entries of 6 may come after entry 12");
        assert_eq!(window.entries_of(6, 13), Some(2..3), "entry 12 is the index's last");
        let from_start = super::Window::new(0, &prefixes, None).expect("window");
        assert_eq!(from_start.entries_of(5, 100), Some(0..2));
        assert_eq!(from_start.entries_of(4, 100), Some(0..0), "below every entry of an index that starts here");
    }

    #[test]
    fn a_large_index_is_read_by_its_head_and_the_entries_around_hits_with_the_same_answers() {
        let names: Vec<String> = (0..200_000).map(|i| format!("e{i}")).collect();
        let bytes = encode(&events(&names.iter().map(String::as_str).collect::<Vec<_>>())).expect("encode");
        // The same entries in the second format, read by windows.
        let layout = Layout::of(200_000);
        let (prefixes, rows) = (&bytes[layout.prefixes as usize..layout.rows as usize], &bytes[layout.rows as usize..]);
        let second = [MAGIC_V2.as_slice(), prefixes, rows].concat();
        let output = memory();
        let entries = [stored(&output, "a.ids", bytes.clone()), stored(&output, "b.ids", second.clone())];
        let absent: Vec<String> = (0..2_000).map(|i| format!("x{i}")).collect();
        let cases: [Vec<&str>; 5] = [
            vec!["e123456"],
            absent[..20].iter().map(String::as_str).collect(),
            absent[..20].iter().map(String::as_str).chain(["e7"]).collect(),
            vec!["e0", "e199999"],
            absent.iter().map(String::as_str).chain(["e5", "e150000"]).collect(),
        ];
        for ids in cases {
            let wanted: Vec<u64> = ids.iter().map(|id| prefix(silver::fingerprint(id))).collect();
            let rows: Vec<u32> =
                ids.iter().filter_map(|id| id.strip_prefix('e')).map(|i| i.parse().expect("row")).collect();
            let mut sorted = rows.clone();
            sorted.sort_unstable();
            let want = if rows.is_empty() { Found::Nothing } else { Found::Rows(Some(sorted)) };
            assert_eq!(find(&bytes, &wanted), Some(want.clone()));
            assert_eq!(find(&second, &wanted), Some(want.clone()));
            for entry in &entries {
                assert_eq!(index_lookup(&output, entry, &probe(&ids)).expect("read"), Some(want.clone()), "{ids:?}");
            }
        }
        assert!(windows(200_000, &[prefix(silver::fingerprint("e7"))]).is_some(), "a few read by windows");
        // Many candidates: the windows would cover most of it; it is read whole.
        let many: Vec<u64> = names[..5_000].iter().map(|id| prefix(silver::fingerprint(id))).collect();
        assert!(windows(200_000, &many).is_none());
    }

    #[test]
    fn every_entry_of_a_prefix_is_found_across_fences() {
        // 100,000 spread entries, and 300 of one prefix across five fences.
        let mut entries = spread_entries(100_000);
        let repeated = entries[40_000].0;
        entries.extend((100_000..100_300u32).map(|row| (repeated, row)));
        entries.sort_unstable();
        let output = memory();
        let entry = stored(&output, "a.ids", bytes_of(&entries));
        assert!(entry.size > FOOTER_READ);
        let mut want: Vec<u32> = entries.iter().filter(|(p, _)| *p == repeated).map(|(_, row)| *row).collect();
        want.sort_unstable();
        assert_eq!(want.len(), 301);
        let found = index_lookup(&output, &entry, &ids_with_prefixes(&[repeated, entries[0].0, entries[100_299].0]));
        want.extend([entries[0].1, entries[100_299].1]);
        want.sort_unstable();
        assert_eq!(found.expect("read"), Some(Found::Rows(Some(want))));
    }

    #[test]
    fn an_index_with_a_damaged_head_or_entries_is_not_trusted() {
        let entries = spread_entries(100_000);
        let wanted = entries[50_000].0;
        let layout = Layout::of(100_000);
        let mut miscounted = bytes_of(&entries);
        miscounted[8..16].copy_from_slice(&99_999u64.to_le_bytes());
        let mut swapped = bytes_of(&entries);
        let at = (layout.prefixes + 8 * 50_000) as usize;
        let (first, second) = (swapped[at..at + 8].to_vec(), swapped[at + 8..at + 16].to_vec());
        swapped[at..at + 8].copy_from_slice(&second);
        swapped[at + 8..at + 16].copy_from_slice(&first);
        let output = memory();
        for (name, bytes) in [("miscounted.ids", miscounted), ("swapped.ids", swapped.clone())] {
            let entry = stored(&output, name, bytes);
            assert_eq!(index_lookup(&output, &entry, &ids_with_prefixes(&[wanted])).expect("read"), None, "{name}");
        }
        // Ids the filter rejects are answered from the head alone: the
        // damaged entries, which a whole read refuses, are not read.
        let absent: Vec<u64> = (0..50u64).map(|i| i * 7 + 1).filter(|p| !entries.iter().any(|e| e.0 == *p)).collect();
        let swapped = stored(&output, "swapped.ids", swapped);
        assert_eq!(find(&output.get("swapped.ids").expect("get"), &absent), None);
        assert_eq!(index_lookup(&output, &swapped, &ids_with_prefixes(&absent)).expect("read"), Some(Found::Nothing));
    }

    #[test]
    fn a_sizes_layout_is_found_only_for_sizes_an_index_has() {
        for n in [0, 1, 63, 64, 65, 52_000, 1_000_003] {
            let layout = Layout::of(n);
            assert_eq!(Layout::of_size(layout.size), Some(layout));
            assert_eq!(Layout::of_size(layout.size + 1), None, "an entry adds 12 bytes or more");
        }
    }

    #[test]
    fn an_index_whose_entries_are_not_where_expected_is_read_whole() {
        // Every entry in the lowest thousandth of the range: a window around
        // a candidate's expected place does not settle it.
        let prefixes: Vec<u64> = (0..100_000u64).map(|i| i * 1_000_003).collect();
        let rows: Vec<u32> = (0..100_000).collect();
        let output = memory();
        let entry = stored(&output, "a.ids", index_bytes(&prefixes, &rows));
        for (wanted, found) in [
            (vec![prefixes[99_000]], Found::Rows(Some(vec![99_000]))),
            (vec![prefixes[99_000] + 1, u64::MAX / 2], Found::Nothing),
        ] {
            assert!(windows(100_000, &wanted).is_some());
            assert_eq!(index_lookup(&output, &entry, &ids_with_prefixes(&wanted)).expect("read"), Some(found));
        }
    }

    #[test]
    fn a_damaged_window_is_not_trusted() {
        let mut prefixes: Vec<u64> = (0..100_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        prefixes.sort_unstable();
        let wanted = prefixes[50_000];
        prefixes.swap(50_000, 50_001);
        let output = memory();
        let entry = stored(&output, "a.ids", index_bytes(&prefixes, &(0..100_000).collect::<Vec<u32>>()));
        assert_eq!(index_lookup(&output, &entry, &ids_with_prefixes(&[wanted])).expect("read"), None);
    }

    #[test]
    fn a_hit_reads_the_ids_of_the_row_groups_holding_its_rows_only() {
        // Hex fingerprints barely compress: the file is larger than a
        // footer read, so its groups are read by their chunks.
        let ids: Vec<String> = (0..20_000).map(|i| format!("{:032x}", silver::fingerprint(&format!("e{i}")))).collect();
        let output = memory();
        let df = events(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        output.put_parquet_in_groups("f.parquet", &df, 5_000, &[]).expect("put");
        let file = output.list("").expect("list").into_iter().next().expect("the file");
        assert!(file.size > FOOTER_READ, "{} bytes", file.size);
        let read = ids_of_rows(&output, &file, &[7_500, 16_000, 16_001]).expect("read");
        let got: Vec<&str> = read.column(EVENT_ID).expect("ids").str().expect("str").iter().flatten().collect();
        let want: Vec<&str> = ids[5_000..10_000].iter().chain(&ids[15_000..20_000]).map(String::as_str).collect();
        assert_eq!(got, want);
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
