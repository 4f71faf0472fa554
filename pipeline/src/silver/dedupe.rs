//! Rule 5: the first clean row with a given `event_id` on a given UTC event
//! date wins, in processing order and with earlier runs first.
//!
//! Ids are kept as 128-bit xxh3 fingerprints per date (16 bytes an id;
//! a false match needs ~10^19 ids on one date). Dates are loaded from
//! committed silver by the caller before [`Dedupe::apply`] sees them, in
//! one of two ways. The first batch to touch a date only needs to know
//! which of *its own* ids were committed before, so the caller streams the
//! committed ids past [`Dedupe::candidate_ids`] and keeps the matches
//! ([`Load::Probe`]): no set of millions of ids is built for a small
//! incremental run. If a later batch of the same run touches the date
//! again, the date is loaded in full ([`Load::Full`]).
//!
//! Memory is bounded by a budget. Ids are held exactly in hash sets until
//! those would take more than half of it; then they give way to a Bloom
//! filter of the other half ([`Dedupe::apply`] switches by itself). A
//! filter has no false negatives: a row it has not seen is new, and is
//! decided at once; its id goes to the caller to spill
//! ([`Dedupe::take_spilled`]). A row it may have seen is *deferred*: not
//! silver yet, decided after the last batch by a [`Resolver`] that knows
//! the spilled and committed ids among the deferred ones. Every spilled
//! id comes before every deferred row with the same id (after a row, its
//! id is in the filter), so the outcome is the exact one.
//!
//! A date's ids are split into [`SHARDS`] shards by fingerprint, each with
//! its own set (or filter), so one date's rows are checked on every core:
//! rows with one id share a shard, and each shard takes its rows in
//! processing order, so the outcome does not depend on the threads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use fastbloom::AtomicBloomFilter;
use rayon::prelude::*;

use super::clean::Evaluated;
use super::fingerprint::FingerprintSet;
use super::reason::Reason;

/// How much of a date's committed ids a batch needs loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// Only those among the batch's own candidate ids.
    Probe,
    /// All of them.
    Full,
}

/// Shards of a date's ids; see the module header.
pub(crate) const SHARDS: usize = 16;

/// The shard of an id (its top bits; the set hashers fold all of them).
fn shard_of(id: u128) -> usize {
    (id >> (128 - SHARDS.trailing_zeros())) as usize
}

/// A date's exact ids, by shard.
type Shards = [FingerprintSet; SHARDS];

/// A batch's clean rows on one date, by shard, in order: (file, row, id).
type RowsByShard = [Vec<(usize, usize, u128)>; SHARDS];

/// Seen ids per event date (days since 1970-01-01).
#[derive(Debug)]
pub(crate) struct Dedupe {
    /// Exact ids, until they would take more than half of `budget` bytes.
    seen: HashMap<i32, Shards>,
    /// Dates some ids were recorded for (committed or this run's).
    touched: HashSet<i32>,
    /// Dates whose committed ids are all recorded (not just probed ones).
    complete: HashSet<i32>,
    budget: usize,
    /// Set once the exact ids outgrew the budget.
    bounded: Option<Bounded>,
}

/// Rule 5 beyond the budget: a filter, new ids to spill, deferred ids.
#[derive(Debug)]
struct Bounded {
    /// One filter a shard, of an equal share of the bits.
    filters: Vec<AtomicBloomFilter>,
    /// Ids of rows decided new (and exact ids at the switch), by date, for the caller to spill.
    spilled: BTreeMap<i32, Vec<u128>>,
    /// Ids of deferred rows, by date.
    deferred: HashMap<i32, FingerprintSet>,
    deferred_rows: u64,
}

/// Bits the filter sets per id. Each costs a cache miss, and a false
/// "maybe" only costs deferring a row: 3 give 1 in 500 at 22 bits an id
/// (100M ids in 256 MiB, half the default budget), 1 in 70 at 11 bits,
/// while true duplicates (deferred anyway) are often 1 in 100.
const FILTER_HASHES: u32 = 3;

impl Default for Dedupe {
    /// Exact ids, however many.
    fn default() -> Self {
        Self::with_budget(usize::MAX)
    }
}

impl Dedupe {
    /// Holds exact ids up to half of `budget` bytes, then a filter of the other half.
    pub(crate) fn with_budget(budget: usize) -> Self {
        Self { seen: HashMap::new(), touched: HashSet::new(), complete: HashSet::new(), budget, bounded: None }
    }

