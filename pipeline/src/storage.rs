//! Storage: every read and write of input and layers goes through
//! [`Storage`], so a local folder, `memory://`, S3, GCS and Azure are one
//! code path: object_store's, but for a local folder's reads and listings,
//! done on the calling thread (README, "How a run reads"). Each location
//! counts the requests made to it ([`Requests`]).
//!
//! Calls are synchronous at this edge: each blocks on a shared tokio runtime,
//! so rayon workers can read and write without being async themselves.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::{Path, PathPart};
use object_store::{
    GetOptions, GetRange, OBJECT_STORE_COALESCE_DEFAULT, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
    coalesce_ranges,
};

/// The version of an object, for [`Storage::update`].
pub use object_store::UpdateVersion as Version;
use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frames::concat_frames;
use crate::{parquet, pool};

/// Bytes [`Storage::parquet_footer`] reads from an object's end in one
/// request: enough for the footers of the layer files. An object no
/// larger is read whole by it, so a reader that needs its rows too gets
/// the object instead and reads the footer from its bytes.
pub(crate) const FOOTER_READ: u64 = 64 * 1024;

/// A location: a store plus a prefix inside it.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    local_root: Option<PathBuf>,
    /// zstd level of the Parquet files this location writes.
    zstd_level: i32,
    /// Requests made to the location through this handle and its clones.
    requests: Arc<Mutex<Requests>>,
}

/// Requests made to a location, by kind: on an object store, the requests
/// it received; on a local folder, the file operations that stand for
/// them, one each (README, "Storage requests").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requests {
    /// Reads: of a whole object, of a range (ranges read together that lie
    /// close on an object store are one request), of whether it exists.
    pub get: u64,
    /// Writes, conditional ones included.
    pub put: u64,
    /// Listings, one a call (S3 and GCS answer 1,000 keys a request).
    pub list: u64,
    /// Renames (on S3 and GCS a copy and a delete).
    pub rename: u64,
    /// Deletes.
    pub delete: u64,
}

impl Requests {
    /// The counts with the names of their kinds, as manifests and metrics
    /// name them.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        [("get", self.get), ("put", self.put), ("list", self.list), ("rename", self.rename), ("delete", self.delete)]
    }
}

/// The zstd level Parquet files are written with unless configured: level 1
/// costs a run less time than zstd's default 3 for slightly larger silver
/// files (README, "Parquet", has the measured figures).
pub(crate) const DEFAULT_ZSTD_LEVEL: i32 = 1;

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

/// An object under a location, with its path relative to the location.
#[derive(Debug, Clone)]
pub struct Entry {
    pub relative: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// The object's version tag (local: inode, mtime and size), for
    /// [`Storage::get_if_match`].
    pub e_tag: Option<String>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("minutely-io")
            .enable_all()
            .build()
            // Building a runtime fails only when the OS refuses threads.
            .expect("the OS could not start the I/O runtime threads")
    })
}

/// One in-memory store per process, shared by all `memory://` locations so
/// that input and output written by one process see each other.
fn memory_store() -> Arc<InMemory> {
    static MEMORY: OnceLock<Arc<InMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| Arc::new(InMemory::new())).clone()
}

/// An S3, GCS or Azure store for `url`: settings from the environment, then
/// `options` over them. The error is a message for [`Error::Location`].
fn cloud_store(scheme: &str, url: &str, options: &[(&str, &str)]) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    fn configure<B, K: std::str::FromStr>(builder: B, options: &[(&str, &str)], with: impl Fn(B, K, &str) -> B) -> B {
        options.iter().fold(builder, |b, (key, value)| match key.parse::<K>() {
            Ok(key) => with(b, key, value),
            Err(_) => b,
        })
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => Arc::new(
            configure(AmazonS3Builder::from_env().with_url(url), options, |b, k, v| b.with_config(k, v))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "gs" => Arc::new(
            configure(GoogleCloudStorageBuilder::from_env().with_url(url), options, |b, k, v| b.with_config(k, v))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "az" | "azure" | "adl" | "abfs" | "abfss" => Arc::new(
            configure(MicrosoftAzureBuilder::from_env().with_url(url), options, |b, k, v| b.with_config(k, v))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!(
                "unsupported scheme {other}://; use a local path, file://, memory://, s3://, gs:// or az://"
            ));
        }
    };
    Ok(store)
}

