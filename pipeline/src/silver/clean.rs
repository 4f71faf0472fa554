//! Applying the rules to a bronze frame and building the silver frames.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::columns::*;
use super::fingerprint::fingerprint;
use super::reason::{Reason, Reasons};
use super::timestamp::{TimestampError, TimestampParser, event_date};
use super::value::{self, Optional, normalize};
use crate::bronze;
use crate::error::{Error, Result};

/// The configured part of the rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    pub(crate) timestamps: TimestampParser,
}

/// The outcome of rules 1–4 for one bronze row.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowOutcome {
    pub(crate) reasons: Reasons,
    /// Event time in µs; meaningful only when `reasons` is empty.
    pub(crate) event_time: i64,
    /// Fingerprint of the normalized event id; meaningful only when `reasons` is empty.
    pub(crate) id_hash: u128,
    /// A clean row rule 5 decides after the last batch (see [`super::Dedupe`]):
    /// neither an event nor a reject yet.
    pub(crate) deferred: bool,
}

impl RowOutcome {
    pub(crate) fn event_date(&self) -> i32 {
        event_date(self.event_time)
    }
}

/// A bronze frame with the outcome of rules 1–4 for each of its rows.
pub(crate) struct Evaluated {
    bronze: DataFrame,
    rows: Vec<RowOutcome>,
}

impl Evaluated {
    pub(super) fn rows(&self) -> &[RowOutcome] {
        &self.rows
    }

    pub(super) fn rows_mut(&mut self) -> &mut [RowOutcome] {
        &mut self.rows
    }

    /// Event dates of rows that passed rules 1–4.
    pub(super) fn candidate_dates(&self) -> impl Iterator<Item = i32> + '_ {
        self.rows.iter().filter(|r| r.reasons.is_empty()).map(RowOutcome::event_date)
    }

    pub(crate) fn bronze(&self) -> &DataFrame {
        &self.bronze
    }

    /// The bronze rows of deferred rows, if any: evaluated again when
    /// rule 5 decides them.
    pub(crate) fn deferred_bronze(&self) -> Result<Option<DataFrame>> {
        let idx: Vec<IdxSize> = (0..self.rows.len() as IdxSize).filter(|&i| self.rows[i as usize].deferred).collect();
        if idx.is_empty() {
            return Ok(None);
        }
        let rows = self.bronze.take(&IdxCa::from_vec("".into(), idx)).map_err(Error::polars("taking deferred rows"))?;
        // Taken text still points into the whole batch's buffers: copy it
        // out, or holding a few rows would hold every batch they came from.
        let columns = rows
            .columns()
            .iter()
            .map(|c| match c.str() {
                Ok(text) => text.iter().collect::<StringChunked>().with_name(c.name().clone()).into_column(),
                Err(_) => c.clone(),
            })
            .collect();
        DataFrame::new(rows.height(), columns).map(Some).map_err(Error::polars("copying deferred rows"))
    }
}

/// Per-run counts of optional fields that became null (rule 7), over clean events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub latency_invalid: u64,
    pub latency_missing: u64,
    pub status_invalid: u64,
    pub status_missing: u64,
}

impl Counters {
    pub(crate) fn add(&mut self, other: &Counters) {
        self.latency_invalid += other.latency_invalid;
        self.latency_missing += other.latency_missing;
        self.status_invalid += other.status_invalid;
        self.status_missing += other.status_missing;
    }

    /// Takes back counts of events that turned out not to be clean (duplicates found later).
    pub(crate) fn subtract(&mut self, other: &Counters) {
        self.latency_invalid -= other.latency_invalid;
        self.latency_missing -= other.latency_missing;
        self.status_invalid -= other.status_invalid;
        self.status_missing -= other.status_missing;
    }
}

/// Silver output of one bronze frame.
pub(crate) struct Cleaned {
    /// Clean events per event date (days since 1970-01-01), in processing
    /// order, with [`CANDIDATE_COLUMNS`] after the [`events_schema`] columns.
    pub(crate) events: Vec<(i32, DataFrame)>,
    /// Rejected bronze rows with `reject_reason` and `reject_reasons`.
    pub(crate) rejects: DataFrame,
    /// Rejected rows counted by their first reason, indexed like [`Reason::ALL`].
    pub(crate) reject_counts: [u64; Reason::ALL.len()],
    pub(crate) counters: Counters,
}