    /// Dates of a batch's clean candidates that need committed ids loaded
    /// before [`Dedupe::apply`], and how.
    pub(crate) fn dates_to_load(&self, batch: &[Evaluated]) -> BTreeMap<i32, Load> {
        // The distinct dates first: a piece's rows mostly share the date of the row before.
        let mut dates = BTreeSet::new();
        for file in batch {
            let mut last = None;
            for date in file.candidate_dates().filter(|&d| last.replace(d) != Some(d)) {
                dates.insert(date);
            }
        }
        dates
            .into_iter()
            .filter(|d| !self.complete.contains(d))
            .map(|d| (d, if self.touched.contains(&d) { Load::Full } else { Load::Probe }))
            .collect()
    }

    /// The batch's clean candidate ids on `date`, to probe committed ids with.
    pub(crate) fn candidate_ids(batch: &[Evaluated], date: i32) -> FingerprintSet {
        batch
            .iter()
            .flat_map(|file| file.rows().iter())
            .filter(|row| row.reasons.is_empty() && row.event_date() == date)
            .map(|row| row.id_hash)
            .collect()
    }

    /// Records ids committed by earlier runs on `date`: all of them
    /// ([`Load::Full`]) or those among the probed candidates ([`Load::Probe`]).
    pub(crate) fn preload(&mut self, date: i32, load: Load, ids: impl IntoIterator<Item = u128>) {
        self.touched.insert(date);
        match &self.bounded {
            None => {
                let shards = self.seen.entry(date).or_default();
                for id in ids {
                    shards[shard_of(id)].insert(id);
                }
            }
            // Not spilled: the resolver probes committed ids itself.
            Some(bounded) => ids.into_iter().for_each(|id| {
                bounded.filters[shard_of(id)].insert_hash(filter_key(date, id));
            }),
        }
        if load == Load::Full {
            self.complete.insert(date);
        }
    }

    /// Applies rule 5 to a batch of files, in file then row order: repeated
    /// ids are marked `duplicate_event_id` (or, beyond the budget, rows the
    /// filter may have seen are marked deferred). Dates and shards are
    /// independent, so each shard of each date is checked on its own thread.
    pub(crate) fn apply(&mut self, batch: &mut [Evaluated]) {
        let mut rows = rows_by_shard(batch);
        self.touched.extend(rows.keys());
        if let Some(bounded) = &mut self.bounded {
            bounded.apply(batch, rows);
            return;
        }
        for date in rows.keys() {
            self.seen.entry(*date).or_default();
        }
        let work: Vec<_> = self
            .seen
            .iter_mut()
            .filter_map(|(date, shards)| Some(shards.iter_mut().zip(rows.remove(date)?)))
            .flatten()
            .collect();
        let duplicates: Vec<(usize, usize)> = work
            .into_par_iter()
            .flat_map_iter(|(seen, rows)| {
                rows.into_iter().filter(|&(_, _, id)| !seen.insert(id)).map(|(f, r, _)| (f, r)).collect::<Vec<_>>()
            })
            .collect();
        for (f, r) in duplicates {
            batch[f].rows_mut()[r].reasons.insert(Reason::DuplicateEventId);
        }
        if self.exact_bytes() > self.budget / 2 {
            self.bound();
        }
    }

    /// Whether the ids outgrew the budget (rows may be deferred).
    pub(crate) fn is_bounded(&self) -> bool {
        self.bounded.is_some()
    }

    /// Ids decided new since the last call (beyond the budget), by date:
    /// the caller keeps them for the [`Resolver`].
    pub(crate) fn take_spilled(&mut self) -> BTreeMap<i32, Vec<u128>> {
        self.bounded.as_mut().map(|b| std::mem::take(&mut b.spilled)).unwrap_or_default()
    }

    /// The ids of deferred rows by date, and how many rows were deferred.
    pub(crate) fn take_deferred(&mut self) -> (HashMap<i32, FingerprintSet>, u64) {
        match &mut self.bounded {
            Some(b) => (std::mem::take(&mut b.deferred), std::mem::take(&mut b.deferred_rows)),
            None => Default::default(),
        }
    }

    /// Ids decided new and not yet taken by [`Dedupe::take_spilled`]: right
    /// after the switch, the exact ids it gave over (and the batch's new ones).
    pub(crate) fn spilled_len(&self) -> usize {
        self.bounded.as_ref().map_or(0, |b| b.spilled.values().map(Vec::len).sum())
    }

