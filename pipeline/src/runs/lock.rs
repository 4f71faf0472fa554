//! Exclusive runs: one run at a time per output location.
//!
//! On a local folder the lock is an OS file lock on `_lock`, released by
//! the kernel when its process dies, so a crashed run never blocks the next.
//! The file holds its holder's note, emptied when a command that finished
//! lets go ([`Lock::release`]): a note found on taking the lock tells the
//! next holder its last one stopped mid-command.
//!
//! On an object store (and `memory://`) the lock is a lease: a `_lock`
//! object naming its holder and an expiry, created only if absent
//! (`If-None-Match: *`) and renewed by a background thread every third of
//! its length, each renewal conditional on the version the holder last
//! wrote (`If-Match`). A holder that dies stops renewing; once the expiry
//! has passed, the next run takes the lease over, again conditionally, so
//! two runs racing for an expired lease cannot both win. A holder that
//! loses its lease (it could not renew in time, or another run took it
//! over) notices before it commits and fails instead.
//!
//! Lease expiry compares the writer's clock with the reader's: clocks of
//! the machines sharing an output must agree to well within the lease.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::storage::{Storage, Version};

pub(crate) const LOCK_FILE: &str = "_lock";

/// Held for the whole run; released on drop (or, for a file lock, by the OS on exit).
#[derive(Debug)]
pub(crate) enum Lock {
    /// The open lock file: the OS lock lasts while it is open. It holds
    /// the holder's note until [`Lock::release`] empties it, so a note
    /// found by the next holder means its last holder stopped mid-command.
    File {
        held: File,
        after_clean_release: bool,
    },
    Lease(Box<Lease>),
}

impl Lock {
    /// Takes the lock or fails at once with a message naming the holder.
    /// `lease` is the lease length on object stores (unused on local folders).
    pub fn acquire(output: &Storage, holder: &str, lease: Duration) -> Result<Lock> {
        match output.local_root() {
            Some(root) => file_lock(output, &root.join(LOCK_FILE), holder)
                .map(|(held, after_clean_release)| Lock::File { held, after_clean_release }),
            None => Lease::acquire(output, holder, lease).map(|lease| Lock::Lease(Box::new(lease))),
        }
    }

    /// Whether the last holder of a local lock released it with
    /// [`Lock::release`], its writes all done: then none of its writes can
    /// have been interrupted, and no temporary file of one is left. False
    /// when unknown (a lease: object stores leave no such files).
    pub(crate) fn after_clean_release(&self) -> bool {
        matches!(self, Lock::File { after_clean_release: true, .. })
    }

    /// Releases the lock after a command that finished its writes, telling
    /// the next holder so (see [`Lock::after_clean_release`]). Dropping the
    /// lock instead (an error, a panic) or dying leaves the holder's note.
    pub(crate) fn release(self) {
        if let Lock::File { held, .. } = &self
            && let Err(e) = held.set_len(0)
        {
            warn!(error = %e, "Could not mark the lock released; the next run looks for interrupted writes.");
        }
    }

    /// Fails when the lock is no longer certainly held: a lease that could
    /// not be renewed in time or was taken over. Checked before committing.
    pub(crate) fn ensure_held(&self) -> Result<()> {
        match self {
            Lock::File { .. } => Ok(()),
            Lock::Lease(lease) => lease.ensure_held(),
        }
    }
}

/// The locked file, and whether its last holder released it cleanly (it
/// was empty).
fn file_lock(output: &Storage, path: &std::path::Path, holder: &str) -> Result<(File, bool)> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            let after_clean_release = file.metadata().map_err(io)?.len() == 0;
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(holder.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            Ok((file, after_clean_release))
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder's note is best effort: it may be mid-write.
            let _ = file.read_to_string(&mut text);
            let holder = if text.trim().is_empty() { "unknown holder" } else { text.trim() };
            Err(Error::Locked {
                output: output.location().into(),
                holder: format!("{holder} (an OS file lock, released when that process exits)"),
            })
        }
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The `_lock` object of a lease.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    /// Tells this holder's writes from a later holder's with the same name.
    token: String,
    expires_at: DateTime<Utc>,
}

/// What the renewal thread and the run share.
#[derive(Debug)]
struct LeaseState {
    /// The version last written by this holder.
    version: Mutex<Version>,
    /// The expiry last written by this holder.
    expires_at: Mutex<DateTime<Utc>>,
    /// Set when a renewal found the lease taken over.
    lost: AtomicBool,
}

