//! Query parameters of the data endpoints, parsed and validated into typed
//! values; every problem is a 400 naming the parameter.

use chrono::{DateTime, NaiveDate};
use pipeline::runs::RunStatus;

use crate::error::ApiError;

pub(crate) const DEFAULT_LIMIT: usize = 1000;
pub(crate) const MAX_LIMIT: usize = 10_000;
/// `/metrics/rollup` rows are small: one request holds a sparkline of every
/// service (1,000 services × 48 buckets) for the dashboard's overview.
pub(crate) const ROLLUP_MAX_LIMIT: usize = 100_000;
pub(crate) const RUNS_DEFAULT_LIMIT: usize = 100;
pub(crate) const RUNS_MAX_LIMIT: usize = 1000;
/// Run statuses a `/runs` page may be filtered by.
pub(crate) const STATUSES: [RunStatus; 3] = [RunStatus::Succeeded, RunStatus::QualityGateFailed, RunStatus::Failed];
/// Longer parameter values are refused outright.
const MAX_VALUE_LEN: usize = 2048;
const MAX_SERVICES: usize = 100;

/// A rollup bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    M1,
    M5,
    M15,
    H1,
    D1,
}

impl Bucket {
    pub(crate) const NAMES: [&'static str; 5] = ["1m", "5m", "15m", "1h", "1d"];

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "1m" => Bucket::M1,
            "5m" => Bucket::M5,
            "15m" => Bucket::M15,
            "1h" => Bucket::H1,
            "1d" => Bucket::D1,
            _ => return None,
        })
    }

    pub(crate) fn micros(self) -> i64 {
        60_000_000
            * match self {
                Bucket::M1 => 1,
                Bucket::M5 => 5,
                Bucket::M15 => 15,
                Bucket::H1 => 60,
                Bucket::D1 => 1440,
            }
    }

    pub(crate) fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Parameters of `/metrics` and `/metrics/rollup`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricsQuery {
    /// Lowercased service names, in request order, deduplicated; empty = all.
    pub(crate) services: Vec<String>,
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
    pub(crate) limit: usize,
    pub(crate) offset: usize,
    pub(crate) bucket: Option<Bucket>,
}

impl MetricsQuery {
    /// Parses a raw query string; `rollup` allows (and defaults) `bucket`.
    pub(crate) fn parse(raw: &str, rollup: bool) -> Result<Self, ApiError> {
        let mut q =
            MetricsQuery { services: Vec::new(), from: None, to: None, limit: DEFAULT_LIMIT, offset: 0, bucket: None };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            check_value(&key, &value)?;
            if key != "service" {
                check_once(&mut seen, &key)?;
            }
            match key.as_ref() {
                "service" => {
                    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let name = name.to_lowercase();
                        if !q.services.contains(&name) {
                            q.services.push(name);
                        }
                    }
                    if q.services.len() > MAX_SERVICES {
                        return Err(ApiError::bad_parameter("service", format!("at most {MAX_SERVICES} services")));
                    }
                }
                "from" => q.from = Some(parse_instant("from", &value)?),
                "to" => q.to = Some(parse_instant("to", &value)?),
                "limit" => q.limit = parse_limit(&value, if rollup { ROLLUP_MAX_LIMIT } else { MAX_LIMIT })?,
                "offset" => q.offset = parse_offset(&value)?,
                "bucket" if rollup => {
                    q.bucket = Some(Bucket::parse(&value).ok_or_else(|| {
                        ApiError::bad_parameter("bucket", format!("must be one of {}", Bucket::NAMES.join(", ")))
                    })?)
                }
                other => return Err(ApiError::bad_parameter(other, "unknown parameter")),
            }
        }
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from >= to
        {
            return Err(ApiError::bad_parameter("to", "must be after from"));
        }
        if rollup && q.bucket.is_none() {
            q.bucket = Some(Bucket::H1);
        }
        Ok(q)
    }
}

/// Parameters of `/runs`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunsQuery {
    pub(crate) status: Option<RunStatus>,
    pub(crate) limit: usize,
    pub(crate) offset: usize,
}

impl RunsQuery {
    pub(crate) fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut q = RunsQuery { status: None, limit: RUNS_DEFAULT_LIMIT, offset: 0 };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            check_value(&key, &value)?;
            check_once(&mut seen, &key)?;
            match key.as_ref() {
                "status" => {
                    q.status = Some(STATUSES.into_iter().find(|s| s.as_str() == value).ok_or_else(|| {
                        let names: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
                        ApiError::bad_parameter("status", format!("must be one of {}", names.join(", ")))
                    })?)
                }
                "limit" => q.limit = parse_limit(&value, RUNS_MAX_LIMIT)?,
                "offset" => q.offset = parse_offset(&value)?,
                other => return Err(ApiError::bad_parameter(other, "unknown parameter")),
            }
        }
        Ok(q)
    }
}

fn check_value(key: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ApiError::bad_parameter(key, format!("value longer than {MAX_VALUE_LEN} characters")));
    }
    Ok(())
}

fn check_once(seen: &mut Vec<String>, key: &str) -> Result<(), ApiError> {
    if seen.iter().any(|k| k == key) {
        return Err(ApiError::bad_parameter(key, "given more than once"));
    }
    seen.push(key.to_string());
    Ok(())
}

