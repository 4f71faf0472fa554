//! Everything a request needs, shared by the routes and the reloader: the
//! current snapshot, the cached reader of the output, the server's metrics,
//! who may read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use pipeline::storage::Storage;

use crate::auth::Access;
use crate::load::Reloader;
use crate::reader::{Budget, Reader};
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;

/// Requests reading layer files at once; more wait. Bounds the memory that
/// decoding in flight takes.
pub(crate) const COLD_READS: usize = 2;

pub struct State {
    /// Swapped whole by a reload; a request keeps the one it started with.
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) reader: Reader,
    pub(crate) telemetry: Telemetry,
    pub(crate) budget: Budget,
    /// Permits for requests that read layer files ([`COLD_READS`]).
    pub(crate) cold_reads: tokio::sync::Semaphore,
    /// Open, or the tokens that may read.
    pub(crate) access: Access,
    reloader: Mutex<Reloader>,
}

/// The state as the routes hold it.
pub type Shared = Arc<State>;

impl State {
    /// A server over `output` with nothing loaded yet; call [`State::reload`].
    pub fn new(output: Storage, budget: Budget, access: Access) -> Shared {
        let telemetry = Telemetry::new(budget.total_bytes);
        let reader = Reader::new(output.clone(), &budget, telemetry.cache_hits.clone(), telemetry.cache_misses.clone());
        Arc::new(State {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            reader,
            telemetry,
            budget,
            cold_reads: tokio::sync::Semaphore::new(COLD_READS),
            access,
            reloader: Mutex::new(Reloader::new(output)),
        })
    }

    /// Polls the output for new runs (one poll at a time); returns whether
    /// the snapshot changed.
    pub(crate) fn reload(&self) -> pipeline::Result<bool> {
        let mut reloader = self.reloader.lock().unwrap_or_else(PoisonError::into_inner);
        self.telemetry.reloads.inc();
        let result = reloader.poll(&self.snapshot, &self.reader, &self.budget);
        if result.is_err() {
            self.telemetry.reload_failures.inc();
        }
        result
    }
}

/// Loads `state` now, then polls every `interval` on the current thread.
pub fn reload_every(state: Shared, interval: Duration) {
    loop {
        if let Err(e) = state.reload() {
            tracing::warn!(error = %e.chain(), "Reload failed; serving the previous snapshot.");
        }
        std::thread::sleep(interval);
    }
}
