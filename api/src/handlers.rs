//! What each endpoint answers, computed from one snapshot (README "HTTP API").
//!
//! The data endpoints first run without I/O, from the hot window and the
//! caches. When they need a partition file or a manifest they stop with
//! [`Failure::NeedsIo`], and the route runs them again on a blocking thread
//! with I/O allowed (see [`crate::routes`]). Pages are cut while walking
//! (service, date) by (service, date): a date wholly inside the range and
//! wholly outside the page is counted from its summary, never decoded.

use serde::Serialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use crate::error::ApiError;
use crate::query::{Bucket, MetricsQuery, RunsQuery};
use crate::reader::ReadError;
use crate::slice::{DAY, RollupRow, format_micros};
use crate::snapshot::{Gold, Snapshot};
use crate::state::State;

/// Why an answer was not given.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Needs to read the layer files: run again with I/O.
    NeedsIo,
    /// A pinned file changed: a newer run published; answer from its snapshot.
    Stale,
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NeedsIo => Failure::NeedsIo,
            ReadError::Stale => Failure::Stale,
            ReadError::Storage(e) => {
                tracing::error!(error = %e.chain(), "Reading the output failed.");
                Failure::Api(ApiError::storage("The layer files could not be read; see the server log."))
            }
            ReadError::Invalid(message) => {
                tracing::error!(message, "A gold file does not match the index.");
                Failure::Api(ApiError::storage("A gold file does not match the index; see the server log."))
            }
        }
    }
}

/// A JSON body, or why not.
pub(crate) type Answer = Result<Vec<u8>, Failure>;

fn gold(snapshot: &Snapshot) -> Result<&Gold, ApiError> {
    snapshot.gold.as_deref().ok_or_else(ApiError::unavailable)
}

pub(crate) fn health(snapshot: &Snapshot) -> (StatusCode, Value) {
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
    (if gold.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
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

#[derive(Debug, Serialize)]
struct Page<T> {
    data: T,
    meta: Meta,
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Our types serialize infallibly (string keys, no failing serializers).
    serde_json::to_vec(value).unwrap_or_default()
}

/// `/metrics`: rows ordered by service, minute; one page of them.
pub(crate) fn metrics(state: &State, snapshot: &Snapshot, q: &MetricsQuery, io: bool) -> Answer {
    let gold = gold(snapshot)?;
    let (from, to) = (q.from.unwrap_or(i64::MIN), q.to.unwrap_or(i64::MAX));
    let end = q.offset.saturating_add(q.limit);
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"data\":[");
    let (mut total, mut count) = (0usize, 0usize);
    for service in selected(gold, q) {
        for (date, partition) in gold.dates(from, to) {
            let Some(day) = partition.days.get(service) else { continue };
            if day.last_minute < from || day.first_minute >= to {
                continue;
            }
            let whole = from <= day.first_minute && day.last_minute < to;
            if whole && (total + day.rows <= q.offset || total >= end) {
                total += day.rows;
                continue;
            }
            let Some(slice) = state.reader.slice(gold, date, service, io)? else { continue };
            let rows = slice.range(from, to);
            let first = rows.start + q.offset.saturating_sub(total).min(rows.len());
            let last = rows.start + end.saturating_sub(total).min(rows.len());
            // A row renders to about 320 bytes: one allocation per slice.
            body.reserve((last - first) * 330);
            for i in first..last {
                if count > 0 {
                    body.push(b',');
                }
                slice.write_row(i, &mut body);
                count += 1;
            }
            total += rows.len();
        }
    }
    let meta = Meta {
        count,
        total,
        limit: q.limit,
        offset: q.offset,
        from: q.from.map(format_micros),
        to: q.to.map(format_micros),
        bucket: None,
    };
    body.extend_from_slice(b"],\"meta\":");
    body.extend_from_slice(&to_json(&meta));
    body.push(b'}');
    Ok(body)
}

/// `/metrics/rollup`: rows summed per service and UTC-aligned bucket. Every
/// width divides a day, so buckets never span two dates; a whole day in
/// `1d` buckets is its summary.
pub(crate) fn rollup(state: &State, snapshot: &Snapshot, q: &MetricsQuery, io: bool) -> Answer {
    let bucket = q.bucket.unwrap_or(Bucket::H1);
    let gold = gold(snapshot)?;
    let (from, to) = (q.from.unwrap_or(i64::MIN), q.to.unwrap_or(i64::MAX));
    let end = q.offset.saturating_add(q.limit);
    let mut total = 0usize;
    let mut data: Vec<RollupRow> = Vec::new();
    let mut keep = |row: RollupRow| {
        if (q.offset..end).contains(&total) {
            data.push(row);
        }
        total += 1;
    };
    for service in selected(gold, q) {
        for (date, partition) in gold.dates(from, to) {
            let Some(day) = partition.days.get(service) else { continue };
            if day.last_minute < from || day.first_minute >= to {
                continue;
            }
            if bucket == Bucket::D1 && from <= day.first_minute && day.last_minute < to {
                keep(day.day.row(&day.service, date as i64 * DAY));
                continue;
            }
            let Some(slice) = state.reader.slice(gold, date, service, io)? else { continue };
            slice.rollup(slice.range(from, to), bucket.micros(), &mut keep);
        }
    }
    let meta = Meta {
        count: data.len(),
        total,
        limit: q.limit,
        offset: q.offset,
        from: q.from.map(format_micros),
        to: q.to.map(format_micros),
        bucket: Some(bucket.name()),
    };
    Ok(to_json(&Page { data, meta }))
}

/// `/services`: each service with its row count and first/last minute.
pub(crate) fn services(snapshot: &Snapshot) -> Answer {
    let gold = gold(snapshot)?;
    let data: Vec<Value> = gold
        .services
        .values()
        .map(|s| {
            json!({"service": s.service, "rows": s.rows, "first_minute": format_micros(s.first_minute), "last_minute": format_micros(s.last_minute)})
        })
        .collect();
    Ok(to_json(&json!({ "data": data })))
}

/// `/runs`: one page of manifests, newest first.
pub(crate) fn runs(state: &State, snapshot: &Snapshot, q: &RunsQuery, io: bool) -> Answer {
    let (page, total) = snapshot.runs.page(q.status, q.offset, q.limit);
    let mut body = b"{\"data\":[".to_vec();
    for (i, entry) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&state.reader.manifest(&entry.run_id, io)?);
    }
    body.extend_from_slice(b"],\"meta\":");
    body.extend_from_slice(&to_json(
        &json!({"count": page.len(), "total": total, "limit": q.limit, "offset": q.offset}),
    ));
    body.push(b'}');
    Ok(body)
}

/// `/runs/{run_id}`: one manifest.
pub(crate) fn run(state: &State, snapshot: &Snapshot, id: &str, io: bool) -> Answer {
    let entry = snapshot
        .runs
        .find(id)
        .ok_or_else(|| ApiError::not_found("unknown_run", format!("No run {id:?} in this output.")))?;
    Ok(state.reader.manifest(&entry.run_id, io)?.to_vec())
}
