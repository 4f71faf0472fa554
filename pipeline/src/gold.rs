//! Gold: `service_minute_metrics`, clean events grouped by service and
//! minute (SPEC §5), computed with polars expressions.

use std::collections::HashSet;

use polars::prelude::*;

use crate::bronze::timestamp_type;
use crate::error::{Error, Result};
use crate::silver::columns::{EVENT_TIME, LATENCY_MS, SERVICE, STATUS_CODE};

pub const MINUTE: &str = "minute";

/// Columns of silver events that gold reads.
pub const INPUT_COLUMNS: [&str; 4] = [SERVICE, EVENT_TIME, LATENCY_MS, STATUS_CODE];

/// The gold schema, in column order.
pub fn schema() -> Schema {
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

/// Per service and minute metrics of `events` (at least [`INPUT_COLUMNS`]),
/// sorted by service, minute.
pub fn aggregate(events: LazyFrame) -> Result<DataFrame> {
    let latency = || col(LATENCY_MS);
    let quantile = |q: f64, name: &str| latency().quantile(lit(q), QuantileMethod::Linear).alias(name);
    let is_error = col(STATUS_CODE).lt(lit(200)).or(col(STATUS_CODE).gt(lit(299)));
    events
        .group_by([col(SERVICE), col(EVENT_TIME).dt().truncate(lit("1m")).alias(MINUTE)])
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
        .sort([SERVICE, MINUTE], SortMultipleOptions::default())
        .collect()
        .map_err(Error::polars("aggregating gold"))
}

/// The minute (µs since the epoch) an event time falls in: the same floor
/// as `dt().truncate("1m")` in [`aggregate`] (silver times are after 2000).
fn minute_of(micros: i64) -> i64 {
    const MINUTE_MICROS: i64 = 60_000_000;
    micros.div_euclid(MINUTE_MICROS) * MINUTE_MICROS
}

/// The minutes (µs since the epoch) that `frames`' events fall in.
pub fn minutes_of(frames: &[DataFrame]) -> Result<HashSet<i64>> {
    let mut minutes = HashSet::new();
    for df in frames {
        minutes.extend(micros(df, EVENT_TIME)?.into_no_null_iter().map(minute_of));
    }
    Ok(minutes)
}

/// The events of `df` whose minute (µs since the epoch) `keep` takes, in their order.
pub fn events_in(df: &DataFrame, keep: impl Fn(i64) -> bool) -> Result<DataFrame> {
    let mask: BooleanChunked = micros(df, EVENT_TIME)?.iter().map(|t| t.is_some_and(|t| keep(minute_of(t)))).collect();
    df.filter(&mask).map_err(Error::polars("selecting events of some minutes"))
}

/// Gold rows sorted by service, minute.
pub fn sorted(metrics: DataFrame) -> Result<DataFrame> {
    metrics.sort([SERVICE, MINUTE], SortMultipleOptions::default()).map_err(Error::polars("sorting gold"))
}

/// A gold partition with the rows of `minutes` replaced by `fresh` ones
/// (aggregated from every clean event of those minutes), sorted by
/// service, minute. Other minutes' events did not change, so neither did
/// their rows: the result equals aggregating the whole date again.
pub fn replace_minutes(previous: DataFrame, fresh: DataFrame, minutes: &HashSet<i64>) -> Result<DataFrame> {
    let keep: BooleanChunked =
        micros(&previous, MINUTE)?.iter().map(|m| m.is_none_or(|m| !minutes.contains(&m))).collect();
    let mut merged = previous.filter(&keep).map_err(Error::polars("keeping untouched gold minutes"))?;
    merged.vstack_mut_owned(fresh).map_err(Error::polars("merging recomputed gold minutes"))?;
    sorted(merged)
}

/// The physical µs values of a timestamp column.
fn micros<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Int64Chunked> {
    let column = df.column(name).map_err(Error::polars("reading a timestamp column"))?;
    column.datetime().map(|dt| dt.physical()).map_err(Error::polars("reading a timestamp column"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rows: &[(&str, i64, Option<f64>, Option<i32>)]) -> LazyFrame {
        let services: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let latencies: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
        let statuses: Vec<Option<i32>> = rows.iter().map(|r| r.3).collect();
        let df = DataFrame::new(
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
        .expect("valid frame");
        df.lazy()
    }

    const MIN: i64 = 60_000_000;
    const T0: i64 = 1_768_212_900_000_000; // 2026-01-12T10:15:00Z

    #[test]
    fn metrics_per_service_minute_with_linear_quantiles() {
        let df = aggregate(events(&[
            ("b", T0, Some(1.0), Some(200)),
            ("a", T0 + 59_999_999, Some(4.0), Some(500)),
            ("a", T0, Some(1.0), Some(200)),
            ("a", T0 + 1, Some(2.0), None),
            ("a", T0 + 2, Some(3.0), Some(404)),
            ("a", T0 + MIN, None, None),
        ]))
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
    fn replacing_touched_minutes_equals_aggregating_everything() {
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
        let collect = |rows: &[(&str, i64, Option<f64>, Option<i32>)]| events(rows).collect().expect("frame");
        let everything = aggregate(events(&[earlier.as_slice(), added.as_slice()].concat())).expect("aggregate");

        let previous = aggregate(events(&earlier)).expect("aggregate");
        let added = collect(&added);
        let minutes = minutes_of(std::slice::from_ref(&added)).expect("minutes");
        assert_eq!(minutes, HashSet::from([T0 + 2 * MIN, T0 + 5 * MIN]));
        let mut touched = events_in(&collect(&earlier), |m| minutes.contains(&m)).expect("filter");
        assert_eq!(touched.height(), 2, "both services' events of minute 2");
        touched.vstack_mut_owned(added).expect("same schema");
        let fresh = aggregate(touched.lazy()).expect("aggregate");
        let merged = replace_minutes(previous, fresh, &minutes).expect("merge");
        assert!(merged.equals_missing(&everything), "{merged}\n!=\n{everything}");
    }
}