/// Rules 1–4 for every row of `bronze`.
pub(crate) fn evaluate(bronze: DataFrame, rules: &Rules) -> Result<Evaluated> {
    let text = |name: &str| -> Result<&StringChunked> {
        bronze.column(name).and_then(|c| c.str()).map_err(Error::polars("reading bronze columns"))
    };
    let (ids, services, types, times, raws) =
        (text(EVENT_ID)?, text(SERVICE)?, text(EVENT_TYPE)?, text("timestamp")?, text(bronze::RAW)?);
    let rows = ids
        .iter()
        .zip(services.iter())
        .zip(types.iter())
        .zip(times.iter())
        .zip(raws.iter())
        .map(|((((id, service), event_type), time), raw)| {
            let mut outcome = RowOutcome { reasons: Reasons::default(), event_time: 0, id_hash: 0, deferred: false };
            if raw.is_some() {
                outcome.reasons.insert(Reason::MalformedRow);
                return outcome;
            }
            let id = normalize(id);
            for (value, reason) in [
                (id, Reason::MissingEventId),
                (normalize(service), Reason::MissingService),
                (normalize(event_type), Reason::MissingEventType),
            ] {
                if value.is_none() {
                    outcome.reasons.insert(reason);
                }
            }
            match normalize(time).map(|t| rules.timestamps.parse(t)) {
                None => outcome.reasons.insert(Reason::MissingTimestamp),
                Some(Err(TimestampError::Invalid)) => outcome.reasons.insert(Reason::InvalidTimestamp),
                Some(Err(TimestampError::OutOfRange)) => outcome.reasons.insert(Reason::TimestampOutOfRange),
                Some(Ok(micros)) => outcome.event_time = micros,
            }
            if let Some(id) = id.filter(|_| outcome.reasons.is_empty()) {
                outcome.id_hash = fingerprint(id);
            }
            outcome
        })
        .collect();
    Ok(Evaluated { bronze, rows })
}

/// Columns [`split`] adds after the clean event columns, for duplicate
/// checks done after the split (the spark engine): how each optional field
/// became its value, so the counters can leave duplicates out.
pub(crate) const CANDIDATE_COLUMNS: [&str; 2] = [LATENCY_STATE, STATUS_STATE];
pub(crate) const STATE_VALID: i8 = 0;
pub(crate) const STATE_MISSING: i8 = 1;
pub(crate) const STATE_INVALID: i8 = 2;

/// The clean events schema (without the `event_date` partition column):
/// what the tests hold frames to, and the events table's columns.
pub(crate) fn events_schema() -> Schema {
    [
        (EVENT_ID, DataType::String),
        (SERVICE, DataType::String),
        (EVENT_TYPE, DataType::String),
        (EVENT_TIME, bronze::timestamp_type()),
        (LATENCY_MS, DataType::Float64),
        (STATUS_CODE, DataType::Int32),
        (USER_ID, DataType::String),
        (bronze::SOURCE_FILE, DataType::String),
        (bronze::SOURCE_LINE, DataType::Int64),
        (bronze::RUN_ID, DataType::String),
    ]
    .into_iter()
    .map(|(name, dtype)| Field::new(name.into(), dtype))
    .collect()
}

/// The rejects schema (without the `ingest_date` partition column): bronze's
/// columns, then the first reason and all of them.
pub(crate) fn rejects_schema() -> Schema {
    let mut schema = bronze::schema();
    schema.with_column(REJECT_REASON.into(), DataType::String);
    schema.with_column(REJECT_REASONS.into(), DataType::List(Box::new(DataType::String)));
    schema
}