impl Storage {
    /// Opens a location: a path, `file://`, `memory://`, or an object store
    /// URL (`s3://`, `gs://`, `az://`) configured from the environment
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as object_store reads them). With
    /// `create`, a missing local folder is created (outputs); otherwise it
    /// must exist.
    pub fn open(location: &str, create: bool) -> Result<Self> {
        Self::open_with(location, create, &[])
    }

    /// Like [`Storage::open`], with object store settings (e.g.
    /// `("aws_endpoint", "http://127.0.0.1:9000")`) applied over the
    /// environment's. Keys an object store does not know are ignored.
    pub fn open_with(location: &str, create: bool, options: &[(&str, &str)]) -> Result<Self> {
        let bad = |message: String| Error::Location { location: location.to_string(), message };
        if let Some(rest) = location.strip_prefix("memory://") {
            let prefix = Path::parse(rest.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                store: memory_store(),
                prefix,
                location: location.to_string(),
                local_root: None,
                zstd_level: DEFAULT_ZSTD_LEVEL,
                requests: Arc::default(),
            });
        }
        if let Some((scheme, rest)) = location.split_once("://").filter(|(s, _)| *s != "file") {
            let store = cloud_store(scheme, location, options).map_err(bad)?;
            let path = rest.split_once('/').map(|(_, path)| path).unwrap_or_default();
            let prefix = Path::parse(path.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                store,
                prefix,
                location: location.to_string(),
                local_root: None,
                zstd_level: DEFAULT_ZSTD_LEVEL,
                requests: Arc::default(),
            });
        }
        let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        if create {
            std::fs::create_dir_all(&path).map_err(|e| bad(format!("cannot create folder: {e}")))?;
        } else if !path.is_dir() {
            return Err(bad("no such folder".into()));
        }
        let root = path.canonicalize().map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            location: location.to_string(),
            local_root: Some(root),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            requests: Arc::default(),
        })
    }

    /// This location with Parquet files written at zstd `level` (1–22).
    pub(crate) fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// This location with a count of requests of its own, from zero: for
    /// work whose requests are reported apart from the rest of its
    /// command's (the compaction after a run).
    pub(crate) fn counted_apart(&self) -> Self {
        Self { requests: Arc::default(), ..self.clone() }
    }

    /// The location as given by the user.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The requests made to this location so far through this handle and
    /// its clones.
    pub fn requests(&self) -> Requests {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `n` requests of the kind `kind` picks (a count is not worth
    /// failing a read for, so a poisoned lock is counted through).
    fn count(&self, kind: fn(&mut Requests) -> &mut u64, n: u64) {
        *kind(&mut self.requests.lock().unwrap_or_else(PoisonError::into_inner)) += n;
    }

    /// The local folder behind this location, if it is one.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The object path of `relative`, a name as [`Storage::list`] gives
    /// it. On an object store (and `memory://`) that is the key itself,
    /// whatever characters it holds (`%`, `#`, spaces, non-ASCII), so that
    /// a listed key is read back as listed; only a part no key may be
    /// (`.`, `..`, control characters) is escaped. object_store's local
    /// store finds a file by undoing its path's escapes, so a local name
    /// is escaped.
    fn path(&self, relative: &str) -> Path {
        let parts = relative.split('/').filter(|p| !p.is_empty());
        match self.local_root {
            Some(_) => parts.fold(self.prefix.clone(), |path, part| path.join(part)),
            None => parts.fold(self.prefix.clone(), |path, part| {
                path.join(PathPart::parse(part).unwrap_or_else(|_| PathPart::from(part)))
            }),
        }
    }

    fn relative(&self, path: &Path) -> String {
        let full = path.as_ref();
        let prefix = self.prefix.as_ref();
        if prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(prefix).unwrap_or(full).trim_start_matches('/').to_string()
        }
    }

    /// Every object under `relative` (recursively), sorted by relative path bytes.
    pub fn list(&self, relative: &str) -> Result<Vec<Entry>> {
        self.list_after(relative, None)
    }

    /// `*.parquet` data objects under `relative` (recursively), with their
    /// sizes. As Hive readers do, a path below `relative` through a folder
    /// whose name starts with `_` or `.` is not data: a table's
    /// `_delta_log/` holds Parquet checkpoints.
    pub(crate) fn parquet_entries(&self, relative: &str) -> Result<Vec<Entry>> {
        let prefix = relative.trim_end_matches('/');
        let is_data = |path: &str| {
            let below = path.strip_prefix(prefix).unwrap_or(path);
            path.ends_with(".parquet") && !below.split('/').any(|part| part.starts_with(['_', '.']))
        };
        Ok(self.list(relative)?.into_iter().filter(|e| is_data(&e.relative)).collect())
    }

    /// Paths of the `*.parquet` objects under `relative` (recursively).
    pub fn parquet_files(&self, relative: &str) -> Result<Vec<String>> {
        Ok(self.parquet_entries(relative)?.into_iter().map(|e| e.relative).collect())
    }

    /// Like [`Storage::list`], only objects whose path sorts after `after`
    /// (relative to the location): on S3 a `StartAfter` listing, so the cost
    /// follows what is new rather than everything that exists.
    pub fn list_after(&self, relative: &str, after: Option<&str>) -> Result<Vec<Entry>> {
        let prefix = self.path(relative);
        let after = after.map(|after| self.path(after));
        self.count(|r| &mut r.list, 1);
        let metas = match (&self.local_root, &after) {
            (Some(root), _) => local_list(root, relative, prefix, after.as_ref())?,
            (None, Some(after)) => collect(self.store.list_with_offset(Some(&prefix), after), &prefix)?,
            (None, None) => collect(self.store.list(Some(&prefix)), &prefix)?,
        };
        let mut entries: Vec<Entry> = metas.into_iter().map(|m| self.entry(m)).collect();
        entries.sort_by(|a, b| a.relative.as_bytes().cmp(b.relative.as_bytes()));
        Ok(entries)
    }

    fn entry(&self, meta: ObjectMeta) -> Entry {
        Entry {
            relative: self.relative(&meta.location),
            size: meta.size,
            last_modified: meta.last_modified,
            e_tag: meta.e_tag,
        }
    }

    /// An object's bytes. On a local folder the file is read on the
    /// calling thread, as [`Storage::exists`] stats it, not as a task on
    /// a thread of object_store's runtime (README, "How a run reads").
    /// So are [`Storage::get_range`] and [`Storage::get_ranges`].
    pub fn get(&self, relative: &str) -> Result<Bytes> {
        self.count(|r| &mut r.get, 1);
        if let Some(root) = &self.local_root {
            return std::fs::read(root.join(relative)).map(Bytes::from).map_err(|e| self.local_error(relative, e));
        }
        let path = self.path(relative);
        runtime()
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map_err(Error::storage(format!("{}/{relative}", self.location)))
    }

    /// Like [`Storage::get`], `None` when the object does not exist.
    pub fn get_opt(&self, relative: &str) -> Result<Option<Bytes>> {
        match self.get(relative) {
            Err(Error::Storage { source: object_store::Error::NotFound { .. }, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// Whether an object exists at `relative`: one `stat` on a local
    /// folder, a `HEAD` request elsewhere.
    pub(crate) fn exists(&self, relative: &str) -> Result<bool> {
        self.count(|r| &mut r.get, 1);
        if let Some(root) = &self.local_root {
            let path = root.join(relative);
            return path.try_exists().map_err(|source| Error::Io { path, source });
        }
        match runtime().block_on(self.store.head(&self.path(relative))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// Reads an object only if it is still the version listed with `e_tag`;
    /// `None` when it changed or vanished since (S3: `If-Match`; local: the
    /// opened file's inode, mtime and size). Without a tag it reads whatever
    /// is there.
    pub(crate) fn get_if_match(&self, relative: &str, e_tag: Option<&str>) -> Result<Option<Bytes>> {
        let path = self.path(relative);
        let options = GetOptions { if_match: e_tag.map(str::to_string), ..GetOptions::default() };
        self.count(|r| &mut r.get, 1);
        match runtime().block_on(async { self.store.get_opts(&path, options).await?.bytes().await }) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// A reader of one listed object's bytes that never holds more than a
    /// block of it: the file itself on a local folder, ranged reads of the
    /// listed version elsewhere (a newer version fails the read). Errors
    /// surface as `io::Error`s wrapping [`SourceError`].
    pub(crate) fn open_read(&self, entry: &Entry) -> Result<Box<dyn std::io::Read + Send>> {
        if let Some(root) = &self.local_root {
            self.count(|r| &mut r.get, 1);
            let path = root.join(&entry.relative);
            let file = std::fs::File::open(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
            return Ok(Box::new(LocalRead { file, path }));
        }
        Ok(Box::new(RangedRead {
            storage: self.clone(),
            relative: entry.relative.clone(),
            e_tag: entry.e_tag.clone(),
            size: entry.size,
            position: 0,
            block: Bytes::new(),
        }))
    }

    /// Writes an object; it appears whole or not at all (local: temp file + rename).
    pub fn put(&self, relative: &str, data: impl Into<Bytes>) -> Result<()> {
        let path = self.path(relative);
        self.count(|r| &mut r.put, 1);
        runtime()
            .block_on(self.store.put(&path, PutPayload::from(data.into())))
            .map(drop)
            .map_err(Error::storage(format!("{}/{relative}", self.location)))
    }

    /// Writes an object only if none exists: its version, or `None` when
    /// one already did (S3: `If-None-Match: *`).
    pub fn create(&self, relative: &str, data: impl Into<Bytes>) -> Result<Option<Version>> {
        let path = self.path(relative);
        self.count(|r| &mut r.put, 1);
        match runtime().block_on(self.store.put_opts(&path, PutPayload::from(data.into()), PutMode::Create.into())) {
            Ok(put) => Ok(Some(Version { e_tag: put.e_tag, version: put.version })),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// Replaces an object only if it is still at `version`: the new version,
    /// or `None` when it changed or vanished meanwhile (S3: `If-Match`).
    /// Local folders cannot do this (object_store's `NotImplemented`).
    pub(crate) fn update(&self, relative: &str, data: impl Into<Bytes>, version: &Version) -> Result<Option<Version>> {
        let path = self.path(relative);
        let mode = PutMode::Update(version.clone());
        self.count(|r| &mut r.put, 1);
        match runtime().block_on(self.store.put_opts(&path, PutPayload::from(data.into()), mode.into())) {
            Ok(put) => Ok(Some(Version { e_tag: put.e_tag, version: put.version })),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// Reads an object with its version; `None` when it does not exist.
    pub(crate) fn get_versioned(&self, relative: &str) -> Result<Option<(Bytes, Version)>> {
        let path = self.path(relative);
        self.count(|r| &mut r.get, 1);
        let result = runtime().block_on(async {
            let got = self.store.get(&path).await?;
            let version = Version { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
            Ok((got.bytes().await?, version))
        });
        match result {
            Ok(found) => Ok(Some(found)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// Moves an object (atomic on a local folder; copy + delete on object stores).
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from), self.path(to));
        self.count(|r| &mut r.rename, 1);
        runtime().block_on(self.store.rename(&src, &dst)).map_err(Error::storage(format!("{}/{from}", self.location)))
    }

    /// Deletes every object under `relative`; on a local folder also the
    /// folder itself (object stores have no folders, local ones keep empty
    /// ones). What is already gone is not an error.
    pub(crate) fn delete_all(&self, relative: &str) -> Result<()> {
        for entry in self.list(relative)? {
            self.delete(&entry.relative)?;
        }
        if let Some(root) = &self.local_root {
            let dir = root.join(relative);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io { path: dir, source: e });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes the files interrupted writes left directly in the folder
    /// `relative` of a local output, and returns how many. object_store
    /// writes a local object as `<name>#<n>` and renames it into place, so
    /// a process killed mid-write leaves that file behind; object stores
    /// publish whole objects and leave nothing. Only the holder of the
    /// output's lock may call this: another writer's file would be in flight.
    pub(crate) fn remove_interrupted_writes(&self, relative: &str) -> Result<usize> {
        let Some(root) = &self.local_root else { return Ok(0) };
        let dir = root.join(relative);
        let Some(entries) = read_local_dir(&dir)? else { return Ok(0) };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io { path: dir.clone(), source })?;
            let name = entry.file_name();
            if !is_interrupted_write(&name.to_string_lossy()) || !entry.path().is_file() {
                continue;
            }
            self.count(|r| &mut r.delete, 1);
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io { path: entry.path(), source: e });
                }
                _ => removed += 1,
            }
        }
        Ok(removed)
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        self.count(|r| &mut r.delete, 1);
        match runtime().block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(format!("{}/{relative}", self.location))(e)),
        }
    }

    /// Writes a frame as one zstd-compressed Parquet object with statistics.
    pub fn put_parquet(&self, relative: &str, df: &DataFrame) -> Result<u64> {
        self.put_parquet_in_groups(relative, df, parquet::ROW_GROUP_ROWS, &[])
    }

    /// [`Storage::put_parquet`] with row groups of `group_rows` rows, and
    /// small pages for the plain columns in `paged`: finer groups and
    /// pages for a file whose readers skip them by their statistics
    /// ([`Storage::get_parquet_pages`]).
    pub(crate) fn put_parquet_in_groups(
        &self,
        relative: &str,
        df: &DataFrame,
        group_rows: usize,
        paged: &[&str],
    ) -> Result<u64> {
        let bytes = parquet::encode(df, self.zstd_level, group_rows, paged).map_err(|source| Error::Parquet {
            action: "encode",
            path: relative.to_string(),
            source,
        })?;
        let size = bytes.len() as u64;
        self.put(relative, bytes)?;
        Ok(size)
    }

    /// Reads rows `rows` (all when `None`) of a Parquet object, only if it
    /// is still the version listed with `e_tag` (see [`Storage::get_if_match`]);
    /// `None` when it changed or vanished since.
    pub fn get_parquet_if_match(
        &self,
        relative: &str,
        e_tag: Option<&str>,
        rows: Option<std::ops::Range<usize>>,
    ) -> Result<Option<DataFrame>> {
        let Some(bytes) = self.get_if_match(relative, e_tag)? else { return Ok(None) };
        ParquetReader::new(Cursor::new(bytes))
            .with_slice(rows.map(|r| (r.start, r.len())))
            .finish()
            .map(Some)
            .map_err(|source| Error::Parquet { action: "read", path: relative.to_string(), source })
    }

    /// The footer of a listed Parquet object (schema, row groups and their
    /// statistics), read from its last bytes only.
    pub(crate) fn parquet_footer(&self, entry: &Entry) -> Result<polars_parquet::parquet::metadata::FileMetadata> {
        let bad = |message: String| Error::Parquet {
            action: "read the footer of",
            path: entry.relative.clone(),
            source: PolarsError::ComputeError(message.into()),
        };
        let mut tail = self.get_range(&entry.relative, entry.size.saturating_sub(FOOTER_READ)..entry.size)?;
        let footer = match tail.len().checked_sub(8).map(|at| &tail[at..at + 4]) {
            Some(len) => u64::from(u32::from_le_bytes(len.try_into().unwrap_or_default())) + 8,
            None => return Err(bad("shorter than a Parquet footer".into())),
        };
        if footer > tail.len() as u64 && footer <= entry.size {
            tail = self.get_range(&entry.relative, entry.size - footer..entry.size)?;
        }
        parquet::footer(&tail).map_err(|source| Error::Parquet {
            action: "read the footer of",
            path: entry.relative.clone(),
            source,
        })
    }

    /// A listed object's bytes with only `ranges` read (one
    /// [`Storage::get_ranges`] call): the rest is zeros,
    /// never read (and, when the allocator hands out fresh pages for a
    /// large zeroed buffer, never touched in memory). For a Parquet reader
    /// that reads only those ranges: the column chunks of the row groups
    /// and columns it decodes.
    pub(crate) fn get_sparse(&self, entry: &Entry, ranges: &[std::ops::Range<u64>]) -> Result<Bytes> {
        let parts = self.get_ranges(&entry.relative, ranges)?;
        let mut bytes = vec![0; usize::try_from(entry.size).unwrap_or(usize::MAX)];
        for (range, part) in ranges.iter().zip(parts) {
            let at = usize::try_from(range.start).unwrap_or(usize::MAX);
            match bytes.get_mut(at..).and_then(|rest| rest.get_mut(..part.len())) {
                Some(slot) => slot.copy_from_slice(&part),
                None => {
                    let changed = object_store::Error::Generic {
                        store: "minutely",
                        source: format!("{} changed size since it was listed", entry.relative).into(),
                    };
                    return Err(Error::storage(self.describe(&entry.relative))(changed));
                }
            }
        }
        Ok(Bytes::from(bytes))
    }

    /// Top-level `columns` of the row groups `keep` selects (by position) of
    /// a listed Parquet object whose footer is `footer`, in file order,
    /// reading only their column chunks.
    pub(crate) fn get_parquet_groups(
        &self,
        entry: &Entry,
        footer: &polars_parquet::parquet::metadata::FileMetadata,
        columns: &[&str],
        keep: impl Fn(usize) -> bool,
    ) -> Result<DataFrame> {
        let bytes = self.get_sparse(entry, &parquet::chunk_ranges(footer, columns, &keep, entry.size))?;
        let only_kept = Arc::new(parquet::with_groups(footer, keep));
        parquet::decode_with(bytes, Some(only_kept), Some(columns)).map_err(|source| Error::Parquet {
            action: "read",
            path: entry.relative.clone(),
            source,
        })
    }

    /// Top-level `columns` of the rows of `entry`'s row groups that `keep`
    /// selects (by position) whose pages of the integer or timestamp
    /// column `by` are `needed` by their bounds (see
    /// [`parquet::decode_pages`]); `None` when no page is. `footer` is the
    /// file's; only the kept groups' chunks of `columns` and `by` are read.
    pub(crate) fn get_parquet_pages(
        &self,
        entry: &Entry,
        footer: &polars_parquet::parquet::metadata::FileMetadata,
        columns: &[&str],
        keep: impl Fn(usize) -> bool,
        by: &str,
        needed: impl Fn(&parquet::RowGroup) -> bool + Sync,
    ) -> Result<Option<DataFrame>> {
        let read = |name: &str| columns.contains(&name) || name == by;
        let ranges: Vec<_> = parquet::chunks(footer, &keep, read).map(|chunk| chunk.byte_range()).collect();
        let chunks: HashMap<u64, Bytes> =
            ranges.iter().map(|range| range.start).zip(self.get_ranges(&entry.relative, &ranges)?).collect();
        decode_pages(&entry.relative, footer, columns, keep, by, needed, |range| chunks.get(&range.start).cloned())
    }

    /// Bytes `ranges` of an object, in one call: a remote store coalesces
    /// near ranges into fewer requests (as object_store's `get_ranges`
    /// does, counting each), a local file is opened once and read a range
    /// at a time (counted as the requests an object store would get).
    pub(crate) fn get_ranges(&self, relative: &str, ranges: &[std::ops::Range<u64>]) -> Result<Vec<Bytes>> {
        if let Some(root) = &self.local_root {
            self.count(|r| &mut r.get, coalesced(ranges));
            let read = |file: std::fs::File| ranges.iter().map(|range| read_range(&file, range)).collect();
            return std::fs::File::open(root.join(relative)).and_then(read).map_err(|e| self.local_error(relative, e));
        }
        let path = self.path(relative);
        let fetch = |range| {
            self.count(|r| &mut r.get, 1);
            self.store.get_range(&path, range)
        };
        runtime()
            .block_on(coalesce_ranges(ranges, fetch, OBJECT_STORE_COALESCE_DEFAULT))
            .map_err(Error::storage(self.describe(relative)))
    }

    /// Bytes `range` of an object.
    pub(crate) fn get_range(&self, relative: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        if self.local_root.is_some() {
            return self.get_ranges(relative, std::slice::from_ref(&range)).map(|mut parts| parts.swap_remove(0));
        }
        let path = self.path(relative);
        self.count(|r| &mut r.get, 1);
        runtime().block_on(self.store.get_range(&path, range)).map_err(Error::storage(self.describe(relative)))
    }

    /// A local read's error as object_store's local store gives it: a
    /// missing file is `NotFound` (see [`Storage::get_opt`]).
    fn local_error(&self, relative: &str, source: std::io::Error) -> Error {
        let path = self.describe(relative);
        let source = match source.kind() {
            std::io::ErrorKind::NotFound => object_store::Error::NotFound { path: path.clone(), source: source.into() },
            _ => object_store::Error::Generic { store: "LocalFileSystem", source: source.into() },
        };
        Error::storage(path)(source)
    }

    /// `relative` under this location, for messages.
    pub(crate) fn describe(&self, relative: &str) -> String {
        format!("{}/{relative}", self.location.trim_end_matches('/'))
    }

    /// Reads a Parquet object, optionally only some columns.
    pub(crate) fn get_parquet(&self, relative: &str, columns: Option<&[&str]>) -> Result<DataFrame> {
        read_parquet(relative, self.get(relative)?, columns)
    }
}

/// Decodes the bytes of the Parquet object at `relative`, naming it on error.
/// A storage failure while streaming an object, carried through the
/// `io::Read` layers (gzip) above it so callers can tell it from bad content.
#[derive(Debug)]
pub(crate) struct SourceError(pub Error);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceError {}

impl SourceError {
    /// `e` as the `io::Error` a reader returns.
    fn io(e: Error) -> std::io::Error {
        std::io::Error::other(SourceError(e))
    }

    /// The storage error inside `e`, if it is one.
    pub fn take(e: std::io::Error) -> std::result::Result<Error, std::io::Error> {
        if e.get_ref().is_some_and(|inner| inner.is::<SourceError>()) {
            if let Some(Ok(source)) = e.into_inner().map(|inner| inner.downcast::<SourceError>()) {
                return Ok(source.0);
            }
            unreachable!("checked to be a SourceError");
        }
        Err(e)
    }
}

struct LocalRead {
    file: std::fs::File,
    path: PathBuf,
}

impl std::io::Read for LocalRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf).map_err(|source| SourceError::io(Error::Io { path: self.path.clone(), source }))
    }
}

/// Reads an object in ranges of [`RangedRead::BLOCK`] bytes.
struct RangedRead {
    storage: Storage,
    relative: String,
    e_tag: Option<String>,
    size: u64,
    position: u64,
    block: Bytes,
}

impl RangedRead {
    const BLOCK: u64 = 8 << 20;
}

impl std::io::Read for RangedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.block.is_empty() {
            if self.position >= self.size {
                return Ok(0);
            }
            let end = (self.position + Self::BLOCK).min(self.size);
            let options = GetOptions {
                if_match: self.e_tag.clone(),
                range: Some(GetRange::Bounded(self.position..end)),
                ..GetOptions::default()
            };
            let path = self.storage.path(&self.relative);
            let store = &self.storage.store;
            self.storage.count(|r| &mut r.get, 1);
            let location = || format!("{}/{}", self.storage.location, self.relative);
            self.block = runtime()
                .block_on(async { store.get_opts(&path, options).await?.bytes().await })
                .map_err(|e| SourceError::io(Error::storage(location())(e)))?;
            if self.block.is_empty() {
                let shorter = object_store::Error::Generic { store: "read", source: "the object got shorter".into() };
                return Err(SourceError::io(Error::storage(location())(shorter)));
            }
            self.position += self.block.len() as u64;
        }
        let n = buf.len().min(self.block.len());
        buf[..n].copy_from_slice(&self.block.split_to(n));
        Ok(n)
    }
}

/// How many requests object_store's `get_ranges` makes for `ranges`: one
/// for each run of ranges less than [`OBJECT_STORE_COALESCE_DEFAULT`]
/// apart, as its `coalesce_ranges` merges them (sorted by start).
fn coalesced(ranges: &[std::ops::Range<u64>]) -> u64 {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable_by_key(|range| range.start);
    let mut requests = 0;
    let mut end: Option<u64> = None;
    for range in sorted {
        match end {
            Some(last) if range.start.checked_sub(last).is_none_or(|gap| gap <= OBJECT_STORE_COALESCE_DEFAULT) => {
                end = Some(last.max(range.end));
            }
            _ => {
                requests += 1;
                end = Some(range.end);
            }
        }
    }
    requests
}

/// An object store's listing, in full.
fn collect(listing: BoxStream<'static, object_store::Result<ObjectMeta>>, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    runtime().block_on(listing.try_collect()).map_err(Error::storage(prefix.as_ref()))
}

/// [`Storage::list_after`] on a local folder, with what object_store's
/// local listing gives (the same paths, sizes, times and versions) for
/// less: it reads a file's metadata three times and turns its path into a
/// URL and back, which made listing a run's input (thousands of files) the
/// part of a scheduled run that grew fastest. This reads each file's
/// metadata once, from its folder's handle, and only for the files after
/// `after`. A test checks the versions against object_store's own.
fn local_list(root: &std::path::Path, relative: &str, prefix: Path, after: Option<&Path>) -> Result<Vec<ObjectMeta>> {
    let mut metas = Vec::new();
    walk_local(&root.join(relative.trim_matches('/')), prefix, after, &mut metas)?;
    Ok(metas)
}

/// The metadata of a local file as object_store's local listing gives it.
/// `None` when the file was deleted since its folder was read, or is a
/// broken link (not listed, as in object_store).
fn local_meta(entry: &std::fs::DirEntry, is_link: bool, location: Path) -> Result<Option<ObjectMeta>> {
    let metadata = match is_link {
        true => std::fs::metadata(entry.path()),
        false => entry.metadata(),
    };
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: entry.path(), source }),
    };
    let modified = metadata.modified().map_err(|source| Error::Io { path: entry.path(), source })?;
    Ok(Some(ObjectMeta {
        location,
        last_modified: modified.into(),
        size: metadata.len(),
        e_tag: Some(local_e_tag(&metadata, modified)),
        version: None,
    }))
}

