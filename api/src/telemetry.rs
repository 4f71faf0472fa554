//! The server's own metrics, served at `/-/metrics` in the Prometheus text
//! exposition format (OpenMetrics flavour, which Prometheus scrapes as is).
//!
//! Two families: `minutely_api_*` describe this server (counters and the
//! request histogram are updated as requests finish); `minutely_pipeline_*`
//! describe the pipeline from the run manifests the server indexes, so one
//! scrape can alert on both (README, "Pipeline health"). Gauges that
//! describe the snapshot and the runs are set when the endpoint is scraped.

use std::sync::atomic::AtomicU64;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use pipeline::runs::RunStatus;

use crate::runs::RunIndex;
use crate::slice::ROW_BYTES;
use crate::snapshot::Snapshot;

/// Content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    run_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaceLabels {
    place: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestKindLabels {
    location: &'static str,
    kind: &'static str,
}

/// Every metric the server exposes.
pub(crate) struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) reloads: Counter,
    pub(crate) reload_failures: Counter,
    snapshot_run: Family<RunLabels, Gauge>,
    snapshot_age: Gauge<f64, AtomicU64>,
    gold_rows: Family<PlaceLabels, Gauge>,
    cache_bytes: Gauge,
    budget_bytes: Gauge,
    resident_bytes: Gauge,
    pipeline: PipelineHealth,
}

/// The `minutely_pipeline_*` series.
#[derive(Default)]
struct PipelineHealth {
    last_run: Family<RunLabels, Gauge>,
    last_status: Family<StatusLabels, Gauge>,
    last_finished: Gauge<f64, AtomicU64>,
    last_reject_ratio: Gauge<f64, AtomicU64>,
    last_unreadable: Gauge,
    since_success: Gauge<f64, AtomicU64>,
    runs: Family<StatusLabels, Gauge>,
    last_requests: Family<RequestKindLabels, Gauge>,
}

const STATUSES: [RunStatus; 3] = [RunStatus::Succeeded, RunStatus::QualityGateFailed, RunStatus::Failed];

fn duration_histogram() -> Histogram {
    // 100 µs to about 3 s.
    Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
}