/// Builds the clean events (rules 6–7) and rejects frames. Deferred rows
/// are in neither, and not counted.
pub(crate) fn split(evaluated: Evaluated) -> Result<Cleaned> {
    let Evaluated { bronze, rows } = evaluated;
    let err = Error::polars;
    let text = |name: &str| -> Result<&StringChunked> {
        bronze.column(name).and_then(|c| c.str()).map_err(err("splitting silver"))
    };

    let is_kept = |row: &RowOutcome| row.reasons.is_empty() && !row.deferred;
    let kept: Vec<IdxSize> = (0..rows.len() as IdxSize).filter(|&i| is_kept(&rows[i as usize])).collect();
    let rejected: Vec<IdxSize> = (0..rows.len() as IdxSize).filter(|&i| !rows[i as usize].reasons.is_empty()).collect();

    let mut reject_counts = [0u64; Reason::ALL.len()];
    let mut reason_builder = StringChunkedBuilder::new(REJECT_REASON.into(), rejected.len());
    let mut reasons_builder = ListStringChunkedBuilder::new(REJECT_REASONS.into(), rejected.len(), rejected.len());
    for &i in &rejected {
        let reasons = rows[i as usize].reasons;
        let first = reasons.first().unwrap_or(Reason::MalformedRow);
        reject_counts[first as usize] += 1;
        reason_builder.append_value(first.code());
        reasons_builder.append_values_iter(reasons.iter().map(Reason::code));
    }
    let mut rejects = bronze.take(&IdxCa::from_vec("".into(), rejected)).map_err(err("taking rejected rows"))?;
    rejects
        .hstack_mut(&[reason_builder.finish().into_column(), reasons_builder.finish().into_column()])
        .map_err(err("adding reject reasons"))?;

    // Clean events: normalized strings, lowercased service and event type.
    let n = kept.len();
    let mut counters = Counters::default();
    let mut event_id = StringChunkedBuilder::new(EVENT_ID.into(), n);
    let mut service = StringChunkedBuilder::new(SERVICE.into(), n);
    let mut event_type = StringChunkedBuilder::new(EVENT_TYPE.into(), n);
    let mut user_id = StringChunkedBuilder::new(USER_ID.into(), n);
    let mut times = Vec::with_capacity(n);
    let mut dates = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut latency_states = Vec::with_capacity(n);
    let mut status_states = Vec::with_capacity(n);
    // Normalizing again (evaluate did it for the required fields) is cheaper
    // than keeping borrowed values of every row between the two passes.
    let (ids, services, types) = (text(EVENT_ID)?, text(SERVICE)?, text(EVENT_TYPE)?);
    let (latency_col, status_col, users) = (text(LATENCY_MS)?, text(STATUS_CODE)?, text(USER_ID)?);
    for (i, ((((id, svc), ty), (lat, status)), user)) in ids
        .iter()
        .zip(services.iter())
        .zip(types.iter())
        .zip(latency_col.iter().zip(status_col.iter()))
        .zip(users.iter())
        .enumerate()
    {
        let row = rows[i];
        if !is_kept(&row) {
            continue;
        }
        event_id.append_option(normalize(id));
        service.append_option(normalize(svc).map(lowercase));
        event_type.append_option(normalize(ty).map(lowercase));
        user_id.append_option(normalize(user));
        times.push(row.event_time);
        dates.push(row.event_date());
        let latency = value::latency(normalize(lat));
        latency_states.push(state(&latency));
        latencies.push(counted(latency, &mut counters.latency_missing, &mut counters.latency_invalid));
        let status = value::status(normalize(status));
        status_states.push(state(&status));
        statuses.push(counted(status, &mut counters.status_missing, &mut counters.status_invalid));
    }
    let lineage = bronze
        .select([bronze::SOURCE_FILE, bronze::SOURCE_LINE, bronze::RUN_ID])
        .and_then(|df| df.take(&IdxCa::from_vec("".into(), kept)))
        .map_err(err("taking clean rows"))?;
    let mut columns = vec![
        event_id.finish().into_column(),
        service.finish().into_column(),
        event_type.finish().into_column(),
        Int64Chunked::from_vec(EVENT_TIME.into(), times)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column(),
        Float64Chunked::from_iter_options(LATENCY_MS.into(), latencies.into_iter()).into_column(),
        Int32Chunked::from_iter_options(STATUS_CODE.into(), statuses.into_iter()).into_column(),
        user_id.finish().into_column(),
    ];
    columns.extend(lineage.into_columns());
    columns.push(Int8Chunked::from_vec(LATENCY_STATE.into(), latency_states).into_column());
    columns.push(Int8Chunked::from_vec(STATUS_STATE.into(), status_states).into_column());
    let events = DataFrame::new(n, columns).map_err(err("building clean events"))?;
    Ok(Cleaned { events: partition_by_date(events, &dates)?, rejects, reject_counts, counters })
}

