//! The in-memory gold snapshot: per service, rows sorted by minute, so a
//! filtered read is two binary searches and a slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use pipeline::runs::Manifest;
use polars::prelude::*;
use serde::Serialize;

/// One gold row as served (SPEC §5), with its minute pre-formatted.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub service: Arc<str>,
    pub minute: Arc<str>,
    #[serde(skip)]
    pub minute_micros: i64,
    pub request_count: i64,
    pub latency_count: i64,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub status_count: i64,
    pub error_count: i64,
    pub error_rate: Option<f64>,
    /// This row as JSON, rendered once when the snapshot is built.
    #[serde(skip)]
    pub json: Box<str>,
}

impl MetricRow {
    /// Renders and stores the row's JSON; call once all fields are set.
    pub fn render(mut self) -> Self {
        self.json = serde_json::to_string(&self).unwrap_or_default().into();
        self
    }
}

/// The gold layer of one committed run.
#[derive(Debug, Default)]
pub struct Gold {
    pub run_id: String,
    pub loaded_at: DateTime<Utc>,
    /// By lowercase service name; rows sorted by minute.
    pub services: BTreeMap<String, Vec<MetricRow>>,
    pub rows: usize,
}

/// What the server answers from: gold (once loaded) and the run history.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub gold: Option<Arc<Gold>>,
    /// Manifests, newest first.
    pub runs: Arc<Vec<Manifest>>,
}

/// RFC 3339, UTC, `Z`, seconds precision unless there are sub-seconds.
pub fn format_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(String::new, |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

impl Gold {
    /// Builds the snapshot from gold frames (one per partition file).
    pub fn from_frames(run_id: String, frames: Vec<DataFrame>) -> PolarsResult<Gold> {
        let mut services: BTreeMap<String, Vec<MetricRow>> = BTreeMap::new();
        let mut rows = 0;
        for df in frames {
            let col = |name: &str| df.column(name).map(|c| c.as_materialized_series().clone());
            let service = col("service")?;
            let service = service.str()?;
            let minute = col("minute")?;
            let minute = minute.datetime()?.physical().clone();
            let int = |name: &str| -> PolarsResult<Int64Chunked> { Ok(col(name)?.i64()?.clone()) };
            let float = |name: &str| -> PolarsResult<Float64Chunked> { Ok(col(name)?.f64()?.clone()) };
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
            let mut names: BTreeMap<String, Arc<str>> = BTreeMap::new();
            for i in 0..df.height() {
                let (Some(name), Some(micros)) = (service.get(i), minute.get(i)) else { continue };
                let key = name.to_lowercase();
                let shared = names.entry(key.clone()).or_insert_with(|| Arc::from(name)).clone();
                services.entry(key).or_default().push(
                    MetricRow {
                        service: shared,
                        minute: Arc::from(format_micros(micros)),
                        minute_micros: micros,
                        request_count: requests.get(i).unwrap_or(0),
                        latency_count: latency_count.get(i).unwrap_or(0),
                        avg_latency_ms: avg.get(i),
                        p50_latency_ms: p50.get(i),
                        p95_latency_ms: p95.get(i),
                        p99_latency_ms: p99.get(i),
                        max_latency_ms: max.get(i),
                        status_count: status_count.get(i).unwrap_or(0),
                        error_count: error_count.get(i).unwrap_or(0),
                        error_rate: rate.get(i),
                        json: Box::default(),
                    }
                    .render(),
                );
                rows += 1;
            }
        }
        for series in services.values_mut() {
            series.sort_by_key(|r| r.minute_micros);
        }
        Ok(Gold { run_id, loaded_at: Utc::now(), services, rows })
    }

    /// Rows of `service` with `from <= minute < to`.
    pub fn range(&self, service: &str, from: Option<i64>, to: Option<i64>) -> &[MetricRow] {
        let Some(rows) = self.services.get(service) else { return &[] };
        let start = from.map_or(0, |f| rows.partition_point(|r| r.minute_micros < f));
        let end = to.map_or(rows.len(), |t| rows.partition_point(|r| r.minute_micros < t));
        &rows[start..end.max(start)]
    }

    pub fn first_minute(&self) -> Option<i64> {
        self.services.values().filter_map(|r| r.first()).map(|r| r.minute_micros).min()
    }

    pub fn last_minute(&self) -> Option<i64> {
        self.services.values().filter_map(|r| r.last()).map(|r| r.minute_micros).max()
    }
}
