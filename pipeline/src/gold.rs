//! Gold: `service_minute_metrics`, clean events grouped by service and
//! minute (README "Output layout"), computed with polars expressions.

use std::sync::Mutex;

use polars::prelude::*;
use rayon::prelude::*;

use crate::bronze::timestamp_type;
use crate::error::{Error, Result};
use crate::frames::concat_frames;
use crate::silver::columns::{EVENT_TIME, LATENCY_MS, SERVICE, STATUS_CODE};

pub(crate) const MINUTE: &str = "minute";

/// Columns of silver events that gold reads.
pub(crate) const INPUT_COLUMNS: [&str; 4] = [SERVICE, EVENT_TIME, LATENCY_MS, STATUS_CODE];

/// The gold schema, in column order.
pub(crate) fn schema() -> Schema {
    let f64_metric = |name: &str| (name.to_string(), DataType::Float64);
    [
        (SERVICE.to_string(), DataType::String),
        (MINUTE.to_string(), timestamp_type()),
        ("request_count".to_string(), DataType::Int64),
        ("latency_count".to_string(), DataType::Int64),
        f64_metric("avg_latency_ms"),
        f64_metric("p50_latency_ms"),
        f64_metric("p95_latency_ms"),
        f64_metric("p99_latency_ms"),
        f64_metric("max_latency_ms"),
        ("status_count".to_string(), DataType::Int64),
        ("error_count".to_string(), DataType::Int64),
        f64_metric("error_rate"),
    ]
    .into_iter()
    .map(|(name, dtype)| Field::new(name.into(), dtype))
    .collect()
}

