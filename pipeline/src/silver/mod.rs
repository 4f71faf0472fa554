//! Silver: the cleaning rules of README "Cleaning rules", turning bronze rows into clean
//! events (partitioned by UTC event date) and explained rejects.
//!
//! [`evaluate`] applies rules 1–4 per row and can run on many files in
//! parallel; [`Dedupe::apply`] applies rule 5 in processing order;
//! [`split`] builds the clean and reject frames with rules 6–7.

mod clean;
mod dedupe;
mod fingerprint;
mod reason;

pub use clean::{
    CANDIDATE_COLUMNS, Cleaned, Counters, Evaluated, Rules, STATE_INVALID, STATE_MISSING, evaluate, events_schema,
    split,
};
pub use dedupe::{Dedupe, Load, Resolver};
pub use fingerprint::{FingerprintSet, fingerprint};
pub use reason::{Reason, Reasons};
pub use records::{timestamp, value};
pub use timestamp::{TimestampError, TimestampParser};

/// Column names of the clean events table.
pub mod columns {
    pub const EVENT_ID: &str = "event_id";
    pub const SERVICE: &str = "service";
    pub const EVENT_TYPE: &str = "event_type";
    pub const EVENT_TIME: &str = "event_time";
    pub const LATENCY_MS: &str = "latency_ms";
    pub const STATUS_CODE: &str = "status_code";
    pub const USER_ID: &str = "user_id";
    pub const REJECT_REASON: &str = "reject_reason";
    pub const REJECT_REASONS: &str = "reject_reasons";
    /// Candidate columns (not in silver): how `latency_ms` and `status_code` became their values.
    pub const LATENCY_STATE: &str = "_latency_state";
    pub const STATUS_STATE: &str = "_status_state";
}
