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

pub(crate) use clean::{
    CANDIDATE_COLUMNS, Cleaned, Counters, Evaluated, Rules, STATE_INVALID, STATE_MISSING, evaluate, events_schema,
    rejects_schema, split,
};
pub(crate) use dedupe::{Dedupe, Load, Resolver};
pub(crate) use fingerprint::{FingerprintSet, fingerprint};
pub(crate) use reason::Reason;
pub(crate) use records::{timestamp, value};
pub(crate) use timestamp::TimestampParser;

/// Column names of the clean events table.
pub(crate) mod columns {
    pub(crate) const EVENT_ID: &str = "event_id";
    pub(crate) const SERVICE: &str = "service";
    pub(crate) const EVENT_TYPE: &str = "event_type";
    pub(crate) const EVENT_TIME: &str = "event_time";
    pub(crate) const LATENCY_MS: &str = "latency_ms";
    pub(crate) const STATUS_CODE: &str = "status_code";
    pub(crate) const USER_ID: &str = "user_id";
    pub(crate) const REJECT_REASON: &str = "reject_reason";
    pub(crate) const REJECT_REASONS: &str = "reject_reasons";
    /// Candidate columns (not in silver): how `latency_ms` and `status_code` became their values.
    pub(crate) const LATENCY_STATE: &str = "_latency_state";
    pub(crate) const STATUS_STATE: &str = "_status_state";
}
