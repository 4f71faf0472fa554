//! Every layer folder is also a Delta Lake table (README "Tables"): a
//! `_delta_log/` beside its partitions, to which each run that changes the
//! layer commits one version. Delta readers (delta-rs, polars, Spark, Sail)
//! then see a run's files all at once or not at all, on any store, and can
//! read earlier versions while their files are kept.
//!
//! The pipeline writes the log and never reads its own data through it: a
//! layer's live files are exactly its table's files whenever no run is
//! publishing, because publishing retires what a version removed (deletes
//! it, or lists it as kept for time travel) before the run's manifest is
//! written, and recovery finishes a publish first.
//!
//! - [`log`] reads the newest version of a log (refusing one this writer
//!   did not write or does not understand) and writes commits, each
//!   created only if absent.
//! - [`stats`] turns a Parquet footer into a file's Delta statistics.
//! - [`checkpoint`] writes a table's state every so many versions, so that
//!   opening it does not cost more as versions pile up; after it, the log
//!   files no version within the log's retention needs are deleted
//!   ([`log::clean_up`]).
//! - [`replaced`] keeps removed files for time travel, and gives the
//!   pipeline a layer's live files ([`live_entries`]).

mod checkpoint;
mod log;
mod replaced;
mod stats;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use polars::prelude::{DataType, Schema};
use rayon::prelude::*;
use serde_json::{Value, json};
use tracing::{info, warn};

pub(crate) use checkpoint::DEFAULT_INTERVAL as DEFAULT_CHECKPOINT_INTERVAL;
pub(crate) use log::DEFAULT_RETENTION_HOURS as DEFAULT_LOG_RETENTION_HOURS;
use log::LOG_DIR;
pub(crate) use replaced::{Kept, expired, live_entries, live_files, retire};

use crate::error::{Error, Result};
use crate::layout::{self, BRONZE, GOLD, SILVER_EVENTS, SILVER_REJECTS};
use crate::storage::{Entry, Storage};
use crate::{bronze, gold, silver};

/// One layer as a table.
pub(crate) struct Table {
    /// The layer folder, relative to the output root.
    pub layer: &'static str,
    /// Its Hive partition column (a `date`).
    pub key: &'static str,
    /// Whether a run replaces a partition whole (gold) rather than adding
    /// files to it (bronze, silver).
    pub replaces_partitions: bool,
    /// The columns inside its files.
    schema: fn() -> Schema,
}

/// The four layer tables, bronze to gold.
pub(crate) const TABLES: [Table; 4] = [
    Table { layer: BRONZE, key: "ingest_date", replaces_partitions: false, schema: bronze::schema },
    Table { layer: SILVER_EVENTS, key: "event_date", replaces_partitions: false, schema: silver::events_schema },
    Table { layer: SILVER_REJECTS, key: "ingest_date", replaces_partitions: false, schema: silver::rejects_schema },
    Table { layer: GOLD, key: "event_date", replaces_partitions: true, schema: gold::schema },
];

impl Table {
    /// The Delta `schemaString`: the file columns, then the partition column.
    fn schema_string(&self) -> String {
        let mut fields: Vec<Value> = (self.schema)()
            .iter()
            .map(|(name, dtype)| json!({"name": name.as_str(), "type": delta_type(dtype), "nullable": true, "metadata": {}}))
            .collect();
        fields.push(json!({"name": self.key, "type": "date", "nullable": true, "metadata": {}}));
        json!({"type": "struct", "fields": fields}).to_string()
    }

    /// A data file's path inside the table, from its path under the output root.
    fn inside<'a>(&self, relative: &'a str) -> Option<&'a str> {
        relative.strip_prefix(self.layer)?.strip_prefix('/').filter(|p| !p.starts_with(LOG_DIR))
    }
}

/// The Delta type of a layer column.
fn delta_type(dtype: &DataType) -> Value {
    match dtype {
        DataType::Int32 => json!("integer"),
        DataType::Int64 => json!("long"),
        DataType::Float64 => json!("double"),
        DataType::Datetime(..) => json!("timestamp"),
        DataType::List(inner) => json!({"type": "array", "elementType": delta_type(inner), "containsNull": true}),
        _ => json!("string"),
    }
}

