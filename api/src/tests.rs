//! Handler-level tests through the real filters with `warp::test`, over
//! gold written as real Parquet files into `memory://` outputs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use pipeline::runs::{LayerRows, Manifest, RunStatus, StorageRequests};
use pipeline::storage::Storage;
use polars::prelude::*;
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::Access;
use crate::handlers;
use crate::query::{Bucket, MetricsQuery};
use crate::reader::Budget;
use crate::slice::{DAY, MINUTE, day_of, format_micros};
use crate::state::{Shared, State};

const T0: i64 = 1_768_212_900_000_000; // 2026-01-12T10:15:00Z

/// One gold row: service, minute, requests, latency (count, avg, max), (status count, errors).
type Row = (String, i64, i64, Option<(i64, f64, f64)>, (i64, i64));

/// The fixtures' p99: below max, so that a rollup's worst-minute p99 is told apart from its max.
fn p99_of(latency: &(i64, f64, f64)) -> f64 {
    latency.2 * 0.9
}

fn row(service: &str, minute: i64, requests: i64, latency: Option<(i64, f64, f64)>, status: (i64, i64)) -> Row {
    (service.to_string(), minute, requests, latency, status)
}

/// A fresh `memory://` output.
fn output() -> Storage {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Storage::open(&format!("memory://api-tests/{}-{n}", std::process::id()), true).expect("memory output")
}

fn gold_path(date: i32, file: &str) -> String {
    format!("gold/service_minute_metrics/event_date={}/{file}", &format_micros(date as i64 * DAY)[..10])
}

/// Writes `rows` as gold partitions, sorted by service, minute as the pipeline does.
fn write_gold(output: &Storage, rows: &[Row]) {
    write_gold_as(output, rows, "data.parquet");
}

/// [`write_gold`], as files named `file` in their partitions.
fn write_gold_as(output: &Storage, rows: &[Row], file: &str) {
    let mut by_date: BTreeMap<i32, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_date.entry(day_of(r.1)).or_default().push(r);
    }
    for (date, mut rows) in by_date {
        rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let lat =
            |f: fn(&(i64, f64, f64)) -> f64| rows.iter().map(|r| r.3.as_ref().map(f)).collect::<Vec<Option<f64>>>();
        let df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("service".into(), rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()),
                Int64Chunked::from_vec("minute".into(), rows.iter().map(|r| r.1).collect())
                    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                    .into_column(),
                Column::new("request_count".into(), rows.iter().map(|r| r.2).collect::<Vec<i64>>()),
                Column::new("latency_count".into(), rows.iter().map(|r| r.3.map_or(0, |l| l.0)).collect::<Vec<i64>>()),
                Column::new("avg_latency_ms".into(), lat(|l| l.1)),
                Column::new("p50_latency_ms".into(), lat(|l| l.1)),
                Column::new("p95_latency_ms".into(), lat(|l| l.2)),
                Column::new("p99_latency_ms".into(), lat(p99_of)),
                Column::new("max_latency_ms".into(), lat(|l| l.2)),
                Column::new("status_count".into(), rows.iter().map(|r| r.4.0).collect::<Vec<i64>>()),
                Column::new("error_count".into(), rows.iter().map(|r| r.4.1).collect::<Vec<i64>>()),
                Column::new(
                    "error_rate".into(),
                    rows.iter().map(|r| (r.4.0 > 0).then(|| r.4.1 as f64 / r.4.0 as f64)).collect::<Vec<_>>(),
                ),
            ],
        )
        .expect("gold frame");
        output.put_parquet(&gold_path(date, file), &df).expect("write gold");
    }
}

fn write_manifest(output: &Storage, run_id: &str, status: RunStatus) {
    put_manifest(output, &manifest_with(run_id, status, chrono::DateTime::UNIX_EPOCH, 0.0, 0));
}

fn put_manifest(output: &Storage, manifest: &Manifest) {
    output.put(&Manifest::path(&manifest.run_id), manifest.to_json()).expect("write manifest");
}

fn manifest_with(
    run_id: &str,
    status: RunStatus,
    finished_at: chrono::DateTime<chrono::Utc>,
    reject_ratio: f64,
    unreadable: usize,
) -> Manifest {
    let unreadable = (0..unreadable)
        .map(|i| pipeline::runs::UnreadableFile {
            path: format!("bad-{i}.csv"),
            size: 1,
            content_hash: String::new(),
            last_modified: finished_at,
            error: "unreadable".into(),
        })
        .collect();
    Manifest {
        run_id: run_id.into(),
        status,
        started_at: chrono::DateTime::UNIX_EPOCH,
        finished_at,
        input: "in".into(),
        output: "out".into(),
        full_refresh: false,
        engine: Default::default(),
        files: Vec::new(),
        unreadable_files: unreadable,
        max_unreadable_files: 0,
        files_skipped: 0,
        rows: LayerRows::default(),
        rejects_by_reason: BTreeMap::new(),
        reject_ratio,
        max_reject_ratio: 0.25,
        counters: Default::default(),
        gold_partitions: Vec::new(),
        outputs: Vec::new(),
        stage_seconds: BTreeMap::new(),
        table_versions: BTreeMap::new(),
        compacted: Vec::new(),
        expired: Vec::new(),
        expired_runs: Vec::new(),
        storage_requests: None,
        error: None,
    }
}

