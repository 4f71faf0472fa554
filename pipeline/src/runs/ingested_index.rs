//! The ingested-files index, `_state/ingested.msgpack`: every input file
//! that committed runs ingested (path, size, modification time, content
//! hash), folded from the manifests up to one run.
//!
//! It is a cache of `_runs/`: a run reads it plus only the manifests newer
//! than it, so finding what is already ingested costs O(new runs), not
//! O(run history) (one run every 5 minutes is ~100k manifests a year).
//! It is written after the manifest, whole, in MessagePack: every run
//! reads and writes it, and at a few thousand files JSON cost a scheduled
//! run more time than anything else that grows with its history.
//! A missing, stale or unreadable index only means reading more manifests.
//! After a clean stop on a local folder (see [`IngestedIndex::load`]) the
//! manifests are not even listed. Before `pipeline vacuum` deletes expired
//! manifests it also stores a copy, [`RETAINED_FILE`], which a run reads
//! when the index is missing or unreadable: without it, rebuilding from the
//! manifests left would forget what the expired ones ingested, and that
//! input would be ingested again. The JSON files of earlier versions are
//! still read.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::manifest::{Manifest, RUNS_DIR};
use crate::error::Result;
use crate::storage::Storage;

pub(crate) const INDEX_FILE: &str = "_state/ingested.msgpack";

/// The copy of the index stored before manifests are expired.
pub(crate) const RETAINED_FILE: &str = "_state/ingested-retained.msgpack";

/// The index and its retained copy as earlier versions stored them, in JSON.
/// One of them that writes the index again makes this file newer than
/// [`INDEX_FILE`].
const JSON_INDEX_FILE: &str = "_state/ingested.json";
const JSON_RETAINED_FILE: &str = "_state/ingested-retained.json";

/// What an earlier run ingested at one input path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IngestedFile {
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub content_hash: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IngestedIndex {
    /// The newest run folded in; manifests after it are read on load.
    through_run: Option<String>,
    /// By input path; the newest committed run's record wins.
    files: BTreeMap<String, IngestedFile>,
    /// When a run with incremental listing on last listed the whole input
    /// and stored this index (runs in between list only its newest part).
    #[serde(default)]
    listed_in_full_at: Option<DateTime<Utc>>,
    /// Whether anything was folded in since the index was read.
    #[serde(skip)]
    changed: bool,
    /// Whether an earlier version's JSON index is there, to be deleted
    /// when this one is stored (a stale copy must not outlive it).
    #[serde(skip)]
    json_left: bool,
}

/// The index as stored: files sorted by path, with their modification
/// times in nanoseconds since the epoch (read back as the same instant).
#[derive(Serialize, Deserialize)]
struct Stored<S> {
    through_run: Option<S>,
    files: Vec<(S, u64, i64, S)>,
    /// In nanoseconds since the epoch; absent in indexes stored before
    /// incremental listing.
    #[serde(default)]
    listed_in_full_at: Option<i64>,
}

impl IngestedIndex {
    /// The index as of the newest manifest: the stored index, then every
    /// manifest written after the run it was stored through.
    ///
    /// `after_clean_release` says the last holder of the output's lock
    /// finished its command and let go ([`super::lock::Lock::release`]).
    /// A run releases only after storing the index through its own
    /// manifest, so then no manifest is newer than the stored index and
    /// `_runs/` is not listed (a folder of one file a run). Unless an
    /// earlier version's JSON index is there: that version may have run
    /// since, without updating this index.
    pub fn load(output: &Storage, after_clean_release: bool) -> Result<Self> {
        let json_left = output.exists(JSON_INDEX_FILE)?;
        let stored = Self::stored(output, INDEX_FILE)?;
        let current = stored.is_some() && after_clean_release && !json_left;
        let mut index = match stored {
            Some(index) => index,
            None => match Self::stored(output, JSON_INDEX_FILE)? {
                Some(index) => index,
                None => match Self::stored(output, RETAINED_FILE)? {
                    Some(index) => index,
                    None => Self::stored(output, JSON_RETAINED_FILE)?.unwrap_or_default(),
                },
            },
        };
        index.json_left = json_left;
        if current {
            debug!(files = index.files.len(), "Loaded the ingested-files index, current since the last clean stop.");
            return Ok(index);
        }
        let after = index.through_run.as_deref().map(Manifest::path);
        let newer = output.list_after(RUNS_DIR, after.as_deref())?;
        for entry in newer.iter().filter(|e| e.relative.ends_with(".json")) {
            index.fold(&Manifest::from_json(&output.get(&entry.relative)?, &entry.relative)?);
        }
        debug!(files = index.files.len(), manifests_read = newer.len(), "Loaded the ingested-files index.");
        Ok(index)
    }

