//! Per-file work of a run: which files are candidates, how they are grouped
//! into batches, and reading one file into bronze with rules 1–4 applied.
//! A file that cannot be read at all is an outcome here, not an error.

use super::manifest::{FileRecord, UnreadableFile};
use crate::bronze::{BronzeBuilder, Lineage};
use crate::error::{Error, Result};
use crate::input::{self, FileKind};
use crate::silver::{self, Evaluated, Rules};
use crate::storage::{Entry, Storage};

/// A file chosen for ingestion.
pub(super) struct Candidate {
    pub entry: Entry,
    pub kind: FileKind,
    /// Hash of the content an earlier run ingested at this path, if any.
    pub known_hash: Option<String>,
}

/// One file after parsing and rules 1–4.
pub(super) struct Ingested {
    pub record: FileRecord,
    pub evaluated: Evaluated,
}

/// What reading one candidate file gave.
pub(super) enum FileOutcome {
    /// Its content equals what an earlier run ingested at the same path.
    Unchanged,
    Ingested(Box<Ingested>),
    /// It cannot be read at all; the run goes on without it.
    Unreadable(UnreadableFile),
}

/// Reads, hashes, parses and evaluates one file. A file that cannot be
/// decoded or read as text is an outcome, not an error; a storage failure
/// is an error (the run fails).
pub(super) fn ingest_file(
    input: &Storage,
    candidate: &Candidate,
    rules: &Rules,
    lineage: Lineage,
) -> Result<FileOutcome> {
    let path = &candidate.entry.relative;
    let bytes = input.get(path)?;
    let content_hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    if candidate.known_hash.as_deref() == Some(content_hash.as_str()) {
        return Ok(FileOutcome::Unchanged);
    }
    let unreadable = |message: String| UnreadableFile {
        path: path.clone(),
        size: candidate.entry.size,
        content_hash: content_hash.clone(),
        last_modified: candidate.entry.last_modified,
        error: message,
    };
    let data = match input::decode(&bytes, candidate.kind, path) {
        Ok(data) => data,
        Err(Error::UnreadableInput { message, .. }) => return Ok(FileOutcome::Unreadable(unreadable(message))),
        Err(e) => return Err(e),
    };
    let mut builder = BronzeBuilder::with_capacity(data.len() / 96 + 16);
    let stats = match input::read_file(&data, candidate.kind, path, &mut builder) {
        Ok(stats) => stats,
        Err(Error::UnreadableInput { message, .. }) => return Ok(FileOutcome::Unreadable(unreadable(message))),
        Err(e) => return Err(e),
    };
    let bronze = builder.finish(lineage)?;
    let evaluated = silver::evaluate(bronze, rules)?;
    let record = FileRecord {
        path: path.clone(),
        size: candidate.entry.size,
        content_hash,
        last_modified: candidate.entry.last_modified,
        rows: stats.records,
        malformed: stats.malformed,
    };
    Ok(FileOutcome::Ingested(Box::new(Ingested { record, evaluated })))
}

/// Groups files into batches of about `batch_rows` rows, estimated from
/// size (≈ 100 bytes a row, gzip ≈ 8× smaller), keeping path order.
pub(super) fn batches(candidates: Vec<Candidate>, batch_rows: usize) -> Vec<Vec<Candidate>> {
    let budget = batch_rows as u64 * 100;
    let mut batches: Vec<Vec<Candidate>> = Vec::new();
    let mut used = 0;
    for candidate in candidates {
        let estimate = candidate.entry.size * if candidate.kind.gzip { 8 } else { 1 };
        if batches.is_empty() || (used + estimate > budget && used > 0) {
            batches.push(Vec::new());
            used = 0;
        }
        used += estimate;
        if let Some(last) = batches.last_mut() {
            last.push(candidate);
        }
    }
    batches
}
