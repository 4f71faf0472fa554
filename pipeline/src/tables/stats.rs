//! A data file's Delta statistics (`numRecords`, `minValues`, `maxValues`,
//! `nullCount`) from its Parquet footer: the row groups' statistics merged,
//! for the table's top-level columns. A column some row group has no
//! statistic for is left out (readers then never skip the file on it).
//!
//! Timestamps are written at millisecond precision, as Delta writers do:
//! minimums rounded down and maximums up, so the range still holds every
//! value and a reader that skips files by it never skips a matching row.

use chrono::DateTime;
use polars::prelude::{DataType, Schema};
use polars_parquet::parquet::metadata::FileMetadata;
use polars_parquet::parquet::statistics::Statistics;
use serde_json::{Map, Value, json};

/// One column's merged statistics.
#[derive(Default)]
struct Bounds {
    min: Option<Value>,
    max: Option<Value>,
    /// Whether every row group had a min and max.
    bounded: bool,
    nulls: Option<i64>,
}

/// The `stats` of a file: what its footer says about the columns in `schema`.
pub(crate) fn of(footer: &FileMetadata, schema: &Schema) -> Value {
    let mut columns: Vec<(String, DataType, Bounds)> = schema
        .iter()
        .filter(|(_, dtype)| !matches!(dtype, DataType::List(_)))
        .map(|(name, dtype)| {
            (name.to_string(), dtype.clone(), Bounds { bounded: true, nulls: Some(0), ..Bounds::default() })
        })
        .collect();
    for group in &footer.row_groups {
        for (name, dtype, column) in &mut columns {
            let stats = crate::parquet::column_statistics(footer, group, name);
            let (nulls, bounds) = match &stats {
                Some(stats) => (null_count(stats), bounds(stats, dtype)),
                None => (None, None),
            };
            column.nulls = column.nulls.zip(nulls).map(|(a, b)| a + b);
            match bounds {
                Some((min, max)) if column.bounded => {
                    column.min = Some(pick(column.min.take(), min, std::cmp::Ordering::Less));
                    column.max = Some(pick(column.max.take(), max, std::cmp::Ordering::Greater));
                }
                // No rows in this group for the column: its bounds say nothing.
                None if group.num_rows() > 0 && nulls != Some(group.num_rows() as i64) => column.bounded = false,
                _ => {}
            }
        }
    }
    let (mut min_values, mut max_values, mut null_count) = (Map::new(), Map::new(), Map::new());
    for (name, dtype, column) in columns {
        if let (true, Some(min), Some(max)) = (column.bounded, column.min, column.max) {
            min_values.insert(name.clone(), render(min, dtype.clone(), false));
            max_values.insert(name.clone(), render(max, dtype, true));
        }
        if let Some(nulls) = column.nulls {
            null_count.insert(name, json!(nulls));
        }
    }
    json!({"numRecords": footer.num_rows, "minValues": min_values, "maxValues": max_values, "nullCount": null_count})
}

fn null_count(stats: &Statistics) -> Option<i64> {
    match stats {
        Statistics::Binary(s) => s.null_count,
        Statistics::Int32(s) => s.null_count,
        Statistics::Int64(s) => s.null_count,
        Statistics::Double(s) => s.null_count,
        Statistics::Boolean(s) => s.null_count,
        _ => None,
    }
}

/// A row group's min and max for a column of type `dtype`, as JSON
/// numbers or strings (timestamps as their microseconds, rendered later).
fn bounds(stats: &Statistics, dtype: &DataType) -> Option<(Value, Value)> {
    match (stats, dtype) {
        (Statistics::Binary(s), DataType::String) => {
            let text = |b: &Option<Vec<u8>>| Some(json!(std::str::from_utf8(b.as_deref()?).ok()?));
            Some((text(&s.min_value)?, text(&s.max_value)?))
        }
        (Statistics::Int32(s), DataType::Int32) => Some((json!(s.min_value?), json!(s.max_value?))),
        (Statistics::Int64(s), DataType::Int64 | DataType::Datetime(..)) => {
            Some((json!(s.min_value?), json!(s.max_value?)))
        }
        (Statistics::Double(s), DataType::Float64) => {
            let (min, max) = (s.min_value?, s.max_value?);
            (min.is_finite() && max.is_finite()).then(|| (json!(min), json!(max)))
        }
        _ => None,
    }
}

/// The lesser (`Less`) or greater (`Greater`) of two values of one column.
fn pick(current: Option<Value>, candidate: Value, keep: std::cmp::Ordering) -> Value {
    let Some(current) = current else { return candidate };
    let order = match (&candidate, &current) {
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
        }
        _ => std::cmp::Ordering::Equal,
    };
    if order == keep { candidate } else { current }
}

/// A bound as Delta writes it: timestamps as ISO 8601 at milliseconds,
/// rounded outwards; everything else as it is.
fn render(value: Value, dtype: DataType, upper: bool) -> Value {
    let (DataType::Datetime(..), Some(micros)) = (dtype, value.as_i64()) else { return value };
    let millis =
        if upper { micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0) } else { micros.div_euclid(1000) };
    match DateTime::from_timestamp_millis(millis) {
        Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use polars::prelude::*;

    use super::*;

    fn footer(df: &DataFrame) -> FileMetadata {
        let bytes = crate::parquet::encode(df, 1, crate::parquet::ROW_GROUP_ROWS, &[]).expect("encode");
        polars_parquet::parquet::read::read_metadata(&mut Cursor::new(bytes)).expect("footer")
    }

    #[test]
    fn stats_hold_counts_bounds_and_nulls_with_timestamps_rounded_outwards() {
        let times = Series::new("t".into(), [Some(1_000_500i64), None, Some(3_000_000)])
            .cast(&crate::bronze::timestamp_type())
            .expect("timestamps");
        let df = DataFrame::new(
            3,
            vec![
                Column::new("s".into(), [Some("b"), Some("a"), None]),
                Column::new("n".into(), [Some(3i64), Some(-1), Some(2)]),
                Column::new("f".into(), [None, None, None::<f64>]),
                times.into_column(),
            ],
        )
        .expect("frame");
        let stats = of(&footer(&df), df.schema());
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["s"], "a");
        assert_eq!(stats["maxValues"]["s"], "b");
        assert_eq!((stats["minValues"]["n"].clone(), stats["maxValues"]["n"].clone()), (json!(-1), json!(3)));
        assert_eq!(stats["minValues"]["t"], "1970-01-01T00:00:01.000Z", "1.0005 s rounded down");
        assert_eq!(stats["maxValues"]["t"], "1970-01-01T00:00:03.000Z", "exact stays exact");
        assert_eq!(render(json!(1_000_500), crate::bronze::timestamp_type(), true), "1970-01-01T00:00:01.001Z");
        assert_eq!(stats["nullCount"], json!({"s": 1, "n": 0, "f": 3, "t": 1}));
        assert!(stats["minValues"].get("f").is_none(), "an all-null column has no bounds");
    }
}