    /// Heap bytes of the exact sets: 16-byte ids and a control byte per
    /// slot, in tables of a power of two slots at most 7/8 full.
    fn exact_bytes(&self) -> usize {
        self.seen.values().flatten().map(|s| (s.capacity() * 8 / 7).next_power_of_two() * 17).sum()
    }

    /// Gives the exact ids over to filters of half the budget; they move
    /// to the spill date by date, each set freed as it goes.
    fn bound(&mut self) {
        let bits = (self.budget / 2 / SHARDS).saturating_mul(8).max(64);
        let filters: Vec<_> =
            (0..SHARDS).map(|_| AtomicBloomFilter::with_num_bits(bits).hashes(FILTER_HASHES)).collect();
        let mut spilled = BTreeMap::new();
        for (date, shards) in std::mem::take(&mut self.seen) {
            let mut ids = Vec::with_capacity(shards.iter().map(HashSet::len).sum());
            for (filter, shard) in filters.iter().zip(shards) {
                for &id in &shard {
                    filter.insert_hash(filter_key(date, id));
                }
                ids.extend(shard);
            }
            spilled.insert(date, ids);
        }
        self.bounded = Some(Bounded { filters, spilled, deferred: HashMap::new(), deferred_rows: 0 });
    }
}

impl Bounded {
    fn apply(&mut self, batch: &mut [Evaluated], rows: BTreeMap<i32, RowsByShard>) {
        let filters = &self.filters;
        let work: Vec<_> = rows
            .into_iter()
            .flat_map(|(date, shards)| shards.into_iter().enumerate().map(move |s| (date, s)))
            .collect();
        // Per shard, in order: a row is new only if no earlier row could have its id.
        let outcomes: Vec<_> = work
            .into_par_iter()
            .map(|(date, (shard, rows))| {
                let (mut new, mut deferred) = (Vec::new(), Vec::new());
                for (f, r, id) in rows {
                    match filters[shard].insert_hash(filter_key(date, id)) {
                        false => new.push(id),
                        true => deferred.push((f, r)),
                    }
                }
                (date, new, deferred)
            })
            .collect();
        for (date, new, deferred) in outcomes {
            self.spilled.entry(date).or_default().extend(new);
            let ids = self.deferred.entry(date).or_default();
            self.deferred_rows += deferred.len() as u64;
            for (f, r) in deferred {
                let row = &mut batch[f].rows_mut()[r];
                row.deferred = true;
                ids.insert(row.id_hash);
            }
        }
    }
}

/// The clean rows of `files` by date and shard, in processing order.
fn rows_by_shard(files: &[Evaluated]) -> BTreeMap<i32, RowsByShard> {
    let per_file: Vec<BTreeMap<i32, RowsByShard>> = files
        .par_iter()
        .enumerate()
        .map(|(f, file)| {
            let mut rows: BTreeMap<i32, RowsByShard> = BTreeMap::new();
            for (r, row) in file.rows().iter().enumerate().filter(|(_, row)| row.reasons.is_empty()) {
                rows.entry(row.event_date()).or_default()[shard_of(row.id_hash)].push((f, r, row.id_hash));
            }
            rows
        })
        .collect();
    let mut rows: BTreeMap<i32, RowsByShard> = BTreeMap::new();
    for file in per_file {
        for (date, shards) in file {
            for (all, more) in rows.entry(date).or_default().iter_mut().zip(shards) {
                all.extend(more);
            }
        }
    }
    rows
}

/// The filter's hash of an id on a date (the fingerprint is uniform already).
fn filter_key(date: i32, id: u128) -> u64 {
    (id as u64) ^ ((id >> 64) as u64) ^ (date as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Rule 5 for deferred rows, after the last batch: given the ids that come
/// before every deferred row (spilled and committed ones among the
/// deferred ids), [`Resolver::apply`] takes the deferred rows in
/// processing order.
pub(crate) struct Resolver {
    earlier: HashMap<i32, FingerprintSet>,
}

impl Resolver {
    pub(crate) fn new(earlier: HashMap<i32, FingerprintSet>) -> Self {
        Self { earlier }
    }

    /// Marks repeated ids of `evaluated` (clean deferred rows, evaluated
    /// again) `duplicate_event_id`.
    pub(crate) fn apply(&mut self, evaluated: &mut Evaluated) {
        for row in evaluated.rows_mut().iter_mut().filter(|row| row.reasons.is_empty()) {
            if !self.earlier.entry(row.event_date()).or_default().insert(row.id_hash) {
                row.reasons.insert(Reason::DuplicateEventId);
            }
        }
    }
}
