//! Where each layer lives under an output location (README "Output layout"). All
//! layers are Hive-partitioned: the partition column is in the folder name
//! only. Names starting with `_` are ignored by Parquet readers.

pub(crate) const BRONZE: &str = "bronze/events";
pub(crate) const SILVER_EVENTS: &str = "silver/events";
pub(crate) const SILVER_REJECTS: &str = "silver/rejects";
pub const GOLD: &str = "gold/service_minute_metrics";
/// Files of a run in progress, moved into the layers when it commits.
pub const STAGING: &str = "_staging";
/// Written into a run's staging folder when it commits; present until its
/// files are all published and its manifest is written.
pub const COMMIT_MARKER: &str = "_commit.json";
/// The single file of a gold partition, written by `run_id`. A run that
/// touches the partition writes a new file, and its table version removes
/// the previous one: a data file is never rewritten in place.
pub(crate) fn gold_file(date: &str, run_id: &str) -> String {
    format!("{}/part-{run_id}.parquet", partition(GOLD, "event_date", date))
}

/// Beside each silver events file a local run writes: the sorted prefixes
/// of its event id fingerprints (see `runs::id_index`), `event_date=`
/// partitioned like silver. Internal, not a layer.
pub(crate) const EVENT_IDS: &str = "_state/event_ids";

/// Every layer folder with its partition key, for listing and inspection.
pub(crate) const LAYERS: [(&str, &str); 4] =
    [(BRONZE, "ingest_date"), (SILVER_EVENTS, "event_date"), (SILVER_REJECTS, "ingest_date"), (GOLD, "event_date")];

/// Where a listing of a whole layer starts ([`Storage::list_after`]) to
/// skip its table's `_delta_log/`, which holds a commit a run: every name
/// in the log sorts before it (`/` before `0`), every partition folder
/// (`key=…`) after it. On S3 the log is then not listed at all, nor a
/// local log folder read; a store without a start-after listing lists
/// it and drops it.
///
/// [`Storage::list_after`]: crate::storage::Storage::list_after
pub fn after_log(layer: &str) -> String {
    format!("{layer}/_delta_log0")
}

/// `layer/key=date`.
pub fn partition(layer: &str, key: &str, date: &str) -> String {
    format!("{layer}/{key}={date}")
}

/// Path of a run's staged copy of `relative`.
pub fn staged(run_id: &str, relative: &str) -> String {
    format!("{STAGING}/{run_id}/{relative}")
}

/// The date of a `key=YYYY-MM-DD` folder in `relative`, if any.
pub fn partition_value<'a>(relative: &'a str, key: &str) -> Option<&'a str> {
    relative.split('/').find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
}