fn parse_limit(value: &str, max: usize) -> Result<usize, ApiError> {
    let limit = parse_count("limit", value)?;
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", format!("must be between 1 and {max}")));
    }
    Ok(limit)
}

/// RFC 3339 or `YYYY-MM-DD` (midnight UTC), within years 0000–9999 (UTC), as µs.
fn parse_instant(name: &str, value: &str) -> Result<i64, ApiError> {
    let micros = if value.len() == 10 {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
    } else {
        DateTime::parse_from_rfc3339(value).ok().and_then(|t| t.timestamp_micros().into())
    };
    micros.filter(|m| (-62_167_219_200_000_000..253_402_300_800_000_000).contains(m)).ok_or_else(|| {
        ApiError::bad_parameter(name, format!("{value:?} is not an RFC 3339 timestamp or YYYY-MM-DD date"))
    })
}

fn parse_count(name: &str, value: &str) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .map_err(|_| ApiError::bad_parameter(name, format!("{value:?} is not a non-negative integer")))
}

/// An offset: any non-negative integer; one past every row is an empty page.
fn parse_offset(value: &str) -> Result<usize, ApiError> {
    parse_count("offset", value).or_else(|e| {
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        if digits { Ok(usize::MAX) } else { Err(e) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(raw: &str) -> Option<String> {
        MetricsQuery::parse(raw, true).err().and_then(|e| e.parameter)
    }

    #[test]
    fn services_repeat_or_comma_separate_case_insensitively() {
        let q = MetricsQuery::parse("service=Checkout,search&service=CHECKOUT&service=auth", false).expect("valid");
        assert_eq!(q.services, ["checkout", "search", "auth"]);
        assert_eq!((q.limit, q.offset, q.bucket), (DEFAULT_LIMIT, 0, None));
    }

    #[test]
    fn dates_and_rfc3339_are_accepted() {
        let q = MetricsQuery::parse("from=2026-01-12&to=2026-01-12T01:00:00.000001%2B01:00", false).expect("valid");
        assert_eq!(q.from, Some(1_768_176_000_000_000));
        assert_eq!(q.to, Some(1_768_176_000_000_000 + 1));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert_eq!(param("from=yesterday"), Some("from".into()));
        assert_eq!(param("to=2026-13-01"), Some("to".into()));
        assert_eq!(param("from=2026-01-12&to=2026-01-12"), Some("to".into()));
        assert_eq!(param("limit=0"), Some("limit".into()));
        assert_eq!(param("limit=100001"), Some("limit".into()), "rollup's maximum");
        assert!(MetricsQuery::parse("limit=100000", true).is_ok());
        let metrics_limit = MetricsQuery::parse("limit=10001", false).err().and_then(|e| e.parameter);
        assert_eq!(metrics_limit, Some("limit".into()), "/metrics' maximum");
        assert_eq!(param("limit=-1"), Some("limit".into()));
        assert_eq!(param("offset=x"), Some("offset".into()));
        assert_eq!(param("bucket=2h"), Some("bucket".into()));
        assert_eq!(param("servce=a"), Some("servce".into()));
        assert_eq!(param("limit=1&limit=2"), Some("limit".into()));
        assert_eq!(param(&format!("service={}", "a".repeat(3000))), Some("service".into()));
        assert_eq!(param("from=99999-01-01T00:00:00Z"), Some("from".into()));
        assert_eq!(MetricsQuery::parse("bucket=1h", false).err().and_then(|e| e.parameter), Some("bucket".into()));
    }

    #[test]
    fn runs_pages_default_to_100_and_filter_by_status() {
        assert_eq!(RunsQuery::parse("").expect("valid"), RunsQuery { status: None, limit: 100, offset: 0 });
        let q = RunsQuery::parse("status=quality_gate_failed&limit=1000&offset=7").expect("valid");
        assert_eq!(q, RunsQuery { status: Some(RunStatus::QualityGateFailed), limit: 1000, offset: 7 });
        let param = |raw: &str| RunsQuery::parse(raw).err().and_then(|e| e.parameter);
        assert_eq!(param("limit=1001"), Some("limit".into()));
        assert_eq!(param("limit=0"), Some("limit".into()));
        assert_eq!(param("status=ok"), Some("status".into()));
        assert_eq!(param("offset=-1"), Some("offset".into()));
        assert_eq!(param("service=a"), Some("service".into()));
        assert_eq!(param("limit=1&limit=2"), Some("limit".into()));
    }

    #[test]
    fn any_non_negative_offset_is_accepted_and_years_0000_to_9999() {
        let huge = "375551720631127028222918656";
        assert_eq!(MetricsQuery::parse(&format!("offset={huge}"), false).map(|q| q.offset).ok(), Some(usize::MAX));
        assert_eq!(RunsQuery::parse(&format!("offset={huge}")).map(|q| q.offset).ok(), Some(usize::MAX));
        assert!(MetricsQuery::parse("from=0001-01-01&to=0001-01-01T00:00:01Z", false).is_ok());
        assert_eq!(param("offset=1e3"), Some("offset".into()));
    }

    #[test]
    fn rollup_bucket_defaults_to_one_hour() {
        assert_eq!(MetricsQuery::parse("", true).expect("valid").bucket, Some(Bucket::H1));
        assert_eq!(Bucket::parse("15m").map(Bucket::micros), Some(900_000_000));
    }
}