impl Telemetry {
    pub(crate) fn new(budget_bytes: u64) -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("minutely_api");
        let t = Telemetry {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            snapshot_run: Family::default(),
            snapshot_age: Gauge::default(),
            gold_rows: Family::default(),
            cache_bytes: Gauge::default(),
            budget_bytes: Gauge::default(),
            resident_bytes: Gauge::default(),
            pipeline: PipelineHealth::default(),
            registry: Registry::default(),
        };
        t.budget_bytes.set(budget_bytes as i64);
        registry.register("http_requests", "HTTP requests answered, by route and status", t.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            t.durations.clone(),
        );
        registry.register("cache_hits", "Gold slice reads answered by the cache", t.cache_hits.clone());
        registry.register("cache_misses", "Gold slice reads that went to the layer files", t.cache_misses.clone());
        registry.register("reloads", "Polls of the output for new runs", t.reloads.clone());
        registry.register(
            "reload_failures",
            "Polls that failed (the previous snapshot is served)",
            t.reload_failures.clone(),
        );
        registry.register("snapshot_run", "The run whose gold is served (value 1)", t.snapshot_run.clone());
        registry.register("snapshot_age_seconds", "Seconds since the served run finished", t.snapshot_age.clone());
        registry.register("gold_rows", "Gold rows: place=memory (decoded) or place=disk (all)", t.gold_rows.clone());
        registry.register("cache_bytes", "Bytes of gold slices in the cache", t.cache_bytes.clone());
        registry.register("memory_budget_bytes", "The configured memory budget", t.budget_bytes.clone());
        registry.register("resident_memory_bytes", "The process's resident memory (Linux)", t.resident_bytes.clone());
        let p = &t.pipeline;
        let pipeline = root.sub_registry_with_prefix("minutely_pipeline");
        pipeline.register("last_run", "The newest run, whatever its status (value 1)", p.last_run.clone());
        pipeline.register(
            "last_run_status",
            "1 for the newest run's status (succeeded, quality_gate_failed or failed), 0 for the others",
            p.last_status.clone(),
        );
        pipeline.register(
            "last_run_finished_timestamp_seconds",
            "When the newest run finished, Unix seconds",
            p.last_finished.clone(),
        );
        pipeline.register(
            "last_run_reject_ratio",
            "Rejected / bronze rows of the newest run",
            p.last_reject_ratio.clone(),
        );
        pipeline.register(
            "last_run_unreadable_files",
            "Input files the newest run could not read",
            p.last_unreadable.clone(),
        );
        pipeline.register(
            "seconds_since_last_success",
            "Seconds since the newest succeeded run finished (absent before the first)",
            p.since_success.clone(),
        );
        pipeline.register("runs", "Runs in the output's manifests, by status", p.runs.clone());
        pipeline.register(
            "last_run_storage_requests",
            "Requests the newest run made to its input or output, by kind (absent when its manifest has none)",
            p.last_requests.clone(),
        );
        Telemetry { registry: root, ..t }
    }

    /// Records one answered request.
    pub(crate) fn observe(&self, path: &str, status: u16, seconds: f64) {
        let route = route_of(path);
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.durations.get_or_create(&RouteLabels { route }).observe(seconds);
    }

    /// The exposition, with the snapshot gauges set from `snapshot`.
    pub(crate) fn render(&self, snapshot: &Snapshot, cached_bytes: u64) -> String {
        self.snapshot_run.clear();
        if let Some(gold) = &snapshot.gold {
            self.snapshot_run.get_or_create(&RunLabels { run_id: gold.run_id.clone() }).set(1);
            let age = (Utc::now() - gold.run_finished_at).num_milliseconds() as f64 / 1000.0;
            self.snapshot_age.set(age);
        }
        let (hot, all) = snapshot.gold.as_ref().map_or((0, 0), |g| (g.hot_rows, g.rows));
        let cached_rows = cached_bytes as usize / ROW_BYTES;
        self.gold_rows.get_or_create(&PlaceLabels { place: "memory" }).set((hot + cached_rows) as i64);
        self.gold_rows.get_or_create(&PlaceLabels { place: "disk" }).set(all as i64);
        self.cache_bytes.set(cached_bytes as i64);
        if let Some(rss) = resident_bytes() {
            self.resident_bytes.set(rss as i64);
        }
        self.pipeline.set(&snapshot.runs);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl PipelineHealth {
    /// Sets every series from the run index.
    fn set(&self, runs: &RunIndex) {
        for status in STATUSES {
            self.runs.get_or_create(&StatusLabels { status: status.as_str() }).set(runs.count(status) as i64);
        }
        self.last_run.clear();
        self.last_requests.clear();
        let Some(last) = runs.newest() else { return };
        self.last_run.get_or_create(&RunLabels { run_id: last.run_id.clone() }).set(1);
        for status in STATUSES {
            self.last_status
                .get_or_create(&StatusLabels { status: status.as_str() })
                .set(i64::from(last.status == status));
        }
        self.last_finished.set(last.finished_at.timestamp_millis() as f64 / 1000.0);
        self.last_reject_ratio.set(last.reject_ratio);
        self.last_unreadable.set(last.unreadable_files as i64);
        for (location, requests) in
            last.storage_requests.iter().flat_map(|r| [("input", r.input), ("output", r.output)])
        {
            for (kind, n) in requests.by_kind() {
                self.last_requests.get_or_create(&RequestKindLabels { location, kind }).set(n as i64);
            }
        }
        if let Some(success) = runs.newest_with(RunStatus::Succeeded) {
            self.since_success.set((Utc::now() - success.finished_at).num_milliseconds() as f64 / 1000.0);
        }
    }
}

/// The route template of a path, so that labels stay few.
pub(crate) fn route_of(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/metrics/rollup" => "/metrics/rollup",
        "/services" => "/services",
        "/runs" => "/runs",
        "/openapi.json" => "/openapi.json",
        "/-/metrics" => "/-/metrics",
        p if p.starts_with("/runs/") && !p["/runs/".len()..].contains('/') => "/runs/{run_id}",
        _ => "other",
    }
}

/// Resident set size from `/proc/self/statm`, where there is one.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_not_paths() {
        assert_eq!(route_of("/runs/20260112T101500042Z-1234abcd"), "/runs/{run_id}");
        assert_eq!(route_of("/runs/a/b"), "other");
        assert_eq!(route_of("/metrics/rollup"), "/metrics/rollup");
        assert_eq!(route_of("/nope"), "other");
    }
}