/// Per service and minute metrics of the events in `frames` (each at
/// least [`INPUT_COLUMNS`]), sorted by service, minute.
///
/// polars groups the events by one integer per gold row ([`Rows`]), with
/// only the latency and status beside it: it neither row-encodes a string
/// and a time for every event nor gathers the service strings into one
/// column. The rows' service and minute come back from the integer.
pub(crate) fn aggregate(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let latency = || col(LATENCY_MS);
    // Nulls are dropped first. polars skips them anyway, but a group with
    // a null takes its slow path: each group sorted (on its thread pool,
    // a few hundred values at a time) for each quantile, instead of
    // selected in place. The value is the same order statistic; only the
    // interpolation's fraction, which that path offsets by the null count,
    // may then differ in its last bit.
    let quantile = |q: f64, name: &str| latency().drop_nulls().quantile(lit(q), QuantileMethod::Linear).alias(name);
    let is_error = col(STATUS_CODE).lt(lit(200)).or(col(STATUS_CODE).gt(lit(299)));
    let rows = Rows::spanning(&frames)?;
    let keyed = frames
        .into_par_iter()
        .map(|df| {
            let value = |name| df.column(name).cloned().map_err(Error::polars("keying gold rows"));
            let columns = vec![rows.keys(&df)?, value(LATENCY_MS)?, value(STATUS_CODE)?];
            DataFrame::new(df.height(), columns).map_err(Error::polars("keying gold rows"))
        })
        .collect::<Result<Vec<_>>>()?;
    if keyed.is_empty() {
        return Ok(DataFrame::empty_with_schema(&schema()));
    }
    let mut metrics = concat_frames(keyed)?
        .lazy()
        .group_by([col(GROUP)])
        .agg([
            len().cast(DataType::Int64).alias("request_count"),
            latency().count().cast(DataType::Int64).alias("latency_count"),
            latency().mean().alias("avg_latency_ms"),
            quantile(0.50, "p50_latency_ms"),
            quantile(0.95, "p95_latency_ms"),
            quantile(0.99, "p99_latency_ms"),
            latency().max().alias("max_latency_ms"),
            col(STATUS_CODE).count().cast(DataType::Int64).alias("status_count"),
            is_error.sum().cast(DataType::Int64).alias("error_count"),
        ])
        .with_column(
            when(col("status_count").gt(lit(0)))
                .then(col("error_count").cast(DataType::Float64) / col("status_count").cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("error_rate"),
        )
        .collect()
        .map_err(Error::polars("aggregating gold"))?;
    let keys = metrics.column(GROUP).and_then(|c| c.u64()).map_err(Error::polars("aggregating gold"))?;
    let (services, minutes) = rows.of(keys);
    metrics.with_column(services).and_then(|df| df.with_column(minutes)).map_err(Error::polars("aggregating gold"))?;
    let names: Vec<PlSmallStr> = schema().iter_names().cloned().collect();
    sorted(metrics.select(names).map_err(Error::polars("aggregating gold"))?)
}

/// The column of each event's gold row, as one integer.
const GROUP: &str = "_gold_row";

/// Gold rows (service, minute) numbered as one integer each:
/// `service id × slots + minute slot`. Service id 0 is a null service, and
/// the last slot a null time: polars groups nulls as a value of their own.
struct Rows {
    /// The first minute (minutes since the epoch).
    first: i64,
    /// Minute slots: the minutes from the first to the last, and a null one.
    slots: u64,
    /// Services by id (from 1), as the frames meet them.
    services: Mutex<PlIndexSet<String>>,
}

impl Rows {
    /// Rows for the minutes that `frames`' events span.
    fn spanning(frames: &[DataFrame]) -> Result<Self> {
        let mut span: Option<std::ops::Range<i64>> = None;
        for frame in frames.iter().map(minutes_spanned) {
            if let Some(s) = frame? {
                span = Some(span.map_or(s.clone(), |all| all.start.min(s.start)..all.end.max(s.end)));
            }
        }
        let events = frames.iter().map(DataFrame::height).sum::<usize>() as u64;
        let (first, minutes) = span.map_or((0, 0), |s| (s.start / MINUTE_MICROS, (s.end - s.start) / MINUTE_MICROS));
        let slots = minutes as u64 + 1;
        if (events + 1).checked_mul(slots).is_none() {
            let source = polars_err!(ComputeError: "events span {slots} minutes");
            return Err(Error::Polars { context: "keying gold rows", source });
        }
        Ok(Self { first, slots, services: Mutex::default() })
    }

    /// The row of each event of `df`.
    fn keys<'a>(&self, df: &'a DataFrame) -> Result<Column> {
        let (services, times) = (services(df, SERVICE)?, micros(df, EVENT_TIME)?);
        // The ids this frame met, so the shared set is locked once a service.
        let mut ids: PlHashMap<&'a str, u64> = PlHashMap::new();
        let mut last: Option<(&'a str, u64)> = None;
        let mut service_id = |service: Option<&'a str>| -> u64 {
            let Some(service) = service else { return 0 };
            if let Some((_, id)) = last.filter(|(s, _)| *s == service) {
                return id;
            }
            let id = *ids.entry(service).or_insert_with(|| {
                let mut all = self.services.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                all.insert_full(service.to_string()).0 as u64 + 1
            });
            last = Some((service, id));
            id
        };
        let keys: Vec<u64> = services
            .iter()
            .zip(times.iter())
            .map(|(service, time)| {
                let slot = time.map_or(self.slots - 1, |t| (minute_of(t) / MINUTE_MICROS - self.first) as u64);
                service_id(service) * self.slots + slot
            })
            .collect();
        Ok(Column::new(GROUP.into(), keys))
    }

    /// The service and minute columns of rows `keys`.
    fn of(&self, keys: &UInt64Chunked) -> (Column, Column) {
        let all = self.services.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (services, minutes): (Vec<Option<&str>>, Vec<Option<i64>>) = keys
            .into_no_null_iter()
            .map(|key| {
                let (id, slot) = (key / self.slots, key % self.slots);
                let service = id.checked_sub(1).and_then(|i| all.get_index(i as usize)).map(String::as_str);
                let minute = (slot + 1 < self.slots).then(|| (self.first + slot as i64) * MINUTE_MICROS);
                (service, minute)
            })
            .unzip();
        let minutes =
            Int64Chunked::new(MINUTE.into(), minutes).into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
        (Column::new(SERVICE.into(), services), minutes.into_column())
    }
}

