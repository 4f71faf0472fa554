//! Reject reasons: stable snake_case codes written to the rejects table,
//! declared in rule order (README "Cleaning rules"), and a compact set of them per row.

/// Why a bronze row did not become a clean event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Reason {
    MalformedRow,
    MissingEventId,
    MissingService,
    MissingEventType,
    MissingTimestamp,
    InvalidTimestamp,
    TimestampOutOfRange,
    DuplicateEventId,
}

impl Reason {
    /// Every reason, in rule order.
    pub(crate) const ALL: [Reason; 8] = [
        Reason::MalformedRow,
        Reason::MissingEventId,
        Reason::MissingService,
        Reason::MissingEventType,
        Reason::MissingTimestamp,
        Reason::InvalidTimestamp,
        Reason::TimestampOutOfRange,
        Reason::DuplicateEventId,
    ];

    /// The code stored in `reject_reason` / `reject_reasons`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reason::MalformedRow => "malformed_row",
            Reason::MissingEventId => "missing_event_id",
            Reason::MissingService => "missing_service",
            Reason::MissingEventType => "missing_event_type",
            Reason::MissingTimestamp => "missing_timestamp",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::DuplicateEventId => "duplicate_event_id",
        }
    }
}

/// A set of reasons; iterates in rule order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reasons(u8);

impl Reasons {
    pub(crate) fn insert(&mut self, reason: Reason) {
        self.0 |= 1 << reason as u8;
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn contains(self, reason: Reason) -> bool {
        self.0 & (1 << reason as u8) != 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The first reason in rule order, if any.
    pub(crate) fn first(self) -> Option<Reason> {
        self.iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_iterate_in_rule_order_whatever_the_insert_order() {
        let mut r = Reasons::default();
        r.insert(Reason::InvalidTimestamp);
        r.insert(Reason::MissingEventId);
        r.insert(Reason::MissingService);
        let codes: Vec<_> = r.iter().map(Reason::code).collect();
        assert_eq!(codes, ["missing_event_id", "missing_service", "invalid_timestamp"]);
        assert_eq!(r.first(), Some(Reason::MissingEventId));
    }
}
