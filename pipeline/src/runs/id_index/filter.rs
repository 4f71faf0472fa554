//! The membership filter at the head of an event id index: a blocked
//! Bloom filter of the index's prefixes, so that a run's ids are looked up
//! in a large index by reading about a byte an entry (README "Runs:
//! incremental and crash-safe").
//!
//! The prefixes are uniformly spread hash bits already (the upper half of
//! an xxh3-128 fingerprint), so they need no hashing to pick a block: a
//! prefix's upper 32 bits pick one of the filter's 512-bit blocks, and
//! [`PROBES`] 9-bit fields of the prefix remixed by splitmix64's finalizer
//! pick the bits set in that block. Of prefixes not in the index, about 1%
//! pass; one in the index always does.
//!
//! The layout is part of the index format, so it is written out here
//! rather than taken from a Bloom filter crate: a crate may change which
//! bits it sets between versions, and an index written by one build would
//! then hide duplicates from the next. For the same reason a change of
//! any constant or step below needs a new index magic.

/// Filter bits an entry.
const BITS_PER_ENTRY: u64 = 10;
const BLOCK_BITS: u64 = 512;
/// Bits set (and tested) a prefix: near the best count for 10 bits an
/// entry, which lets about 1% of absent prefixes pass in 512-bit blocks.
const PROBES: u32 = 7;

/// Bytes of the filter of `n` entries: whole blocks, none when `n` is 0.
pub(super) fn bytes_for(n: u64) -> u64 {
    n.saturating_mul(BITS_PER_ENTRY).div_ceil(BLOCK_BITS) * (BLOCK_BITS / 8)
}

/// The filter of `n` entries with `prefixes`.
pub(super) fn build(prefixes: impl Iterator<Item = u64>, n: u64) -> Vec<u8> {
    let mut filter = vec![0u8; bytes_for(n) as usize];
    let blocks = blocks(&filter);
    for p in prefixes {
        bits(p, blocks).for_each(|bit| filter[bit / 8] |= 1 << (bit % 8));
    }
    filter
}

/// Whether prefix `p` may be among the entries of `filter`: always when it
/// is, and for about 1% of the prefixes that are not.
pub(super) fn may_hold(filter: &[u8], p: u64) -> bool {
    let blocks = blocks(filter);
    blocks > 0 && bits(p, blocks).all(|bit| filter.get(bit / 8).is_some_and(|byte| byte & (1 << (bit % 8)) != 0))
}

fn blocks(filter: &[u8]) -> u64 {
    filter.len() as u64 / (BLOCK_BITS / 8)
}

/// The bits of prefix `p` in a filter of `blocks` blocks, numbered from the
/// first byte's lowest bit. `blocks` is below 2^32 for any index (its rows
/// are numbered by 32 bits), so the block's product does not overflow.
fn bits(p: u64, blocks: u64) -> impl Iterator<Item = usize> {
    let block = ((p >> 32) * blocks) >> 32;
    let fields = splitmix64(p);
    (0..PROBES).map(move |i| (block * BLOCK_BITS + ((fields >> (9 * i)) & (BLOCK_BITS - 1))) as usize)
}

/// splitmix64's finalizer: every bit of `x` moves about half of the bits
/// of the result.
fn splitmix64(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniformly spread prefixes, as fingerprints give: the i-th of a
    /// sequence remixed.
    fn spread(range: std::ops::Range<u64>) -> Vec<u64> {
        range.map(|i| splitmix64(i ^ 0x5151_5151)).collect()
    }

    #[test]
    fn every_entry_passes_and_about_one_in_a_hundred_others_do() {
        let entries = spread(0..100_000);
        let filter = build(entries.iter().copied(), 100_000);
        assert_eq!(filter.len(), 1_954 * 64, "10 bits an entry, in whole 512-bit blocks");
        assert!(entries.iter().all(|&p| may_hold(&filter, p)));
        let passed = spread(1_000_000..1_100_000).into_iter().filter(|&p| may_hold(&filter, p)).count();
        assert!((500..1_500).contains(&passed), "{passed} of 100,000 absent prefixes passed");
    }

    #[test]
    fn the_filter_of_no_entries_holds_nothing() {
        let filter = build(std::iter::empty(), 0);
        assert!(filter.is_empty());
        assert!(!may_hold(&filter, 7));
        let one = build([u64::MAX].into_iter(), 1);
        assert_eq!(one.len(), 64);
        assert!(may_hold(&one, u64::MAX));
    }
}