/// The minute (µs since the epoch) an event time falls in: the same floor
/// as `dt().truncate("1m")` in [`aggregate`] (silver times are after 2000).
fn minute_of(micros: i64) -> i64 {
    micros.div_euclid(MINUTE_MICROS) * MINUTE_MICROS
}

const MINUTE_MICROS: i64 = 60_000_000;

/// The minutes (µs since the epoch, first to last, as a range of their
/// starts) that the events of `df` (at least the event time) fall in;
/// `None` when it has no event time.
pub(crate) fn minutes_spanned(df: &DataFrame) -> Result<Option<std::ops::Range<i64>>> {
    let times = micros(df, EVENT_TIME)?;
    Ok(times.min().zip(times.max()).map(|(first, last)| minute_of(first)..minute_of(last) + MINUTE_MICROS))
}

/// Gold rows (service, minute) that some events fall in: the rows that
/// change when those events are added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Touched {
    /// The first minute (µs since the epoch) with a touched row.
    first: i64,
    /// Touched services by minute from `first` on. Looked up once per
    /// event of a date, so indexed, not hashed: one date's rows span
    /// 1,440 minutes. A minute has few touched services, compared as they are.
    services: Vec<Vec<String>>,
}

impl Touched {
    /// The rows that `frames`' events (at least service and event time) fall
    /// in: one date's events (it holds a slot for every minute they span).
    pub(crate) fn of(frames: &[DataFrame]) -> Result<Self> {
        let mut rows = Vec::new();
        for df in frames {
            for (service, time) in services(df, SERVICE)?.iter().zip(micros(df, EVENT_TIME)?.iter()) {
                if let (Some(service), Some(time)) = (service, time) {
                    rows.push((minute_of(time) / MINUTE_MICROS, service));
                }
            }
        }
        let (Some(first), Some(last)) = (rows.iter().map(|r| r.0).min(), rows.iter().map(|r| r.0).max()) else {
            return Ok(Self::default());
        };
        let mut services: Vec<Vec<String>> = vec![Vec::new(); (last - first + 1) as usize];
        for (minute, service) in rows {
            let slot = &mut services[(minute - first) as usize];
            if !slot.iter().any(|s| s == service) {
                slot.push(service.to_string());
            }
        }
        Ok(Self { first: first * MINUTE_MICROS, services })
    }

    pub(crate) fn contains(&self, service: &str, minute: i64) -> bool {
        let slot = usize::try_from((minute - self.first).div_euclid(MINUTE_MICROS)).ok();
        let slot = slot.and_then(|i| self.services.get(i));
        slot.is_some_and(|services| services.iter().any(|s| s == service))
    }

    /// Whether a touched row falls in the minutes from the one of event
    /// time `first` (µs) to the one of `last`.
    pub(crate) fn any_between(&self, first: i64, last: i64) -> bool {
        let slot = |micros: i64| (minute_of(micros) - self.first).div_euclid(MINUTE_MICROS);
        let (from, to) = (slot(first).max(0), slot(last).min(self.services.len() as i64 - 1));
        (from..=to).any(|i| !self.services[i as usize].is_empty())
    }

    /// How many gold rows.
    pub(crate) fn len(&self) -> usize {
        self.services.iter().map(Vec::len).sum()
    }
}

