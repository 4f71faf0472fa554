//! Runs: the manifest that records each run, the index of ingested files
//! folded from the manifests, the lock that keeps runs on one output from
//! interleaving, and the run itself (README "Runs"): `execute` orchestrates it,
//! `ingest` streams the files, `batches` parses, cleans and stages them,
//! `engine` runs the global stages (duplicates, silver events, gold) on
//! this machine or on Spark, `commit` publishes it all.

mod batches;
mod commit;
mod compact;
mod context;
mod engine;
mod execute;
mod id_index;
mod ingest;
mod ingested_index;
mod lock;
mod manifest;
mod options;
mod vacuum;

// The manifest is read by the api crate and the tests; the rest is the
// command line's.
pub use manifest::{FileRecord, LayerRows, Manifest, RUNS_DIR, RunStatus, StorageRequests, UnreadableFile};

pub(crate) use compact::compact_output;
pub(crate) use execute::{Outcome, run};
pub(crate) use manifest::load_manifests;
pub(crate) use options::{CrashPoint, RunOptions};
pub(crate) use vacuum::vacuum;
