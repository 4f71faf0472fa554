//! How a run was asked to behave: a full refresh, when its tables get
//! checkpoints and lose old log files, and the points where a crash or
//! failure test stops it.
//! Read by the orchestrator (`execute`) and by the commit step (`commit`).

use crate::tables::LogPolicy;

/// How a run was asked to behave.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunOptions {
    /// Ignore earlier runs: re-ingest all input and replace every layer.
    pub full_refresh: bool,
    /// `[maintenance] checkpoint_interval` and `log_retention_hours`.
    pub log: LogPolicy,
    /// For crash tests: abort the process at this point, as `kill -9` would.
    pub crash_at: Option<CrashPoint>,
    /// For failure tests: fail with an error at this point, as a storage
    /// error would.
    pub fail_at: Option<CrashPoint>,
}

/// Points where a test can stop a run: by aborting (`MINUTELY_CRASH_AT`)
/// or by failing with an error (`MINUTELY_FAIL_AT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// Bronze and silver staged, before gold.
    Staged,
    /// Gold staged, before the commit marker.
    GoldStaged,
    /// Commit marker written, before any file is moved into place.
    Committed,
    /// Half of the staged files moved into place.
    MidPublish,
    /// All files in place, before the tables' versions.
    Moved,
    /// Tables committed, before the files they removed are deleted.
    TablesCommitted,
    /// All files in place and deleted, before the manifest.
    Published,
}

impl CrashPoint {
    pub(crate) const ALL: [(&'static str, CrashPoint); 7] = [
        ("staged", CrashPoint::Staged),
        ("gold-staged", CrashPoint::GoldStaged),
        ("committed", CrashPoint::Committed),
        ("mid-publish", CrashPoint::MidPublish),
        ("moved", CrashPoint::Moved),
        ("tables-committed", CrashPoint::TablesCommitted),
        ("published", CrashPoint::Published),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }
}