/// The events of `df` whose service and minute (µs since the epoch) `keep`
/// takes, in their order.
pub(crate) fn events_in(df: &DataFrame, keep: impl Fn(&str, i64) -> bool) -> Result<DataFrame> {
    let (services, times) = (services(df, SERVICE)?, micros(df, EVENT_TIME)?);
    // Silver events always have both; this runs once per committed event
    // of a touched date, so it skips the per-row validity checks then.
    let mask: BooleanChunked = if services.null_count() == 0 && times.null_count() == 0 {
        let rows = services.no_null_iter().zip(times.no_null_iter());
        rows.map(|(s, t)| keep(s, minute_of(t))).collect_ca_trusted(PlSmallStr::EMPTY)
    } else {
        let rows = services.iter().zip(times.iter());
        rows.map(|row| matches!(row, (Some(s), Some(t)) if keep(s, minute_of(t)))).collect()
    };
    df.filter(&mask).map_err(Error::polars("selecting events of some minutes"))
}

/// Silver events ordered by their minute, the events of one minute in the
/// order they had (a stable sort; events without a time last). Gold then
/// aggregates each row's events in the same order as before (floating-point
/// sums depend on it), and a file's row groups hold a few minutes each,
/// so a reader that needs some minutes skips the other groups.
pub(crate) fn by_minute(events: DataFrame) -> Result<DataFrame> {
    let minutes: Vec<i64> = micros(&events, EVENT_TIME)?.iter().map(|t| t.map_or(i64::MAX, minute_of)).collect();
    if minutes.is_sorted() {
        return Ok(events);
    }
    let mut order: Vec<IdxSize> = (0..minutes.len() as IdxSize).collect();
    order.sort_by_key(|&i| minutes[i as usize]);
    events.take(&IdxCa::from_vec(PlSmallStr::EMPTY, order)).map_err(Error::polars("ordering events by minute"))
}

/// Gold rows sorted by service, minute.
pub(crate) fn sorted(metrics: DataFrame) -> Result<DataFrame> {
    metrics.sort([SERVICE, MINUTE], SortMultipleOptions::default()).map_err(Error::polars("sorting gold"))
}

/// A gold partition with its `touched` rows replaced by `fresh` ones
/// (aggregated from every clean event of those rows), sorted by service,
/// minute. Other rows' events did not change, so neither did the rows:
/// the result equals aggregating the whole date again.
///
/// Both are sorted by service, minute (unless `previous` is a partition
/// another writer left), so the result is one gather of `previous`' kept
/// rows and `fresh`'s rows in merged order. A scheduled run replaces a
/// few rows of each full date it touches: filtering the partition first,
/// then gathering, would copy every column twice.
pub(crate) fn replace_rows(previous: DataFrame, fresh: DataFrame, touched: &Touched) -> Result<DataFrame> {
    let order = merged_order(&previous, &fresh, touched)?;
    let mut merged = previous;
    merged.vstack_mut_owned(fresh).map_err(Error::polars("merging recomputed gold minutes"))?;
    match order {
        Merged::Sorted(order) => merged.take(&order).map_err(Error::polars("merging recomputed gold minutes")),
        Merged::Unsorted(keep) => {
            let kept = merged.filter(&keep).map_err(Error::polars("keeping untouched gold minutes"))?;
            sorted(kept)
        }
    }
}

/// Which rows of `a` then `b` a partition keeps ([`replace_rows`]).
enum Merged {
    /// `a`'s untouched rows and all of `b`'s, in order (positions in `a`
    /// then `b`): a merge of two sorted lists, cheaper than sorting.
    Sorted(IdxCa),
    /// One bit a row of `a` then `b`, set for the rows kept, when either
    /// is not sorted by service, minute; they are sorted once kept.
    Unsorted(BooleanChunked),
}