/// The newest version of each table's log, as [`check`] found it.
pub(crate) struct Heads(BTreeMap<&'static str, Option<log::Head>>);

/// The folders of every table's log and saved states, which their writes
/// go to directly (rather than through a run's staging).
pub(crate) fn log_dirs() -> Vec<String> {
    TABLES.iter().flat_map(|t| [format!("{}/{LOG_DIR}", t.layer), checkpoint::states_dir(t.layer)]).collect()
}

/// Checks that every table's log is one this writer understands, before a
/// run commits: a run stops on a log it must not extend, and publishes
/// nothing. What it read saves [`commit_run`] reading the logs again.
pub(crate) fn check(output: &Storage) -> Result<Heads> {
    let mut heads = BTreeMap::new();
    for table in &TABLES {
        heads.insert(table.layer, log::head(output, table.layer)?);
    }
    Ok(Heads(heads))
}

/// What committing a run to the tables did.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// The version each table is at after the run, by layer folder.
    pub versions: BTreeMap<String, u64>,
    /// Data files the run's versions removed, relative to the output root.
    pub removed: Vec<String>,
}

/// What a run publishes, as the tables see it. Paths are relative to the
/// output root.
pub(crate) struct Change<'a> {
    pub run_id: &'a str,
    /// The run's published files.
    pub added: &'a [String],
    /// Files whose rows the added files hold again (compaction): their
    /// versions change no data.
    pub compacted: &'a [String],
    /// Files of expired partitions, removed without replacement (vacuum).
    pub expired: &'a [String],
    /// The run replaces every earlier file of each table.
    pub full_refresh: bool,
    /// When tables get checkpoints and their old log files go.
    pub log: LogPolicy,
}

/// When a table gets a checkpoint, and how long the log keeps what time
/// travel needs (`[maintenance]`; README "Tables").
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogPolicy {
    /// A table gets a checkpoint once its newest is this many versions old.
    pub checkpoint_interval: u64,
    /// After a checkpoint, the commits and checkpoints below the newest
    /// checkpoint older than this many hours are deleted.
    pub retention_hours: u64,
    /// Data files a version removed stay this many hours ([`retire`]).
    pub keep_replaced_hours: u64,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            checkpoint_interval: checkpoint::DEFAULT_INTERVAL,
            retention_hours: log::DEFAULT_RETENTION_HOURS,
            keep_replaced_hours: 0,
        }
    }
}

/// Commits one version to each table the run changed, once: a table whose
/// newest version is already the run's (a publish finished after a crash)
/// is left as it is. A full refresh removes every earlier file of each
/// table, a gold file every earlier file of its partition, a compaction the
/// files it merged. A layer written before tables existed gets version 0
/// holding its live files. `heads` are the logs as [`check`] read them under
/// the same lock; `None` reads them (recovery).
pub(crate) fn commit_run(output: &Storage, change: &Change, mut heads: Option<Heads>) -> Result<Committed> {
    let (run_id, full_refresh) = (change.run_id, change.full_refresh);
    let compacted: BTreeSet<&str> = change.compacted.iter().map(String::as_str).collect();
    let expired: BTreeSet<&str> = change.expired.iter().map(String::as_str).collect();
    let data_change = compacted.is_empty();
    let operation = match (data_change, expired.is_empty(), full_refresh) {
        (false, _, _) => log::Operation::Compact,
        (true, false, _) => log::Operation::Delete,
        (true, true, true) => log::Operation::Overwrite,
        (true, true, false) => log::Operation::Append,
    };
    let mut committed = Committed::default();
    let kept = Kept::load(output)?;
    for table in &TABLES {
        let head = match heads.as_mut().and_then(|h| h.0.remove(table.layer)) {
            Some(head) => head,
            None => log::head(output, table.layer)?,
        };
        if let Some(head) = head.as_ref().filter(|h| h.run_id.as_deref() == Some(run_id)) {
            committed.versions.insert(table.layer.to_string(), head.version);
            committed.removed.extend(head.removed.iter().map(|p| format!("{}/{p}", table.layer)));
            continue;
        }
        let added: BTreeSet<&str> = change.added.iter().filter_map(|p| table.inside(p)).collect();
        let removes_some = compacted.iter().chain(&expired).any(|p| table.inside(p).is_some());
        if added.is_empty() && !removes_some && !full_refresh && head.is_some() {
            continue;
        }
        let version = head.as_ref().map_or(0, |h| h.version + 1);
        // A new table adopts every file; otherwise only the partitions the run changes matter.
        let everything = head.is_none() || full_refresh;
        let (mut new, mut before) = (Vec::new(), Vec::new());
        for entry in table_files(output, &kept, table, change, everything)? {
            match table.inside(&entry.relative) {
                Some(path) if added.contains(path) => new.push(entry),
                Some(_) => before.push(entry),
                None => {}
            }
        }
        if new.len() != added.len() {
            return Err(Error::Table {
                table: output.describe(table.layer),
                version,
                reason: format!("{} of the run's {} files are missing", added.len() - new.len(), added.len()),
            });
        }
        let replaced: BTreeSet<String> = new.iter().filter_map(|e| partition_of(table, &e.relative)).collect();
        let (removed, kept): (Vec<Entry>, Vec<Entry>) = before.into_iter().partition(|e| {
            full_refresh
                || compacted.contains(e.relative.as_str())
                || expired.contains(e.relative.as_str())
                || (table.replaces_partitions
                    && partition_of(table, &e.relative).is_some_and(|p| replaced.contains(&p)))
        });
        let now = Utc::now().timestamp_millis();
        let mut actions = Vec::new();
        if head.is_none() {
            actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
            actions.push(json!({"metaData": {
                "id": uuid::Uuid::new_v4().to_string(),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": table.schema_string(),
                "partitionColumns": [table.key],
                "configuration": {},
                "createdTime": now,
            }}));
            // Files published before the table existed (minus what this run replaces).
            for entry in &kept {
                actions.push(add(output, table, entry, true)?);
            }
        }
        for entry in &removed {
            actions.push(remove(table, entry, data_change, now));
        }
        let adds: Vec<Value> =
            new.par_iter().map(|entry| add(output, table, entry, data_change)).collect::<Result<_>>()?;
        actions.extend(adds);
        actions.push(log::commit_info(run_id, operation, removed.is_empty() && data_change, now));
        log::commit(output, table.layer, version, &actions)?;
        if version >= head.as_ref().and_then(|h| h.checkpoint).unwrap_or(0) + change.log.checkpoint_interval {
            checkpoint::write(output, table.layer, version)?;
            // Best effort: the version is committed; the next checkpoint cleans up again.
            let cutoff = Utc::now() - chrono::Duration::hours(change.log.retention_hours as i64);
            if let Err(e) = log::clean_up(output, table.layer, version, cutoff) {
                warn!(table = table.layer, error = %e.chain(), "Could not delete expired log files; the next checkpoint tries again.");
            }
        }
        info!(table = table.layer, version, added = new.len(), removed = removed.len(), "Committed a table version.");
        committed.versions.insert(table.layer.to_string(), version);
        committed.removed.extend(removed.into_iter().map(|e| e.relative));
    }
    Ok(committed)
}