/// A held lease; renewed in the background until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    output: Storage,
    record: LeaseRecord,
    state: Arc<LeaseState>,
    stop: Option<Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Lease {
    fn acquire(output: &Storage, holder: &str, length: Duration) -> Result<Lease> {
        let length_chrono = chrono::Duration::from_std(length)
            .map_err(|_| Error::Config(format!("lease of {length:?} is too long")))?;
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let token = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{holder} {nanos}").as_bytes()));
        let record = |expires_at| LeaseRecord { holder: holder.to_string(), token: token.clone(), expires_at };
        let locked = |current: &LeaseRecord| Error::Locked {
            output: output.location().into(),
            holder: format!(
                "{} (a lease that expires at {} unless renewed)",
                current.holder,
                current.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        };
        // Twice: a lease released between our create and our read is gone.
        for _ in 0..2 {
            let mine = record(Utc::now() + length_chrono);
            if let Some(version) = output.create(LOCK_FILE, mine.to_json())? {
                return Ok(Self::start(output, mine, version, length_chrono));
            }
            let Some((bytes, version)) = output.get_versioned(LOCK_FILE)? else { continue };
            let current = LeaseRecord::from_json(&bytes, output)?;
            if current.expires_at > Utc::now() {
                return Err(locked(&current));
            }
            let mine = record(Utc::now() + length_chrono);
            match output.update(LOCK_FILE, mine.to_json(), &version)? {
                Some(version) => {
                    warn!(
                        previous = current.holder,
                        expired_at = %current.expires_at,
                        "Took over an expired lease: its holder stopped renewing it (crashed or killed)."
                    );
                    return Ok(Self::start(output, mine, version, length_chrono));
                }
                // Another run took it over first: report that one.
                None => {
                    if let Some((bytes, _)) = output.get_versioned(LOCK_FILE)? {
                        return Err(locked(&LeaseRecord::from_json(&bytes, output)?));
                    }
                }
            }
        }
        Err(Error::Locked {
            output: output.location().into(),
            holder: "a run that keeps taking and releasing it".into(),
        })
    }

    fn start(output: &Storage, record: LeaseRecord, version: Version, length: chrono::Duration) -> Lease {
        info!(output = output.location(), expires_at = %record.expires_at, "Took the lease.");
        let state = Arc::new(LeaseState {
            version: Mutex::new(version),
            expires_at: Mutex::new(record.expires_at),
            lost: AtomicBool::new(false),
        });
        let (stop, stopped) = channel::<()>();
        let renewer = {
            let (output, state) = (output.clone(), state.clone());
            let (holder, token) = (record.holder.clone(), record.token.clone());
            std::thread::Builder::new()
                .name("minutely-lease".into())
                .spawn(move || {
                    let every = (length / 3).to_std().unwrap_or(Duration::from_secs(1));
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        let next = LeaseRecord {
                            holder: holder.clone(),
                            token: token.clone(),
                            expires_at: Utc::now() + length,
                        };
                        if !renew(&output, &state, &next) {
                            break;
                        }
                    }
                })
                .ok()
        };
        if renewer.is_none() {
            warn!("Could not start the lease renewal thread; the run must finish within the lease.");
        }
        Lease { output: output.clone(), record, state, stop: Some(stop), renewer }
    }

    fn ensure_held(&self) -> Result<()> {
        let lost = |reason: &str| Error::LeaseLost { output: self.output.location().into(), reason: reason.into() };
        if self.state.lost.load(Ordering::SeqCst) {
            return Err(lost("another run took it over"));
        }
        let expires_at = *lock_ignoring_poison(&self.state.expires_at);
        if expires_at <= Utc::now() {
            return Err(lost("it expired before it could be renewed"));
        }
        Ok(())
    }
}

