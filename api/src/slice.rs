//! One service's gold rows on one date, decoded into columns: the unit the
//! hot window and the cache hold, and what responses are rendered from.
//!
//! A row costs [`ROW_BYTES`] (five integer and six float columns). Nullable
//! metrics hold NaN for null: gold never holds NaN itself (latencies are
//! finite and ≥ 0, error rates a ratio of counts), and serde_json renders
//! NaN as `null` too, so the JSON is the same either way.

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use polars::prelude::*;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

/// Bytes one decoded row takes.
pub(crate) const ROW_BYTES: usize = 11 * 8;
pub(crate) const MINUTE: i64 = 60_000_000;
pub(crate) const DAY: i64 = 1440 * MINUTE;

/// The UTC date (days since 1970-01-01) of an instant in µs.
pub(crate) fn day_of(micros: i64) -> i32 {
    micros.div_euclid(DAY) as i32
}

/// RFC 3339, UTC, `Z`, seconds precision unless there are sub-seconds.
pub(crate) fn format_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(String::new, |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// One service's rows of one gold partition, sorted by minute.
#[derive(Debug)]
pub(crate) struct Slice {
    /// The service as written in gold.
    pub(crate) service: Arc<str>,
    /// `{"service":<name>,"minute":"YYYY-MM-DDT`, rendered once.
    row_prefix: String,
    /// The date whose minutes `row_prefix` can render.
    day: i32,
    pub(crate) minute: Vec<i64>,
    pub(crate) request_count: Vec<i64>,
    pub(crate) latency_count: Vec<i64>,
    pub(crate) status_count: Vec<i64>,
    pub(crate) error_count: Vec<i64>,
    pub(crate) avg_latency_ms: Vec<f64>,
    pub(crate) p50_latency_ms: Vec<f64>,
    pub(crate) p95_latency_ms: Vec<f64>,
    pub(crate) p99_latency_ms: Vec<f64>,
    pub(crate) max_latency_ms: Vec<f64>,
    pub(crate) error_rate: Vec<f64>,
}

/// What a date holds for one service: enough to count rows, bound a range
/// and answer a whole-day rollup without decoding the rows.
#[derive(Debug, Clone)]
pub(crate) struct DaySummary {
    pub(crate) service: Arc<str>,
    pub(crate) rows: usize,
    pub(crate) first_minute: i64,
    pub(crate) last_minute: i64,
    /// The service's rows in the partition file, when they are contiguous
    /// there (gold is sorted by service, minute): a cold read decodes only these.
    pub(crate) file_rows: Option<Range<usize>>,
    /// The day as one rollup bucket.
    pub(crate) day: Bucket,
}

/// Sums over a run of rows: one rollup bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub(crate) request_count: i64,
    pub(crate) latency_count: i64,
    /// Σ avg × latency_count, accumulated in minute order.
    pub(crate) latency_sum: f64,
    pub(crate) max_latency_ms: Option<f64>,
    /// The highest per-minute p99 in the bucket.
    pub(crate) max_p99_latency_ms: Option<f64>,
    pub(crate) status_count: i64,
    pub(crate) error_count: i64,
}

/// One rollup bucket of one service, as served.
#[derive(Debug, Serialize)]
pub(crate) struct RollupRow {
    pub(crate) service: Arc<str>,
    pub(crate) bucket: String,
    pub(crate) request_count: i64,
    pub(crate) latency_count: i64,
    pub(crate) avg_latency_ms: Option<f64>,
    pub(crate) max_latency_ms: Option<f64>,
    /// The worst minute's p99 (quantiles do not combine across minutes).
    pub(crate) max_p99_latency_ms: Option<f64>,
    pub(crate) status_count: i64,
    pub(crate) error_count: i64,
    pub(crate) error_rate: Option<f64>,
}

