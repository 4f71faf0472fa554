//! The pipeline's error type. A rejected row is data (see `silver::Reason`),
//! never an `Error`: these are the failures that stop a run or a command.

use std::path::PathBuf;

/// Result alias used throughout the pipeline crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Invalid configuration: {0}")]
    Config(String),

    #[error("Failed to read config file {path}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("Failed to parse config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },

    #[error("Invalid location {location:?}: {message}")]
    Location { location: String, message: String },

    #[error("Input file {path} is unreadable: {message}")]
    UnreadableInput { path: String, message: String },

    #[error("Storage operation on {path} failed")]
    Storage {
        path: String,
        #[source]
        source: object_store::Error,
    },

    #[error("Failed to {action} Parquet {path}")]
    Parquet {
        action: &'static str,
        path: String,
        #[source]
        source: polars::error::PolarsError,
    },

    #[error("Polars failed while {context}")]
    Polars {
        context: &'static str,
        #[source]
        source: polars::error::PolarsError,
    },

    #[error("Run manifest {path} is invalid")]
    Manifest {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("Saved state {path} is invalid")]
    State {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "Another run holds the lock on {output}: {holder}. Runs on one output never overlap; \
         try again when it has finished."
    )]
    Locked { output: String, holder: String },

    #[error("Lock object {path} is not a minutely lease; if no run is active on this output, delete it")]
    LeaseRecord {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("Lost the lease on {output} ({reason}); this run stopped before committing")]
    LeaseLost { output: String, reason: String },

    /// Internal: input reading stopped early on purpose (the run stopped
    /// taking pieces, or a file must be checked whole first). Never reported.
    #[error("Input reading stopped early")]
    ReadStopped,

    #[error("Spark engine ({remote}) failed while {context}")]
    Spark {
        remote: String,
        context: &'static str,
        #[source]
        source: Box<spark_connect::SparkError>,
    },

    #[error("Spark engine ({remote}) failed while connecting: cannot reach {address}")]
    SparkUnreachable {
        remote: String,
        address: String,
        #[source]
        source: std::io::Error,
    },

    #[error("Spark engine ({remote}) gave an unexpected result: {message}")]
    SparkResult { remote: String, message: String },

    #[error("Table {table} at version {version}: {reason}")]
    Table { table: String, version: u64, reason: String },

    #[error("Failure injected by a test at {0} (MINUTELY_FAIL_AT)")]
    Injected(String),

    #[error("I/O error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<records::Error> for Error {
    fn from(e: records::Error) -> Self {
        match e {
            records::Error::UnreadableInput { path, message } => Error::UnreadableInput { path, message },
            records::Error::Stopped => Error::ReadStopped,
        }
    }
}

impl Error {
    /// Wraps a polars error with what the pipeline was doing at the time.
    pub fn polars(context: &'static str) -> impl FnOnce(polars::error::PolarsError) -> Error {
        move |source| Error::Polars { context, source }
    }

    /// Wraps an object_store error with the path it concerned.
    pub fn storage(path: impl std::fmt::Display) -> impl FnOnce(object_store::Error) -> Error {
        move |source| Error::Storage { path: path.to_string(), source }
    }

    /// The message with all its sources, `: `-separated.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    /// Whether this is a usage or configuration problem (exit code 2) rather
    /// than a failed run (exit code 1).
    pub(crate) fn is_usage(&self) -> bool {
        matches!(self, Error::Config(_) | Error::ConfigFile { .. } | Error::ConfigParse { .. } | Error::Location { .. })
    }
}
