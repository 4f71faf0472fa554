//! minutely's HTTP API over the gold layer (README "HTTP API").
//!
//! - [`state`]: what requests share: the snapshot, the reader, the metrics.
//! - [`snapshot`]: one run's gold, indexed and pinned, and the run history.
//! - [`slice`]: one service's rows on one date, in columns; JSON rendering.
//! - [`reader`]: reading slices and manifests through caches within the budget.
//! - [`load`]: indexing gold and reloading when a newer run commits.
//! - [`runs`]: the run index behind `/runs`.
//! - [`query`]: parameter parsing and validation.
//! - [`handlers`]: what each endpoint answers from a snapshot.
//! - [`routes`]: warp filters, responses, error rendering.
//! - [`telemetry`]: the server's own metrics at `/-/metrics`.
//! - [`openapi`]: the OpenAPI 3 document.
//! - [`dashboard`]: the page at `/`, its assets embedded.

pub mod dashboard;
pub mod error;
pub mod handlers;
pub mod load;
pub mod openapi;
pub mod query;
pub mod reader;
pub mod routes;
pub mod runs;
pub mod slice;
pub mod snapshot;
pub mod state;
pub mod telemetry;

#[cfg(test)]
mod tests;