fn fixture_rows() -> Vec<Row> {
    vec![
        row("api", T0, 4, Some((2, 10.0, 30.0)), (4, 1)),
        row("api", T0 + MINUTE, 2, Some((2, 40.0, 50.0)), (2, 0)),
        row("api", T0 + 61 * MINUTE, 1, None, (0, 0)),
        row("web", T0, 1, Some((1, 5.0, 5.0)), (1, 1)),
    ]
}

/// A loaded server over `rows`.
fn serve(rows: &[Row], budget: Budget) -> Shared {
    let out = output();
    write_gold(&out, rows);
    write_manifest(&out, "run-1", RunStatus::Succeeded);
    let state = State::new(out, budget, Access::open());
    assert!(state.reload().expect("reload"), "the first poll loads gold");
    state
}

/// No hot window: every read goes through a cache of `cache_bytes`.
fn cold_budget(cache_bytes: u64) -> Budget {
    Budget { total_bytes: 2_000, hot_bytes: 0, cache_bytes, manifest_bytes: 1 << 20 }
}

/// Everything hot, and nothing hot with a cache too small for two slices.
fn budgets() -> [Budget; 2] {
    [Budget::from_mb(64), cold_budget(500)]
}

/// Runs a future on a fresh runtime. Setup (writing gold, reloading) blocks
/// on the storage runtime, so it happens outside; requests happen in here.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}

fn get(state: &Shared, path: &str) -> (u16, Value) {
    let response = block_on(warp::test::request().path(path).reply(&crate::routes::routes(state.clone())));
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

#[test]
fn health_is_503_until_gold_is_loaded_then_200() {
    let empty = State::new(output(), Budget::from_mb(1), Access::open());
    let (status, body) = get(&empty, "/health");
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["gold"]["run_id"], Value::Null);
    let (status, _) = get(&empty, "/metrics");
    assert_eq!(status, 503);

    for budget in budgets() {
        let (status, body) = get(&serve(&fixture_rows(), budget), "/health");
        assert_eq!(status, 200);
        assert_eq!(body["gold"]["rows"], 4);
        assert_eq!(body["gold"]["services"], 2);
        assert_eq!(body["gold"]["first_minute"], "2026-01-12T10:15:00Z");
        assert_eq!(body["gold"]["last_minute"], "2026-01-12T11:16:00Z");
        assert_eq!(body["gold"]["run_id"], "run-1");
    }
}

#[test]
fn metrics_filter_by_service_and_half_open_range_with_pagination() {
    for budget in budgets() {
        let s = serve(&fixture_rows(), budget);
        let (status, body) = get(&s, "/metrics?service=API&from=2026-01-12T10:15:00Z&to=2026-01-12T10:16:00Z");
        assert_eq!(status, 200);
        assert_eq!(
            body["meta"],
            json!({"count": 1, "total": 1, "limit": 1000, "offset": 0, "from": "2026-01-12T10:15:00Z", "to": "2026-01-12T10:16:00Z"})
        );
        assert_eq!(body["data"][0]["minute"], "2026-01-12T10:15:00Z");
        assert_eq!(body["data"][0]["error_rate"], 0.25);

        let (_, body) = get(&s, "/metrics?service=web,api&limit=2&offset=1");
        let minutes: Vec<(&str, &str)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["service"].as_str().unwrap(), r["minute"].as_str().unwrap()))
            .collect();
        assert_eq!(
            minutes,
            [("api", "2026-01-12T10:16:00Z"), ("api", "2026-01-12T11:16:00Z")],
            "ordered by service, minute"
        );
        assert_eq!((body["meta"]["total"].clone(), body["meta"]["count"].clone()), (json!(4), json!(2)));

        let (_, body) = get(&s, "/metrics?service=nope");
        assert_eq!(body["meta"]["total"], 0);
    }
}

#[test]
fn rollup_weights_latency_and_sums_counts_per_utc_bucket() {
    for budget in budgets() {
        let s = serve(&fixture_rows(), budget);
        let (status, body) = get(&s, "/metrics/rollup?service=api&bucket=1h");
        assert_eq!(status, 200);
        let first = &body["data"][0];
        assert_eq!(first["bucket"], "2026-01-12T10:00:00Z");
        assert_eq!(first["request_count"], 6);
        assert_eq!(first["avg_latency_ms"], 25.0, "(10×2 + 40×2) / 4");
        assert_eq!(first["max_latency_ms"], 50.0);
        assert_eq!(first["max_p99_latency_ms"], 50.0 * 0.9, "the worst minute's p99");
        assert_eq!(first["error_rate"], 1.0 / 6.0);
        assert_eq!(body["data"][1]["bucket"], "2026-01-12T11:00:00Z");
        assert_eq!(body["data"][1]["avg_latency_ms"], Value::Null);
        assert_eq!(body["data"][1]["error_rate"], Value::Null);
        assert_eq!(body["meta"]["bucket"], "1h");
        let (_, day) = get(&s, "/metrics/rollup?bucket=1d");
        assert_eq!(day["data"].as_array().unwrap().len(), 2, "one bucket per service");
        assert_eq!(day["data"][0]["bucket"], "2026-01-12T00:00:00Z");
        assert_eq!(day["data"][0]["request_count"], 7);
        assert_eq!(day["data"][0]["max_p99_latency_ms"], 50.0 * 0.9, "from the day summary");
    }
}