/// object_store's version of a local file: inode, modification time in
/// microseconds and size, in hex (what its reads compare with `If-Match`).
fn local_e_tag(metadata: &std::fs::Metadata, modified: std::time::SystemTime) -> String {
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    let micros = modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    format!("{inode:x}-{micros:x}-{:x}", metadata.len())
}

/// The files under the local folder `dir` (whose object path is `path`)
/// that sort after `after`, recursively (a subfolder that can hold none
/// is not read), with their object paths as
/// object_store names them and without the temporary files of writes in
/// flight. Each file's metadata is read while its folder is open, and
/// subfolders are walked after it is closed, so a walk holds one open
/// folder per level and thread, not one per folder. Symbolic links count
/// as what they point to; a link to a folder that holds `dir` (a loop) is
/// not followed.
fn walk_local(dir: &std::path::Path, path: Path, after: Option<&Path>, found: &mut Vec<ObjectMeta>) -> Result<()> {
    let io = |path: PathBuf| move |source| Error::Io { path, source };
    let Some(entries) = read_local_dir(dir)? else { return Ok(()) };
    let mut folders = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir.to_path_buf()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            let reason = std::io::Error::new(std::io::ErrorKind::InvalidData, "a file name that is not UTF-8");
            return Err(Error::Io { path: entry.path(), source: reason });
        };
        // The type comes with the name (no `stat`), but for a link.
        let kind = entry.file_type().map_err(io(entry.path()))?;
        let is_dir = match kind.is_symlink() {
            true => std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()),
            false => kind.is_dir(),
        };
        if is_dir {
            let looped = kind.is_symlink() && {
                let target = entry.path().canonicalize().map_err(io(entry.path()))?;
                dir.canonicalize().map_err(io(dir.to_path_buf()))?.starts_with(target)
            };
            let child = local_child(&path, name, &entry)?;
            if !looped && after.is_none_or(|after| may_hold_after(&child, after)) {
                folders.push((entry.path(), child));
            }
        } else if !is_interrupted_write(name) {
            let location = local_child(&path, name, &entry)?;
            if after.is_none_or(|after| location.as_ref() > after.as_ref()) {
                found.extend(local_meta(&entry, kind.is_symlink(), location)?);
            }
        }
    }
    // Subfolders on every core (an inbox often holds a folder per delivery),
    // on the run's one pool rather than rayon's global one.
    let below: Vec<Vec<ObjectMeta>> = pool::install(|| {
        folders
            .into_par_iter()
            .map(|(dir, path)| {
                let mut found = Vec::new();
                walk_local(&dir, path, after, &mut found).map(|()| found)
            })
            .collect::<Result<_>>()
    })?;
    found.extend(below.into_iter().flatten());
    Ok(())
}

