//! minutely's HTTP API over the gold layer (SPEC §8).
//!
//! - [`snapshot`]: gold in memory, per service, sorted by minute.
//! - [`load`]: loading it from an output location and reloading on new runs.
//! - [`query`]: parameter parsing and validation.
//! - [`routes`]: warp filters, handlers, error rendering.
//! - [`openapi`]: the OpenAPI 3 document.

pub mod error;
pub mod load;
pub mod openapi;
pub mod query;
pub mod routes;
pub mod snapshot;

#[cfg(test)]
mod tests;