#[test]
fn bad_requests_are_400_and_unknown_paths_404_in_the_error_shape() {
    let s = serve(&fixture_rows(), Budget::from_mb(1));
    for (path, parameter) in [
        ("/metrics?from=nope", "from"),
        ("/metrics?from=2026-01-12&to=2026-01-11", "to"),
        ("/metrics?limit=10001", "limit"),
        ("/metrics/rollup?limit=100001", "limit"),
        ("/metrics?offset=-3", "offset"),
        ("/metrics/rollup?bucket=7m", "bucket"),
        ("/metrics?colour=red", "colour"),
        ("/runs?limit=1001", "limit"),
        ("/runs?status=done", "status"),
    ] {
        let (status, body) = get(&s, path);
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["parameter"], parameter, "{path}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    for path in ["/nope", "/metrics/extra/path", "/runs/unknown-run"] {
        let (status, body) = get(&s, path);
        assert_eq!(status, 404, "{path}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let post = block_on(warp::test::request().method("POST").path("/metrics").reply(&crate::routes::routes(s.clone())));
    assert_eq!(post.status().as_u16(), 405);
}

#[test]
fn etag_gives_304_gzip_when_accepted_and_every_response_has_a_request_id() {
    let routes = crate::routes::routes(serve(&fixture_rows(), Budget::from_mb(1)));
    let first = block_on(warp::test::request().path("/metrics").reply(&routes));
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.contains("run-1"), "{etag}");
    assert!(first.headers().contains_key("x-request-id"));
    let again = block_on(warp::test::request().path("/metrics").header("if-none-match", &etag).reply(&routes));
    assert_eq!(again.status().as_u16(), 304);
    let zipped = block_on(
        warp::test::request()
            .path("/metrics")
            .header("accept-encoding", "br, gzip")
            .header("x-request-id", "abc")
            .reply(&routes),
    );
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["x-request-id"], "abc");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped.body()[..]), &mut plain).unwrap();
    assert_eq!(plain.as_bytes(), &first.body()[..]);
    let refused = block_on(warp::test::request().path("/metrics").header("accept-encoding", "gzip;q=0").reply(&routes));
    assert!(!refused.headers().contains_key("content-encoding"));
    let missing = block_on(warp::test::request().path("/nope").reply(&routes));
    assert!(missing.headers().contains_key("x-request-id"));
}

#[test]
fn openapi_documents_exactly_the_served_paths() {
    let s = serve(&fixture_rows(), Budget::from_mb(1));
    let (status, doc) = get(&s, "/openapi.json");
    assert_eq!(status, 200);
    let documented: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = crate::openapi::PATHS.to_vec();
    expected.sort_unstable();
    assert_eq!(documented, expected);
    for path in crate::openapi::PATHS {
        let response = block_on(
            warp::test::request()
                .path(&path.replace("{run_id}", "unknown-run"))
                .reply(&crate::routes::routes(s.clone())),
        );
        let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        assert_ne!(body["error"]["code"], "not_found", "{path} is routed (status {})", response.status());
    }
}

#[test]
fn runs_are_paged_newest_first_and_filtered_by_status() {
    let out = output();
    write_gold(&out, &fixture_rows());
    let statuses = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::QualityGateFailed, RunStatus::Succeeded];
    for (i, status) in statuses.iter().enumerate() {
        write_manifest(&out, &format!("run-{i}"), *status);
    }
    let s = State::new(out.clone(), Budget::from_mb(8), Access::open());
    s.reload().expect("reload");
    let ids = |body: &Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|m| m["run_id"].as_str().unwrap().to_string()).collect()
    };
    let (status, body) = get(&s, "/runs");
    assert_eq!(status, 200);
    assert_eq!(ids(&body), ["run-3", "run-2", "run-1", "run-0"]);
    assert_eq!(body["meta"], json!({"count": 4, "total": 4, "limit": 100, "offset": 0}));
    assert_eq!(body["data"][2]["status"], "failed", "whole manifests");
    let (_, body) = get(&s, "/runs?limit=2&offset=1");
    assert_eq!(ids(&body), ["run-2", "run-1"]);
    assert_eq!(body["meta"], json!({"count": 2, "total": 4, "limit": 2, "offset": 1}));
    let (_, body) = get(&s, "/runs?status=succeeded");
    assert_eq!(ids(&body), ["run-3", "run-0"]);
    assert_eq!(body["meta"]["total"], 2);
    let (_, body) = get(&s, "/runs?offset=10");
    assert_eq!((body["data"].as_array().unwrap().len(), body["meta"]["total"].clone()), (0, json!(4)));
    let (status, body) = get(&s, "/runs/run-2");
    assert_eq!((status, body["status"].clone()), (200, json!("quality_gate_failed")));
    assert_eq!(get(&s, "/health").1["gold"]["run_id"], "run-3", "the newest committed run's gold");

    // A later run appears on the next poll, read incrementally.
    write_manifest(&out, "run-4", RunStatus::Failed);
    assert!(s.reload().expect("reload"));
    assert_eq!(ids(&get(&s, "/runs?limit=1").1), ["run-4"]);
    assert!(!s.reload().expect("reload"), "nothing new");
}