/// How an optional field became its value: [`STATE_VALID`], [`STATE_MISSING`] or [`STATE_INVALID`].
fn state<T>(field: &Optional<T>) -> i8 {
    match field {
        Optional::Valid(_) => STATE_VALID,
        Optional::Missing => STATE_MISSING,
        Optional::Invalid => STATE_INVALID,
    }
}

/// The value of an optional field, counting it when missing or invalid.
fn counted<T>(field: Optional<T>, missing: &mut u64, invalid: &mut u64) -> Option<T> {
    match field {
        Optional::Missing => *missing += 1,
        Optional::Invalid => *invalid += 1,
        Optional::Valid(_) => {}
    }
    field.value()
}

/// Splits `events` by the parallel `dates`, keeping row order within each date.
fn partition_by_date(events: DataFrame, dates: &[i32]) -> Result<Vec<(i32, DataFrame)>> {
    let mut by_date: std::collections::BTreeMap<i32, Vec<IdxSize>> = Default::default();
    for (i, d) in dates.iter().enumerate() {
        by_date.entry(*d).or_default().push(i as IdxSize);
    }
    if by_date.len() == 1 {
        return Ok(by_date.into_keys().map(|d| (d, events.clone())).collect());
    }
    by_date
        .into_iter()
        .map(|(date, idx)| {
            let part = events.take(&IdxCa::from_vec("".into(), idx)).map_err(Error::polars("partitioning events"))?;
            Ok((date, part))
        })
        .collect()
}