/// Whether the folder at `folder` may hold a path that sorts after
/// `after`. All of its paths start with `folder/`: none does when that
/// sorts before `after` and is not a prefix of it (then `after` decides
/// the comparison within `folder/`'s length).
fn may_hold_after(folder: &Path, after: &Path) -> bool {
    let prefix = format!("{folder}/");
    prefix.as_str() >= after.as_ref() || after.as_ref().starts_with(&prefix)
}

/// The entries of the local folder `dir`; `None` when there is no such
/// folder (nothing there, or a file), which lists as empty.
fn read_local_dir(dir: &std::path::Path) -> Result<Option<std::fs::ReadDir>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(None),
        Err(source) => Err(Error::Io { path: dir.to_path_buf(), source }),
    }
}

/// The object path of the file or folder `name` in the folder at `path`:
/// its name as it is on disk, as object_store's local listing gives it
/// (which refuses names that are not valid path segments, such as `..`).
fn local_child(path: &Path, name: &str, entry: &std::fs::DirEntry) -> Result<Path> {
    let joined = match path.as_ref() {
        "" => name.to_string(),
        parent => format!("{parent}/{name}"),
    };
    Path::parse(joined).map_err(|e| Error::Io {
        path: entry.path(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}

/// Whether a local file name is object_store's temporary name for a write
/// in flight, `<name>#<digits>` (the names its listings skip).
fn is_interrupted_write(name: &str) -> bool {
    name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_parquet(relative: &str, bytes: Bytes, columns: Option<&[&str]>) -> Result<DataFrame> {
    parquet::decode(bytes, columns).map_err(|source| Error::Parquet {
        action: "read",
        path: relative.to_string(),
        source,
    })
}

/// Bytes `range` of a local file, read whole: a range past its end is an
/// error, as in object_store's local store.
fn read_range(file: &std::fs::File, range: &std::ops::Range<u64>) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut bytes, range.start)?;
    Ok(Bytes::from(bytes))
}

/// [`parquet::decode_pages`] of the Parquet object `relative` (for
/// messages), its frames as one; `None` when no page is needed. `chunk`
/// gives the bytes of a column chunk from its byte range in the object.
pub(crate) fn decode_pages(
    relative: &str,
    footer: &polars_parquet::parquet::metadata::FileMetadata,
    columns: &[&str],
    keep: impl Fn(usize) -> bool,
    by: &str,
    needed: impl Fn(&parquet::RowGroup) -> bool + Sync,
    chunk: impl Fn(std::ops::Range<u64>) -> Option<Bytes> + Sync,
) -> Result<Option<DataFrame>> {
    let frames = parquet::decode_pages(footer, keep, columns, by, needed, chunk).map_err(|source| Error::Parquet {
        action: "read",
        path: relative.to_string(),
        source,
    })?;
    match frames.is_empty() {
        true => Ok(None),
        false => concat_frames(frames).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_store_urls_keep_the_path_inside_the_bucket_as_prefix() {
        let s3 = Storage::open("s3://bucket/some/prefix/", false).expect("S3 needs no network to open");
        assert_eq!(s3.path("gold/x.parquet").as_ref(), "some/prefix/gold/x.parquet");
        let root = Storage::open("s3://bucket", false).expect("bucket root");
        assert_eq!(root.path("_lock").as_ref(), "_lock");
        assert!(root.local_root().is_none());
    }

    #[test]
    fn memory_locations_share_one_store_and_list_sorted() {
        let a = Storage::open("memory://storage-test/a", true).expect("memory");
        a.put("x/2.csv", "2").expect("put");
        a.put("x/10.csv", "10").expect("put");
        let same = Storage::open("memory://storage-test/a/", false).expect("memory");
        let names: Vec<_> = same.list("").expect("list").into_iter().map(|e| e.relative).collect();
        assert_eq!(names, ["x/10.csv", "x/2.csv"], "byte-wise order");
        assert_eq!(same.get_opt("x/nope").expect("get"), None);
        let first = a.create("lock", "1").expect("create").expect("absent before");
        assert!(a.create("lock", "2").expect("create").is_none(), "exists now");
        let second = a.update("lock", "3", &first).expect("update").expect("still at the first version");
        assert!(a.update("lock", "4", &first).expect("update").is_none(), "stale version");
        let (bytes, version) = a.get_versioned("lock").expect("get").expect("exists");
        assert_eq!((bytes.as_ref(), version), (b"3".as_slice(), second));
    }

    /// Keys as a user's tools name them: a listed key is read back, and
    /// is written under the name given.
    #[test]
    fn object_store_keys_with_any_characters_are_read_back_as_listed() {
        let s = Storage::open(&format!("memory://keys-{}", uuid::Uuid::new_v4()), true).expect("memory");
        let keys = ["in/%41.csv", "in/a%b.csv", "in/données.csv", "in/x~1 [2]#3.csv"];
        for key in keys {
            s.put(key, key.to_string()).expect("put");
        }
        let listed = s.list("in").expect("list");
        assert_eq!(names(&listed), keys);
        for entry in &listed {
            let read = s.get_if_match(&entry.relative, entry.e_tag.as_deref()).expect("read");
            assert_eq!(read.as_deref(), Some(entry.relative.as_bytes()), "{}", entry.relative);
        }
        assert_eq!(names(&s.list_after("in", Some("in/a%b.csv")).expect("list after")), keys[2..]);
    }

    #[test]
    fn parquet_entries_are_data_files_not_those_under_underscore_folders_below() {
        let s = Storage::open("memory://storage-test/entries", true).expect("memory");
        for path in [
            "t/d=1/a.parquet",
            "t/d=1/b.json",
            "t/_delta_log/00000000000000000100.checkpoint.parquet",
            "t/.hidden/c.parquet",
            "_staging/r/t/d=1/e.parquet",
        ] {
            s.put(path, "x").expect("put");
        }
        assert_eq!(s.parquet_files("t").expect("list"), ["t/d=1/a.parquet"]);
        assert_eq!(s.parquet_files("_staging/r/t").expect("list"), ["_staging/r/t/d=1/e.parquet"]);
    }

    #[test]
    fn a_layer_listed_after_its_log_has_its_partitions_and_no_log() {
        let (dir, locations) = memory_and_local("after-log");
        for location in &locations {
            let s = Storage::open(location, true).expect("open");
            for path in [
                "t/_delta_log/00000000000000000000.json",
                "t/_delta_log/00000000000000000100.checkpoint.parquet",
                "t/_delta_log/_last_checkpoint",
                "t/event_date=2026-01-01/part-a.parquet",
                "t/event_date=2026-01-02/part-b.parquet",
                "u/event_date=2026-01-01/part-c.parquet",
            ] {
                s.put(path, "x").expect("put");
            }
            let listed = s.list_after("t", Some(&crate::layout::after_log("t"))).expect("list");
            let expected = ["t/event_date=2026-01-01/part-a.parquet", "t/event_date=2026-01-02/part-b.parquet"];
            assert_eq!(names(&listed), expected, "{location}");
        }
        // A local walk does not read the log folder: a name there that
        // stops a listing of the whole layer does not stop this one.
        let s = Storage::open(&locations[1], true).expect("open");
        let not_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff.json");
        std::fs::write(dir.path().join("t/_delta_log").join(not_utf8), "").expect("an odd name");
        assert!(s.list("t").is_err(), "a whole listing reads the log");
        assert_eq!(s.list_after("t", Some(&crate::layout::after_log("t"))).expect("list").len(), 2);
    }

    /// A local folder's reads (on the calling thread) give what an object
    /// store's give: the bytes, ranges of them, `None` for a missing
    /// object; and, as object_store's local store, an error for a range
    /// past the end.
    #[test]
    fn reads_of_a_local_folder_equal_an_object_stores() {
        let (_dir, locations) = memory_and_local("reads");
        for location in &locations {
            let s = Storage::open(location, true).expect("open");
            s.put("d/a b%20c#1.parquet", "0123456789").expect("put");
            let name = &s.list("d").expect("list")[0].relative;
            assert_eq!(s.get(name).expect("get").as_ref(), b"0123456789", "{location}");
            assert_eq!(s.get_range(name, 2..5).expect("range").as_ref(), b"234", "{location}");
            let ranges = s.get_ranges(name, &[0..1, 8..10]).expect("ranges");
            assert_eq!(ranges.iter().map(|b| b.as_ref()).collect::<Vec<_>>(), [b"0".as_slice(), b"89"], "{location}");
            assert_eq!(s.get_opt("d/missing.parquet").expect("get"), None, "{location}");
        }
        // As object_store's local store (`memory://` would give the bytes there are).
        let s = Storage::open(&locations[1], true).expect("open");
        assert!(s.get_range("d/a b%20c#1.parquet", 8..11).is_err(), "a range past the end");
    }

    #[test]
    fn requests_are_counted_by_kind_and_shared_by_clones() {
        let (_dir, locations) = memory_and_local("requests");
        let far = OBJECT_STORE_COALESCE_DEFAULT + 20;
        for location in &locations {
            let s = Storage::open(location, true).expect("open");
            let clone = s.clone().with_zstd_level(3);
            s.put("r/a.json", vec![7u8; far as usize]).expect("put");
            assert!(clone.create("r/a.json", "x").expect("create").is_none());
            clone.list("r").expect("list");
            s.get("r/a.json").expect("get");
            assert_eq!(s.get_opt("r/missing.json").expect("get"), None);
            assert!(s.exists("r/a.json").expect("exists"));
            s.get_range("r/a.json", 2..5).expect("range");
            // Near ranges are one request, as object_store merges them; far ones are two.
            s.get_ranges("r/a.json", &[8..10, 0..1, 3..7]).expect("near ranges");
            s.get_ranges("r/a.json", &[0..10, far - 5..far]).expect("far ranges");
            s.rename("r/a.json", "r/b.json").expect("rename");
            s.delete("r/b.json").expect("delete");
            let expected = Requests { get: 7, put: 2, list: 1, rename: 1, delete: 1 };
            assert_eq!(s.requests(), expected, "{location}");
            assert_eq!(clone.requests(), expected, "{location}: a clone counts with its original");
            let fresh = Storage::open(location, true).expect("open");
            assert_eq!(fresh.requests(), Requests::default(), "{location}: another handle counts apart");
        }
    }

    #[test]
    fn get_if_match_reads_only_the_listed_version_on_memory_and_local() {
        let (_dir, locations) = memory_and_local("if-match");
        for location in &locations {
            let s = Storage::open(location, true).expect("open");
            s.put("g/data.parquet", "old").expect("put");
            let tag = s.list("g").expect("list")[0].e_tag.clone();
            assert!(tag.is_some(), "{location} lists versions");
            let got = s.get_if_match("g/data.parquet", tag.as_deref()).expect("get");
            assert_eq!(got.as_deref(), Some(b"old".as_slice()), "{location}");
            s.put("g/data.parquet", "newer").expect("replace");
            assert_eq!(s.get_if_match("g/data.parquet", tag.as_deref()).expect("get"), None, "{location}");
            s.delete("g/data.parquet").expect("delete");
            assert_eq!(s.get_if_match("g/data.parquet", tag.as_deref()).expect("get"), None, "{location}");
        }
    }

    #[test]
    fn delete_all_removes_every_object_under_a_prefix_and_the_local_folder() {
        let (dir, locations) = memory_and_local("delete-all");
        for location in &locations {
            let s = Storage::open(location, true).expect("open");
            for path in ["_staging/r1/a/x.parquet", "_staging/r1/b.json", "_staging/r2/keep.json"] {
                s.put(path, "x").expect("put");
            }
            s.delete_all("_staging/r1").expect("delete");
            let left: Vec<String> = s.list("_staging").expect("list").into_iter().map(|e| e.relative).collect();
            assert_eq!(left, ["_staging/r2/keep.json"], "{location}");
            s.delete_all("_staging/r1").expect("deleting what is gone is not an error");
        }
        assert!(!dir.path().join("_staging/r1").exists(), "no emptied folder is left");
    }

    /// A `memory://` location named `name` and a local folder (gone with
    /// the folder returned): tests hold both to the same behaviour.
    fn memory_and_local(name: &str) -> (tempfile::TempDir, [String; 2]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let local = dir.path().to_string_lossy().to_string();
        (dir, [format!("memory://storage-test/{name}"), local])
    }

    /// object_store's own listing of `relative`, as entries.
    fn object_store_listing(s: &Storage, relative: &str) -> Vec<Entry> {
        let metas: Vec<ObjectMeta> =
            runtime().block_on(s.store.list(Some(&s.path(relative))).try_collect()).expect("object_store lists");
        let mut entries: Vec<Entry> = metas.into_iter().map(|m| s.entry(m)).collect();
        entries.sort_by(|a, b| a.relative.cmp(&b.relative));
        entries
    }

    fn names(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.relative.as_str()).collect()
    }

    #[test]
    fn a_local_listing_equals_object_stores_with_versions_its_reads_accept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Storage::open(&dir.path().to_string_lossy(), true).expect("open");
        for path in ["l/001.json", "l/002.json", "l/003.json", "l/sub/004.json", "l/b c.json", "l/p%q ü.json", "m/5"] {
            s.put(path, "x").expect("put");
        }
        std::fs::write(dir.path().join("l/006.json#1"), "").expect("a write in flight");
        std::os::unix::fs::symlink(dir.path().join("m"), dir.path().join("l/linked")).expect("link a folder");
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("l/broken")).expect("link nothing");

        let ours = s.list("l").expect("list");
        let theirs = object_store_listing(&s, "l");
        let comparable = |entries: &[Entry]| {
            entries.iter().map(|e| (e.relative.clone(), e.size, e.last_modified, e.e_tag.clone())).collect::<Vec<_>>()
        };
        assert_eq!(comparable(&ours), comparable(&theirs));
        // A link back up is not followed (object_store fails on it).
        std::os::unix::fs::symlink(dir.path().join("l"), dir.path().join("l/sub/up")).expect("link a loop");
        assert_eq!(comparable(&s.list("l").expect("list")), comparable(&ours));
        assert_eq!(
            names(&ours),
            [
                "l/001.json",
                "l/002.json",
                "l/003.json",
                "l/b c.json",
                "l/linked/5",
                "l/p%25q %C3%BC.json",
                "l/sub/004.json"
            ]
        );
        // (A listed local name holding an escape is not read back by
        // `get_if_match`: `Storage::path` escapes its `%` again. Local input
        // is read by its file path; the layers' names hold no escapes.)
        for entry in ours.iter().filter(|e| !e.relative.contains('%')) {
            let read = s.get_if_match(&entry.relative, entry.e_tag.as_deref()).expect("read");
            assert_eq!(read.as_deref(), Some(b"x".as_slice()), "{}: its listed version is current", entry.relative);
        }
        let after = s.list_after("l", Some("l/002.json")).expect("list after");
        assert_eq!(names(&after), names(&ours)[2..], "only what sorts after");
        assert!(s.list("nowhere").expect("a missing folder").is_empty());
        assert!(s.list("l/001.json").expect("a file").is_empty(), "a file is not a folder, as in object_store");
    }

    #[test]
    fn a_local_listing_after_a_path_does_not_read_folders_that_sort_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Storage::open(&dir.path().to_string_lossy(), false).expect("open");
        for path in
            ["in/0001/a.csv", "in/0002/a.csv", "in/0002/b/c.csv", "in/0002-x/a.csv", "in/0003/a.csv", "in/z.csv"]
        {
            s.put(path, "x").expect("put");
        }
        // A name the walk refuses, in a folder that sorts before: reading it fails the listing.
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"\xff.csv");
        std::fs::write(dir.path().join("in/0001").join(bad), "x").expect("write");
        assert!(s.list("in").is_err(), "a full listing reads 0001");
        let after = s.list_after("in", Some("in/0002")).expect("0001 is not read");
        assert_eq!(names(&after), ["in/0002-x/a.csv", "in/0002/a.csv", "in/0002/b/c.csv", "in/0003/a.csv", "in/z.csv"]);
    }

    #[test]
    fn listing_after_a_path_on_memory() {
        let s = Storage::open("memory://storage-test/list-after", true).expect("memory");
        for path in ["l/001.json", "l/002.json", "l/003.json", "l/sub/004.json", "m/005.json"] {
            s.put(path, "x").expect("put");
        }
        let after = s.list_after("l", Some("l/002.json")).expect("list after");
        assert_eq!(names(&after), ["l/003.json", "l/sub/004.json"]);
    }

    #[test]
    fn interrupted_local_writes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Storage::open(&dir.path().to_string_lossy(), true).expect("open");
        s.put("_runs/a.json", "{}").expect("put");
        s.put("_runs/sub/b.json", "{}").expect("put");
        for name in ["_runs/a.json#1", "_runs/c.json#27", "_runs/sub/b.json#2"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        std::fs::write(dir.path().join("_runs/d#e.json"), "{}").expect("write");
        assert_eq!(s.remove_interrupted_writes("_runs").expect("remove"), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("_runs"))
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.json", "d#e.json", "sub"], "only `<name>#<digits>` files go");
        assert!(dir.path().join("_runs/sub/b.json#2").exists(), "subfolders are not walked");
        assert_eq!(s.remove_interrupted_writes("nowhere").expect("a missing folder is fine"), 0);
        let memory = Storage::open("memory://storage-test/interrupted", true).expect("memory");
        assert_eq!(memory.remove_interrupted_writes("_runs").expect("object stores"), 0);
    }

    #[test]
    fn unsupported_scheme_is_a_usage_error_naming_it() {
        let err = Storage::open("ftp://host/x", false).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("ftp://"), "{err}");
        let err = Storage::open("/definitely/not/here", false).unwrap_err();
        assert!(err.is_usage(), "{err}");
    }
}
