//! A table's `_delta_log/`: commits `%020d.json` of one JSON action a line,
//! checkpoints `%020d.checkpoint.parquet` and `_last_checkpoint` naming the
//! newest (the Delta protocol, reader version 1, writer version 2).
//!
//! This writer extends only logs it wrote itself: [`head`] refuses a log
//! with a gap (one it lists; see [`probed_newest`]), a commit that does not parse, a protocol newer than the one
//! it writes, or a newest version another writer added. Since it never
//! commits after a version it refused, checking the newest version is
//! enough. A commit is created only if absent ([`Storage::create`]), so
//! two writers racing for one version cannot both win.

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use tracing::info;

use crate::error::{Error, Result};
use crate::storage::{Entry, Storage};

/// The log folder inside a table.
pub(crate) const LOG_DIR: &str = "_delta_log";

/// What `commitInfo.engineInfo` starts with in every version this writer commits.
const ENGINE: &str = "minutely";

/// Hours a log keeps what time travel to a version needs, unless
/// `[maintenance] log_retention_hours` says otherwise: 30 days, as Delta's
/// `delta.logRetentionDuration` does by default.
pub(crate) const DEFAULT_RETENTION_HOURS: u64 = 30 * 24;

/// The newest version of a table's log.
#[derive(Debug)]
pub(crate) struct Head {
    pub version: u64,
    /// The run that committed it.
    pub run_id: Option<String>,
    /// Files it removed, relative to the table.
    pub removed: Vec<String>,
    /// The version of the newest checkpoint, as `_last_checkpoint` names it.
    pub checkpoint: Option<u64>,
}

pub(super) fn commit_path(layer: &str, version: u64) -> String {
    format!("{layer}/{LOG_DIR}/{version:020}.json")
}

/// The checkpoint of `version`: the table's whole state then.
pub(super) fn checkpoint_path(layer: &str, version: u64) -> String {
    format!("{layer}/{LOG_DIR}/{version:020}.checkpoint.parquet")
}

/// What a log file is, by name: a commit or a checkpoint of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LogFile {
    Commit(u64),
    Checkpoint(u64),
}

impl LogFile {
    /// The file at `relative` inside the log folder `prefix` (`…/_delta_log/`);
    /// `None` for any other name (`_last_checkpoint`, a temporary file).
    fn of(relative: &str, prefix: &str) -> Option<Self> {
        let name = relative.strip_prefix(prefix)?;
        match name.strip_suffix(".checkpoint.parquet") {
            Some(version) => Some(Self::Checkpoint(version.parse().ok()?)),
            None => Some(Self::Commit(name.strip_suffix(".json")?.parse().ok()?)),
        }
    }

    fn version(self) -> u64 {
        match self {
            Self::Commit(v) | Self::Checkpoint(v) => v,
        }
    }
}

/// The file naming the newest checkpoint.
pub(super) fn last_checkpoint_path(layer: &str) -> String {
    format!("{layer}/{LOG_DIR}/_last_checkpoint")
}

/// The version `_last_checkpoint` names, if the table has one. A file that
/// does not parse is no checkpoint (readers then list the whole log).
fn last_checkpoint(output: &Storage, layer: &str) -> Result<Option<u64>> {
    let Some(bytes) = output.get_opt(&last_checkpoint_path(layer))? else { return Ok(None) };
    Ok(serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["version"].as_u64()))
}

/// The newest version of the table in `layer`, checked; `None` when the
/// layer has no log yet.
pub(crate) fn head(output: &Storage, layer: &str) -> Result<Option<Head>> {
    let checkpoint = last_checkpoint(output, layer)?;
    let newest = match (output.local_root(), checkpoint) {
        (Some(_), Some(checkpoint)) => probed_newest(output, layer, checkpoint)?,
        _ => listed_newest(output, layer, checkpoint)?,
    };
    match newest {
        Some(newest) => read_head(output, layer, newest, checkpoint),
        None => Ok(None),
    }
}

fn refusal(output: &Storage, layer: &str, version: u64, reason: impl Into<String>) -> Error {
    Error::Table { table: output.describe(layer), version, reason: reason.into() }
}

fn missing_checkpoint(output: &Storage, layer: &str, checkpoint: u64) -> Error {
    refusal(output, layer, checkpoint, "_last_checkpoint names this version's checkpoint, which is missing")
}

