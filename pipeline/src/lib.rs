//! minutely's pipeline: raw event files → bronze → silver → gold.
//!
//! - [`input`] (from the polars-free `records` crate) reads CSV and NDJSON
//!   files into records.
//! - [`bronze`] lands every record as read, with lineage.
//! - [`silver`] applies the cleaning rules: clean events and explained rejects.
//! - [`gold`] aggregates clean events per service and minute.
//! - [`runs`] orchestrates a run: incremental input, lock, staging, manifest.
//! - [`storage`] is the object_store edge, [`parquet`] the layer files'
//!   encoding; [`config`] the layered settings; [`pool`] the threads;
//!   [`frames`] stacks frames without copying rows.

pub mod bronze;
pub mod cli;
pub mod config;
pub mod error;
pub mod frames;
pub mod generate;
pub mod gold;
pub mod inspect;
pub mod layout;
pub mod parquet;
pub mod pool;
pub mod runs;
pub mod silver;
pub mod storage;

pub use error::{Error, Result};
pub use records::input;