/// One renewal; `false` ends the renewal thread (the lease is lost).
fn renew(output: &Storage, state: &LeaseState, next: &LeaseRecord) -> bool {
    let version = lock_ignoring_poison(&state.version).clone();
    match output.update(LOCK_FILE, next.to_json(), &version) {
        Ok(Some(version)) => {
            *lock_ignoring_poison(&state.version) = version;
            *lock_ignoring_poison(&state.expires_at) = next.expires_at;
            true
        }
        Ok(None) => {
            warn!(output = output.location(), "The lease was taken over by another run; this run will not commit.");
            state.lost.store(true, Ordering::SeqCst);
            false
        }
        // A transient store error: try again at the next tick; the expiry
        // check before commit catches a lease that lapsed meanwhile.
        Err(e) => {
            warn!(error = %e.chain(), "Could not renew the lease; retrying.");
            true
        }
    }
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Lease {
    /// Stops renewing, then deletes `_lock` if it is still this holder's.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        let ours = match self.output.get_versioned(LOCK_FILE) {
            Ok(Some((bytes, _))) => {
                LeaseRecord::from_json(&bytes, &self.output).is_ok_and(|r| r.token == self.record.token)
            }
            _ => false,
        };
        if ours && let Err(e) = self.output.delete(LOCK_FILE) {
            warn!(error = %e.chain(), "Could not release the lease; it expires by itself.");
        }
    }
}

impl LeaseRecord {
    fn to_json(&self) -> Vec<u8> {
        // A struct of strings and a timestamp always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn from_json(bytes: &[u8], output: &Storage) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|source| Error::LeaseRecord { path: format!("{}/{LOCK_FILE}", output.location()), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn memory(name: &str) -> Storage {
        Storage::open(&format!("memory://lock-test-{name}"), true).expect("open")
    }

    #[test]
    fn second_file_lock_on_same_output_fails_naming_the_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Storage::open(dir.path().to_str().expect("utf-8 temp dir"), true).expect("open");
        let first = Lock::acquire(&output, "run A (pid 1)", SECOND).expect("first lock");
        let err = Lock::acquire(&output, "run B", SECOND).unwrap_err();
        assert!(err.to_string().contains("run A (pid 1)"), "{err}");
        drop(first);
        Lock::acquire(&output, "run C", SECOND).expect("free after release");
    }

    #[test]
    fn a_live_lease_blocks_and_is_released_on_drop() {
        let output = memory("live");
        let held = Lock::acquire(&output, "run A", Duration::from_secs(60)).expect("first");
        let err = Lock::acquire(&output, "run B", Duration::from_secs(60)).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }) && err.to_string().contains("run A"), "{err}");
        held.ensure_held().expect("still held");
        drop(held);
        assert!(output.get_opt(LOCK_FILE).expect("get").is_none(), "released");
        Lock::acquire(&output, "run C", Duration::from_secs(60)).expect("free after release");
    }

    #[test]
    fn renewal_keeps_a_short_lease_alive_past_its_length() {
        let output = memory("renew");
        let held = Lock::acquire(&output, "run A", Duration::from_millis(600)).expect("first");
        std::thread::sleep(Duration::from_millis(1500));
        held.ensure_held().expect("renewed in the background");
        assert!(Lock::acquire(&output, "run B", SECOND).is_err(), "still blocks others");
    }

    #[test]
    fn a_foreign_lock_object_is_an_error_saying_what_to_do() {
        let output = memory("foreign");
        output.put(LOCK_FILE, "held by a shell script").expect("put");
        let err = Lock::acquire(&output, "run A", SECOND).unwrap_err();
        assert!(matches!(err, Error::LeaseRecord { .. }) && err.to_string().contains("delete it"), "{err}");
    }

    #[test]
    fn an_expired_lease_of_a_dead_holder_is_taken_over() {
        let output = memory("expired");
        let dead = LeaseRecord { holder: "crashed run".into(), token: "x".into(), expires_at: Utc::now() };
        output.put(LOCK_FILE, dead.to_json()).expect("put");
        std::thread::sleep(Duration::from_millis(10));
        let held = Lock::acquire(&output, "run B", SECOND).expect("expired lease is taken over");
        held.ensure_held().expect("held");
    }

    #[test]
    fn a_lease_taken_over_meanwhile_is_noticed_before_commit() {
        let output = memory("lost");
        let held = Lock::acquire(&output, "run A", Duration::from_millis(300)).expect("first");
        // Another holder overwrites the lease (as after a long stall of ours).
        let other = LeaseRecord { holder: "run B".into(), token: "y".into(), expires_at: Utc::now() };
        output.put(LOCK_FILE, other.to_json()).expect("put");
        std::thread::sleep(Duration::from_millis(400));
        let err = held.ensure_held().unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
        drop(held);
        let left = output.get(LOCK_FILE).expect("the other holder's lease stays");
        assert!(String::from_utf8_lossy(&left).contains("run B"));
    }
}