/// The rows of `a` (a gold partition) then `b` (recomputed rows) that a
/// partition keeps: `b`'s, and `a`'s that are not `touched`.
fn merged_order(a: &DataFrame, b: &DataFrame, touched: &Touched) -> Result<Merged> {
    let keys = |df| -> Result<Vec<_>> { Ok(services(df, SERVICE)?.iter().zip(micros(df, MINUTE)?.iter()).collect()) };
    let (a, b) = (keys(a)?, keys(b)?);
    let kept = |key: &(Option<&str>, Option<i64>)| !matches!(key, (Some(s), Some(m)) if touched.contains(s, *m));
    if !(a.is_sorted() && b.is_sorted()) {
        let keep = a.iter().map(kept).chain(std::iter::repeat_n(true, b.len()));
        return Ok(Merged::Unsorted(keep.collect()));
    }
    let mut order = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && !kept(&a[i]) {
            i += 1;
        } else if j == b.len() || (i < a.len() && a[i] <= b[j]) {
            order.push(i as IdxSize);
            i += 1;
        } else {
            order.push((a.len() + j) as IdxSize);
            j += 1;
        }
    }
    Ok(Merged::Sorted(IdxCa::from_vec(PlSmallStr::EMPTY, order)))
}

/// A text column.
fn services<'a>(df: &'a DataFrame, name: &str) -> Result<&'a StringChunked> {
    let column = df.column(name).map_err(Error::polars("reading a text column"))?;
    column.str().map_err(Error::polars("reading a text column"))
}

