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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use super::clean::Evaluated;
use super::reason::Reason;

/// Fingerprint of a normalized event id.
pub fn fingerprint(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

type FingerprintSet = HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// How much of a date's committed ids a batch needs loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Only those among the batch's own candidate ids.
    Probe,
    /// All of them.
    Full,
}

/// Seen ids per event date (days since 1970-01-01).
#[derive(Debug, Default)]
pub struct Dedupe {
    seen: HashMap<i32, FingerprintSet>,
    /// Dates whose committed ids are all in `seen` (not just probed ones).
    complete: HashSet<i32>,
}

impl Dedupe {
    /// Dates of a batch's clean candidates that need committed ids loaded
    /// before [`Dedupe::apply`], and how.
    pub fn dates_to_load(&self, batch: &[Evaluated]) -> BTreeMap<i32, Load> {
        batch
            .iter()
            .flat_map(Evaluated::candidate_dates)
            .filter(|d| !self.complete.contains(d))
            .map(|d| (d, if self.seen.contains_key(&d) { Load::Full } else { Load::Probe }))
            .collect()
    }

    /// The batch's clean candidate ids on `date`, to probe committed ids with.
    pub fn candidate_ids(batch: &[Evaluated], date: i32) -> FingerprintSet {
        batch
            .iter()
            .flat_map(|file| file.rows().iter())
            .filter(|row| row.reasons.is_empty() && row.event_date() == date)
            .map(|row| row.id_hash)
            .collect()
    }

    /// Records ids committed by earlier runs on `date`: all of them
    /// ([`Load::Full`]) or those among the probed candidates ([`Load::Probe`]).
    pub fn preload(&mut self, date: i32, load: Load, ids: impl IntoIterator<Item = u128>) {
        self.seen.entry(date).or_default().extend(ids);
        if load == Load::Full {
            self.complete.insert(date);
        }
    }

    /// Marks repeated ids of a batch of files as `duplicate_event_id`, in
    /// file then row order. Dates are independent, so each date's ids are
    /// checked on its own thread.
    pub fn apply(&mut self, batch: &mut [Evaluated]) {
        let dates: BTreeSet<i32> = batch.iter().flat_map(Evaluated::candidate_dates).collect();
        for date in &dates {
            self.seen.entry(*date).or_default();
        }
        let files: &[Evaluated] = batch;
        let duplicates: Vec<(usize, usize)> = self
            .seen
            .par_iter_mut()
            .filter(|(date, _)| dates.contains(date))
            .flat_map_iter(|(&date, seen)| {
                let mut duplicates = Vec::new();
                for (f, file) in files.iter().enumerate() {
                    for (r, row) in file.rows().iter().enumerate() {
                        if row.reasons.is_empty() && row.event_date() == date && !seen.insert(row.id_hash) {
                            duplicates.push((f, r));
                        }
                    }
                }
                duplicates
            })
            .collect();
        for (f, r) in duplicates {
            batch[f].rows_mut()[r].reasons.insert(Reason::DuplicateEventId);
        }
    }

    /// Number of ids held, for logs.
    pub fn len(&self) -> usize {
        self.seen.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The fingerprints are already uniformly distributed: hash by folding.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}
