//! The ingested-files index: every input file that committed runs
//! ingested (path, size, modification time, content hash), folded from the
//! manifests up to one run.
//!
//! It is a cache of `_runs/`: a run reads it plus only the manifests newer
//! than it, so finding what is already ingested costs O(new runs), not
//! O(run history) (one run every 5 minutes is ~100k manifests a year).
//! It is stored in MessagePack, in two parts under `_state/ingested/`:
//!
//! - `recent.msgpack`, the files folded in since the base was sealed. Every
//!   run that ingests reads and rewrites it, so it stays small: at
//!   [`MERGE_AT`] files it is merged into a new base.
//! - `base-<run>.msgpack`, sealed: everything folded in through that run.
//!   The recent part names it and its greatest path. It is read only when
//!   a run looks up a path not after that one (input paths mostly sort in
//!   delivery order, so this is the daily full listing), and when
//!   `pipeline vacuum` stores the retained copy below. A new base gets a
//!   new name and the old one goes only after the recent part names the
//!   new one, so a run killed in between leaves a complete index.
//!
//! A missing, stale or unreadable index only means reading more manifests:
//! a base the recent part names but that cannot be read is rebuilt from
//! them. After a clean stop on a local folder (see [`IngestedIndex::load`])
//! the manifests are not even listed. Before `pipeline vacuum` deletes
//! expired manifests it also stores a whole copy, [`RETAINED_FILE`], which
//! a run reads when the index is missing or unreadable: without it,
//! rebuilding from the manifests left would forget what the expired ones
//! ingested, and that input would be ingested again. Earlier versions'
//! whole-index files (`_state/ingested.msgpack`, and in JSON) are still
//! read, and deleted once this index is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::manifest::{Manifest, RUNS_DIR};
use crate::error::Result;
use crate::storage::Storage;

/// The folder of the index's two parts.
pub(crate) const INDEX_DIR: &str = "_state/ingested";

/// The recent part; it names the base it extends.
pub(crate) const INDEX_FILE: &str = "_state/ingested/recent.msgpack";

/// The copy of the whole index stored before manifests are expired.
pub(crate) const RETAINED_FILE: &str = "_state/ingested-retained.msgpack";

/// The whole index as earlier versions stored it, in MessagePack and in
/// JSON, and the JSON retained copy. One of them that writes the index
/// again recreates its file, so one that is there means such a run may
/// have run since this index was stored.
const LEGACY_FILES: [&str; 2] = ["_state/ingested.msgpack", "_state/ingested.json"];
const JSON_RETAINED_FILE: &str = "_state/ingested-retained.json";

/// Files the recent part holds before it is merged into a new base: small
/// enough to read and rewrite every run in well under a millisecond,
/// large enough that merging (reading and writing the whole index) is
/// rare: every 3–4 days of runs at 5 minutes with two files each.
const MERGE_AT: usize = 2048;

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
    /// By input path, the files folded in since the base was sealed; the
    /// newest committed run's record wins, over the base's too.
    files: BTreeMap<String, IngestedFile>,
    /// When a run with incremental listing on last listed the whole input
    /// and stored this index (runs in between list only its newest part).
    #[serde(default)]
    listed_in_full_at: Option<DateTime<Utc>>,
    /// The sealed part the recent one extends, if any.
    #[serde(skip)]
    base: Option<Base>,
    /// Whether anything was folded in since the index was read.
    #[serde(skip)]
    changed: bool,
    /// Earlier versions' index files that are there, to be deleted when
    /// this one is stored (a stale copy must not outlive it).
    #[serde(skip)]
    legacy_left: Vec<&'static str>,
}

/// A sealed part of the index.
#[derive(Debug)]
struct Base {
    /// Its path in the output.
    file: String,
    /// The greatest path in it: no path after this one is in it.
    greatest: String,
    /// Its files, once read.
    files: Option<BTreeMap<String, IngestedFile>>,
}

/// A part of the index as stored: files sorted by path, with their
/// modification times in nanoseconds since the epoch (read back as the
/// same instant). A base and the retained copy have no `base`, and are
/// then what earlier versions stored as the whole index.
#[derive(Serialize, Deserialize)]
struct Stored<S> {
    through_run: Option<S>,
    files: Vec<(S, u64, i64, S)>,
    /// In nanoseconds since the epoch; absent in indexes stored before
    /// incremental listing.
    #[serde(default)]
    listed_in_full_at: Option<i64>,
    /// The base this recent part extends: its path and greatest path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<(S, S)>,
}

