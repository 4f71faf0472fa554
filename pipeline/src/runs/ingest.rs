//! Per-file work of a run before parsing: which files are candidates, and
//! reading them, in path order on one thread, as a stream of [`Piece`]s
//! that the batches parse on every core.
//!
//! A file is streamed, never held whole: its bytes are hashed, gunzipped
//! and cut into pieces of whole records as they arrive. The one thing a
//! stream cannot know early is whether a file is unreadable (a gzip error
//! at its very end, no record that is text), and an unreadable file must
//! leave no row behind. So a file's pieces are held back until it is
//! known to be text (plain files: at its first good record), or, for
//! gzip, until its end. A file that would hold back more than the window
//! is first read through once to check it, then streamed.
//!
//! A file listed with a new size or time at a path already ingested is
//! read once to hash it first, so that unchanged content (a touched file)
//! costs no parsing; when the content did change, it is read again to parse.

use std::io::Read;
use std::sync::mpsc::SyncSender;

use flate2::read::MultiGzDecoder;
use indicatif::ProgressBar;
use xxhash_rust::xxh3::Xxh3Default;

use super::manifest::UnreadableFile;
use crate::error::{Error, Result};
use crate::input::{self, FileKind, Limits, Piece, Split, Splitter};
use crate::storage::{Entry, SourceError, Storage};

/// A file chosen for ingestion.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub entry: Entry,
    pub kind: FileKind,
    /// Hash of the content an earlier run ingested at this path, if any.
    pub known_hash: Option<String>,
}

/// What the reader hands the run, in file order.
pub(super) enum Event {
    /// A piece of candidate `file` (its index), to parse.
    Piece { file: usize, piece: Piece },
    /// Candidate `file` is read to its end; all its pieces came before.
    Done { file: usize, outcome: FileOutcome },
}

impl Event {
    /// Decoded bytes the event carries.
    pub fn len(&self) -> usize {
        match self {
            Event::Piece { piece, .. } => piece.len(),
            Event::Done { .. } => 0,
        }
    }
}

/// How reading one candidate file ended.
pub(super) enum FileOutcome {
    /// Its content equals what an earlier run ingested at the same path.
    Unchanged,
    Read {
        content_hash: String,
    },
    /// It cannot be read at all; none of its pieces were sent.
    Unreadable(UnreadableFile),
}

/// Reads candidate files into [`Event`]s.
pub(super) struct Reader {
    pub input: Storage,
    pub limits: Limits,
    /// Decoded bytes a file may hold back before it is checked whole first.
    pub window: usize,
    pub progress: ProgressBar,
}

/// How a pass over a file treats its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Hold pieces back until the file is known to be readable.
    HoldBack,
    /// Only check the file; send nothing.
    Check,
    /// The file is known to be readable: send pieces as they come.
    Send,
}

/// How a pass over a file ended.
enum Pass {
    Read {
        content_hash: String,
    },
    Unreadable {
        content_hash: String,
        message: String,
    },
    /// [`Mode::HoldBack`] would have held more than the window.
    TooLarge,
}

impl Reader {
    /// Reads every candidate in order into `events`. Stops at the first
    /// storage error (sent as the last event) or when `events` is closed.
    pub fn run(&self, candidates: &[Candidate], events: &SyncSender<Result<Event>>) {
        for (file, candidate) in candidates.iter().enumerate() {
            let mut send = |piece| events.send(Ok(Event::Piece { file, piece })).map_err(|_| records::Error::Stopped);
            let result = self.read(candidate, &mut send);
            self.progress.inc(candidate.entry.size);
            let event = match result {
                Ok(outcome) => Ok(Event::Done { file, outcome }),
                Err(Error::ReadStopped) => return,
                Err(e) => Err(e),
            };
            let failed = event.is_err();
            if events.send(event).is_err() || failed {
                return;
            }
        }
    }

    fn read(&self, candidate: &Candidate, send: &mut dyn FnMut(Piece) -> records::Result<()>) -> Result<FileOutcome> {
        if let Some(known) = &candidate.known_hash {
            let mut source = Hashing::new(self.input.open_read(&candidate.entry)?);
            std::io::copy(&mut source, &mut std::io::sink()).map_err(|e| source_failure(e, &candidate.entry))?;
            if source.hash() == *known {
                return Ok(FileOutcome::Unchanged);
            }
        }
        // A gzip file is only known good at its end: one likely to be
        // larger than the window decoded (≈ 8× its size) is checked first.
        let check_first = candidate.kind.gzip && candidate.entry.size.saturating_mul(8) > self.window as u64;
        let mut pass = if check_first { Pass::TooLarge } else { self.pass(candidate, Mode::HoldBack, send)? };
        if let Pass::TooLarge = pass {
            pass = self.pass(candidate, Mode::Check, send)?;
            if let Pass::Read { .. } = pass {
                pass = self.pass(candidate, Mode::Send, send)?;
            }
        }
        Ok(match pass {
            Pass::Read { content_hash } => FileOutcome::Read { content_hash },
            Pass::Unreadable { content_hash, message } => FileOutcome::Unreadable(UnreadableFile {
                path: candidate.entry.relative.clone(),
                size: candidate.entry.size,
                content_hash,
                last_modified: candidate.entry.last_modified,
                error: message,
            }),
            Pass::TooLarge => unreachable!("only a hold-back pass is too large"),
        })
    }