/// The physical µs values of a timestamp column.
fn micros<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Int64Chunked> {
    let column = df.column(name).map_err(Error::polars("reading a timestamp column"))?;
    column.datetime().map(|dt| dt.physical()).map_err(Error::polars("reading a timestamp column"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rows: &[(&str, i64, Option<f64>, Option<i32>)]) -> DataFrame {
        let services: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let latencies: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
        let statuses: Vec<Option<i32>> = rows.iter().map(|r| r.3).collect();
        DataFrame::new(
            rows.len(),
            vec![
                Column::new(SERVICE.into(), services),
                Int64Chunked::from_vec(EVENT_TIME.into(), times)
                    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                    .into_column(),
                Column::new(LATENCY_MS.into(), latencies),
                Column::new(STATUS_CODE.into(), statuses),
            ],
        )
        .expect("valid frame")
    }

    const MIN: i64 = 60_000_000;
    const T0: i64 = 1_768_212_900_000_000; // 2026-01-12T10:15:00Z

    #[test]
    fn metrics_per_service_minute_with_linear_quantiles() {
        let df = aggregate(vec![events(&[
            ("b", T0, Some(1.0), Some(200)),
            ("a", T0 + 59_999_999, Some(4.0), Some(500)),
            ("a", T0, Some(1.0), Some(200)),
            ("a", T0 + 1, Some(2.0), None),
            ("a", T0 + 2, Some(3.0), Some(404)),
            ("a", T0 + MIN, None, None),
        ])])
        .expect("aggregate");
        assert_eq!(df.schema().as_ref(), &schema());
        let services: Vec<_> = df.column(SERVICE).unwrap().str().unwrap().iter().flatten().collect();
        assert_eq!(services, ["a", "a", "b"]);
        let f = |name: &str, row: usize| df.column(name).unwrap().f64().unwrap().get(row);
        let i = |name: &str, row: usize| df.column(name).unwrap().i64().unwrap().get(row);
        assert_eq!(i("request_count", 0), Some(4));
        assert_eq!(i("latency_count", 0), Some(4));
        assert_eq!(f("avg_latency_ms", 0), Some(2.5));
        // numpy.quantile([1,2,3,4], q): 2.5, 3.85, 3.97
        assert_eq!(f("p50_latency_ms", 0), Some(2.5));
        assert!((f("p95_latency_ms", 0).unwrap() - 3.85).abs() < 1e-12);
        assert!((f("p99_latency_ms", 0).unwrap() - 3.97).abs() < 1e-12);
        assert_eq!(f("max_latency_ms", 0), Some(4.0));
        assert_eq!((i("status_count", 0), i("error_count", 0)), (Some(3), Some(2)));
        assert!((f("error_rate", 0).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // Second minute of "a": nothing feeds latency or status.
        assert_eq!(i("request_count", 1), Some(1));
        assert_eq!((f("avg_latency_ms", 1), f("p50_latency_ms", 1), f("max_latency_ms", 1)), (None, None, None));
        assert_eq!((i("status_count", 1), f("error_rate", 1)), (Some(0), None));
        let minutes = df.column(MINUTE).unwrap().datetime().unwrap().physical().clone();
        assert_eq!(minutes.into_no_null_iter().collect::<Vec<_>>(), [T0, T0 + MIN, T0]);
    }

    #[test]
    fn replacing_touched_rows_equals_aggregating_everything() {
        // Earlier events over three minutes and two services; then new events
        // land in minute 2 (existing) and minute 5 (new), for one service.
        let earlier = [
            ("a", T0, Some(1.0), Some(200)),
            ("b", T0 + 5, Some(9.0), Some(503)),
            ("a", T0 + 2 * MIN, Some(2.0), Some(200)),
            ("b", T0 + 2 * MIN + 7, Some(0.3), Some(200)),
            ("a", T0 + 3 * MIN, None, Some(500)),
        ];
        let added = [("a", T0 + 2 * MIN + 59_999_999, Some(7.0), Some(404)), ("a", T0 + 5 * MIN, Some(0.1), None)];
        let everything = aggregate(vec![events(&[earlier.as_slice(), added.as_slice()].concat())]).expect("aggregate");

        let previous = aggregate(vec![events(&earlier)]).expect("aggregate");
        let added = events(&added);
        let touched = Touched::of(std::slice::from_ref(&added)).expect("touched rows");
        assert_eq!(touched.len(), 2);
        assert!(touched.contains("a", T0 + 2 * MIN) && touched.contains("a", T0 + 5 * MIN));
        assert!(!touched.contains("b", T0 + 2 * MIN), "service b got no new events");
        let mut events = events_in(&events(&earlier), |s, m| touched.contains(s, m)).expect("filter");
        assert_eq!(events.height(), 1, "only service a's event of minute 2");
        events.vstack_mut_owned(added).expect("same schema");
        let fresh = aggregate(vec![events]).expect("aggregate");
        assert_eq!(fresh.height(), 2);
        let unsorted = previous.reverse();
        let merged = replace_rows(previous, fresh.clone(), &touched).expect("merge");
        assert!(merged.equals_missing(&everything), "{merged}\n!=\n{everything}");
        // A partition not sorted by service, minute is sorted, not merged.
        let merged = replace_rows(unsorted, fresh, &touched).expect("merge");
        assert!(merged.equals_missing(&everything), "{merged}\n!=\n{everything}");
    }

    #[test]
    fn rows_are_the_pairs_of_service_and_minute_nulls_included() {
        // Frames share services; a null service and a null time are rows of their own.
        let services = [Some("b"), Some("a"), None, Some("a"), Some("b"), None, Some("a")];
        let times = [Some(T0), Some(T0 + 5), Some(T0), None, Some(T0 + 3 * MIN), None, Some(T0 + MIN)];
        let times =
            Int64Chunked::new(EVENT_TIME.into(), times).into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
        let df = DataFrame::new(
            services.len(),
            vec![
                Column::new(SERVICE.into(), services),
                times.into_column(),
                Column::new(
                    LATENCY_MS.into(),
                    [Some(1.0), Some(2.0), Some(3.0), None, Some(5.0), Some(6.0), Some(7.0)],
                ),
                Column::new(STATUS_CODE.into(), [Some(200); 7]),
            ],
        )
        .expect("frame");
        let gold = aggregate(vec![df.slice(0, 3), df.slice(3, 4)]).expect("aggregate");
        let pairs = [col(SERVICE), col(EVENT_TIME).dt().truncate(lit("1m")).alias(MINUTE)];
        let expected = df
            .clone()
            .lazy()
            .group_by(pairs)
            .agg([len().cast(DataType::Int64).alias("request_count"), col(LATENCY_MS).max().alias("max_latency_ms")])
            .sort([SERVICE, MINUTE], SortMultipleOptions::default())
            .collect()
            .expect("group by the pair");
        let got = gold.select([SERVICE, MINUTE, "request_count", "max_latency_ms"]).expect("columns");
        assert_eq!(got.height(), 7);
        assert!(got.equals_missing(&expected), "{got}\n!=\n{expected}");
        assert_eq!(aggregate(Vec::new()).expect("no frames").schema().as_ref(), &schema());
        let nothing = aggregate(vec![df.clear(), df.clear()]).expect("empty frames");
        assert_eq!((nothing.height(), nothing.schema().as_ref()), (0, &schema()));
    }

    #[test]
    fn events_in_keeps_the_chosen_rows_with_or_without_nulls() {
        let rows = [("a", T0), ("b", T0), ("a", T0 + MIN), ("b", T0 + 2 * MIN + 1)];
        let df = events(&rows.map(|(s, t)| (s, t, None, None)));
        let keep = |service: &str, minute: i64| service == "b" || minute == T0 + MIN;
        let times = |df: &DataFrame| micros(df, EVENT_TIME).unwrap().iter().collect::<Vec<_>>();
        // No nulls: the fast path.
        assert_eq!(times(&events_in(&df, keep).unwrap()), [Some(T0), Some(T0 + MIN), Some(T0 + 2 * MIN + 1)]);
        // A null service or time is never kept, whatever its other value.
        let mut nulls = df.clone();
        let services = Column::new(SERVICE.into(), [Some("b"), None, Some("a"), Some("b")]);
        nulls.replace(SERVICE, services).unwrap();
        assert_eq!(times(&events_in(&nulls, keep).unwrap()), [Some(T0), Some(T0 + MIN), Some(T0 + 2 * MIN + 1)]);
        let no_time = Int64Chunked::new(EVENT_TIME.into(), [None, Some(T0), Some(T0 + MIN), Some(T0 + 2 * MIN + 1)]);
        let no_time = no_time.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_column();
        nulls.replace(EVENT_TIME, no_time).unwrap();
        assert_eq!(times(&events_in(&nulls, keep).unwrap()), [Some(T0 + MIN), Some(T0 + 2 * MIN + 1)]);
    }

    #[test]
    fn ordering_by_minute_keeps_each_minutes_events_in_order() {
        let rows = [("a", T0 + MIN + 5), ("b", T0 + 9), ("a", T0 + 1), ("b", T0 + MIN), ("a", T0)];
        let df = events(&rows.map(|(s, t)| (s, t, None, None)));
        let sorted = by_minute(df).unwrap();
        let times: Vec<_> = micros(&sorted, EVENT_TIME).unwrap().iter().flatten().collect();
        // Minute T0 first, its events as they came (not by time), then minute T0 + MIN.
        assert_eq!(times, [T0 + 9, T0 + 1, T0, T0 + MIN + 5, T0 + MIN]);
        let services: Vec<_> = services(&sorted, SERVICE).unwrap().iter().flatten().collect();
        assert_eq!(services, ["b", "a", "a", "a", "b"]);
    }

    #[test]
    fn touched_rows_are_found_between_two_times() {
        let df = events(&[("a", T0 + 3 * MIN + 7, None, None), ("b", T0 + 5 * MIN, None, None)]);
        let touched = Touched::of(&[df]).unwrap();
        assert!(touched.any_between(T0, T0 + 3 * MIN));
        assert!(touched.any_between(T0 + 3 * MIN + 59_999_999, T0 + 4 * MIN + 1));
        assert!(!touched.any_between(T0 + 4 * MIN, T0 + 4 * MIN + 59_999_999));
        assert!(touched.any_between(T0 + 5 * MIN, T0 + 90 * MIN));
        assert!(!touched.any_between(T0 - 90 * MIN, T0 + 3 * MIN - 1));
        assert!(!touched.any_between(T0 + 6 * MIN, T0 + 90 * MIN));
        assert!(!Touched::default().any_between(T0, T0 + 90 * MIN));
    }
}