impl IngestedIndex {
    /// The index as of the newest manifest: the stored index, then every
    /// manifest written after the run it was stored through. Its base is
    /// read only when a lookup needs it.
    ///
    /// `after_clean_release` says the last holder of the output's lock
    /// finished its command and let go ([`super::lock::Lock::release`]).
    /// A run releases only after storing the index through its own
    /// manifest, so then no manifest is newer than the stored index and
    /// `_runs/` is not listed (a folder of one file a run). Unless an
    /// earlier version's index is there: that version may have run since,
    /// without updating this index.
    pub fn load(output: &Storage, after_clean_release: bool) -> Result<Self> {
        let mut legacy_left = Vec::new();
        for file in LEGACY_FILES {
            if output.exists(file)? {
                legacy_left.push(file);
            }
        }
        let recent = Self::stored(output, INDEX_FILE)?;
        let current = recent.is_some() && after_clean_release && legacy_left.is_empty();
        let mut index = match recent {
            Some(index) => index,
            // Stored with this run, as this version stores it.
            None => Self { changed: true, ..Self::whole(output)? },
        };
        index.legacy_left = legacy_left;
        if current {
            debug!(files = index.files.len(), "Loaded the ingested-files index, current since the last clean stop.");
            return Ok(index);
        }
        index.fold_newer(output)?;
        Ok(index)
    }

    /// The whole index without the recent part: an earlier version's, else
    /// the retained copy, else nothing; [`Self::fold_newer`] adds the
    /// manifests after it.
    fn whole(output: &Storage) -> Result<Self> {
        for file in LEGACY_FILES.into_iter().chain([RETAINED_FILE, JSON_RETAINED_FILE]) {
            if let Some(index) = Self::stored(output, file)? {
                return Ok(index);
            }
        }
        Ok(Self::default())
    }

