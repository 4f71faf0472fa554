//! Errors of reading input.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read as event records at all (not text, a CSV
    /// header over the record limit, bad gzip): skipped and recorded.
    #[error("Input file {path} is unreadable: {message}")]
    UnreadableInput { path: String, message: String },

    /// A sink asked the splitter to stop early; never reported.
    #[error("Input reading stopped early")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
