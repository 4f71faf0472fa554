//! The per-record half of minutely, with no dataframe dependency: reading
//! raw event files into records ([`input`]) and the rules for single values
//! ([`timestamp`], [`value`]). The `pipeline` crate builds bronze, silver
//! and gold on top; the fuzz targets in `fuzz/` exercise this crate alone.

pub mod error;
pub mod input;
pub mod timestamp;
pub mod value;

pub use error::{Error, Result};