    /// Folds in every manifest written after the newest run folded in.
    fn fold_newer(&mut self, output: &Storage) -> Result<()> {
        let after = self.through_run.as_deref().map(Manifest::path);
        let newer = output.list_after(RUNS_DIR, after.as_deref())?;
        for entry in newer.iter().filter(|e| e.relative.ends_with(".json")) {
            self.fold(&Manifest::from_json(&output.get(&entry.relative)?, &entry.relative)?);
        }
        debug!(files = self.files.len(), manifests_read = newer.len(), "Loaded the ingested-files index.");
        Ok(())
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

    /// The part stored at `path` (MessagePack, or JSON for an earlier
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
            base: stored.base.map(|(file, greatest)| Base { file, greatest, files: None }),
            ..Self::default()
        })
    }

    /// A part as stored: the recent one names its `base`; a base and the
    /// retained copy name none.
    fn encode(&self, files: &BTreeMap<String, IngestedFile>, base: Option<&Base>) -> Vec<u8> {
        let files = files.iter().map(|(path, f)| {
            // A time outside 1677–2262 is stored as the earliest: it then
            // never matches, and the file is hashed to compare its content.
            let nanos = f.last_modified.timestamp_nanos_opt().unwrap_or(i64::MIN);
            (path.as_str(), f.size, nanos, f.content_hash.as_str())
        });
        let stored = Stored {
            through_run: self.through_run.as_deref(),
            files: files.collect(),
            listed_in_full_at: self.listed_in_full_at.and_then(|at| at.timestamp_nanos_opt()),
            base: base.map(|b| (b.file.as_str(), b.greatest.as_str())),
        };
        // Strings and integers always encode.
        rmp_serde::to_vec(&stored).unwrap_or_default()
    }

    /// Whether the stored index has everything folded in.
    pub(crate) fn is_stored(&self) -> bool {
        !self.changed
    }

    /// What was ingested at `path`, reading the base first if it may hold
    /// the path.
    pub(crate) fn lookup(&mut self, output: &Storage, path: &str) -> Result<Option<&IngestedFile>> {
        let in_base = self.base.as_ref().is_some_and(|b| b.files.is_none() && path <= b.greatest.as_str());
        if in_base && !self.files.contains_key(path) {
            self.read_base(output)?;
        }
        Ok(self.get(path))
    }

    /// What was ingested at `path`, as far as the parts read so far know.
    fn get(&self, path: &str) -> Option<&IngestedFile> {
        let base = || self.base.as_ref()?.files.as_ref()?.get(path);
        self.files.get(path).or_else(base)
    }

    /// Reads the base if it is not read yet. One that is missing or
    /// unreadable is replaced by the whole index rebuilt without it (an
    /// earlier version's, the retained copy, the manifests), which is
    /// stored with this run.
    fn read_base(&mut self, output: &Storage) -> Result<()> {
        let Some(base) = self.base.as_mut().filter(|b| b.files.is_none()) else { return Ok(()) };
        match Self::stored(output, &base.file)? {
            Some(stored) => base.files = Some(stored.files),
            None => {
                warn!(base = base.file, "The ingested-files index's base is missing; rebuilding the index.");
                let mut rebuilt = Self::whole(output)?;
                rebuilt.fold_newer(output)?;
                rebuilt.listed_in_full_at = self.listed_in_full_at;
                rebuilt.legacy_left = std::mem::take(&mut self.legacy_left);
                rebuilt.changed = true;
                *self = rebuilt;
            }
        }
        Ok(())
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
        let recent = self.files.keys().next_back().map(String::as_str);
        let newest = recent.max(self.base.as_ref().map(|b| b.greatest.as_str()))?;
        let folder = newest.rsplit_once('/').map(|(folder, _)| folder);
        folder.filter(|folder| fresh && folder.bytes().all(plain))
    }

    /// Notes that this run listed the whole input; stored with the index
    /// when the run commits (or finds nothing new).
    pub(crate) fn record_full_listing(&mut self, at: DateTime<Utc>) {
        self.listed_in_full_at = Some(at);
        self.changed = true;
    }

    /// Stores the index if anything was folded in since it was read,
    /// merging the recent part into a new base once it holds
    /// [`MERGE_AT`] files.
    pub(crate) fn save(&mut self, output: &Storage) -> Result<()> {
        self.save_merging_at(output, MERGE_AT)
    }

    fn save_merging_at(&mut self, output: &Storage, merge_at: usize) -> Result<()> {
        if self.changed {
            let merged = self.files.len() >= merge_at;
            if merged {
                self.merge(output)?;
            }
            output.put(INDEX_FILE, self.encode(&self.files, self.base.as_ref()))?;
            self.changed = false;
            if merged {
                self.delete_other_bases(output)?;
            }
        }
        for file in self.legacy_left.drain(..) {
            output.delete(file)?;
        }
        Ok(())
    }

    /// Seals everything folded in as a new base, leaving the recent part
    /// empty. The old base stays until the recent part is stored.
    fn merge(&mut self, output: &Storage) -> Result<()> {
        self.read_base(output)?;
        let mut files = self.base.take().and_then(|b| b.files).unwrap_or_default();
        files.append(&mut self.files);
        let Some(greatest) = files.keys().next_back().cloned() else { return Ok(()) };
        let file = base_file(self.through_run.as_deref().unwrap_or("none"));
        output.put(&file, self.encode(&files, None))?;
        info!(files = files.len(), file, "Sealed a new base of the ingested-files index.");
        self.base = Some(Base { file, greatest, files: Some(files) });
        Ok(())
    }

    /// Deletes the bases the stored recent part does not name: the one a
    /// merge replaced, and any a killed merge left.
    fn delete_other_bases(&self, output: &Storage) -> Result<()> {
        let current = self.base.as_ref().map(|b| b.file.as_str());
        for entry in output.list(INDEX_DIR)? {
            let name = entry.relative.rsplit('/').next().unwrap_or("");
            if name.starts_with("base-") && Some(entry.relative.as_str()) != current {
                output.delete(&entry.relative)?;
            }
        }
        Ok(())
    }

    /// Stores the whole index as the retained copy, before manifests it
    /// folded in are deleted, and the index itself, merged into a new base.
    pub(crate) fn save_retained(&mut self, output: &Storage) -> Result<()> {
        self.changed = true;
        self.merge(output)?;
        let empty = BTreeMap::new();
        let whole = self.base.as_ref().and_then(|b| b.files.as_ref()).unwrap_or(&empty);
        output.put(RETAINED_FILE, self.encode(whole, None))?;
        self.save_merging_at(output, usize::MAX)?;
        self.delete_other_bases(output)
    }
}

