//! The run manifest, `_runs/<run_id>.json`, written last by every run that
//! did something: what it read, wrote, rejected and how long each stage took.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::EngineKind;
use crate::error::{Error, Result};
use crate::silver::Counters;
use crate::storage::{Requests, Storage};

pub const RUNS_DIR: &str = "_runs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Layers written, quality gate passed.
    Succeeded,
    /// Layers written, but the reject ratio exceeded the configured maximum.
    QualityGateFailed,
    /// The run stopped with an error; nothing it wrote was published.
    Failed,
}

impl RunStatus {
    /// The status as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::QualityGateFailed => "quality_gate_failed",
            RunStatus::Failed => "failed",
        }
    }

    /// Whether the run's layers were published (its input counts as ingested).
    pub fn committed(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::QualityGateFailed)
    }
}

/// One ingested input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the input root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// xxh3-128 of the file's bytes as stored (compressed for `.gz`), hex.
    pub content_hash: String,
    pub last_modified: DateTime<Utc>,
    /// Records read (bronze rows), malformed included.
    pub rows: u64,
    pub malformed: u64,
}

/// An input file that could not be read at all (bad gzip, not text): the
/// run goes on without it, and later runs skip it until its content changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnreadableFile {
    /// Path relative to the input root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// xxh3-128 of the file's bytes as stored, hex.
    pub content_hash: String,
    pub last_modified: DateTime<Utc>,
    /// Why it could not be read.
    pub error: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRows {
    pub bronze: u64,
    pub silver_events: u64,
    pub silver_rejects: u64,
    /// Rows of the gold partitions this run (re)wrote.
    pub gold: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub input: String,
    pub output: String,
    pub full_refresh: bool,
    /// Where the global stages ran (`local` in manifests of older versions).
    #[serde(default)]
    pub engine: EngineKind,
    /// Files ingested by this run, in processing order.
    pub files: Vec<FileRecord>,
    /// Files this run could not read (absent in manifests of older versions).
    #[serde(default)]
    pub unreadable_files: Vec<UnreadableFile>,
    /// The quality gate's limit on unreadable files.
    #[serde(default)]
    pub max_unreadable_files: u64,
    /// Event files skipped because an earlier run ingested the same content.
    pub files_skipped: u64,
    pub rows: LayerRows,
    /// Rejected rows by their first reason.
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub reject_ratio: f64,
    pub max_reject_ratio: f64,
    /// Optional fields that became null, over this run's clean events.
    pub counters: Counters,
    /// Event dates whose gold partition this run (re)wrote, `YYYY-MM-DD`.
    pub gold_partitions: Vec<String>,
    /// Every object this run published, relative to the output root.
    pub outputs: Vec<String>,
    /// Seconds spent per stage.
    pub stage_seconds: BTreeMap<String, f64>,
    /// The table version each changed layer is at after this run, by layer
    /// folder (README "Tables"): what a Delta reader time-travels to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_versions: BTreeMap<String, u64>,
    /// A compaction's: the files its outputs merged, which its table
    /// versions remove (README "Compaction"). Empty for an ingesting run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted: Vec<String>,
    /// A vacuum's: files of expired partitions, which its table versions
    /// remove (README "Retention").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<String>,
    /// A vacuum's: the ids of the runs whose manifests it deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_runs: Vec<String>,
    /// Requests the run made to its input and output up to writing this
    /// manifest (README "Storage requests"); a maintenance run's input
    /// counts none. Absent for a run whose publishing a later command
    /// finished, and in manifests of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_requests: Option<StorageRequests>,
    pub error: Option<String>,
}

/// The requests a run made to each of its two locations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRequests {
    pub input: Requests,
    pub output: Requests,
}

impl Manifest {
    /// The manifest of a maintenance run (a compaction or a vacuum) of
    /// `output`, which ingests nothing; the caller fills in what it changed,
    /// and publishing the output's request count.
    pub(crate) fn maintenance(run_id: String, started_at: DateTime<Utc>, output: &str) -> Self {
        Manifest {
            run_id,
            status: RunStatus::Succeeded,
            started_at,
            finished_at: Utc::now(),
            input: String::new(),
            output: output.to_string(),
            full_refresh: false,
            engine: EngineKind::Local,
            files: Vec::new(),
            unreadable_files: Vec::new(),
            max_unreadable_files: 0,
            files_skipped: 0,
            rows: LayerRows::default(),
            rejects_by_reason: BTreeMap::new(),
            reject_ratio: 0.0,
            max_reject_ratio: 0.0,
            counters: Counters::default(),
            gold_partitions: Vec::new(),
            outputs: Vec::new(),
            stage_seconds: BTreeMap::new(),
            table_versions: BTreeMap::new(),
            compacted: Vec::new(),
            expired: Vec::new(),
            expired_runs: Vec::new(),
            storage_requests: Some(StorageRequests::default()),
            error: None,
        }
    }

    /// Whether this run compacted or vacuumed rather than ingesting input.
    pub fn is_maintenance(&self) -> bool {
        !(self.compacted.is_empty() && self.expired.is_empty() && self.expired_runs.is_empty())
    }

    pub fn path(run_id: &str) -> String {
        format!("{RUNS_DIR}/{run_id}.json")
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A manifest holds only strings, numbers and maps with string keys.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|source| Error::Manifest { path: path.to_string(), source })
    }
}

/// All run manifests of an output, oldest first (run ids sort by time).
pub(crate) fn load_manifests(output: &Storage) -> Result<Vec<Manifest>> {
    output
        .list(RUNS_DIR)?
        .into_iter()
        .filter(|e| e.relative.ends_with(".json"))
        .map(|e| Manifest::from_json(&output.get(&e.relative)?, &e.relative))
        .collect()
}

/// A sortable, unique run id: UTC start time to the millisecond plus 8 hex
/// digits that differ between processes and calls.
pub(crate) fn new_run_id(started_at: DateTime<Utc>) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = started_at.timestamp_nanos_opt().unwrap_or_default();
    let seed = format!("{}-{}-{nanos}-{n}", std::process::id(), std::thread::current().name().unwrap_or(""));
    let suffix = xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) as u32;
    format!("{}-{suffix:08x}", started_at.format("%Y%m%dT%H%M%S%3fZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_matches_its_serialized_form() {
        for status in [RunStatus::Succeeded, RunStatus::QualityGateFailed, RunStatus::Failed] {
            assert_eq!(serde_json::to_value(status).expect("serializable"), status.as_str());
        }
    }

    #[test]
    fn run_ids_sort_by_time_and_are_unique() {
        let t = DateTime::parse_from_rfc3339("2026-01-12T10:15:00.042Z").expect("valid").to_utc();
        let a = new_run_id(t);
        let b = new_run_id(t);
        assert!(a.starts_with("20260112T101500042Z-") && a.len() == 28, "{a}");
        assert_ne!(a, b);
        assert!(new_run_id(t + chrono::Duration::milliseconds(1)) > a);
    }
}