/// The newest version, from a listing of the log from the newest
/// checkpoint on (on object stores a listing that starts there), which
/// must hold every version after it.
fn listed_newest(output: &Storage, layer: &str, checkpoint: Option<u64>) -> Result<Option<u64>> {
    let prefix = format!("{layer}/{LOG_DIR}/");
    let after = checkpoint.map(|v| format!("{prefix}{v:020}"));
    let listed = output.list_after(&prefix, after.as_deref())?;
    let mut versions: Vec<u64> = listed
        .iter()
        .filter_map(|e| match LogFile::of(&e.relative, &prefix)? {
            LogFile::Commit(v) => Some(v),
            LogFile::Checkpoint(_) => None,
        })
        .collect();
    versions.sort_unstable();
    if let Some(checkpoint) = checkpoint {
        if !listed.iter().any(|e| e.relative == checkpoint_path(layer, checkpoint)) {
            return Err(missing_checkpoint(output, layer, checkpoint));
        }
        versions.retain(|v| *v > checkpoint);
    }
    let first = checkpoint.map_or(0, |v| v + 1);
    // Nothing after the checkpoint: its commit is the newest.
    let Some(&newest) = versions.last() else { return Ok(checkpoint) };
    if versions.len() as u64 != newest + 1 - first {
        let missing = (first..=newest).find(|v| versions.binary_search(v).is_err()).unwrap_or_default();
        return Err(refusal(output, layer, missing, "this version is missing from the log"));
    }
    Ok(Some(newest))
}

/// The newest version of a local log with a checkpoint: the commits after
/// it, looked up one by one until one is missing (a `stat` each, fewer
/// than the checkpoint interval). A local folder cannot be listed from a
/// name on, and reading the names of a log that keeps a month of
/// 5-minute runs cost more than the rest of a run's table work. What this
/// does not see, unlike a listing, is a version after a hole in the log;
/// no writer leaves one (log cleanup deletes oldest first).
fn probed_newest(output: &Storage, layer: &str, checkpoint: u64) -> Result<Option<u64>> {
    if !output.exists(&checkpoint_path(layer, checkpoint))? {
        return Err(missing_checkpoint(output, layer, checkpoint));
    }
    let mut newest = checkpoint;
    while output.exists(&commit_path(layer, newest + 1))? {
        newest += 1;
    }
    Ok(Some(newest))
}

/// Reads and checks commit `newest` of the table in `layer`.
fn read_head(output: &Storage, layer: &str, newest: u64, checkpoint: Option<u64>) -> Result<Option<Head>> {
    let refuse = |version: u64, reason: String| refusal(output, layer, version, reason);
    let actions = parse_actions(&output.get(&commit_path(layer, newest))?).map_err(|e| refuse(newest, e))?;
    let mut head = Head { version: newest, run_id: None, removed: Vec::new(), checkpoint };
    let mut engine = None;
    for action in actions {
        if let Some(protocol) = action.get("protocol") {
            let (reader, writer) = (protocol["minReaderVersion"].as_u64(), protocol["minWriterVersion"].as_u64());
            if reader.is_none_or(|v| v > 1) || writer.is_none_or(|v| v > 2) {
                return Err(refuse(
                    newest,
                    format!("it needs protocol {protocol}; this writer supports reader version 1 and writer version 2"),
                ));
            }
        }
        if let Some(info) = action.get("commitInfo") {
            engine = Some(info["engineInfo"].as_str().unwrap_or("an unnamed engine").to_string());
            head.run_id = info["runId"].as_str().map(str::to_string);
        }
        if let Some(path) = action.get("remove").and_then(|r| r["path"].as_str()) {
            head.removed.push(decode_path(path));
        }
    }
    match engine {
        Some(engine) if engine.starts_with(ENGINE) => Ok(Some(head)),
        Some(engine) => Err(refuse(
            newest,
            format!("another writer ({engine}) committed it; minutely extends only logs it wrote itself"),
        )),
        None => Err(refuse(newest, "it has no commitInfo, so another writer committed it".into())),
    }
}

