//! Routes (warp filters) and their handlers (SPEC §8).
//!
//! Every response carries an `x-request-id` (the client's, or a new one);
//! data responses carry a weak `ETag` keyed by the snapshot's run id, answer
//! `If-None-Match` with 304, and are gzipped when the client accepts it.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::error::ApiError;
use crate::load::Shared;
use crate::query::MetricsQuery;
use crate::snapshot::{Gold, MetricRow, Snapshot, format_micros};

/// Headers that shape a data response.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
}

/// All routes, with error recovery, request ids and the access log.
pub fn routes(shared: Shared) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let snapshot = warp::any().map(move || shared.load_full());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let headers = warp::header::optional::<String>("if-none-match")
        .and(warp::header::optional::<String>("accept-encoding"))
        .map(|if_none_match, accept_encoding| RequestHeaders { if_none_match, accept_encoding });

    let health = warp::path!("health").and(warp::get()).and(snapshot.clone()).map(|s: Arc<Snapshot>| health(&s));
    let metrics =
        warp::path!("metrics").and(warp::get()).and(snapshot.clone()).and(query).and(headers).and_then(
            |s: Arc<Snapshot>, q: String, h: RequestHeaders| async move {
                metrics(&s, &q, &h).map_err(warp::reject::custom)
            },
        );
    let rollup = warp::path!("metrics" / "rollup")
        .and(warp::get())
        .and(snapshot.clone())
        .and(query)
        .and(headers)
        .and_then(|s: Arc<Snapshot>, q: String, h: RequestHeaders| async move {
            rollup(&s, &q, &h).map_err(warp::reject::custom)
        });
    let services =
        warp::path!("services").and(warp::get()).and(snapshot.clone()).and(headers).and_then(
            |s: Arc<Snapshot>, h: RequestHeaders| async move { services(&s, &h).map_err(warp::reject::custom) },
        );
    let runs = warp::path!("runs")
        .and(warp::get())
        .and(snapshot.clone())
        .and(headers)
        .map(|s: Arc<Snapshot>, h: RequestHeaders| data_response(to_json(&*s.runs), &s, &h));
    let run = warp::path!("runs" / String).and(warp::get()).and(snapshot).and(headers).and_then(
        |id: String, s: Arc<Snapshot>, h: RequestHeaders| async move { run(&s, &id, &h).map_err(warp::reject::custom) },
    );
    let openapi =
        warp::path!("openapi.json").and(warp::get()).map(|| json_response(StatusCode::OK, &crate::openapi::document()));

    let api = health.or(metrics).or(rollup).or(services).or(runs).or(run).or(openapi).recover(handle_rejection);
    warp::header::optional::<String>("x-request-id")
        .and(api)
        .map(|id: Option<String>, reply| {
            let id = id.filter(|v| v.len() <= 128).unwrap_or_else(new_request_id);
            warp::reply::with_header(reply, "x-request-id", id)
        })
        .with(warp::log::custom(|info| {
            tracing::info!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                duration_us = info.elapsed().as_micros() as u64,
                "Request."
            );
        }))
}

fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-{:08x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn gold(snapshot: &Snapshot) -> Result<&Gold, ApiError> {
    snapshot.gold.as_deref().ok_or_else(ApiError::unavailable)
}

fn health(snapshot: &Snapshot) -> Response {
    let gold = snapshot.gold.as_deref();
    let body = json!({
        "status": if gold.is_some() { "ok" } else { "unavailable" },
        "gold": {
            "rows": gold.map_or(0, |g| g.rows),
            "services": gold.map_or(0, |g| g.services.len()),
            "first_minute": gold.and_then(Gold::first_minute).map(format_micros),
            "last_minute": gold.and_then(Gold::last_minute).map(format_micros),
            "run_id": gold.map(|g| g.run_id.as_str()),
            "loaded_at": gold.map(|g| g.loaded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        }
    });
    json_response(if gold.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

/// `from`/`to` echoed in `meta`.
fn bound(micros: Option<i64>) -> Option<String> {
    micros.map(format_micros)
}

/// Services a query names (all, when none), in name order.
fn selected<'a>(gold: &'a Gold, q: &'a MetricsQuery) -> Vec<&'a str> {
    if q.services.is_empty() {
        gold.services.keys().map(String::as_str).collect()
    } else {
        let mut names: Vec<&str> = q.services.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn metrics(snapshot: &Snapshot, raw: &str, headers: &RequestHeaders) -> Result<Response, ApiError> {
    let q = MetricsQuery::parse(raw, false)?;
    let gold = gold(snapshot)?;
    let ranges: Vec<&[MetricRow]> = selected(gold, &q).into_iter().map(|s| gold.range(s, q.from, q.to)).collect();
    let total: usize = ranges.iter().map(|r| r.len()).sum();
    // Rows are pre-rendered JSON: the body is their concatenation.
    let mut body = String::with_capacity(64 + q.limit.min(total) * 330);
    body.push_str("{\"data\":[");
    let mut count = 0;
    for row in ranges.into_iter().flatten().skip(q.offset).take(q.limit) {
        if count > 0 {
            body.push(',');
        }
        body.push_str(&row.json);
        count += 1;
    }
    let meta =
        Meta { count, total, limit: q.limit, offset: q.offset, from: bound(q.from), to: bound(q.to), bucket: None };
    body.push_str("],\"meta\":");
    body.push_str(&serde_json::to_string(&meta).unwrap_or_default());
    body.push('}');
    Ok(data_response(body.into_bytes(), snapshot, headers))
}

/// A page of data rows with its `meta`.
#[derive(Debug, Serialize)]
struct Page<T> {
    data: T,
    meta: Meta,
}

#[derive(Debug, Serialize)]
struct Meta {
    count: usize,
    total: usize,
    limit: usize,
    offset: usize,
    from: Option<String>,
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
}

/// One rollup bucket of one service.
#[derive(Debug, Serialize)]
struct RollupRow<'a> {
    service: &'a str,
    bucket: String,
    request_count: i64,
    latency_count: i64,
    avg_latency_ms: Option<f64>,
    max_latency_ms: Option<f64>,
    status_count: i64,
    error_count: i64,
    error_rate: Option<f64>,
}

fn rollup(snapshot: &Snapshot, raw: &str, headers: &RequestHeaders) -> Result<Response, ApiError> {
    let q = MetricsQuery::parse(raw, true)?;
    let bucket = q.bucket.unwrap_or(crate::query::Bucket::H1);
    let width = bucket.micros();
    let gold = gold(snapshot)?;
    let mut rows: Vec<RollupRow> = Vec::new();
    for service in selected(gold, &q) {
        let mut current: Option<(i64, RollupRow, f64)> = None;
        for r in gold.range(service, q.from, q.to) {
            let start = r.minute_micros.div_euclid(width) * width;
            if current.as_ref().is_none_or(|(s, _, _)| *s != start) {
                rows.extend(current.take().map(finish_bucket));
                let row = RollupRow {
                    service: &r.service,
                    bucket: format_micros(start),
                    request_count: 0,
                    latency_count: 0,
                    avg_latency_ms: None,
                    max_latency_ms: None,
                    status_count: 0,
                    error_count: 0,
                    error_rate: None,
                };
                current = Some((start, row, 0.0));
            }
            if let Some((_, row, latency_sum)) = current.as_mut() {
                row.request_count += r.request_count;
                row.latency_count += r.latency_count;
                row.status_count += r.status_count;
                row.error_count += r.error_count;
                *latency_sum += r.avg_latency_ms.unwrap_or(0.0) * r.latency_count as f64;
                row.max_latency_ms = match (row.max_latency_ms, r.max_latency_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        rows.extend(current.map(finish_bucket));
    }
    let total = rows.len();
    let data: Vec<RollupRow> = rows.into_iter().skip(q.offset).take(q.limit).collect();
    let meta = Meta {
        count: data.len(),
        total,
        limit: q.limit,
        offset: q.offset,
        from: bound(q.from),
        to: bound(q.to),
        bucket: Some(bucket.name()),
    };
    Ok(data_response(to_json(&Page { data, meta }), snapshot, headers))
}

/// Average latency weighted by latency_count; error rate from summed counts.
fn finish_bucket((_, mut row, latency_sum): (i64, RollupRow, f64)) -> RollupRow {
    row.avg_latency_ms = (row.latency_count > 0).then(|| latency_sum / row.latency_count as f64);
    row.error_rate = (row.status_count > 0).then(|| row.error_count as f64 / row.status_count as f64);
    row
}

fn services(snapshot: &Snapshot, headers: &RequestHeaders) -> Result<Response, ApiError> {
    let gold = gold(snapshot)?;
    let data: Vec<_> = gold
        .services
        .values()
        .filter_map(|rows| {
            let (first, last) = (rows.first()?, rows.last()?);
            Some(json!({"service": first.service, "rows": rows.len(), "first_minute": first.minute, "last_minute": last.minute}))
        })
        .collect();
    Ok(data_response(to_json(&json!({ "data": data })), snapshot, headers))
}

fn run(snapshot: &Snapshot, id: &str, headers: &RequestHeaders) -> Result<Response, ApiError> {
    let manifest = snapshot
        .runs
        .iter()
        .find(|m| m.run_id == id)
        .ok_or_else(|| ApiError::not_found("unknown_run", format!("No run {id:?} in this output.")))?;
    Ok(data_response(to_json(manifest), snapshot, headers))
}

/// JSON bytes of a value. Our types serialize infallibly (string keys, no
/// custom serializers that fail), so the empty fallback is never taken.
fn to_json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    bytes_response(status, to_json(body))
}

/// A response with a JSON body already serialized.
fn bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 JSON response with caching headers keyed by the snapshot's run id,
/// 304 when the client already has it, gzipped when accepted.
fn data_response(body: Vec<u8>, snapshot: &Snapshot, headers: &RequestHeaders) -> Response {
    let version = snapshot.gold.as_ref().map_or("none", |g| g.run_id.as_str());
    let etag = format!("W/\"{version}-{}\"", snapshot.runs.len());
    let cache = |response: &mut Response| {
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    };
    if headers.if_none_match.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        cache(&mut response);
        return response;
    }
    let (bytes, gzipped) = match accepts_gzip(headers.accept_encoding.as_deref()).then(|| gzip(&body)).flatten() {
        Some(zipped) => (zipped, true),
        None => (body, false),
    };
    let mut response = bytes_response(StatusCode::OK, bytes);
    if gzipped {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    cache(&mut response);
    response
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::fast());
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

fn accepts_gzip(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or("");
            let q_zero = fields.any(|f| f.replace(' ', "") == "q=0" || f.replace(' ', "") == "q=0.0");
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
    })
}

/// Renders every rejection as the JSON error shape; never a 500 for a
/// client's mistake.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(e) = err.find::<ApiError>() {
        e.clone()
    } else if err.is_not_found() {
        ApiError::not_found("not_found", "No such endpoint. See /openapi.json.")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "Only GET is supported.".into(),
            parameter: None,
        }
    } else if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_header", message: e.to_string(), parameter: None }
    } else {
        tracing::error!(?err, "Unhandled rejection.");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "Internal error.".into(),
            parameter: None,
        }
    };
    Ok(json_response(error.status, &error.body()))
}