    /// Adds a run's manifest (its files count only if it committed). Files
    /// it found unreadable count too: they are not read again until their
    /// content changes.
    pub(crate) fn fold(&mut self, manifest: &Manifest) {
        if manifest.status.committed() {
            let ingested = manifest.files.iter().map(|f| (&f.path, f.size, f.last_modified, &f.content_hash));
            let unreadable =
                manifest.unreadable_files.iter().map(|f| (&f.path, f.size, f.last_modified, &f.content_hash));
            for (path, size, last_modified, hash) in ingested.chain(unreadable) {
                let file = IngestedFile { size, last_modified, content_hash: hash.clone() };
                self.files.insert(path.clone(), file);
            }
        }
        if self.through_run.as_deref().is_none_or(|r| r < manifest.run_id.as_str()) {
            self.through_run = Some(manifest.run_id.clone());
        }
        self.changed = true;
    }

    /// The index stored at `path` (MessagePack, or JSON for an earlier
    /// version's file); `None` when there is none or it cannot be read.
    fn stored(output: &Storage, path: &str) -> Result<Option<Self>> {
        let Some(bytes) = output.get_opt(path)? else { return Ok(None) };
        let decoded = match path.ends_with(".json") {
            true => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
            false => Self::decode(&bytes).map_err(|e| e.to_string()),
        };
        match decoded {
            Ok(index) => Ok(Some(index)),
            Err(error) => {
                warn!(error, path, "An ingested-files index is unreadable; reading more run manifests instead.");
                Ok(None)
            }
        }
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Self, rmp_serde::decode::Error> {
        let stored: Stored<String> = rmp_serde::from_slice(bytes)?;
        let files = stored.files.into_iter().map(|(path, size, nanos, content_hash)| {
            (path, IngestedFile { size, last_modified: DateTime::from_timestamp_nanos(nanos), content_hash })
        });
        Ok(Self {
            through_run: stored.through_run,
            files: files.collect(),
            listed_in_full_at: stored.listed_in_full_at.map(DateTime::from_timestamp_nanos),
            ..Self::default()
        })
    }

    fn encode(&self) -> Vec<u8> {
        let files = self.files.iter().map(|(path, f)| {
            // A time outside 1677–2262 is stored as the earliest: it then
            // never matches, and the file is hashed to compare its content.
            let nanos = f.last_modified.timestamp_nanos_opt().unwrap_or(i64::MIN);
            (path.as_str(), f.size, nanos, f.content_hash.as_str())
        });
        let stored = Stored {
            through_run: self.through_run.as_deref(),
            files: files.collect(),
            listed_in_full_at: self.listed_in_full_at.and_then(|at| at.timestamp_nanos_opt()),
        };
        // Strings and integers always encode.
        rmp_serde::to_vec(&stored).unwrap_or_default()
    }

    /// Whether the stored index has everything folded in.
    pub(crate) fn is_stored(&self) -> bool {
        !self.changed
    }

    pub fn get(&self, path: &str) -> Option<&IngestedFile> {
        self.files.get(path)
    }

    /// Where an incremental listing at `now` starts: the folder of the
    /// greatest path ingested so far (by bytes), the newest when paths sort
    /// in delivery order. `None` calls for a full listing: the last one is
    /// `full_listing_hours` old (or in the future, or unknown), nothing was
    /// ingested in a folder yet, or the folder's name holds a character
    /// that listings escape (it might not sort as listed paths do).
    pub(crate) fn incremental_start(&self, full_listing_hours: u64, now: DateTime<Utc>) -> Option<&str> {
        let period = TimeDelta::hours(full_listing_hours.min(i32::MAX as u64) as i64);
        let fresh = self.listed_in_full_at.is_some_and(|at| (TimeDelta::zero()..period).contains(&(now - at)));
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_.=:+@,/".contains(&b);
        let newest = self.files.keys().next_back()?;
        let folder = newest.rsplit_once('/').map(|(folder, _)| folder);
        folder.filter(|folder| fresh && folder.bytes().all(plain))
    }

    /// Notes that this run listed the whole input; stored with the index
    /// when the run commits (or finds nothing new).
    pub(crate) fn record_full_listing(&mut self, at: DateTime<Utc>) {
        self.listed_in_full_at = Some(at);
        self.changed = true;
    }

    /// Stores the index if anything was folded in since it was read.
    pub(crate) fn save(&mut self, output: &Storage) -> Result<()> {
        if self.changed {
            output.put(INDEX_FILE, self.encode())?;
            self.changed = false;
        }
        if self.json_left {
            output.delete(JSON_INDEX_FILE)?;
            self.json_left = false;
        }
        Ok(())
    }

    /// Stores the index and its retained copy, before manifests it folded
    /// in are deleted.
    pub(crate) fn save_retained(&mut self, output: &Storage) -> Result<()> {
        output.put(RETAINED_FILE, self.encode())?;
        self.changed = true;
        self.save(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::manifest::RunStatus;

    fn manifest(run_id: &str, status: RunStatus, files: &[(&str, &str)]) -> Manifest {
        let json = serde_json::json!({
            "run_id": run_id, "status": status, "started_at": "2026-01-12T10:00:00Z",
            "finished_at": "2026-01-12T10:00:01Z", "input": "in", "output": "out", "full_refresh": false,
            "files": files.iter().map(|(path, hash)| serde_json::json!({
                "path": path, "size": 1, "content_hash": hash, "last_modified": "2026-01-12T09:00:00Z",
                "rows": 1, "malformed": 0
            })).collect::<Vec<_>>(),
            "files_skipped": 0, "rows": {"bronze": 1, "silver_events": 1, "silver_rejects": 0, "gold": 1},
            "rejects_by_reason": {}, "reject_ratio": 0.0, "max_reject_ratio": 0.25,
            "counters": {"latency_invalid": 0, "latency_missing": 0, "status_invalid": 0, "status_missing": 0},
            "gold_partitions": [], "outputs": [], "stage_seconds": {}, "error": null
        });
        serde_json::from_value(json).expect("a valid manifest")
    }

    #[test]
    fn unreadable_files_of_committed_runs_count_as_known_content() {
        let mut m = manifest("20260112T100000000Z-00000001", RunStatus::QualityGateFailed, &[("a.csv", "h1")]);
        m.unreadable_files.push(crate::runs::UnreadableFile {
            path: "bad.csv.gz".into(),
            size: 3,
            content_hash: "h2".into(),
            last_modified: m.started_at,
            error: "not a valid gzip stream".into(),
        });
        let mut index = IngestedIndex::default();
        index.fold(&m);
        assert_eq!(index.get("bad.csv.gz").map(|f| f.content_hash.as_str()), Some("h2"));
        assert_eq!(index.get("a.csv").map(|f| f.content_hash.as_str()), Some("h1"));
        m.status = RunStatus::Failed;
        let mut index = IngestedIndex::default();
        index.fold(&m);
        assert!(index.get("bad.csv.gz").is_none(), "a failed run's files are read again");
    }

    fn write(output: &Storage, m: &Manifest) {
        output.put(&Manifest::path(&m.run_id), m.to_json()).expect("put manifest");
    }

    #[test]
    fn index_plus_newer_manifests_equals_all_manifests_and_skips_older_ones() {
        let output = Storage::open("memory://ingested-index", true).expect("memory");
        write(
            &output,
            &manifest("20260112T100000000Z-00000001", RunStatus::Succeeded, &[("a.csv", "h1"), ("b.csv", "h1")]),
        );
        let mut index = IngestedIndex::load(&output, false).expect("load");
        index.save(&output).expect("save");

        // Manifests before the index's run are never read again: a broken one is harmless.
        output.put(&Manifest::path("20260112T090000000Z-00000000"), "not json").expect("put");
        write(&output, &manifest("20260112T100500000Z-00000002", RunStatus::Failed, &[("c.csv", "h9")]));
        write(&output, &manifest("20260112T101000000Z-00000003", RunStatus::QualityGateFailed, &[("b.csv", "h2")]));

        let mut index = IngestedIndex::load(&output, false).expect("only newer manifests are read");
        let hashes = |index: &IngestedIndex| {
            index.files.iter().map(|(p, f)| (p.clone(), f.content_hash.clone())).collect::<Vec<_>>()
        };
        let want = [("a.csv".to_string(), "h1".to_string()), ("b.csv".into(), "h2".into())];
        assert_eq!(hashes(&index), want, "failed runs ingest nothing; the newest record wins");
        assert_eq!(index.through_run.as_deref(), Some("20260112T101000000Z-00000003"));
        index.save(&output).expect("save");

        // An unreadable index is rebuilt from the manifests (here: hitting the broken one).
        output.put(INDEX_FILE, "{").expect("put");
        assert!(IngestedIndex::load(&output, false).is_err(), "rebuilding reads every manifest");
        output.delete(&Manifest::path("20260112T090000000Z-00000000")).expect("delete");
        assert_eq!(hashes(&IngestedIndex::load(&output, false).expect("rebuilt")), want);
    }

    #[test]
    fn a_stored_index_round_trips_with_its_times() {
        let mut index = IngestedIndex { through_run: Some("r1".into()), ..IngestedIndex::default() };
        for (path, nanos) in [("b.csv", 1_765_000_000_123_456_789), ("a.csv", -5), ("c.csv", 0)] {
            let last_modified = DateTime::from_timestamp_nanos(nanos);
            index.files.insert(path.into(), IngestedFile { size: 7, last_modified, content_hash: format!("h{nanos}") });
        }
        index.record_full_listing(DateTime::from_timestamp_nanos(1_765_000_000_987_654_321));
        let back = IngestedIndex::decode(&index.encode()).expect("decodes");
        assert_eq!(
            (back.through_run, back.files, back.listed_in_full_at),
            (index.through_run, index.files, index.listed_in_full_at)
        );
    }

    #[test]
    fn an_index_stored_without_a_listing_time_reads_as_never_listed_in_full() {
        #[derive(Serialize)]
        struct Earlier<'a> {
            through_run: Option<&'a str>,
            files: Vec<(&'a str, u64, i64, &'a str)>,
        }
        let files = vec![("2026/12/06/a.csv", 1, 0, "h1"), ("2026/12/05/b.csv", 1, 0, "h2")];
        let bytes = rmp_serde::to_vec(&Earlier { through_run: Some("r1"), files }).expect("encodes");
        let mut index = IngestedIndex::decode(&bytes).expect("an earlier version's index decodes");
        let now = DateTime::from_timestamp_nanos(1_765_000_000_000_000_000);
        assert_eq!(index.incremental_start(24, now), None, "a full listing first");
        index.record_full_listing(now);
        assert_eq!(index.incremental_start(24, now), Some("2026/12/06"));
    }

    #[test]
    fn an_incremental_listing_starts_at_the_newest_folder_until_a_full_listing_is_due() {
        let mut index = IngestedIndex::default();
        let at = DateTime::from_timestamp_nanos(1_765_000_000_000_000_000);
        let hours = |h: i64| at + TimeDelta::hours(h);
        index.record_full_listing(at);
        assert_eq!(index.incremental_start(24, at), None, "nothing ingested yet");
        let file = IngestedFile { size: 1, last_modified: at, content_hash: "h".into() };
        index.files.insert("a.csv".into(), file.clone());
        assert_eq!(index.incremental_start(24, at), None, "only files at the root");
        for path in ["d=2026-12-05/run-0001/a.csv", "d=2026-12-06/run-0002/b.csv", "d=2026-12-06/run-0002/a.csv"] {
            index.files.insert(path.into(), file.clone());
        }
        assert_eq!(index.incremental_start(24, hours(23)), Some("d=2026-12-06/run-0002"));
        assert_eq!(index.incremental_start(24, hours(24)), None, "a full listing is due");
        assert_eq!(index.incremental_start(24, hours(-1)), None, "the last full listing is in the future");
        index.files.insert("d=2026-12-07/run #3/a.csv".into(), file);
        assert_eq!(index.incremental_start(24, at), None, "a name that listings escape");
    }

    #[test]
    fn after_a_clean_release_the_stored_index_is_current_unless_an_earlier_version_wrote_json() {
        let output = Storage::open("memory://ingested-index-clean", true).expect("memory");
        write(&output, &manifest("20260112T100000000Z-00000001", RunStatus::Succeeded, &[("a.csv", "h1")]));
        IngestedIndex::load(&output, false).expect("load").save(&output).expect("save");
        // A manifest the stored index does not have: only a run that lists `_runs/` sees it.
        write(&output, &manifest("20260112T100500000Z-00000002", RunStatus::Succeeded, &[("b.csv", "h2")]));
        let paths = |index: &IngestedIndex| index.files.keys().cloned().collect::<Vec<_>>();
        assert_eq!(paths(&IngestedIndex::load(&output, true).expect("load")), ["a.csv"], "not listed");
        assert_eq!(paths(&IngestedIndex::load(&output, false).expect("load")), ["a.csv", "b.csv"], "listed");

        // An earlier version's JSON index beside it: that version may have run since.
        let json = r#"{"through_run":"20260112T100000000Z-00000001","files":{"a.csv":{"size":1,
            "last_modified":"2026-01-12T09:00:00Z","content_hash":"h1"}}}"#;
        output.put(JSON_INDEX_FILE, json).expect("put");
        let mut index = IngestedIndex::load(&output, true).expect("load");
        assert_eq!(paths(&index), ["a.csv", "b.csv"], "listed despite the clean release");
        index.save(&output).expect("save");
        assert!(!output.exists(JSON_INDEX_FILE).expect("exists"), "the JSON index goes once this one is stored");

        // Without this version's index, an earlier version's is read.
        output.delete(INDEX_FILE).expect("delete");
        output.put(JSON_INDEX_FILE, json).expect("put");
        output.delete(&Manifest::path("20260112T100500000Z-00000002")).expect("delete");
        let index = IngestedIndex::load(&output, true).expect("load");
        assert_eq!(index.get("a.csv").map(|f| f.last_modified.to_rfc3339()), Some("2026-01-12T09:00:00+00:00".into()));
    }
}