impl Bucket {
    fn add(&mut self, slice: &Slice, i: usize) {
        self.request_count += slice.request_count[i];
        self.latency_count += slice.latency_count[i];
        self.status_count += slice.status_count[i];
        self.error_count += slice.error_count[i];
        let avg = slice.avg_latency_ms[i];
        self.latency_sum += if avg.is_nan() { 0.0 } else { avg } * slice.latency_count[i] as f64;
        let max = slice.max_latency_ms[i];
        if !max.is_nan() {
            self.max_latency_ms = Some(self.max_latency_ms.map_or(max, |m| m.max(max)));
        }
        let p99 = slice.p99_latency_ms[i];
        if !p99.is_nan() {
            self.max_p99_latency_ms = Some(self.max_p99_latency_ms.map_or(p99, |m| m.max(p99)));
        }
    }

    /// The served row: latency averaged by latency_count, error rate from the sums.
    pub(crate) fn row(&self, service: &Arc<str>, start: i64) -> RollupRow {
        RollupRow {
            service: service.clone(),
            bucket: format_micros(start),
            request_count: self.request_count,
            latency_count: self.latency_count,
            avg_latency_ms: (self.latency_count > 0).then(|| self.latency_sum / self.latency_count as f64),
            max_latency_ms: self.max_latency_ms,
            max_p99_latency_ms: self.max_p99_latency_ms,
            status_count: self.status_count,
            error_count: self.error_count,
            error_rate: (self.status_count > 0).then(|| self.error_count as f64 / self.status_count as f64),
        }
    }
}

impl Slice {
    pub(crate) fn len(&self) -> usize {
        self.minute.len()
    }

    /// Memory this slice holds, as the cache weighs it.
    pub(crate) fn bytes(&self) -> usize {
        self.len() * ROW_BYTES + self.row_prefix.len() + 64
    }

    /// Indices of the rows with `from <= minute < to`.
    pub(crate) fn range(&self, from: i64, to: i64) -> Range<usize> {
        let start = self.minute.partition_point(|&m| m < from);
        let end = self.minute.partition_point(|&m| m < to);
        start..end.max(start)
    }

    /// Appends row `i` as a JSON object, byte for byte what serde_json
    /// gives for the row (fields in the gold column order of README "Output layout").
    pub(crate) fn write_row(&self, i: usize, out: &mut Vec<u8>) {
        let minute = self.minute[i];
        if minute % MINUTE == 0 && day_of(minute) == self.day {
            let of_day = (minute - self.day as i64 * DAY) / MINUTE;
            out.extend_from_slice(self.row_prefix.as_bytes());
            push_two_digits(out, of_day / 60);
            out.push(b':');
            push_two_digits(out, of_day % 60);
            out.extend_from_slice(b":00Z\"");
        } else {
            // Not a whole minute of the slice's date: format it in full.
            let name = serde_json::to_string(&*self.service).unwrap_or_default();
            out.extend_from_slice(format!("{{\"service\":{name},\"minute\":\"{}\"", format_micros(minute)).as_bytes());
        }
        let int = |out: &mut Vec<u8>, key: &str, v: i64| {
            out.extend_from_slice(key.as_bytes());
            // Writing into a Vec cannot fail.
            let _ = CompactFormatter.write_i64(out, v);
        };
        int(out, ",\"request_count\":", self.request_count[i]);
        int(out, ",\"latency_count\":", self.latency_count[i]);
        push_float(out, ",\"avg_latency_ms\":", self.avg_latency_ms[i]);
        push_float(out, ",\"p50_latency_ms\":", self.p50_latency_ms[i]);
        push_float(out, ",\"p95_latency_ms\":", self.p95_latency_ms[i]);
        push_float(out, ",\"p99_latency_ms\":", self.p99_latency_ms[i]);
        push_float(out, ",\"max_latency_ms\":", self.max_latency_ms[i]);
        int(out, ",\"status_count\":", self.status_count[i]);
        int(out, ",\"error_count\":", self.error_count[i]);
        push_float(out, ",\"error_rate\":", self.error_rate[i]);
        out.push(b'}');
    }

    /// Sums the rows in `rows` into buckets `width` µs wide (UTC-aligned),
    /// calling `emit` for each in minute order.
    pub(crate) fn rollup(&self, rows: Range<usize>, width: i64, mut emit: impl FnMut(RollupRow)) {
        let mut current: Option<(i64, Bucket)> = None;
        for i in rows {
            let start = self.minute[i].div_euclid(width) * width;
            if current.as_ref().is_none_or(|(s, _)| *s != start) {
                if let Some((s, bucket)) = current.take() {
                    emit(bucket.row(&self.service, s));
                }
                current = Some((start, Bucket::default()));
            }
            if let Some((_, bucket)) = current.as_mut() {
                bucket.add(self, i);
            }
        }
        if let Some((s, bucket)) = current {
            emit(bucket.row(&self.service, s));
        }
    }

