//! The one API error type: a status, a stable code, a message, and the
//! parameter at fault. Rendered as `{"error":{"code","message","parameter"}}`.

use serde::Serialize;
use warp::http::StatusCode;

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) parameter: Option<String>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// A 400 naming the parameter at fault.
    pub(crate) fn bad_parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            parameter: Some(parameter.to_string()),
        }
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code, message: message.into(), parameter: None }
    }

    pub(crate) fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "No gold layer has been loaded yet.".into(),
            parameter: None,
        }
    }

    /// A 503: the layer files could not be read; the client may retry.
    pub(crate) fn storage(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "storage_unavailable",
            message: message.into(),
            parameter: None,
        }
    }

    /// A 503: gold is being replaced by a newer run; the client may retry.
    pub(crate) fn gold_changing() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "gold_changing",
            message: "A newer run is publishing gold; retry in a moment.".into(),
            parameter: None,
        }
    }

    /// A 500: a bug, never a client's mistake. The detail goes to the log.
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(detail, "Internal error.");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "Internal error.".into(),
            parameter: None,
        }
    }

    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail { code: self.code, message: &self.message, parameter: self.parameter.as_deref() },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub(crate) code: &'a str,
    pub(crate) message: &'a str,
    pub(crate) parameter: Option<&'a str>,
}