/// Deletes the log files of the table in `layer` that no version since
/// `cutoff` needs: every commit and checkpoint below the newest checkpoint
/// (at most `newest`) written before `cutoff`. That checkpoint stays, so
/// every version from it on can still be read and travelled to; the ones
/// below were all committed before `cutoff`. Oldest first, so a cleanup
/// cut short leaves a log that starts later, never one with a gap.
pub(super) fn clean_up(output: &Storage, layer: &str, newest: u64, cutoff: DateTime<Utc>) -> Result<()> {
    let prefix = format!("{layer}/{LOG_DIR}/");
    let mut files: Vec<(LogFile, Entry)> =
        output.list(&prefix)?.into_iter().filter_map(|e| Some((LogFile::of(&e.relative, &prefix)?, e))).collect();
    let kept_from = files
        .iter()
        .filter_map(|(file, e)| match file {
            LogFile::Checkpoint(v) if *v <= newest && e.last_modified < cutoff => Some(*v),
            _ => None,
        })
        .max();
    let Some(kept_from) = kept_from else { return Ok(()) };
    files.retain(|(file, _)| file.version() < kept_from);
    files.sort_by_key(|(file, _)| (file.version(), *file));
    for (_, entry) in &files {
        output.delete(&entry.relative)?;
    }
    if !files.is_empty() {
        info!(table = layer, kept_from, deleted = files.len(), "Deleted expired log files.");
    }
    Ok(())
}

/// Creates version `version` of the table in `layer`; fails when that
/// version exists already (another writer committed it first).
pub(crate) fn commit(output: &Storage, layer: &str, version: u64, actions: &[Value]) -> Result<()> {
    match output.create(&commit_path(layer, version), to_lines(actions)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Error::Table {
            table: output.describe(layer),
            version,
            reason: "another writer committed this version first; nothing of this run was committed to the table"
                .into(),
        }),
        Err(e) => Err(e),
    }
}

/// The actions of a commit (or of any file of JSON actions, one a line), in order.
pub(super) fn parse_actions(bytes: &[u8]) -> std::result::Result<Vec<Value>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the commit is not UTF-8".to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|e| format!("line {} is not a JSON action ({e})", n + 1)))
        .collect()
}

/// `actions` as a commit holds them: one JSON action a line.
pub(super) fn to_lines(actions: &[Value]) -> String {
    actions.iter().map(|action| action.to_string() + "\n").collect()
}

/// What a version does, as its `commitInfo` names it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    /// A run's new files (and the gold files they replace).
    Append,
    /// A full refresh: every earlier file replaced.
    Overwrite,
    /// Small files merged into fewer; no data changes.
    Compact,
    /// Expired partitions removed (vacuum).
    Delete,
}

/// The `commitInfo` of a run's version.
pub(crate) fn commit_info(run_id: &str, operation: Operation, blind_append: bool, now: i64) -> Value {
    let (name, parameters) = match operation {
        Operation::Append => ("WRITE", json!({"mode": "Append"})),
        Operation::Overwrite => ("WRITE", json!({"mode": "Overwrite"})),
        Operation::Compact => ("OPTIMIZE", json!({"predicate": "[]", "zOrderBy": "[]"})),
        Operation::Delete => ("DELETE", json!({"predicate": "partitions past their retention"})),
    };
    json!({"commitInfo": {
        "timestamp": now,
        "operation": name,
        "operationParameters": parameters,
        "engineInfo": format!("{ENGINE} {}", env!("CARGO_PKG_VERSION")),
        "runId": run_id,
        "isBlindAppend": blind_append,
    }})
}

/// Characters a log path keeps as they are: the folders' `/` and `=`, and
/// what URIs never escape.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'=').remove(b'-').remove(b'_').remove(b'.');

/// A file's path in the log: relative to the table, as a URI path.
pub(crate) fn encode_path(relative: &str) -> String {
    utf8_percent_encode(relative, PATH_KEEP).to_string()
}

