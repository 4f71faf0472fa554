//! Exclusive runs: one run at a time per output location.
//!
//! On a local folder the lock is an OS file lock on `_lock`, released by
//! the kernel when its process dies, so a crashed run never blocks the next.
//! `memory://` outputs lock within the process.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::storage::Storage;

pub const LOCK_FILE: &str = "_lock";

/// Held for the whole run; released on drop (or by the OS on exit).
#[derive(Debug)]
pub enum Lock {
    File(File),
    Memory(String),
}

fn memory_locks() -> &'static Mutex<HashSet<String>> {
    static LOCKS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LOCKS.get_or_init(Default::default)
}

impl Lock {
    /// Takes the lock or fails at once with a message naming the holder.
    pub fn acquire(output: &Storage, holder: &str) -> Result<Lock> {
        let Some(root) = output.local_root() else {
            let mut held = memory_locks().lock().unwrap_or_else(|p| p.into_inner());
            if !held.insert(output.location().to_string()) {
                return Err(Error::Locked { output: output.location().into(), holder: "a run in this process".into() });
            }
            return Ok(Lock::Memory(output.location().to_string()));
        };
        let path = root.join(LOCK_FILE);
        let io = |source| Error::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                file.write_all(holder.as_bytes()).map_err(io)?;
                file.flush().map_err(io)?;
                Ok(Lock::File(file))
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder's note is best effort: it may be mid-write.
                let _ = file.read_to_string(&mut text);
                let holder =
                    if text.trim().is_empty() { "unknown holder".to_string() } else { text.trim().to_string() };
                Err(Error::Locked { output: output.location().into(), holder })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Lock::Memory(location) = self {
            memory_locks().lock().unwrap_or_else(|p| p.into_inner()).remove(location.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_output_fails_naming_the_holder() {
        let dir = std::env::temp_dir().join(format!("minutely-lock-{}", std::process::id()));
        let output = Storage::open(dir.to_str().expect("utf-8 temp dir"), true).expect("open");
        let first = Lock::acquire(&output, "run A (pid 1)").expect("first lock");
        let err = Lock::acquire(&output, "run B").unwrap_err();
        assert!(err.to_string().contains("run A (pid 1)"), "{err}");
        drop(first);
        Lock::acquire(&output, "run C").expect("free after release");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn memory_output_locks_within_the_process() {
        let output = Storage::open("memory://lock-test", true).expect("open");
        let held = Lock::acquire(&output, "a").expect("first");
        assert!(Lock::acquire(&output, "b").is_err());
        drop(held);
        assert!(Lock::acquire(&output, "c").is_ok());
    }
}