    /// The summary of the whole slice; `file_rows` where it sits in its file.
    pub(crate) fn summary(&self, file_rows: Option<Range<usize>>) -> DaySummary {
        let mut day = Bucket::default();
        for i in 0..self.len() {
            day.add(self, i);
        }
        DaySummary {
            service: self.service.clone(),
            rows: self.len(),
            first_minute: self.minute.first().copied().unwrap_or_default(),
            last_minute: self.minute.last().copied().unwrap_or_default(),
            file_rows,
            day,
        }
    }
}

fn push_two_digits(out: &mut Vec<u8>, v: i64) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// `key` then the number exactly as serde_json writes it (its own
/// formatter; `null` when not finite, as serde_json does).
fn push_float(out: &mut Vec<u8>, key: &str, v: f64) {
    out.extend_from_slice(key.as_bytes());
    if v.is_finite() {
        // Writing into a Vec cannot fail.
        let _ = CompactFormatter.write_f64(out, v);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// One service's part of a decoded gold frame.
#[derive(Debug)]
pub(crate) struct ServiceRows {
    /// The lowercase service name.
    pub(crate) key: String,
    pub(crate) slice: Slice,
    /// Where the rows sat in the frame, when they were contiguous.
    pub(crate) file_rows: Option<Range<usize>>,
}

/// A gold frame (one partition file, or part of one) split per lowercase
/// service name, each slice sorted by minute. Rows without a service or
/// minute are left out, as they were always.
pub(crate) fn split(df: &DataFrame) -> PolarsResult<Vec<ServiceRows>> {
    let column = |name: &str| df.column(name).map(|c| c.as_materialized_series().clone());
    let service = column("service")?;
    let service = service.str()?;
    let minute = column("minute")?;
    let minute = minute.datetime()?.physical().clone();
    let int =
        |name: &str| -> PolarsResult<Vec<i64>> { Ok(column(name)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect()) };
    let float = |name: &str| -> PolarsResult<Vec<f64>> {
        Ok(column(name)?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let (requests, latency_count, status_count, error_count) =
        (int("request_count")?, int("latency_count")?, int("status_count")?, int("error_count")?);
    let (avg, p50, p95, p99, max, rate) = (
        float("avg_latency_ms")?,
        float("p50_latency_ms")?,
        float("p95_latency_ms")?,
        float("p99_latency_ms")?,
        float("max_latency_ms")?,
        float("error_rate")?,
    );

    // Row indices per service key, in frame order.
    let mut groups: std::collections::BTreeMap<String, (Arc<str>, Vec<usize>)> = Default::default();
    for i in 0..df.height() {
        let (Some(name), Some(_)) = (service.get(i), minute.get(i)) else { continue };
        groups.entry(name.to_lowercase()).or_insert_with(|| (Arc::from(name), Vec::new())).1.push(i);
    }
    let mut slices = Vec::with_capacity(groups.len());
    for (key, (name, mut rows)) in groups {
        let contiguous = rows.windows(2).all(|w| w[1] == w[0] + 1);
        let file_rows = contiguous.then(|| rows[0]..rows[rows.len() - 1] + 1);
        rows.sort_by_key(|&i| minute.get(i));
        let minutes: Vec<i64> = rows.iter().map(|&i| minute.get(i).unwrap_or_default()).collect();
        let day = day_of(minutes[0]);
        let date = format_micros(day as i64 * DAY);
        let row_prefix = format!(
            "{{\"service\":{},\"minute\":\"{}T",
            serde_json::to_string(&*name).unwrap_or_default(),
            &date[..10]
        );
        let pick = |v: &[i64]| rows.iter().map(|&i| v[i]).collect::<Vec<i64>>();
        let pick_f = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let slice = Slice {
            service: name,
            row_prefix,
            day,
            minute: minutes,
            request_count: pick(&requests),
            latency_count: pick(&latency_count),
            status_count: pick(&status_count),
            error_count: pick(&error_count),
            avg_latency_ms: pick_f(&avg),
            p50_latency_ms: pick_f(&p50),
            p95_latency_ms: pick_f(&p95),
            p99_latency_ms: pick_f(&p99),
            max_latency_ms: pick_f(&max),
            error_rate: pick_f(&rate),
        };
        slices.push(ServiceRows { key, slice, file_rows });
    }
    Ok(slices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(service: &str, minutes: &[i64], avg: &[Option<f64>]) -> DataFrame {
        let n = minutes.len();
        let float = |name: &str, v: &[Option<f64>]| Column::new(name.into(), v.to_vec());
        DataFrame::new(
            n,
            vec![
                Column::new("service".into(), vec![service; n]),
                Int64Chunked::from_vec("minute".into(), minutes.to_vec())
                    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                    .into_column(),
                Column::new("request_count".into(), vec![3i64; n]),
                Column::new("latency_count".into(), vec![2i64; n]),
                float("avg_latency_ms", avg),
                float("p50_latency_ms", avg),
                float("p95_latency_ms", avg),
                float("p99_latency_ms", avg),
                float("max_latency_ms", avg),
                Column::new("status_count".into(), vec![3i64; n]),
                Column::new("error_count".into(), vec![1i64; n]),
                float("error_rate", &vec![Some(1.0 / 3.0); n]),
            ],
        )
        .expect("frame")
    }

    #[test]
    fn rendered_rows_equal_serde_json_of_the_row() {
        let t0 = 1_768_212_900_000_000; // 2026-01-12T10:15:00Z
        let minutes = [t0 + 1, t0 - 10 * MINUTE, t0, 1_768_262_340_000_000];
        let avg = [Some(0.1), None, Some(1e21), Some(12.5)];
        let df = frame("Say \"hi\"", &minutes, &avg);
        let ServiceRows { key, slice, file_rows } = split(&df).expect("split").pop().expect("one service");
        assert_eq!((key.as_str(), file_rows), ("say \"hi\"", Some(0..4)));
        assert_eq!(slice.minute, [t0 - 10 * MINUTE, t0, t0 + 1, 1_768_262_340_000_000], "sorted by minute");
        for i in 0..slice.len() {
            let mut out = Vec::new();
            slice.write_row(i, &mut out);
            let nan = |v: f64| (!v.is_nan()).then_some(v);
            let expected = serde_json::to_string(&crate::tests::RefRow {
                service: "Say \"hi\"",
                minute: format_micros(slice.minute[i]),
                request_count: 3,
                latency_count: 2,
                avg_latency_ms: nan(slice.avg_latency_ms[i]),
                p50_latency_ms: nan(slice.p50_latency_ms[i]),
                p95_latency_ms: nan(slice.p95_latency_ms[i]),
                p99_latency_ms: nan(slice.p99_latency_ms[i]),
                max_latency_ms: nan(slice.max_latency_ms[i]),
                status_count: 3,
                error_count: 1,
                error_rate: Some(1.0 / 3.0),
            })
            .expect("json");
            assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
        }
    }

    #[test]
    fn interleaved_services_are_split_without_a_file_range() {
        let mut df = frame("a", &[0, MINUTE], &[Some(1.0), Some(2.0)]);
        df.vstack_mut(&frame("b", &[0], &[None])).expect("stack");
        df.vstack_mut(&frame("A", &[2 * MINUTE], &[Some(3.0)])).expect("stack");
        let slices = split(&df).expect("split");
        let a = &slices[0];
        assert_eq!((a.key.as_str(), a.slice.len(), &*a.slice.service, a.file_rows.clone()), ("a", 3, "a", None));
        assert_eq!(slices[1].file_rows, Some(2..3), "b is contiguous");
        let summary = a.slice.summary(None);
        assert_eq!((summary.rows, summary.first_minute, summary.last_minute), (3, 0, 2 * MINUTE));
        assert_eq!(summary.day.latency_sum, 12.0, "(1 + 2 + 3) × 2");
        assert_eq!(summary.day.max_latency_ms, Some(3.0));
    }
}
