//! Files the server re-reads when they change: the tokens file, the TLS
//! certificate and key. One thread polls them every second; a change that
//! does not load (a half-written file, a bad line, a key that does not
//! match its certificate) keeps the previous value and logs why, once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

/// How often the watcher looks at the files.
const POLL: Duration = Duration::from_secs(1);

/// What identifies one version of a file: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A value loaded from files, reloaded when any of them changes.
pub(crate) struct Watched<T> {
    /// What the files hold, for the log ("tokens file", "TLS certificate").
    what: &'static str,
    paths: Vec<PathBuf>,
    load: fn(&[PathBuf]) -> Result<T, String>,
    current: ArcSwap<T>,
    /// The stamps of the version last tried, loaded or not.
    seen: Mutex<Vec<Stamp>>,
}

impl<T> Watched<T> {
    /// Loads the files now: an error here is a configuration error.
    pub(crate) fn open(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: fn(&[PathBuf]) -> Result<T, String>,
    ) -> Result<Self, String> {
        let seen = paths.iter().map(|p| stamp(p)).collect();
        let value = load(&paths)?;
        Ok(Self { what, paths, load, current: ArcSwap::from_pointee(value), seen: Mutex::new(seen) })
    }

    /// The value as last loaded.
    pub(crate) fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Reloads when a file changed since the last look; returns whether the
    /// value changed.
    pub(crate) fn refresh(&self) -> bool {
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        *seen = now;
        match (self.load)(&self.paths) {
            Ok(value) => {
                self.current.store(Arc::new(value));
                tracing::info!(what = self.what, "Reloaded the changed {}.", self.what);
                true
            }
            Err(error) => {
                tracing::warn!(
                    what = self.what,
                    error,
                    "The changed {} does not load; keeping the previous one.",
                    self.what
                );
                false
            }
        }
    }
}

/// Something [`watch_every_second`] refreshes.
pub(crate) trait Refresh: Send + Sync {
    fn refresh(&self) -> bool;
}

impl<T: Send + Sync> Refresh for Watched<T> {
    fn refresh(&self) -> bool {
        Watched::refresh(self)
    }
}

/// Starts the thread that refreshes `watched` every second; none when empty.
pub(crate) fn watch_every_second(watched: Vec<Arc<dyn Refresh>>) -> std::io::Result<()> {
    if watched.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new().name("file-watch".into()).spawn(move || {
        loop {
            std::thread::sleep(POLL);
            for w in &watched {
                w.refresh();
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(paths: &[PathBuf]) -> Result<u32, String> {
        let text = std::fs::read_to_string(&paths[0]).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|e| format!("not a number: {e}"))
    }

    #[test]
    fn a_change_reloads_and_a_bad_change_keeps_the_previous_value() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        assert!(Watched::open("number", vec![dir.path().join("missing")], number).is_err());
        let watched = Watched::open("number", vec![path.clone()], number).expect("loads");
        assert_eq!(*watched.current(), 1);
        assert!(!watched.refresh(), "nothing changed");
        std::fs::write(&path, "22").expect("write");
        assert!(watched.refresh());
        assert_eq!(*watched.current(), 22);
        std::fs::write(&path, "not a number").expect("write");
        assert!(!watched.refresh());
        assert_eq!(*watched.current(), 22, "a bad file keeps the previous value");
        std::fs::write(&path, "333").expect("write");
        assert!(watched.refresh());
        assert_eq!(*watched.current(), 333);
    }
}
