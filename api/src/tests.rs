//! Handler-level tests through the real filters with `warp::test`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};

use crate::load::Shared;
use crate::snapshot::{Gold, MetricRow, Snapshot, format_micros};

const T0: i64 = 1_768_212_900_000_000; // 2026-01-12T10:15:00Z
const MIN: i64 = 60_000_000;

fn row(service: &str, minute: i64, requests: i64, latency: Option<(i64, f64, f64)>, status: (i64, i64)) -> MetricRow {
    MetricRow {
        service: Arc::from(service),
        minute: Arc::from(format_micros(minute)),
        minute_micros: minute,
        request_count: requests,
        latency_count: latency.map_or(0, |l| l.0),
        avg_latency_ms: latency.map(|l| l.1),
        p50_latency_ms: latency.map(|l| l.1),
        p95_latency_ms: latency.map(|l| l.2),
        p99_latency_ms: latency.map(|l| l.2),
        max_latency_ms: latency.map(|l| l.2),
        status_count: status.0,
        error_count: status.1,
        error_rate: (status.0 > 0).then(|| status.1 as f64 / status.0 as f64),
        json: Box::default(),
    }
    .render()
}

fn shared() -> Shared {
    let mut gold = Gold { run_id: "run-1".into(), ..Gold::default() };
    gold.services.insert(
        "api".into(),
        vec![
            row("api", T0, 4, Some((2, 10.0, 30.0)), (4, 1)),
            row("api", T0 + MIN, 2, Some((2, 40.0, 50.0)), (2, 0)),
            row("api", T0 + 61 * MIN, 1, None, (0, 0)),
        ],
    );
    gold.services.insert("web".into(), vec![row("web", T0, 1, Some((1, 5.0, 5.0)), (1, 1))]);
    gold.rows = 4;
    Arc::new(ArcSwap::from_pointee(Snapshot { gold: Some(Arc::new(gold)), runs: Arc::new(Vec::new()) }))
}

async fn get(shared: &Shared, path: &str) -> (u16, Value) {
    let response = warp::test::request().path(path).reply(&crate::routes::routes(shared.clone())).await;
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

#[tokio::test]
async fn health_is_503_until_gold_is_loaded_then_200() {
    let empty: Shared = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (status, body) = get(&empty, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["gold"]["run_id"], Value::Null);
    let (status, _) = get(&empty, "/metrics").await;
    assert_eq!(status, 503);

    let (status, body) = get(&shared(), "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["gold"]["rows"], 4);
    assert_eq!(body["gold"]["services"], 2);
    assert_eq!(body["gold"]["first_minute"], "2026-01-12T10:15:00Z");
    assert_eq!(body["gold"]["last_minute"], "2026-01-12T11:16:00Z");
    assert_eq!(body["gold"]["run_id"], "run-1");
}

#[tokio::test]
async fn metrics_filter_by_service_and_half_open_range_with_pagination() {
    let s = shared();
    let (status, body) = get(&s, "/metrics?service=API&from=2026-01-12T10:15:00Z&to=2026-01-12T10:16:00Z").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["meta"],
        json!({"count": 1, "total": 1, "limit": 1000, "offset": 0, "from": "2026-01-12T10:15:00Z", "to": "2026-01-12T10:16:00Z"})
    );
    assert_eq!(body["data"][0]["minute"], "2026-01-12T10:15:00Z");
    assert_eq!(body["data"][0]["error_rate"], 0.25);

    let (_, body) = get(&s, "/metrics?service=web,api&limit=2&offset=1").await;
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

    let (_, body) = get(&s, "/metrics?service=nope").await;
    assert_eq!(body["meta"]["total"], 0);
}

#[tokio::test]
async fn rollup_weights_latency_and_sums_counts_per_utc_bucket() {
    let (status, body) = get(&shared(), "/metrics/rollup?service=api&bucket=1h").await;
    assert_eq!(status, 200);
    let first = &body["data"][0];
    assert_eq!(first["bucket"], "2026-01-12T10:00:00Z");
    assert_eq!(first["request_count"], 6);
    assert_eq!(first["avg_latency_ms"], 25.0, "(10×2 + 40×2) / 4");
    assert_eq!(first["max_latency_ms"], 50.0);
    assert_eq!(first["error_rate"], 1.0 / 6.0);
    assert_eq!(body["data"][1]["bucket"], "2026-01-12T11:00:00Z");
    assert_eq!(body["data"][1]["avg_latency_ms"], Value::Null);
    assert_eq!(body["data"][1]["error_rate"], Value::Null);
    assert_eq!(body["meta"]["bucket"], "1h");
    let (_, day) = get(&shared(), "/metrics/rollup?bucket=1d").await;
    assert_eq!(day["data"].as_array().unwrap().len(), 2, "one bucket per service");
    assert_eq!(day["data"][0]["bucket"], "2026-01-12T00:00:00Z");
}

#[tokio::test]
async fn bad_requests_are_400_and_unknown_paths_404_in_the_error_shape() {
    let s = shared();
    for (path, parameter) in [
        ("/metrics?from=nope", "from"),
        ("/metrics?from=2026-01-12&to=2026-01-11", "to"),
        ("/metrics?limit=100000", "limit"),
        ("/metrics?offset=-3", "offset"),
        ("/metrics/rollup?bucket=7m", "bucket"),
        ("/metrics?colour=red", "colour"),
    ] {
        let (status, body) = get(&s, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["parameter"], parameter, "{path}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    for path in ["/nope", "/metrics/extra/path", "/runs/unknown-run"] {
        let (status, body) = get(&s, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let post = warp::test::request().method("POST").path("/metrics").reply(&crate::routes::routes(s.clone())).await;
    assert_eq!(post.status().as_u16(), 405);
}

#[tokio::test]
async fn etag_gives_304_gzip_when_accepted_and_every_response_has_a_request_id() {
    let routes = crate::routes::routes(shared());
    let first = warp::test::request().path("/metrics").reply(&routes).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.contains("run-1"), "{etag}");
    assert!(first.headers().contains_key("x-request-id"));
    let again = warp::test::request().path("/metrics").header("if-none-match", &etag).reply(&routes).await;
    assert_eq!(again.status().as_u16(), 304);
    let zipped = warp::test::request()
        .path("/metrics")
        .header("accept-encoding", "br, gzip")
        .header("x-request-id", "abc")
        .reply(&routes)
        .await;
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["x-request-id"], "abc");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped.body()[..]), &mut plain).unwrap();
    assert_eq!(plain.as_bytes(), &first.body()[..]);
    let refused = warp::test::request().path("/metrics").header("accept-encoding", "gzip;q=0").reply(&routes).await;
    assert!(!refused.headers().contains_key("content-encoding"));
    let missing = warp::test::request().path("/nope").reply(&routes).await;
    assert!(missing.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn openapi_documents_exactly_the_served_paths() {
    let s = shared();
    let (status, doc) = get(&s, "/openapi.json").await;
    assert_eq!(status, 200);
    let documented: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = crate::openapi::PATHS.to_vec();
    expected.sort_unstable();
    assert_eq!(documented, expected);
    for path in crate::openapi::PATHS {
        let (status, body) = get(&s, &path.replace("{run_id}", "unknown-run")).await;
        assert_ne!(body["error"]["code"], "not_found", "{path} is routed (status {status})");
    }
}