/// One labelled sample of the exposition, e.g. `http_requests_total{route="/metrics",status="200"}`.
fn sample(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(&format!("minutely_api_{name} ")))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn operational_metrics_count_a_known_sequence_of_requests() {
    let s = serve(&fixture_rows(), cold_budget(1 << 20));
    for path in
        ["/metrics?service=api", "/metrics?service=api", "/metrics?from=x", "/runs/run-1", "/runs/nope", "/nope"]
    {
        get(&s, path);
    }
    let response = block_on(warp::test::request().path("/-/metrics").reply(&crate::routes::routes(s.clone())));
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = String::from_utf8(response.body().to_vec()).unwrap();
    let count = |labels: &str| sample(&text, &format!("http_requests_total{{{labels}}}"));
    assert_eq!(count(r#"route="/metrics",status="200""#), Some(2.0), "{text}");
    assert_eq!(count(r#"route="/metrics",status="400""#), Some(1.0));
    assert_eq!(count(r#"route="/runs/{run_id}",status="200""#), Some(1.0));
    assert_eq!(count(r#"route="/runs/{run_id}",status="404""#), Some(1.0));
    assert_eq!(count(r#"route="other",status="404""#), Some(1.0));
    assert_eq!(sample(&text, r#"http_request_duration_seconds_count{route="/metrics"}"#), Some(3.0));
    assert_eq!(sample(&text, r#"snapshot_run{run_id="run-1"}"#), Some(1.0));
    assert!(sample(&text, "snapshot_age_seconds").is_some_and(|age| age > 1e9), "the run finished in 1970");
    assert_eq!(sample(&text, r#"gold_rows{place="disk"}"#), Some(4.0));
    // The budget holds no hot date: the first api read missed, the second hit.
    assert_eq!(sample(&text, "cache_misses_total"), Some(1.0));
    assert_eq!(sample(&text, "cache_hits_total"), Some(1.0));
    assert_eq!(sample(&text, "reloads_total"), Some(1.0));
    assert_eq!(sample(&text, "reload_failures_total"), Some(0.0));
    assert_eq!(sample(&text, "memory_budget_bytes"), Some(2000.0));
}

#[test]
fn a_tiny_budget_evicts_yet_answers_the_same() {
    let rows: Vec<Row> = (0..30)
        .flat_map(|d| (0..3).map(move |s| row(&format!("s{s}"), T0 + d * DAY + s * MINUTE, 1 + d, None, (1, 0))))
        .collect();
    let hot = serve(&rows, Budget::from_mb(64));
    let cold = serve(&rows, cold_budget(500));
    assert_eq!(hot.snapshot.load().gold.as_ref().map(|g| g.hot_rows), Some(90));
    assert_eq!(cold.snapshot.load().gold.as_ref().map(|g| g.hot_rows), Some(0));
    let q = MetricsQuery::parse("limit=10000", false).expect("valid");
    for _ in 0..2 {
        let answer = |s: &Shared| handlers::metrics(s, &s.snapshot.load(), &q, true).expect("answer");
        assert_eq!(answer(&hot), answer(&cold));
    }
    assert!(cold.reader.cached_bytes() <= cold.budget.cache_bytes, "the cache stays within its share");
    let misses = cold.telemetry.cache_misses.get();
    assert_eq!(misses, 180, "90 slices read twice: none survives in a 500-byte cache");
}

#[test]
fn a_file_replaced_under_a_cold_read_is_answered_from_the_newer_run() {
    let out = output();
    write_gold(&out, &fixture_rows());
    write_manifest(&out, "run-1", RunStatus::Succeeded);
    let state = State::new(out.clone(), cold_budget(1 << 20), Access::open());
    state.reload().expect("reload");
    let pinned = state.snapshot.load_full();

    // Run 2 replaces the partition and commits; the pinned snapshot is now stale.
    let mut newer = fixture_rows();
    newer[0].2 = 40;
    write_gold(&out, &newer);
    write_manifest(&out, "run-2", RunStatus::Succeeded);
    let q = MetricsQuery::parse("service=api", false).expect("valid");
    let stale = handlers::metrics(&state, &pinned, &q, true);
    assert!(matches!(stale, Err(handlers::Failure::Stale)), "never a mix of runs");

    let (status, body) = get(&state, "/metrics?service=api");
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["request_count"], 40, "run 2's gold, whole");
    assert_eq!(state.snapshot.load().gold.as_ref().map(|g| g.run_id.clone()), Some("run-2".into()));
}

#[test]
fn a_partition_is_served_from_its_newest_file_when_replaced_files_are_kept() {
    let out = output();
    write_gold_as(&out, &fixture_rows(), "part-20260101T000000000Z-00000001.parquet");
    let mut newer = fixture_rows();
    newer[0].2 = 40;
    // The replaced file stays beside its replacement (keep_replaced_hours).
    write_gold_as(&out, &newer, "part-20260101T000500000Z-00000002.parquet");
    write_manifest(&out, "run-2", RunStatus::Succeeded);
    let state = State::new(out, Budget::from_mb(64), Access::open());
    state.reload().expect("reload");
    let (status, body) = get(&state, "/metrics?service=api");
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["request_count"], 40, "the newest run's file");
    let api_rows = fixture_rows().iter().filter(|r| r.0 == "api").count();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(api_rows), "no row twice: {body}");
}

#[test]
fn a_publish_in_progress_keeps_the_previous_snapshot() {
    let out = output();
    write_gold(&out, &fixture_rows());
    write_manifest(&out, "run-1", RunStatus::Succeeded);
    let state = State::new(out.clone(), Budget::from_mb(8), Access::open());
    state.reload().expect("reload");
    out.put("_staging/run-2/_commit.json", "{}").expect("marker");
    write_manifest(&out, "run-2", RunStatus::Succeeded);
    state.reload().expect("reload");
    assert_eq!(state.snapshot.load().gold.as_ref().map(|g| g.run_id.clone()), Some("run-1".into()));
    out.delete("_staging/run-2/_commit.json").expect("publish done");
    state.reload().expect("reload");
    assert_eq!(state.snapshot.load().gold.as_ref().map(|g| g.run_id.clone()), Some("run-2".into()));
}

// ---- The all-in-memory design, as a reference for the answers ----

/// A row as the all-in-memory server rendered it: serde_json of this struct.
#[derive(Serialize)]
pub(crate) struct RefRow<'a> {
    pub(crate) service: &'a str,
    pub(crate) minute: String,
    pub(crate) request_count: i64,
    pub(crate) latency_count: i64,
    pub(crate) avg_latency_ms: Option<f64>,
    pub(crate) p50_latency_ms: Option<f64>,
    pub(crate) p95_latency_ms: Option<f64>,
    pub(crate) p99_latency_ms: Option<f64>,
    pub(crate) max_latency_ms: Option<f64>,
    pub(crate) status_count: i64,
    pub(crate) error_count: i64,
    pub(crate) error_rate: Option<f64>,
}

fn ref_row(r: &Row) -> RefRow<'_> {
    RefRow {
        service: &r.0,
        minute: format_micros(r.1),
        request_count: r.2,
        latency_count: r.3.map_or(0, |l| l.0),
        avg_latency_ms: r.3.map(|l| l.1),
        p50_latency_ms: r.3.map(|l| l.1),
        p95_latency_ms: r.3.map(|l| l.2),
        p99_latency_ms: r.3.as_ref().map(p99_of),
        max_latency_ms: r.3.map(|l| l.2),
        status_count: r.4.0,
        error_count: r.4.1,
        error_rate: (r.4.0 > 0).then(|| r.4.1 as f64 / r.4.0 as f64),
    }
}

/// Rows of the selected services in range, ordered by service, minute.
fn ref_selected<'a>(rows: &'a [Row], q: &MetricsQuery) -> Vec<&'a Row> {
    let mut out: Vec<&Row> = rows
        .iter()
        .filter(|r| q.services.is_empty() || q.services.contains(&r.0))
        .filter(|r| q.from.is_none_or(|f| r.1 >= f) && q.to.is_none_or(|t| r.1 < t))
        .collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

/// `meta` as the all-in-memory server wrote it.
#[derive(Serialize)]
struct RefMeta {
    count: usize,
    total: usize,
    limit: usize,
    offset: usize,
    from: Option<String>,
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
}

#[derive(Serialize)]
struct RefPage<T> {
    data: Vec<T>,
    meta: RefMeta,
}

fn ref_meta(q: &MetricsQuery, count: usize, total: usize, bucket: Option<&'static str>) -> RefMeta {
    RefMeta {
        count,
        total,
        limit: q.limit,
        offset: q.offset,
        from: q.from.map(format_micros),
        to: q.to.map(format_micros),
        bucket,
    }
}

fn ref_metrics(rows: &[Row], q: &MetricsQuery) -> Vec<u8> {
    let all = ref_selected(rows, q);
    let data: Vec<RefRow> = all.iter().skip(q.offset).take(q.limit).map(|r| ref_row(r)).collect();
    let meta = ref_meta(q, data.len(), all.len(), None);
    serde_json::to_vec(&RefPage { data, meta }).expect("json")
}

#[derive(Serialize)]
struct RefBucket {
    service: String,
    bucket: String,
    request_count: i64,
    latency_count: i64,
    avg_latency_ms: Option<f64>,
    max_latency_ms: Option<f64>,
    max_p99_latency_ms: Option<f64>,
    status_count: i64,
    error_count: i64,
    error_rate: Option<f64>,
}

fn ref_rollup(rows: &[Row], q: &MetricsQuery) -> Vec<u8> {
    let bucket = q.bucket.unwrap_or(Bucket::H1);
    let width = bucket.micros();
    // Buckets in row order, with their running latency sum.
    let mut buckets: Vec<(i64, RefBucket, f64)> = Vec::new();
    for r in ref_selected(rows, q) {
        let start = r.1.div_euclid(width) * width;
        if buckets.last().is_none_or(|b| b.1.service != r.0 || b.0 != start) {
            let empty = RefBucket {
                service: r.0.clone(),
                bucket: format_micros(start),
                request_count: 0,
                latency_count: 0,
                avg_latency_ms: None,
                max_latency_ms: None,
                max_p99_latency_ms: None,
                status_count: 0,
                error_count: 0,
                error_rate: None,
            };
            buckets.push((start, empty, 0.0));
        }
        let (_, b, sum) = buckets.last_mut().expect("pushed");
        b.request_count += r.2;
        b.latency_count += r.3.map_or(0, |l| l.0);
        b.status_count += r.4.0;
        b.error_count += r.4.1;
        *sum += r.3.map_or(0.0, |l| l.1) * r.3.map_or(0, |l| l.0) as f64;
        b.max_latency_ms = match (b.max_latency_ms, r.3.map(|l| l.2)) {
            (Some(a), Some(m)) => Some(a.max(m)),
            (a, m) => a.or(m),
        };
        b.max_p99_latency_ms = match (b.max_p99_latency_ms, r.3.as_ref().map(p99_of)) {
            (Some(a), Some(m)) => Some(a.max(m)),
            (a, m) => a.or(m),
        };
    }
    let total = buckets.len();
    let data: Vec<RefBucket> = buckets
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|(_, mut b, sum)| {
            b.avg_latency_ms = (b.latency_count > 0).then(|| sum / b.latency_count as f64);
            b.error_rate = (b.status_count > 0).then(|| b.error_count as f64 / b.status_count as f64);
            b
        })
        .collect();
    let meta = ref_meta(q, data.len(), total, Some(bucket.name()));
    serde_json::to_vec(&RefPage { data, meta }).expect("json")
}

fn arb_rows() -> impl Strategy<Value = Vec<Row>> {
    let one =
        (0..4usize, 0..(4 * 1440i64), 1..50i64, proptest::option::of((1..5i64, 0.0..500.0f64, 0.0..900.0f64)), 0..4i64);
    proptest::collection::vec(one, 1..120).prop_map(|rows| {
        let mut seen = std::collections::HashSet::new();
        rows.into_iter()
            .filter(|(s, m, ..)| seen.insert((*s, *m)))
            .map(|(s, m, req, lat, st)| row(&format!("svc{s}"), T0 - 615 * MINUTE + m * MINUTE, req, lat, (st, st / 2)))
            .collect()
    })
}

fn arb_query() -> impl Strategy<Value = String> {
    let instant = (0..(5 * 1440i64)).prop_map(|m| format_micros(T0 - 700 * MINUTE + m * MINUTE).replace('+', "%2B"));
    (
        proptest::collection::vec(0..5usize, 0..3),
        proptest::option::of(instant.clone()),
        proptest::option::of(instant),
        1..300usize,
        0..200usize,
        proptest::sample::select(Bucket::NAMES.to_vec()),
    )
        .prop_map(|(services, from, to, limit, offset, bucket)| {
            let mut q = vec![format!("limit={limit}"), format!("offset={offset}"), format!("bucket={bucket}")];
            q.extend(services.iter().map(|s| format!("service=SVC{s}")));
            q.extend(from.map(|f| format!("from={f}")));
            q.extend(to.map(|t| format!("to={t}")));
            q.join("&")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Hot, cold under eviction, and the all-in-memory design give the same answers.
    #[test]
    fn hot_and_cold_reads_answer_as_the_all_in_memory_design(
        rows in arb_rows(),
        queries in proptest::collection::vec(arb_query(), 1..6),
        budget in 0u64..40_000,
    ) {
        let hot = serve(&rows, Budget::from_mb(64));
        let cold = serve(&rows, cold_budget(budget));
        for raw in &queries {
            let Ok(q) = MetricsQuery::parse(raw, true) else { continue };
            let mut plain = q.clone();
            plain.bucket = None;
            let metrics = |s: &Shared| handlers::metrics(s, &s.snapshot.load(), &plain, true).expect("metrics");
            let rollup = |s: &Shared| handlers::rollup(s, &s.snapshot.load(), &q, true).expect("rollup");
            // Byte for byte: the same JSON the all-in-memory server wrote.
            let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
            let expected = text(ref_metrics(&rows, &plain));
            prop_assert_eq!(text(metrics(&hot)), expected.clone(), "{}", raw);
            prop_assert_eq!(text(metrics(&cold)), expected, "{}", raw);
            let expected = text(ref_rollup(&rows, &q));
            prop_assert_eq!(text(rollup(&hot)), expected.clone(), "{}", raw);
            prop_assert_eq!(text(rollup(&cold)), expected, "{}", raw);
        }
    }
}

#[test]
fn the_dashboard_is_one_page_with_its_assets_inlined_and_allowed_by_hash() {
    let routes = crate::routes::routes(State::new(output(), Budget::from_mb(1), Access::open()));
    let page = block_on(warp::test::request().path("/").reply(&routes));
    assert!(
        String::from_utf8_lossy(page.body()).contains("<body data-gold=\"none\" data-auth=\"open\">"),
        "no gold yet"
    );
    let loaded = block_on(
        warp::test::request().path("/").reply(&crate::routes::routes(serve(&fixture_rows(), Budget::from_mb(1)))),
    );
    assert!(String::from_utf8_lossy(loaded.body()).contains("<body data-gold=\"loaded\" data-auth=\"open\">"));
    for path in ["/", "/ui"] {
        let response = block_on(warp::test::request().path(path).reply(&routes));
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let body = String::from_utf8_lossy(response.body()).into_owned();
        for needle in ["window.minutely", "uPlot", "#charts", ".uplot", "services-overview"] {
            assert!(body.contains(needle), "{path} holds {needle}");
        }
        assert!(!body.contains("<script src") && !body.contains("<link rel=\"stylesheet\""), "nothing to fetch");
        // The policy allows exactly the page's one inline script and one stylesheet.
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
        let between = |open: &str, close: &str| {
            let start = body.find(open).expect("inline block") + open.len();
            body[start..start + body[start..].find(close).expect("closed")].to_string()
        };
        let hash = |text: String| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(crate::auth::sha256(text.as_bytes()))
        };
        assert!(csp.contains(&format!("script-src 'sha256-{}'", hash(between("<script>", "</script>")))), "{csp}");
        assert!(csp.contains(&format!("style-src 'sha256-{}'", hash(between("<style>", "</style>")))), "{csp}");
        assert!(csp.contains("default-src 'self'"));
    }
    for gone in ["/ui/app.js", "/ui/nope.js"] {
        assert_eq!(block_on(warp::test::request().path(gone).reply(&routes)).status().as_u16(), 404, "{gone}");
    }
}

/// A server over the fixture whose tokens file lets in `alice` with
/// `alice-token`; the file's path, to change it.
fn serve_with_tokens() -> (Shared, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let line = format!("# test tokens\nalice {}\n", hex::encode(crate::auth::sha256(b"alice-token")));
    std::fs::write(file.path(), line).expect("write tokens");
    let out = output();
    write_gold(&out, &fixture_rows());
    write_manifest(&out, "run-1", RunStatus::Succeeded);
    let state = State::new(out, Budget::from_mb(1), Access::tokens_file(file.path()).expect("tokens file"));
    state.reload().expect("reload");
    (state, file)
}

fn request_with(
    state: &Shared,
    path: &str,
    headers: &[(&str, &[u8])],
) -> warp::http::Response<warp::hyper::body::Bytes> {
    let mut request = warp::test::request().path(path);
    for (name, value) in headers {
        request = request.header(*name, warp::http::HeaderValue::from_bytes(value).expect("a valid header value"));
    }
    block_on(request.reply(&crate::routes::routes(state.clone())))
}

#[test]
fn with_a_tokens_file_every_path_but_health_needs_a_bearer_token() {
    let (s, _file) = serve_with_tokens();
    let good: &[(&str, &[u8])] = &[("authorization", b"Bearer alice-token")];
    assert_eq!(request_with(&s, "/health", &[]).status(), 200, "/health stays open");
    for path in [
        "/metrics",
        "/metrics/rollup",
        "/services",
        "/runs",
        "/runs/run-1",
        "/openapi.json",
        "/-/metrics",
        "/nope",
        "/",
    ] {
        for headers in
            [&[][..], &[("authorization", &b"Bearer wrong"[..])][..], &[("authorization", &b"Basic YTpi"[..])][..]]
        {
            let response = request_with(&s, path, headers);
            assert_eq!(response.status(), 401, "{path} {headers:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
            let body: Value = serde_json::from_slice(response.body()).expect("a JSON error body");
            assert_eq!(body["error"]["code"], "unauthorized", "{path}");
        }
        let status = request_with(&s, path, good).status();
        assert_eq!(status, if path == "/nope" { 404 } else { 200 }, "{path} with the token");
    }
    // Another method is a 405 with or without a token.
    for path in ["/health", "/metrics"] {
        let post = block_on(warp::test::request().method("POST").path(path).reply(&crate::routes::routes(s.clone())));
        assert_eq!(post.status(), 405, "POST {path}");
    }
    // A bad request is refused for the token first, then judged.
    assert_eq!(request_with(&s, "/metrics?limit=0", &[]).status(), 401);
    assert_eq!(request_with(&s, "/metrics?limit=0", good).status(), 400);
    // A browser without a token gets the page, which asks for one.
    let page = request_with(&s, "/", &[("accept", b"text/html,application/xhtml+xml")]);
    assert_eq!(page.status(), 401);
    assert_eq!(page.headers()["www-authenticate"], "Bearer");
    assert!(String::from_utf8_lossy(page.body()).contains("data-auth=\"required\""));
    let page = request_with(&s, "/", &[("accept", b"text/html"), good[0]]);
    assert!(String::from_utf8_lossy(page.body()).contains("data-gold=\"loaded\" data-auth=\"token\""));
}

#[test]
fn a_changed_tokens_file_is_used_and_a_bad_one_keeps_the_previous_tokens() {
    let (s, file) = serve_with_tokens();
    let bob = format!("bob {}\n", hex::encode(crate::auth::sha256(b"bob-token")));
    let auth = |token: &str| {
        request_with(&s, "/services", &[("authorization", format!("Bearer {token}").as_bytes())]).status().as_u16()
    };
    assert_eq!(auth("bob-token"), 401);
    std::fs::write(file.path(), &bob).expect("write");
    assert!(s.access.watched().expect("a tokens file").refresh());
    assert_eq!((auth("bob-token"), auth("alice-token")), (200, 401), "bob replaced alice");
    std::fs::write(file.path(), "bob not-a-hash-at-all\n").expect("write");
    assert!(!s.access.watched().expect("a tokens file").refresh());
    assert_eq!(auth("bob-token"), 200, "a bad file keeps the previous tokens");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the `Authorization` header holds (any scheme, empty or huge
    /// tokens, bytes beyond ASCII), the answer is 401 with the JSON error
    /// body unless it is exactly the token: never a 5xx, never a 400.
    #[test]
    fn any_authorization_header_is_401_or_the_token(
        prefix in prop::sample::select(vec!["Bearer ", "bearer ", "BEARER  ", "Basic ", "", "Bearer", "Token "]),
        token in prop::collection::vec(prop_oneof![Just(b'a'), 0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..64),
        repeat in prop::sample::select(vec![1usize, 2, 100]),
    ) {
        thread_local! {
            static SERVER: (Shared, tempfile::NamedTempFile) = serve_with_tokens();
        }
        let value: Vec<u8> = prefix.bytes().chain(token.iter().copied().cycle().take(token.len() * repeat)).collect();
        prop_assume!(warp::http::HeaderValue::from_bytes(&value).is_ok());
        let response = SERVER.with(|(s, _)| request_with(s, "/services", &[("authorization", &value)]));
        let is_token = value.to_ascii_lowercase().starts_with(b"bearer ") && value[7..].trim_ascii() == b"alice-token";
        if is_token {
            prop_assert_eq!(response.status().as_u16(), 200);
        } else {
            prop_assert_eq!(response.status().as_u16(), 401);
            prop_assert_eq!(&response.headers()["www-authenticate"], "Bearer");
            let body: Value = serde_json::from_slice(response.body()).expect("JSON");
            prop_assert_eq!(&body["error"]["code"], "unauthorized");
        }
    }
}

#[test]
fn pipeline_health_comes_from_the_manifests() {
    let out = output();
    write_gold(&out, &fixture_rows());
    write_manifest(&out, "r1", RunStatus::Succeeded);
    write_manifest(&out, "r2", RunStatus::Succeeded);
    let finished = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    let mut r3 = manifest_with("r3", RunStatus::QualityGateFailed, finished, 0.4, 2);
    let output_requests = pipeline::storage::Requests { get: 181, put: 16, list: 25, rename: 11, delete: 3 };
    let input_requests = pipeline::storage::Requests { get: 2, list: 1, ..Default::default() };
    r3.storage_requests = Some(StorageRequests { input: input_requests, output: output_requests });
    put_manifest(&out, &r3);
    let s = State::new(out.clone(), Budget::from_mb(1), Access::open());
    s.reload().expect("reload");
    let response = block_on(warp::test::request().path("/-/metrics").reply(&crate::routes::routes(s.clone())));
    let text = String::from_utf8(response.body().to_vec()).expect("text");
    let value = |series: &str| {
        let line = text.lines().find(|l| l.starts_with(&format!("minutely_pipeline_{series} ")));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(value(r#"last_run{run_id="r3"}"#), Some(1.0), "{text}");
    assert_eq!(value(r#"last_run_status{status="quality_gate_failed"}"#), Some(1.0));
    assert_eq!(value(r#"last_run_status{status="succeeded"}"#), Some(0.0));
    assert_eq!(value(r#"last_run_status{status="failed"}"#), Some(0.0));
    assert_eq!(value("last_run_finished_timestamp_seconds"), Some(1_800_000_000.0));
    assert_eq!(value("last_run_reject_ratio"), Some(0.4));
    assert_eq!(value("last_run_unreadable_files"), Some(2.0));
    // r2 finished in 1970.
    assert!(value("seconds_since_last_success").is_some_and(|age| age > 1.7e9), "{text}");
    assert_eq!(value(r#"runs{status="succeeded"}"#), Some(2.0));
    assert_eq!(value(r#"runs{status="quality_gate_failed"}"#), Some(1.0));
    assert_eq!(value(r#"runs{status="failed"}"#), Some(0.0));
    let requests = |location: &str, kind: &str| {
        value(&format!(r#"last_run_storage_requests{{location="{location}",kind="{kind}"}}"#))
    };
    assert_eq!(requests("output", "get"), Some(181.0), "{text}");
    assert_eq!(requests("output", "delete"), Some(3.0));
    assert_eq!(requests("input", "list"), Some(1.0));
    assert_eq!(requests("input", "put"), Some(0.0));
    // The server's own series keep their names.
    assert!(text.contains("minutely_api_http_requests_total") || text.contains("minutely_api_reloads_total"));

    // A newest run without a count (its publish finished by a later run) has no requests series.
    write_manifest(&out, "r4", RunStatus::Succeeded);
    s.reload().expect("reload");
    let response = block_on(warp::test::request().path("/-/metrics").reply(&crate::routes::routes(s.clone())));
    let text = String::from_utf8(response.body().to_vec()).expect("text");
    assert!(text.contains(r#"minutely_pipeline_last_run{run_id="r4"} 1"#), "{text}");
    assert!(!text.contains("minutely_pipeline_last_run_storage_requests{"), "{text}");
}
