//! Routes (warp filters) and the responses they build (README "HTTP API").
//!
//! Every response carries an `x-request-id` (the client's, or a new one);
//! data responses carry a weak `ETag` keyed by the snapshot's run id, answer
//! `If-None-Match` with 304, and are gzipped when the client accepts it.
//!
//! A data request is answered on the async thread when everything it needs
//! is in memory. When it needs the layer files it waits for one of
//! [`COLD_READS`](crate::state::COLD_READS) permits and runs on a blocking thread; if a file it needs
//! was replaced by a newer run, it is answered again, whole, from the newer
//! run's snapshot.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::handlers::{self, Answer, Failure};
use crate::query::{MetricsQuery, RunsQuery};
use crate::snapshot::Snapshot;
use crate::state::{Shared, State};

/// How long a request whose gold was replaced under it waits for the newer
/// snapshot before answering 503.
const STALE_WAIT: Duration = Duration::from_secs(5);

/// Headers that shape a data response.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestHeaders {
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
}

/// All routes, with error recovery, request ids, metrics and the access log.
pub fn routes(state: Shared) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let headers = warp::header::optional::<String>("if-none-match")
        .and(warp::header::optional::<String>("accept-encoding"))
        .map(|if_none_match, accept_encoding| RequestHeaders { if_none_match, accept_encoding });

    let health = warp::path!("health").and(warp::get()).and(with_state.clone()).map(|s: Shared| {
        let (status, body) = handlers::health(&s.snapshot.load());
        json_response(status, &body)
    });
    let metrics = warp::path!("metrics").and(warp::get()).and(with_state.clone()).and(query).and(headers).and_then(
        |s: Shared, raw: String, h: RequestHeaders| async move {
            let q = MetricsQuery::parse(&raw, false).map_err(warp::reject::custom)?;
            answer(s, h, move |s, snapshot, io| handlers::metrics(s, snapshot, &q, io)).await
        },
    );
    let rollup =
        warp::path!("metrics" / "rollup").and(warp::get()).and(with_state.clone()).and(query).and(headers).and_then(
            |s: Shared, raw: String, h: RequestHeaders| async move {
                let q = MetricsQuery::parse(&raw, true).map_err(warp::reject::custom)?;
                answer(s, h, move |s, snapshot, io| handlers::rollup(s, snapshot, &q, io)).await
            },
        );
    let services = warp::path!("services").and(warp::get()).and(with_state.clone()).and(headers).and_then(
        |s: Shared, h: RequestHeaders| async move { answer(s, h, |_, snapshot, _| handlers::services(snapshot)).await },
    );
    let runs = warp::path!("runs").and(warp::get()).and(with_state.clone()).and(query).and(headers).and_then(
        |s: Shared, raw: String, h: RequestHeaders| async move {
            let q = RunsQuery::parse(&raw).map_err(warp::reject::custom)?;
            answer(s, h, move |s, snapshot, io| handlers::runs(s, snapshot, &q, io)).await
        },
    );
    let run = warp::path!("runs" / String).and(warp::get()).and(with_state.clone()).and(headers).and_then(
        |id: String, s: Shared, h: RequestHeaders| async move {
            answer(s, h, move |s, snapshot, io| handlers::run(s, snapshot, &id, io)).await
        },
    );
    let openapi =
        warp::path!("openapi.json").and(warp::get()).map(|| json_response(StatusCode::OK, &crate::openapi::document()));
    let ops = warp::path!("-" / "metrics").and(warp::get()).and(with_state.clone()).map(|s: Shared| {
        let text = s.telemetry.render(&s.snapshot.load(), s.reader.cached_bytes());
        let mut response = Response::new(text.into());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::telemetry::CONTENT_TYPE));
        response
    });

    // Every path but /health needs a token when the server has a tokens
    // file; the page answers for itself (see `dashboard`).
    let authorized = {
        let state = state.clone();
        auth::authorization().and_then(move |value: Option<HeaderValue>| {
            let checked = state.access.check(value.as_ref().map(HeaderValue::as_bytes));
            async move { checked.map(|_| ()).map_err(warp::reject::custom) }
        })
    }
    .untuple_one();
    // GET only: another method is a 405 whether or not a token came with it.
    let guarded = warp::get().and(authorized).and(metrics.or(rollup).or(services).or(runs).or(run).or(openapi).or(ops));
    let api = health.or(crate::dashboard::routes(state.clone())).or(guarded).recover(handle_rejection);
    warp::header::optional::<String>("x-request-id")
        .and(api)
        .map(|id: Option<String>, reply| {
            let id = id.filter(|v| v.len() <= 128).unwrap_or_else(new_request_id);
            warp::reply::with_header(reply, "x-request-id", id)
        })
        .with(warp::log::custom(move |info| {
            let status = info.status().as_u16();
            state.telemetry.observe(info.path(), status, info.elapsed().as_secs_f64());
            // The holder's name, never the token: checked again here, as the
            // log sees the request's headers but not what the routes found.
            let value = info.request_headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
            let caller = state.access.check(value);
            let token = match &caller {
                Ok(Caller::Holder(name)) => name,
                Ok(Caller::Anyone) => "-",
                Err(_) if value.is_some() => "refused",
                Err(_) => "none",
            };
            tracing::info!(
                method = %info.method(),
                path = info.path(),
                status,
                token,
                duration_us = info.elapsed().as_micros() as u64,
                "Request."
            );
        }))
}

fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-{:08x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Answers a data request: from memory on this thread when it can, else on
/// a blocking thread with I/O.
async fn answer<F>(state: Shared, headers: RequestHeaders, compute: F) -> Result<Response, Rejection>
where
    F: Fn(&State, &Snapshot, bool) -> Answer + Send + 'static,
{
    let snapshot = state.snapshot.load_full();
    let tag = etag(&snapshot);
    if let Some(response) = not_modified(&tag, &headers) {
        return Ok(response);
    }
    let answered = match compute(&state, &snapshot, false) {
        Ok(body) => Ok((body, tag)),
        Err(Failure::NeedsIo | Failure::Stale) => {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = state.cold_reads.acquire().await;
            let blocking = state.clone();
            tokio::task::spawn_blocking(move || with_io(&blocking, snapshot, &compute))
                .await
                .unwrap_or_else(|e| Err(ApiError::internal(format!("a blocking read failed: {e}"))))
                // The answer may come from a newer snapshot: tag it with that one's.
                .map(|(body, answered_from)| (body, etag(&answered_from)))
        }
        Err(Failure::Api(e)) => Err(e),
    };
    match answered {
        Ok((body, tag)) => Ok(data_response(body, &tag, &headers)),
        Err(e) => Err(warp::reject::custom(e)),
    }
}

/// Runs `compute` with I/O; when gold was replaced under it, reloads and
/// answers again from the newer snapshot (for up to [`STALE_WAIT`]).
fn with_io<F>(state: &State, mut snapshot: Arc<Snapshot>, compute: &F) -> Result<(Vec<u8>, Arc<Snapshot>), ApiError>
where
    F: Fn(&State, &Snapshot, bool) -> Answer,
{
    let deadline = Instant::now() + STALE_WAIT;
    loop {
        match compute(state, &snapshot, true) {
            Ok(body) => return Ok((body, snapshot)),
            Err(Failure::Api(e)) => return Err(e),
            Err(Failure::NeedsIo) => return Err(ApiError::internal("a read asked for I/O while allowed it")),
            Err(Failure::Stale) if Instant::now() >= deadline => return Err(ApiError::gold_changing()),
            Err(Failure::Stale) => {
                if let Err(e) = state.reload() {
                    tracing::warn!(error = %e.chain(), "Reload after a replaced gold file failed.");
                }
                let fresh = state.snapshot.load_full();
                let run = |s: &Snapshot| s.gold.as_ref().map(|g| g.run_id.clone());
                if run(&fresh) == run(&snapshot) {
                    // The newer run is still publishing: wait for its manifest.
                    std::thread::sleep(Duration::from_millis(100));
                }
                snapshot = fresh;
            }
        }
    }
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

/// The weak ETag of everything a snapshot serves.
fn etag(snapshot: &Snapshot) -> String {
    let version = snapshot.gold.as_ref().map_or("none", |g| g.run_id.as_str());
    format!("W/\"{version}-{}\"", snapshot.runs.len())
}

fn cache_headers(response: &mut Response, etag: &str) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
}

/// A 304 when the client already has what the snapshot tagged `etag` would answer.
fn not_modified(etag: &str, headers: &RequestHeaders) -> Option<Response> {
    let matches = headers.if_none_match.as_deref()?.split(',').any(|t| t.trim() == etag || t.trim() == "*");
    matches.then(|| {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        cache_headers(&mut response, etag);
        response
    })
}

/// A 200 JSON response with caching headers (`etag`: the answering
/// snapshot's), gzipped when accepted.
fn data_response(body: Vec<u8>, etag: &str, headers: &RequestHeaders) -> Response {
    let (bytes, gzipped) = match accepts_gzip(headers.accept_encoding.as_deref()).then(|| gzip(&body)).flatten() {
        Some(zipped) => (zipped, true),
        None => (body, false),
    };
    let mut response = bytes_response(StatusCode::OK, bytes);
    if gzipped {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    cache_headers(&mut response, etag);
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
pub(crate) async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
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
        ApiError::internal("unhandled rejection")
    };
    let mut response = json_response(error.status, &error.body());
    if error.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(crate::auth::CHALLENGE));
    }
    if error.status == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 lists the methods the resource supports.
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    }
    Ok(response)
}
