//! Event id fingerprints: rule 5 compares 128-bit xxh3 fingerprints of
//! normalized event ids, never the ids themselves (see `dedupe`). Both the
//! row rules (`clean`, which fingerprints each candidate row) and rule 5
//! use them.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Fingerprint of a normalized event id.
pub(crate) fn fingerprint(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

/// A set of id fingerprints.
pub(crate) type FingerprintSet = HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// The fingerprints are already uniformly distributed: hash by folding.
#[derive(Default)]
pub(crate) struct FingerprintHasher(u64);

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
