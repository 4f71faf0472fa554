//! Loading gold from an output location and reloading it when a newer
//! committed run appears. Reads are lock-free: the snapshot is an `Arc`
//! swapped atomically; requests in flight keep the one they started with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pipeline::layout::GOLD;
use pipeline::runs::{Manifest, RUNS_DIR};
use pipeline::storage::Storage;
use tracing::{info, warn};

use crate::snapshot::{Gold, Snapshot};

/// The shared, swappable snapshot.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// Keeps what has been read of `_runs/` between polls.
pub struct Reloader {
    output: Storage,
    shared: Shared,
    manifests: BTreeMap<String, Manifest>,
}

impl Reloader {
    pub fn new(output: Storage, shared: Shared) -> Self {
        Self { output, shared, manifests: BTreeMap::new() }
    }

    /// Reads new manifests; loads gold when the newest committed run
    /// differs from the snapshot's. A failed load keeps the old snapshot.
    pub fn poll(&mut self) -> pipeline::Result<bool> {
        let mut changed = false;
        for entry in self.output.list(RUNS_DIR)? {
            let Some(name) = entry.relative.strip_prefix(&format!("{RUNS_DIR}/")).and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if !self.manifests.contains_key(name) {
                let manifest = Manifest::from_json(&self.output.get(&entry.relative)?, &entry.relative)?;
                self.manifests.insert(name.to_string(), manifest);
                changed = true;
            }
        }
        let current = self.shared.load_full();
        let newest = self.manifests.values().rev().find(|m| m.status.committed()).map(|m| m.run_id.clone());
        let gold = match newest {
            Some(run_id) if current.gold.as_ref().is_none_or(|g| g.run_id != run_id) => {
                let gold = self.load_gold(run_id.clone())?;
                info!(run_id, rows = gold.rows, services = gold.services.len(), "Loaded gold snapshot.");
                changed = true;
                Some(Arc::new(gold))
            }
            _ => current.gold.clone(),
        };
        if changed {
            let runs: Vec<Manifest> = self.manifests.values().rev().cloned().collect();
            self.shared.store(Arc::new(Snapshot { gold, runs: Arc::new(runs) }));
        }
        Ok(changed)
    }

    fn load_gold(&self, run_id: String) -> pipeline::Result<Gold> {
        let frames = self
            .output
            .list(GOLD)?
            .into_iter()
            .filter(|e| e.relative.ends_with(".parquet"))
            .map(|e| self.output.get_parquet(&e.relative, None))
            .collect::<pipeline::Result<Vec<_>>>()?;
        Gold::from_frames(run_id, frames).map_err(pipeline::Error::polars("building the gold snapshot"))
    }

    /// Polls forever on the current thread.
    pub fn run(mut self, interval: Duration) {
        loop {
            if let Err(e) = self.poll() {
                warn!(error = %e.chain(), "Reload failed; serving the previous snapshot.");
            }
            std::thread::sleep(interval);
        }
    }
}
