//! Runs: the manifest that records each run, the index of ingested files
//! folded from the manifests, the lock that keeps runs on one output from
//! interleaving, and the run itself (README "Runs"): `execute` orchestrates it,
//! `ingest` streams the files, `batches` parses, cleans and stages them,
//! `engine` runs the global stages (duplicates, silver events, gold) on
//! this machine or on Spark, `commit` publishes it all.

mod batches;
mod commit;
mod engine;
mod execute;
mod id_index;
mod ingest;
mod ingested_index;
mod lock;
mod manifest;
mod options;
mod swap;

pub use execute::{Outcome, run};
pub use ingested_index::{INDEX_FILE, IngestedIndex};
pub use lock::{LOCK_FILE, Lock};
pub use manifest::{FileRecord, LayerRows, Manifest, RUNS_DIR, RunStatus, UnreadableFile, load_manifests, new_run_id};
pub use options::{CrashPoint, RunOptions};
