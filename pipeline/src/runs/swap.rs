//! `--full-refresh` on a local folder: each layer folder is replaced by its
//! staged copy in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`), so
//! a reader of a layer sees all of the old files or all of the new ones,
//! never a mix.
//!
//! Crash safety: before the commit marker, [`prepare`] records the inode of
//! every staged layer folder in the manifest. Publishing swaps a layer only
//! if the live folder is not that inode yet, then deletes the old folder
//! (which the swap left in staging). Run again after a crash at any point,
//! it finishes exactly the layers not yet done.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tracing::info;

use crate::error::{Error, Result};
use crate::layout::{self, REPLACED};

/// Creates every staged folder a full refresh replaces (also those with no new files)
/// and returns their inodes by layer.
pub(crate) fn prepare(root: &Path, run_id: &str) -> Result<BTreeMap<String, u64>> {
    REPLACED
        .iter()
        .map(|layer| {
            let dir = root.join(layout::staged(run_id, layer));
            let io = |source| Error::Io { path: dir.clone(), source };
            std::fs::create_dir_all(&dir).map_err(io)?;
            Ok((layer.to_string(), std::fs::metadata(&dir).map_err(io)?.ino()))
        })
        .collect()
}

/// Puts one staged layer folder in place of the live one; idempotent.
pub(crate) fn swap_layer(root: &Path, run_id: &str, layer: &str, inode: u64) -> Result<()> {
    let (live, staged) = (root.join(layer), root.join(layout::staged(run_id, layer)));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let live_inode = match std::fs::metadata(&live) {
        Ok(meta) => Some(meta.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&live)(e)),
    };
    if live_inode != Some(inode) {
        if !staged.is_dir() {
            return Err(Error::Io {
                path: staged,
                source: std::io::Error::other("the staged layer of a committed full refresh is missing"),
            });
        }
        match live_inode {
            Some(_) => exchange(&staged, &live).map_err(io(&live))?,
            None => {
                if let Some(parent) = live.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::rename(&staged, &live).map_err(io(&live))?;
            }
        }
        info!(layer, "Swapped in the refreshed layer.");
    }
    // What is left at the staged path is the old layer.
    match std::fs::remove_dir_all(&staged) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&staged)(e)),
        _ => Ok(()),
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

/// Without an atomic exchange: move the old layer aside, then the new one
/// in (a reader may briefly find the layer folder missing).
#[cfg(not(target_os = "linux"))]
fn exchange(staged: &Path, live: &Path) -> std::io::Result<()> {
    let aside = staged.with_extension("old");
    std::fs::rename(live, &aside)?;
    std::fs::rename(staged, live)?;
    std::fs::rename(&aside, staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_exchanges_layer_folders_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let layer = REPLACED[0];
        std::fs::create_dir_all(root.join(layer)).expect("mkdir");
        std::fs::write(root.join(layer).join("old.parquet"), "old").expect("write");
        let inodes = prepare(root, "r1").expect("prepare");
        assert_eq!(inodes.len(), REPLACED.len());
        std::fs::write(root.join(layout::staged("r1", layer)).join("new.parquet"), "new").expect("write");

        swap_layer(root, "r1", layer, inodes[layer]).expect("swap");
        let names = |p: &Path| {
            let mut n: Vec<String> = std::fs::read_dir(p)
                .expect("dir")
                .flatten()
                .map(|e| e.file_name().into_string().expect("utf-8"))
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&root.join(layer)), ["new.parquet"]);
        assert!(!root.join(layout::staged("r1", layer)).exists(), "old layer deleted");
        swap_layer(root, "r1", layer, inodes[layer]).expect("again: nothing to do");
        assert_eq!(names(&root.join(layer)), ["new.parquet"]);

        // A layer that did not exist yet is moved in.
        let gold = REPLACED[3];
        swap_layer(root, "r1", gold, inodes[gold]).expect("swap");
        assert!(root.join(gold).is_dir());
    }
}