    /// Reads the file once, from its first byte to its last.
    fn pass(
        &self,
        candidate: &Candidate,
        mode: Mode,
        send: &mut dyn FnMut(Piece) -> records::Result<()>,
    ) -> Result<Pass> {
        let entry = &candidate.entry;
        let mut source = Hashing::new(self.input.open_read(entry)?);
        let mut held: Vec<Piece> = Vec::new();
        let mut held_bytes = 0;
        let mut released = mode == Mode::Send;
        let mut too_large = false;
        let mut forward = |split: Split| -> records::Result<()> {
            match (mode, split) {
                (Mode::Check, _) => Ok(()),
                (_, Split::Piece(piece)) if released => send(piece),
                (_, Split::Piece(piece)) => {
                    held_bytes += piece.len();
                    held.push(piece);
                    too_large = held_bytes > self.window;
                    if too_large { Err(records::Error::Stopped) } else { Ok(()) }
                }
                (_, Split::Text) if !candidate.kind.gzip && !released => {
                    released = true;
                    held.drain(..).try_for_each(&mut *send)
                }
                (_, Split::Text) => Ok(()),
            }
        };
        let split = split_stream(&mut source, candidate, self.limits, &mut forward);
        let content_hash = match std::io::copy(&mut source, &mut std::io::sink()) {
            Ok(_) => source.hash(),
            Err(e) => return Err(source_failure(e, entry)),
        };
        match split {
            Ok(()) => {}
            Err(Error::ReadStopped) if too_large => return Ok(Pass::TooLarge),
            Err(Error::UnreadableInput { message, .. }) => return Ok(Pass::Unreadable { content_hash, message }),
            Err(e) => return Err(e),
        }
        if !released {
            held.into_iter().try_for_each(send)?;
        }
        Ok(Pass::Read { content_hash })
    }
}

/// Decodes `source` and cuts it into pieces. A file that cannot be decoded
/// or is not text is [`Error::UnreadableInput`]; a storage failure is itself.
fn split_stream(
    source: &mut Hashing,
    candidate: &Candidate,
    limits: Limits,
    forward: &mut dyn FnMut(Split) -> records::Result<()>,
) -> Result<()> {
    let path = candidate.entry.relative.as_str();
    let mut decoded: Box<dyn Read + '_> =
        if candidate.kind.gzip { Box::new(MultiGzDecoder::new(&mut *source)) } else { Box::new(&mut *source) };
    let mut splitter = Splitter::new(candidate.kind.format, limits, path);
    let mut block = vec![0u8; 256 << 10];
    loop {
        let n = match decoded.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match SourceError::take(e) {
                    Ok(storage) => storage,
                    Err(e) => Error::UnreadableInput {
                        path: path.to_string(),
                        message: format!("not a valid gzip stream ({e})"),
                    },
                });
            }
        };
        splitter.push(&block[..n], forward)?;
    }
    let summary = splitter.finish(forward)?;
    if !summary.text {
        return Err(input::not_text(path).into());
    }
    Ok(())
}

fn source_failure(e: std::io::Error, entry: &Entry) -> Error {
    SourceError::take(e).unwrap_or_else(|source| Error::Io { path: entry.relative.clone().into(), source })
}

/// The raw bytes of a file, hashed as they are read.
struct Hashing {
    inner: Box<dyn Read + Send>,
    hasher: Xxh3Default,
}

impl Hashing {
    fn new(inner: Box<dyn Read + Send>) -> Self {
        Self { inner, hasher: Xxh3Default::new() }
    }

    /// The content hash recorded in manifests: 128-bit xxh3, hex.
    fn hash(&self) -> String {
        format!("{:032x}", self.hasher.digest128())
    }
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_hash_is_the_one_shot_hash_of_earlier_manifests() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut source = Hashing::new(Box::new(std::io::Cursor::new(data.clone())));
        let mut block = [0u8; 1000];
        while source.read(&mut block).expect("memory") > 0 {}
        assert_eq!(source.hash(), format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&data)));
    }
}
