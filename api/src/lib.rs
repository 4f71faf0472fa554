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

mod dashboard;
mod error;
mod handlers;
mod load;
mod openapi;
mod query;
mod reader;
mod routes;
mod runs;
mod slice;
mod snapshot;
mod state;
mod telemetry;

// What the `api` binary uses; everything else is internal.
pub use reader::Budget;
pub use routes::routes;
pub use state::{State, reload_every};

#[cfg(test)]
mod tests;
