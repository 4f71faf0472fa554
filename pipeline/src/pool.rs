//! The one pool of worker threads a run computes on: polars' own.
//!
//! polars runs its operations on its own rayon pool (a thread a core), not
//! on rayon's global one. Parallel work started on any other thread (a
//! `par_iter` on the run's main or writer thread) would run on rayon's
//! global pool instead, and each polars call in it would hand its work
//! across to polars' pool: two pools of a thread a core each, taking the
//! cores from each other, which cost time and peak memory in alternated
//! runs on 2 cores. So the run's parallel
//! stages are started with [`install`]: everything in them, their own
//! tasks and polars', shares one pool.

/// Runs `op` on polars' pool (and waits for it): parallel work started in
/// `op` is done by that pool's threads.
pub(crate) fn install<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    polars_core::runtime::THREAD_POOL.install(op)
}
