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
//! - [`auth`]: bearer tokens from a tokens file.
//! - [`tls`]: HTTPS with a certificate picked up again when renewed.
//! - [`watch`]: re-reading the tokens file and the certificate when they change.

mod auth;
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
mod tls;
mod watch;

// What the `api` binary uses; everything else is internal.
pub use auth::{Access, new_token};
pub use reader::Budget;
pub use routes::routes;
pub use state::{State, reload_every};
pub use tls::{Tls, serve as serve_tls};

/// Starts the thread that re-reads the tokens file and the TLS files when
/// they change (none when there are neither).
pub fn watch_files(access: &Access, tls: Option<&Tls>) -> std::io::Result<()> {
    let mut watched: Vec<std::sync::Arc<dyn watch::Refresh>> = Vec::new();
    if let Some(tokens) = access.watched() {
        watched.push(tokens);
    }
    if let Some(tls) = tls {
        watched.push(tls.watched());
    }
    watch::watch_every_second(watched)
}

#[cfg(test)]
mod tests;