/// The path of the base sealed through run `run_id`.
fn base_file(run_id: &str) -> String {
    format!("{INDEX_DIR}/base-{run_id}.msgpack")
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
        let back = IngestedIndex::decode(&index.encode(&index.files, None)).expect("decodes");
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
        output.put(LEGACY_FILES[1], json).expect("put");
        let mut index = IngestedIndex::load(&output, true).expect("load");
        assert_eq!(paths(&index), ["a.csv", "b.csv"], "listed despite the clean release");
        index.save(&output).expect("save");
        assert!(!output.exists(LEGACY_FILES[1]).expect("exists"), "the JSON index goes once this one is stored");

        // Without this version's index, an earlier version's is read.
        output.delete(INDEX_FILE).expect("delete");
        output.put(LEGACY_FILES[1], json).expect("put");
        output.delete(&Manifest::path("20260112T100500000Z-00000002")).expect("delete");
        let index = IngestedIndex::load(&output, true).expect("load");
        assert_eq!(index.get("a.csv").map(|f| f.last_modified.to_rfc3339()), Some("2026-01-12T09:00:00+00:00".into()));
    }

    fn hashes(index: &IngestedIndex) -> Vec<(String, String)> {
        let base = index.base.as_ref().and_then(|b| b.files.clone()).unwrap_or_default();
        let mut files = base.into_iter().chain(index.files.clone()).collect::<BTreeMap<_, _>>();
        files.iter_mut().map(|(p, f)| (p.clone(), std::mem::take(&mut f.content_hash))).collect()
    }

    /// What the stored index holds, base included, read as a run after a
    /// clean stop (`current`) or not.
    fn stored_hashes(output: &Storage, current: bool) -> Vec<(String, String)> {
        let mut index = IngestedIndex::load(output, current).expect("load");
        index.read_base(output).expect("read the base");
        hashes(&index)
    }

    fn run_id(n: u32) -> String {
        format!("20260112T10{:02}{:02}000Z-{n:08}", n / 60, n % 60)
    }

    /// Runs 1..=n, each ingesting `d<n/10>/f<n>.csv`; run 3 ingests `d0/f1.csv`
    /// again with new content.
    fn write_runs(output: &Storage, runs: std::ops::RangeInclusive<u32>) {
        for n in runs {
            let path = format!("d{:02}/f{n:03}.csv", n / 10);
            let mut files = vec![(path.as_str(), "h1")];
            if n == 3 {
                files.push(("d00/f001.csv", "h2"));
            }
            write(output, &manifest(&run_id(n), RunStatus::Succeeded, &files));
        }
    }

    fn bases(output: &Storage) -> Vec<String> {
        let entries = output.list(INDEX_DIR).expect("list");
        entries.into_iter().map(|e| e.relative).filter(|p| p.contains("/base-")).collect()
    }

    #[test]
    fn a_merged_index_equals_the_manifests_and_reads_its_base_only_for_paths_it_may_hold() {
        let output = Storage::open("memory://ingested-index-merged", true).expect("memory");
        write_runs(&output, 1..=5);
        let mut index = IngestedIndex::load(&output, false).expect("load");
        let want = hashes(&index);
        assert_eq!(want.len(), 5);
        assert_eq!(want[0], ("d00/f001.csv".into(), "h2".into()), "a later run's record wins");
        index.save_merging_at(&output, 4).expect("save");
        assert_eq!(bases(&output), [base_file(&run_id(5))]);

        // Later runs go to the recent part, over the base's records.
        write_runs(&output, 6..=7);
        write(&output, &manifest(&run_id(8), RunStatus::Succeeded, &[("d00/f002.csv", "h3")]));
        let mut index = IngestedIndex::load(&output, false).expect("load");
        index.save_merging_at(&output, 4).expect("save");
        let mut index = IngestedIndex::load(&output, true).expect("load");
        assert!(index.base.as_ref().is_some_and(|b| b.files.is_none()), "the base is not read on load");
        let all = {
            let mut all = IngestedIndex::default();
            for n in 1..=8 {
                let path = Manifest::path(&run_id(n));
                all.fold(&Manifest::from_json(&output.get(&path).expect("get"), &path).expect("manifest"));
            }
            hashes(&all)
        };

        // A path after the base's greatest is looked up without reading it.
        assert_eq!(index.lookup(&output, "d09/new.csv").expect("lookup"), None);
        assert_eq!(index.lookup(&output, "d00/f002.csv").expect("lookup").map(|f| f.content_hash.as_str()), Some("h3"));
        assert!(index.base.as_ref().is_some_and(|b| b.files.is_none()), "recent paths did not read the base");
        assert_eq!(index.incremental_start(24, Utc::now()), None, "no full listing recorded");
        index.record_full_listing(Utc::now());
        assert_eq!(index.incremental_start(24, Utc::now()), Some("d00"), "the greatest path of both parts");
        assert_eq!(index.lookup(&output, "d00/f004.csv").expect("lookup").map(|f| f.content_hash.as_str()), Some("h1"));
        assert!(index.base.as_ref().is_some_and(|b| b.files.is_some()), "an older path reads the base");
        assert_eq!(hashes(&index), all, "base and recent part equal every manifest folded in");

        // A base that is gone: the index is rebuilt from the manifests.
        output.delete(&bases(&output)[0]).expect("delete");
        let mut index = IngestedIndex::load(&output, true).expect("load");
        assert!(index.is_stored());
        assert_eq!(index.lookup(&output, "d00/f004.csv").expect("lookup").map(|f| f.content_hash.as_str()), Some("h1"));
        assert!(!index.is_stored(), "the rebuilt index is stored with the run");
        assert_eq!(hashes(&index), all);
        index.save_merging_at(&output, 4).expect("save");
        assert_eq!(bases(&output), [base_file(&run_id(8))]);
        assert_eq!(stored_hashes(&output, true), all);
    }

    #[test]
    fn a_merge_killed_before_the_recent_part_is_stored_leaves_the_old_base_in_use() {
        let output = Storage::open("memory://ingested-index-killed-merge", true).expect("memory");
        write_runs(&output, 1..=4);
        IngestedIndex::load(&output, false).expect("load").save_merging_at(&output, 4).expect("save");
        write_runs(&output, 5..=8);
        let mut index = IngestedIndex::load(&output, false).expect("load");
        let want = stored_hashes(&output, false);
        // The new base is written; the recent part that would name it is not.
        index.merge(&output).expect("merge");
        assert_eq!(bases(&output).len(), 2);
        let mut index = IngestedIndex::load(&output, false).expect("load");
        assert_eq!(index.base.as_ref().map(|b| b.file.clone()), Some(base_file(&run_id(4))));
        index.read_base(&output).expect("read");
        assert_eq!(hashes(&index), want);
        index.save_merging_at(&output, 4).expect("save");
        assert_eq!(bases(&output), [base_file(&run_id(8))], "the left base goes");
    }

    #[test]
    fn the_retained_copy_is_the_whole_index_as_earlier_versions_read_it() {
        let output = Storage::open("memory://ingested-index-retained", true).expect("memory");
        write_runs(&output, 1..=4);
        IngestedIndex::load(&output, false).expect("load").save_merging_at(&output, 2).expect("save");
        write_runs(&output, 5..=6);
        let mut index = IngestedIndex::load(&output, false).expect("load");
        index.save_retained(&output).expect("save");
        let want = hashes(&index);
        assert_eq!(want.len(), 6);
        #[derive(Deserialize)]
        struct Earlier {
            through_run: Option<String>,
            files: Vec<(String, u64, i64, String)>,
            listed_in_full_at: Option<i64>,
        }
        let bytes = output.get(RETAINED_FILE).expect("get");
        let earlier: Earlier = rmp_serde::from_slice(&bytes).expect("an earlier version reads it");
        assert_eq!((earlier.through_run, earlier.files.len(), earlier.listed_in_full_at), (Some(run_id(6)), 6, None));

        // Without the index and the manifests, the retained copy is the index.
        output.delete_all(INDEX_DIR).expect("delete");
        output.delete_all(RUNS_DIR).expect("delete");
        let index = IngestedIndex::load(&output, false).expect("load");
        assert_eq!(hashes(&index), want);
    }

    #[test]
    fn an_earlier_versions_whole_index_is_read_and_replaced() {
        let output = Storage::open("memory://ingested-index-legacy", true).expect("memory");
        write_runs(&output, 1..=3);
        let earlier = IngestedIndex::load(&output, false).expect("load");
        let want = hashes(&earlier);
        output.put(LEGACY_FILES[0], earlier.encode(&earlier.files, None)).expect("put");
        output.delete_all(RUNS_DIR).expect("delete");
        let mut index = IngestedIndex::load(&output, true).expect("load");
        assert_eq!(hashes(&index), want);
        index.save_merging_at(&output, 2).expect("save");
        assert!(!output.exists(LEGACY_FILES[0]).expect("exists"), "replaced by this version's index");
        assert_eq!(stored_hashes(&output, true), want);
    }
}
