//! minutely's pipeline: raw event files → bronze → silver → gold.
//!
//! - [`input`] (from the polars-free `records` crate) reads CSV and NDJSON
//!   files into records.
//! - [`bronze`] lands every record as read, with lineage.
//! - [`silver`] applies the cleaning rules: clean events and explained rejects.
//! - [`gold`] aggregates clean events per service and minute.
//! - [`runs`] orchestrates a run: incremental input, lock, staging, manifest.
//! - [`tables`] commits each run to the layers' Delta Lake logs.
//! - [`storage`] is the object_store edge, [`parquet`] the layer files'
//!   encoding; [`config`] the layered settings; [`pool`] the threads;
//!   [`frames`] stacks frames without copying rows.

// Used by the binary, the api crate and the end-to-end tests.
pub mod cli;
pub mod config;
pub mod layout;
pub mod runs;
pub mod storage;
pub use error::{Error, Result};

// Internal.
mod bronze;
mod error;
mod frames;
mod generate;
mod gold;
mod inspect;
mod parquet;
mod pool;
mod silver;
mod tables;
use records::input;
