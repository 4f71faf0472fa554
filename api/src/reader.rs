//! Reads gold slices and run manifests from the output location, through
//! caches the memory budget bounds.
//!
//! A slice is read only in the version its snapshot pinned (the file's
//! version tag): if a newer run has replaced the file since, the read says
//! [`ReadError::Stale`] instead of mixing two runs' gold in one answer.
//! Within a file, a service's rows are contiguous (gold is sorted by
//! service, minute), so a cold read asks polars for that row range only;
//! polars skips the row groups outside it.

use std::ops::Range;
use std::sync::Arc;

use pipeline::runs::Manifest;
use pipeline::storage::Storage;
use prometheus_client::metrics::counter::Counter;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::slice::{ServiceRows, Slice, split};
use crate::snapshot::Gold;

const MIB: u64 = 1024 * 1024;

/// How the memory budget is shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub(crate) total_bytes: u64,
    /// The newest dates, decoded (45%).
    pub(crate) hot_bytes: u64,
    /// Slices read on demand (25%).
    pub(crate) cache_bytes: u64,
    /// Manifests read for `/runs` pages (2%).
    pub(crate) manifest_bytes: u64,
}

impl Budget {
    /// The rest (28%) is left for the process itself, the indexes, and
    /// decoding in flight (bounded by [`crate::state::COLD_READS`]).
    pub fn from_mb(mb: u64) -> Self {
        Self::from_bytes(mb.saturating_mul(MIB))
    }

    pub(crate) fn from_bytes(total: u64) -> Self {
        Budget {
            total_bytes: total,
            hot_bytes: total / 100 * 45,
            cache_bytes: total / 100 * 25,
            manifest_bytes: total / 100 * 2,
        }
    }
}

/// Why a read did not give a value.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The value is not in memory and the caller may not do I/O.
    NeedsIo,
    /// The file changed since the snapshot pinned it: a newer run published.
    Stale,
    /// The store failed, or the file is not valid Parquet.
    Storage(pipeline::Error),
    /// The file is Parquet but not what the index says it holds.
    Invalid(String),
}

impl From<pipeline::Error> for ReadError {
    fn from(e: pipeline::Error) -> Self {
        ReadError::Storage(e)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SliceKey {
    date: i32,
    /// The file version the slice was read from.
    version: String,
    service: String,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<SliceKey, Arc<Slice>> for ByBytes {
    fn weight(&self, _: &SliceKey, slice: &Arc<Slice>) -> u64 {
        slice.bytes() as u64
    }
}

impl Weighter<String, Arc<[u8]>> for ByBytes {
    fn weight(&self, key: &String, json: &Arc<[u8]>) -> u64 {
        (key.len() + json.len()) as u64
    }
}

/// Reads of the output location, cached.
pub(crate) struct Reader {
    output: Storage,
    slices: Cache<SliceKey, Arc<Slice>, ByBytes>,
    manifests: Cache<String, Arc<[u8]>, ByBytes>,
    hits: Counter,
    misses: Counter,
}

impl Reader {
    /// `hits` and `misses` count slice lookups that were not in the hot window.
    pub(crate) fn new(output: Storage, budget: &Budget, hits: Counter, misses: Counter) -> Self {
        Reader {
            output,
            slices: Cache::with_weighter(1024, budget.cache_bytes.max(1), ByBytes),
            manifests: Cache::with_weighter(256, budget.manifest_bytes.max(1), ByBytes),
            hits,
            misses,
        }
    }

    /// Bytes the slice cache holds.
    pub(crate) fn cached_bytes(&self) -> u64 {
        self.slices.weight()
    }

    /// The rows of `service` on `date` in `gold`: from the hot window, the
    /// cache or (with `io`) the partition file. `None` when the date has no
    /// rows of the service.
    pub(crate) fn slice(
        &self,
        gold: &Gold,
        date: i32,
        service: &str,
        io: bool,
    ) -> Result<Option<Arc<Slice>>, ReadError> {
        let Some(partition) = gold.partitions.get(&date) else { return Ok(None) };
        let Some(day) = partition.days.get(service) else { return Ok(None) };
        if let Some(hot) = &partition.hot {
            return Ok(hot.get(service).cloned());
        }
        let version = partition.e_tag.clone().unwrap_or_else(|| gold.run_id.clone());
        let key = SliceKey { date, version, service: service.to_string() };
        if let Some(slice) = self.slices.get(&key) {
            self.hits.inc();
            return Ok(Some(slice));
        }
        if !io {
            return Err(ReadError::NeedsIo);
        }
        self.misses.inc();
        let slice = self.slices.get_or_insert_with(&key, || {
            let slices = self
                .decode(&partition.path, partition.e_tag.as_deref(), day.file_rows.clone())?
                .ok_or(ReadError::Stale)?;
            slices.into_iter().find(|s| s.key == service).map(|s| Arc::new(s.slice)).ok_or_else(|| {
                ReadError::Invalid(format!("{} does not hold service {service:?} at the indexed rows", partition.path))
            })
        })?;
        Ok(Some(slice))
    }

    /// Decodes a gold partition file (only `rows`, when given) in the
    /// version `e_tag`, split per service; `None` when the file is no longer
    /// that version (a newer run replaced it).
    pub(crate) fn decode(
        &self,
        path: &str,
        e_tag: Option<&str>,
        rows: Option<Range<usize>>,
    ) -> pipeline::Result<Option<Vec<ServiceRows>>> {
        let Some(df) = self.output.get_parquet_if_match(path, e_tag, rows)? else { return Ok(None) };
        let services =
            split(&df).map_err(|source| pipeline::Error::Parquet { action: "read", path: path.into(), source })?;
        Ok(Some(services))
    }

    /// A run's manifest as compact JSON.
    pub(crate) fn manifest(&self, run_id: &str, io: bool) -> Result<Arc<[u8]>, ReadError> {
        if let Some(json) = self.manifests.get(run_id) {
            return Ok(json);
        }
        if !io {
            return Err(ReadError::NeedsIo);
        }
        let path = Manifest::path(run_id);
        let manifest = Manifest::from_json(&self.output.get(&path)?, &path)?;
        // A manifest holds only strings, numbers and maps with string keys.
        let json: Arc<[u8]> = serde_json::to_vec(&manifest).unwrap_or_default().into();
        self.manifests.insert(run_id.to_string(), json.clone());
        Ok(json)
    }
}