/// Lowercases, without allocating when there is nothing to change.
fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) { s.to_lowercase().into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bronze::{BronzeBuilder, Lineage};
    use crate::input::RecordSink;
    use crate::silver::Dedupe;

    type Row<'a> = [Option<&'a str>; 7];

    const VALID: Row =
        [Some("e1"), Some("API"), Some("Request"), Some("2026-01-12T10:15:00Z"), Some("12.5"), Some("200"), Some("U1")];

    fn bronze(rows: &[Row], malformed: &[&str]) -> DataFrame {
        let mut b = BronzeBuilder::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            b.record(i as i64 + 2, *r, None);
        }
        for m in malformed {
            b.malformed(99, m, None);
        }
        b.finish(Lineage { source_file: "f.csv", ingested_at_micros: 0, run_id: "r" }).expect("bronze")
    }

    fn clean(rows: &[Row]) -> Cleaned {
        let mut ev = evaluate(bronze(rows, &[]), &Rules::default()).expect("evaluate");
        Dedupe::default().apply(std::slice::from_mut(&mut ev));
        split(ev).expect("split")
    }

    fn reasons(c: &Cleaned) -> Vec<Vec<String>> {
        let col = c.rejects.column(REJECT_REASONS).unwrap().list().unwrap().clone();
        (0..col.len())
            .map(|i| {
                let row = col.get_as_series(i).unwrap();
                row.str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
            })
            .collect()
    }

    fn with(mut row: Row<'static>, i: usize, v: Option<&'static str>) -> Row<'static> {
        row[i] = v;
        row
    }

    #[test]
    fn candidate_columns_say_how_each_optional_field_became_its_value() {
        let c = clean(&[with(with(VALID, 4, Some("fast")), 5, None)]);
        let ev = &c.events[0].1;
        assert_eq!(ev.column(LATENCY_STATE).unwrap().i8().unwrap().get(0), Some(STATE_INVALID));
        assert_eq!(ev.column(STATUS_STATE).unwrap().i8().unwrap().get(0), Some(STATE_MISSING));
        assert_eq!((c.counters.latency_invalid, c.counters.status_missing), (1, 1));
    }

    #[test]
    fn valid_row_becomes_a_normalized_clean_event() {
        let c = clean(&[VALID]);
        assert_eq!(c.rejects.height(), 0);
        let (date, ev) = &c.events[0];
        assert_eq!(crate::silver::timestamp::format_date(*date), "2026-01-12");
        assert_eq!(ev.drop_many(CANDIDATE_COLUMNS).schema().as_ref(), &events_schema());
        assert_eq!(ev.column(LATENCY_STATE).unwrap().i8().unwrap().get(0), Some(STATE_VALID));
        assert_eq!(ev.column(SERVICE).unwrap().str().unwrap().get(0), Some("api"));
        assert_eq!(ev.column(EVENT_TYPE).unwrap().str().unwrap().get(0), Some("request"));
        assert_eq!(ev.column(USER_ID).unwrap().str().unwrap().get(0), Some("U1"), "user_id keeps its case");
        assert_eq!(ev.column(LATENCY_MS).unwrap().f64().unwrap().get(0), Some(12.5));
        assert_eq!(ev.column(STATUS_CODE).unwrap().i32().unwrap().get(0), Some(200));
    }

    #[test]
    fn malformed_row_has_only_its_reason() {
        let mut ev = evaluate(bronze(&[], &["a,b"]), &Rules::default()).expect("evaluate");
        Dedupe::default().apply(std::slice::from_mut(&mut ev));
        let c = split(ev).expect("split");
        assert_eq!(reasons(&c), [["malformed_row"]]);
        assert_eq!(c.rejects.column(REJECT_REASON).unwrap().str().unwrap().get(0), Some("malformed_row"));
    }

    #[test]
    fn each_missing_required_field_has_its_reason() {
        for (i, code) in
            [(0, "missing_event_id"), (1, "missing_service"), (2, "missing_event_type"), (3, "missing_timestamp")]
        {
            let c = clean(&[with(VALID, i, Some(" N/A "))]);
            assert_eq!(reasons(&c), [[code]], "field {i}");
        }
    }

    #[test]
    fn invalid_and_out_of_range_timestamps_are_rejected() {
        assert_eq!(reasons(&clean(&[with(VALID, 3, Some("yesterday"))])), [["invalid_timestamp"]]);
        assert_eq!(reasons(&clean(&[with(VALID, 3, Some("1999-12-31T23:59:59Z"))])), [["timestamp_out_of_range"]]);
    }

    #[test]
    fn all_reasons_are_recorded_in_rule_order() {
        let row = [Some("e1"), None, Some(""), Some("2026-02-30T00:00:00Z"), None, None, None];
        let c = clean(&[with(row, 0, Some("null"))]);
        assert_eq!(reasons(&c), [["missing_event_id", "missing_service", "missing_event_type", "invalid_timestamp"]]);
        assert_eq!(c.rejects.column(REJECT_REASON).unwrap().str().unwrap().get(0), Some("missing_event_id"));
    }

    #[test]
    fn duplicate_id_on_same_date_is_rejected_but_not_on_another_date() {
        let other_day = with(VALID, 3, Some("2026-01-13T10:15:00Z"));
        let same_day_later = with(VALID, 3, Some("2026-01-12T23:00:00Z"));
        let c = clean(&[VALID, other_day, same_day_later, with(VALID, 0, Some(" e1 "))]);
        assert_eq!(reasons(&c), [["duplicate_event_id"], ["duplicate_event_id"]]);
        let lines = c.rejects.column(bronze::SOURCE_LINE).unwrap().i64().unwrap().clone();
        assert_eq!(lines.into_no_null_iter().collect::<Vec<_>>(), [4, 5], "first occurrence wins");
        assert_eq!(c.events.len(), 2);
    }

    #[test]
    fn optional_fields_never_reject_and_are_counted() {
        let rows = [
            with(with(VALID, 4, Some("12ms")), 5, Some("abc")),
            with(with(with(VALID, 0, Some("e2")), 4, None), 5, Some("-")),
            with(with(with(VALID, 0, Some("e3")), 4, Some("-3")), 5, Some("200.0")),
        ];
        let c = clean(&rows);
        assert_eq!(c.rejects.height(), 0);
        assert_eq!(
            c.counters,
            Counters { latency_invalid: 2, latency_missing: 1, status_invalid: 1, status_missing: 1 }
        );
        let statuses = c.events[0].1.column(STATUS_CODE).unwrap().i32().unwrap().clone();
        assert_eq!(statuses.iter().collect::<Vec<_>>(), [None, None, Some(200)]);
    }

    #[test]
    fn earlier_runs_ids_win_through_preload_probed_then_full() {
        use crate::silver::Load;
        let committed = [fingerprint("e1"), fingerprint("e2")];
        let mut dedupe = Dedupe::default();

        // First batch: e1 (committed before) and e3 (new). Only its own ids are probed.
        let first = [VALID, with(VALID, 0, Some("e3"))];
        let mut batch = [evaluate(bronze(&first, &[]), &Rules::default()).expect("evaluate")];
        let loads = dedupe.dates_to_load(&batch);
        let (&date, &load) = loads.iter().next().expect("one date");
        assert_eq!((loads.len(), load), (1, Load::Probe));
        let probe = Dedupe::candidate_ids(&batch, date);
        assert_eq!(probe.len(), 2);
        dedupe.preload(date, load, committed.iter().copied().filter(|id| probe.contains(id)));
        dedupe.apply(&mut batch);
        let [first] = batch;
        assert_eq!(reasons(&split(first).unwrap()), [["duplicate_event_id"]], "e1 was committed");

        // A later batch on the same date: e2 was never probed, so the date loads in full.
        let mut batch = [evaluate(bronze(&[with(VALID, 0, Some("e2"))], &[]), &Rules::default()).expect("evaluate")];
        assert_eq!(dedupe.dates_to_load(&batch).into_iter().collect::<Vec<_>>(), [(date, Load::Full)]);
        dedupe.preload(date, Load::Full, committed);
        assert!(dedupe.dates_to_load(&batch).is_empty(), "complete now");
        dedupe.apply(&mut batch);
        let [second] = batch;
        assert_eq!(reasons(&split(second).unwrap()), [["duplicate_event_id"]], "e2 was committed");
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::bronze::{BronzeBuilder, Lineage};
    use crate::input::RecordSink;
    use crate::silver::Dedupe;
    use crate::silver::timestamp::{MAX_MICROS, MIN_MICROS};

    /// A timestamp in range, written in one of the accepted forms.
    fn timestamp() -> impl Strategy<Value = String> {
        (MIN_MICROS..MAX_MICROS, 0usize..8).prop_map(|(micros, form)| {
            let t = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
            let seconds = micros.div_euclid(1_000_000);
            match form {
                0 => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                1 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
                2 => t.format("%Y-%m-%dt%H:%M:%S%.9fz").to_string(),
                3 => t
                    .with_timezone(&chrono::FixedOffset::west_opt(3 * 3600 + 1800).expect("valid"))
                    .format("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string(),
                4 => seconds.to_string(),
                5 => (micros.div_euclid(1000)).to_string(),
                6 => micros.to_string(),
                _ => format!("{seconds}.{:06}", micros.rem_euclid(1_000_000)),
            }
        })
    }

    fn valid_row() -> impl Strategy<Value = [Option<String>; 7]> {
        (
            "[A-Za-z0-9-]{1,12}",
            "[ ]?[A-Za-z][a-z_]{0,10}",
            "[a-z]{1,8}",
            timestamp(),
            proptest::option::of("[0-9]{1,4}(\\.[0-9]{1,3})?|[a-z]+"),
            proptest::option::of("[1-5][0-9][0-9]|x"),
            proptest::option::of("[a-zA-Z0-9 ,\"]{0,10}"),
        )
            .prop_filter("not a null token", |(id, service, ty, ..)| {
                ![id.as_str(), service.trim(), ty.as_str()]
                    .iter()
                    .any(|v| ["null", "none", "nan", "n/a", "-"].contains(&v.to_ascii_lowercase().as_str()))
            })
            .prop_map(|(id, service, ty, ts, lat, status, user)| {
                [Some(id), Some(service), Some(ty), Some(ts), lat, status, user]
            })
    }

    /// Any row: each field absent, blank, a null token or random text.
    fn any_row() -> impl Strategy<Value = [Option<String>; 7]> {
        let field = || {
            proptest::option::of(prop_oneof![
                "",
                "N/A",
                " x ",
                "e1",
                "2026-01-12T10:00:00Z",
                "1768212900",
                "garbage",
                "\\PC{0,12}"
            ])
        };
        [field(), field(), field(), field(), field(), field(), field()]
    }

    fn clean_rows(rows: &[[Option<String>; 7]], malformed: usize) -> (usize, Cleaned) {
        let mut b = BronzeBuilder::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            b.record(i as i64 + 2, std::array::from_fn(|k| r[k].as_deref()), None);
        }
        for _ in 0..malformed {
            b.malformed(1, "x", None);
        }
        let bronze = b.finish(Lineage { source_file: "p", ingested_at_micros: 0, run_id: "r" }).expect("bronze");
        let height = bronze.height();
        let mut ev = evaluate(bronze, &Rules::default()).expect("evaluate");
        Dedupe::default().apply(std::slice::from_mut(&mut ev));
        (height, split(ev).expect("split"))
    }

    /// Batches of (id, day) rows, lines numbered across batches.
    fn id_batch(batch: usize, rows: &[(u8, u8)]) -> DataFrame {
        let mut b = BronzeBuilder::with_capacity(rows.len());
        for (i, &(id, day)) in rows.iter().enumerate() {
            let (id, ts) = (format!("e{id}"), format!("2026-01-{}T10:00:00Z", 12 + day));
            let row = [Some(id.as_str()), Some("api"), Some("request"), Some(ts.as_str()), None, None, None];
            b.record((batch * 1000 + i) as i64, row, None);
        }
        b.finish(Lineage { source_file: "f", ingested_at_micros: 0, run_id: "r" }).expect("bronze")
    }

    /// Source lines of duplicate rejects, and of events.
    fn outcome(cleaned: &Cleaned, duplicates: &mut Vec<i64>, events: &mut Vec<i64>) {
        let lines = |df: &DataFrame| df.column(bronze::SOURCE_LINE).unwrap().i64().unwrap().clone();
        duplicates.extend(lines(&cleaned.rejects).into_no_null_iter());
        for (_, df) in &cleaned.events {
            events.extend(lines(df).into_no_null_iter());
        }
    }

    /// Rule 5 as the engine runs it: committed ids loaded per batch (probed
    /// first, then in full), deferred rows decided after the last batch.
    fn rule_5(dedupe: &mut Dedupe, batches: &[Vec<(u8, u8)>], committed: &[u128]) -> (Vec<i64>, Vec<i64>) {
        let (mut duplicates, mut events) = (Vec::new(), Vec::new());
        let mut spilled: std::collections::HashMap<i32, Vec<u128>> = Default::default();
        let mut deferred = Vec::new();
        for (i, rows) in batches.iter().enumerate() {
            let mut batch = [evaluate(id_batch(i, rows), &Rules::default()).expect("evaluate")];
            for (date, load) in dedupe.dates_to_load(&batch) {
                let probe = Dedupe::candidate_ids(&batch, date);
                let ids =
                    committed.iter().copied().filter(|id| load == crate::silver::Load::Full || probe.contains(id));
                dedupe.preload(date, load, ids.collect::<Vec<_>>());
            }
            dedupe.apply(&mut batch);
            for (date, ids) in dedupe.take_spilled() {
                spilled.entry(date).or_default().extend(ids);
            }
            let [batch] = batch;
            deferred.extend(batch.deferred_bronze().expect("deferred rows"));
            outcome(&split(batch).expect("split"), &mut duplicates, &mut events);
        }
        let (ids, rows) = dedupe.take_deferred();
        assert_eq!(rows as usize, deferred.iter().map(DataFrame::height).sum::<usize>());
        let earlier = ids
            .into_iter()
            .map(|(date, probe)| {
                let before = spilled.get(&date).into_iter().flatten().chain(committed);
                (date, before.copied().filter(|id| probe.contains(id)).collect())
            })
            .collect();
        let mut resolver = crate::silver::Resolver::new(earlier);
        for bronze in deferred {
            let mut evaluated = evaluate(bronze, &Rules::default()).expect("evaluate");
            resolver.apply(&mut evaluated);
            outcome(&split(evaluated).expect("split"), &mut duplicates, &mut events);
        }
        duplicates.sort();
        events.sort();
        (duplicates, events)
    }

    proptest! {
        /// Beyond any budget (the smallest ones saturate the filter, so
        /// most rows are deferred), rule 5 decides every row as exact ids do.
        #[test]
        fn bounded_rule_5_decides_as_exact_ids_do(
            batches in proptest::collection::vec(proptest::collection::vec((0u8..40, 0u8..3), 0..40), 1..6),
            committed in proptest::collection::vec(0u8..60, 0..10),
            budget in prop_oneof![Just(0usize), 1usize..4096],
        ) {
            let committed: Vec<u128> = committed.iter().map(|id| fingerprint(&format!("e{id}"))).collect();
            let want = rule_5(&mut Dedupe::default(), &batches, &committed);
            let mut bounded = Dedupe::with_budget(budget);
            let got = rule_5(&mut bounded, &batches, &committed);
            prop_assert_eq!(got, want);
        }

        /// Rule 5 split into id shards, each on its own thread, decides
        /// as one pass over the rows in order does.
        #[test]
        fn sharded_rule_5_keeps_the_first_row_of_each_id_and_date(
            batches in proptest::collection::vec(proptest::collection::vec((0u8..40, 0u8..3), 0..60), 1..6),
            committed in proptest::collection::vec(0u8..60, 0..10),
        ) {
            let fingerprints: Vec<u128> = committed.iter().map(|id| fingerprint(&format!("e{id}"))).collect();
            let mut seen: std::collections::HashSet<(u8, u8)> = Default::default();
            let mut want = (Vec::new(), Vec::new());
            for (b, rows) in batches.iter().enumerate() {
                for (i, &(id, day)) in rows.iter().enumerate() {
                    let line = (b * 1000 + i) as i64;
                    match committed.contains(&id) || !seen.insert((id, day)) {
                        true => want.0.push(line),
                        false => want.1.push(line),
                    }
                }
            }
            want.0.sort();
            want.1.sort();
            prop_assert_eq!(rule_5(&mut Dedupe::default(), &batches, &fingerprints), want);
        }

        #[test]
        fn rules_never_panic_on_any_text(v in "\\PC{0,40}") {
            let _ = crate::silver::TimestampParser::new(&["%d/%m/%Y %H:%M:%S".into()]).parse(&v);
            let _ = crate::silver::value::latency(Some(&v));
            let _ = crate::silver::value::status(Some(&v));
            let _ = crate::silver::value::normalize(Some(&v));
        }

        #[test]
        fn a_valid_row_is_never_rejected(row in valid_row()) {
            let (_, cleaned) = clean_rows(&[row], 0);
            prop_assert_eq!(cleaned.rejects.height(), 0);
        }

        #[test]
        fn every_row_lands_once_and_gold_counts_every_event(rows in proptest::collection::vec(any_row(), 0..40), malformed in 0usize..3) {
            let (bronze_rows, cleaned) = clean_rows(&rows, malformed);
            let events: usize = cleaned.events.iter().map(|(_, df)| df.height()).sum();
            prop_assert_eq!(events + cleaned.rejects.height(), bronze_rows);
            prop_assert_eq!(cleaned.reject_counts.iter().sum::<u64>() as usize, cleaned.rejects.height());
            for (_, df) in &cleaned.events {
                let gold = crate::gold::aggregate(vec![df.clone()]).expect("aggregate");
                let counts = gold.column("request_count").expect("column").i64().expect("i64").clone();
                prop_assert_eq!(counts.sum().unwrap_or(0) as usize, df.height());
            }
        }
    }
}