fn decode_path(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_are_known_by_name() {
        let prefix = "gold/x/_delta_log/";
        let of = |name: &str| LogFile::of(&format!("{prefix}{name}"), prefix);
        assert_eq!(of("00000000000000000007.json"), Some(LogFile::Commit(7)));
        assert_eq!(of("00000000000000000100.checkpoint.parquet"), Some(LogFile::Checkpoint(100)));
        assert_eq!(of("_last_checkpoint"), None);
        assert_eq!(of("00000000000000000007.json#1"), None);
        assert_eq!(LogFile::of("gold/y/_delta_log/00000000000000000007.json", prefix), None);
    }

    fn memory() -> Storage {
        let name = format!("memory://tables-{}", uuid::Uuid::new_v4());
        Storage::open(&name, true).expect("memory store")
    }

    fn ours(run: &str) -> Vec<Value> {
        vec![
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"remove": {"path": "d=1/a%20b.parquet", "deletionTimestamp": 0, "dataChange": true}}),
            commit_info(run, Operation::Append, false, 0),
        ]
    }

    #[test]
    fn head_is_the_newest_version_with_its_run_and_removed_files() {
        let output = memory();
        assert!(head(&output, "t").expect("no log").is_none());
        commit(&output, "t", 0, &ours("r0")).expect("v0");
        commit(&output, "t", 1, &ours("r1")).expect("v1");
        let got = head(&output, "t").expect("log").expect("a version");
        assert_eq!((got.version, got.run_id.as_deref()), (1, Some("r1")));
        assert_eq!(got.removed, ["d=1/a b.parquet"]);
    }

    #[test]
    fn a_version_is_created_once() {
        let output = memory();
        commit(&output, "t", 0, &ours("r0")).expect("v0");
        let err = commit(&output, "t", 0, &ours("r1")).unwrap_err().to_string();
        assert!(err.contains("version 0") && err.contains("another writer committed this version first"), "{err}");
    }

    #[test]
    fn logs_this_writer_must_not_extend_are_refused_naming_table_and_version() {
        let cases: [(&str, &str); 5] = [
            ("{\"commitInfo\": {\"engineInfo\": \"Apache-Spark/3.5 Delta-Lake/3.2\"}}", "another writer (Apache-Spark"),
            ("{\"add\": {\"path\": \"x.parquet\"}}", "no commitInfo"),
            ("{\"commitInfo\": {\"engineInfo\": \"minutely 0.1.0\"}}\n{not json", "line 2 is not a JSON action"),
            (
                "{\"protocol\": {\"minReaderVersion\": 3, \"minWriterVersion\": 7}}\n{\"commitInfo\": {\"engineInfo\": \"minutely\"}}",
                "this writer supports reader version 1",
            ),
            ("\u{0}\u{ff}", "not a JSON action"),
        ];
        for (body, want) in cases {
            let output = memory();
            commit(&output, "t", 0, &ours("r0")).expect("v0");
            output.put(&commit_path("t", 1), body.to_string()).expect("foreign version");
            let err = head(&output, "t").unwrap_err().to_string();
            assert!(err.contains("version 1") && err.contains("/t") && err.contains(want), "{body}: {err}");
        }
        let output = memory();
        commit(&output, "t", 0, &ours("r0")).expect("v0");
        commit(&output, "t", 2, &ours("r2")).expect("v2");
        let err = head(&output, "t").unwrap_err().to_string();
        assert!(err.contains("version 1") && err.contains("missing"), "{err}");
    }

    #[test]
    fn a_local_log_is_probed_from_its_checkpoint_to_the_head_a_listing_finds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Storage::open(dir.path().to_str().expect("utf-8 path"), true).expect("local folder");
        for version in 0..5 {
            commit(&output, "t", version, &ours(&format!("r{version}"))).expect("commit");
        }
        output.put(&checkpoint_path("t", 2), "a checkpoint").expect("checkpoint");
        output.put(&last_checkpoint_path("t"), r#"{"version":2,"size":1}"#).expect("_last_checkpoint");
        assert_eq!(probed_newest(&output, "t", 2).expect("probed"), Some(4));
        assert_eq!(listed_newest(&output, "t", Some(2)).expect("listed"), Some(4));
        let got = head(&output, "t").expect("log").expect("a version");
        assert_eq!((got.version, got.run_id.as_deref(), got.checkpoint), (4, Some("r4"), Some(2)));

        // As with a listing: a version another writer added is refused, and so is a lost checkpoint.
        let foreign = "{\"commitInfo\": {\"engineInfo\": \"Apache-Spark/3.5 Delta-Lake/3.2\"}}";
        output.put(&commit_path("t", 5), foreign).expect("foreign version");
        let err = head(&output, "t").unwrap_err().to_string();
        assert!(err.contains("version 5") && err.contains("another writer"), "{err}");
        output.delete(&checkpoint_path("t", 2)).expect("delete");
        let err = head(&output, "t").unwrap_err().to_string();
        assert!(err.contains("version 2") && err.contains("checkpoint, which is missing"), "{err}");
    }

    #[test]
    fn paths_are_uri_encoded_except_for_hive_folders() {
        assert_eq!(encode_path("event_date=2026-01-01/part-x_1.parquet"), "event_date=2026-01-01/part-x_1.parquet");
        assert_eq!(encode_path("k=a b/ü%.parquet"), "k=a%20b/%C3%BC%25.parquet");
        assert_eq!(decode_path(&encode_path("k=a b/ü%.parquet")), "k=a b/ü%.parquet");
    }
}