/// The data files in `table` now (kept replaced ones left out): all of
/// them, or only those of the partitions `change` writes to, compacts or
/// expires (so a run's cost does not grow with the table).
fn table_files(output: &Storage, kept: &Kept, table: &Table, change: &Change, everything: bool) -> Result<Vec<Entry>> {
    if everything {
        return kept.live_entries(output, table.layer);
    }
    let partitions: BTreeSet<&str> = [change.added, change.compacted, change.expired]
        .into_iter()
        .flatten()
        .filter(|p| table.inside(p).is_some())
        .filter_map(|p| p.rsplit_once('/').map(|(folder, _)| folder))
        .collect();
    let mut live = Vec::new();
    for partition in partitions {
        live.extend(kept.live_entries(output, partition)?);
    }
    Ok(live)
}

/// The `key=value` folder of a data file, relative to its table.
fn partition_of(table: &Table, relative: &str) -> Option<String> {
    layout::partition_value(relative, table.key).map(str::to_string)
}

fn partition_values(table: &Table, relative: &str) -> Value {
    match layout::partition_value(relative, table.key) {
        Some(date) => json!({table.key: date}),
        None => json!({}),
    }
}

/// An `add` action for a live file, with statistics from its footer.
fn add(output: &Storage, table: &Table, entry: &Entry, data_change: bool) -> Result<Value> {
    let footer = output.parquet_footer(entry)?;
    let stats = stats::of(&footer, &(table.schema)()).to_string();
    Ok(json!({"add": {
        "path": log::encode_path(table.inside(&entry.relative).unwrap_or_default()),
        "partitionValues": partition_values(table, &entry.relative),
        "size": entry.size,
        "modificationTime": entry.last_modified.timestamp_millis(),
        "dataChange": data_change,
        "stats": stats,
    }}))
}

fn remove(table: &Table, entry: &Entry, data_change: bool, now: i64) -> Value {
    json!({"remove": {
        "path": log::encode_path(table.inside(&entry.relative).unwrap_or_default()),
        "deletionTimestamp": now,
        "dataChange": data_change,
        "extendedFileMetadata": true,
        "partitionValues": partition_values(table, &entry.relative),
        "size": entry.size,
    }})
}
