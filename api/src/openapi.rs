//! The OpenAPI 3 description of every endpoint, served at `/openapi.json`.

use serde_json::{Value, json};

/// Paths the server answers, as documented (the tests hold the routes to them).
#[cfg(test)]
pub(crate) const PATHS: [&str; 9] = [
    "/",
    "/health",
    "/metrics",
    "/metrics/rollup",
    "/services",
    "/runs",
    "/runs/{run_id}",
    "/openapi.json",
    "/-/metrics",
];

pub(crate) fn document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_response =
        |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let services = json!({"name": "service", "in": "query", "required": false, "description": "Service name, case-insensitive; repeat or comma-separate for several. All services when absent.", "schema": {"type": "string", "maxLength": 2048}});
    let instant = json!({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]});
    let from = json!({"name": "from", "in": "query", "required": false, "description": "Inclusive start: RFC 3339 or YYYY-MM-DD (UTC midnight), years 0000-9999.", "schema": instant});
    let to = json!({"name": "to", "in": "query", "required": false, "description": "Exclusive end: RFC 3339 or YYYY-MM-DD; must be after from (400 otherwise).", "schema": instant});
    let limit = json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}});
    let offset = json!({"name": "offset", "in": "query", "required": false, "description": "Rows to skip; past the last row the page is empty.", "schema": {"type": "integer", "minimum": 0, "default": 0}});
    let rollup_limit = json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000}});
    let bucket = json!({"name": "bucket", "in": "query", "required": false, "schema": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"], "default": "1h"}});
    let cached = |schema: Value| {
        json!({
            "description": "OK. Weak ETag keyed by the snapshot's run id; gzip when accepted.",
            "headers": {"ETag": {"schema": {"type": "string"}}, "x-request-id": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": schema}}
        })
    };
    let not_modified = json!({"description": "Not modified (If-None-Match matched the ETag)."});
    let with_links = |mut response: Value, links: Value| {
        response["links"] = links;
        response
    };
    let run_limit = json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}});
    let status = json!({"name": "status", "in": "query", "required": false, "description": "Only runs with this status.", "schema": {"type": "string", "enum": ["succeeded", "quality_gate_failed", "failed"]}});
    let unavailable = "No gold loaded yet, the layer files could not be read, or a newer run is publishing (retry).";
    let number = json!({"type": ["number", "null"]});
    let unauthorized = json!({"description": "A tokens file is configured and the request has no valid `Authorization: Bearer <token>`.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": error}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "minutely gold API", "version": env!("CARGO_PKG_VERSION"), "description": "Per-service, per-minute request metrics from the gold layer."},
        "paths": {
            "/": {"get": {"operationId": "dashboard", "summary": "The dashboard: an overview of every service, charts per service, the latest runs (HTML, one self-contained page).", "responses": {"200": {"description": "The dashboard page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                "401": {"description": "A token is needed: the page (which asks for one) to a browser, the JSON error to other clients.", "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": error}}}}}},
            "/health": {"get": {"operationId": "health", "summary": "Whether gold is loaded, and what it holds. Never needs a token.", "security": [], "responses": {
                "200": {"description": "Gold loaded.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "No gold loaded yet (same shape, status unavailable).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
            }}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Gold rows ordered by service, minute.", "parameters": [services, from, to, limit, offset], "responses": {
                "200": cached(json!({"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/MetricRow"}}, "meta": {"$ref": "#/components/schemas/Meta"}}})),
                "304": not_modified, "400": error_response("Invalid parameter."), "503": error_response(unavailable), "401": unauthorized.clone()
            }}},
            "/metrics/rollup": {"get": {"operationId": "rollup", "summary": "Gold rows summed per service and UTC-aligned bucket.", "parameters": [services, from, to, bucket, rollup_limit, offset], "responses": {
                "200": cached(json!({"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/RollupRow"}}, "meta": {"$ref": "#/components/schemas/Meta"}}})),
                "304": not_modified, "400": error_response("Invalid parameter."), "503": error_response(unavailable), "401": unauthorized.clone()
            }}},
            "/services": {"get": {"operationId": "services", "summary": "Each service with its row count and first/last minute.", "responses": {
                "200": cached(json!({"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object", "properties": {
                    "service": {"type": "string"}, "rows": {"type": "integer"}, "first_minute": {"type": "string", "format": "date-time"}, "last_minute": {"type": "string", "format": "date-time"}}}}}})),
                "304": not_modified, "503": error_response("No gold loaded yet."), "401": unauthorized.clone()
            }}},
            "/runs": {"get": {"operationId": "runs", "summary": "Run manifests, newest first, one page at a time.", "parameters": [status, run_limit, offset], "responses": {
                "200": with_links(cached(json!({"type": "object", "required": ["data", "meta"], "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Manifest"}}, "meta": {"$ref": "#/components/schemas/RunsMeta"}}})),
                    json!({"newestRun": {"operationId": "run", "parameters": {"run_id": "$response.body#/data/0/run_id"}, "description": "The newest run on the page."}})),
                "304": not_modified, "400": error_response("Invalid parameter."), "503": error_response("The manifests could not be read."), "401": unauthorized.clone()
            }}},
            "/runs/{run_id}": {"get": {"operationId": "run", "summary": "One run manifest.", "parameters": [{"name": "run_id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {
                "200": cached(json!({"$ref": "#/components/schemas/Manifest"})), "304": not_modified, "404": error_response("Unknown run id."), "503": error_response("The manifest could not be read."), "401": unauthorized.clone()
            }}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document.", "responses": {"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {}}}, "401": unauthorized.clone()}}},
            "/-/metrics": {"get": {"operationId": "serverMetrics", "summary": "The server's own metrics (requests, durations, snapshot, cache, reloads, memory).", "responses": {"200": {"description": "Prometheus text exposition (OpenMetrics).", "content": {crate::telemetry::CONTENT_TYPE: {"schema": {"type": "string"}}}}, "401": unauthorized}}}
        },
        "security": [{"bearer": []}, {}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Needed on every path but /health when the server has a tokens file (README, \"Access\")."}}, "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "parameter"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "parameter": {"type": ["string", "null"]}}}}},
            "Health": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}, "gold": {"type": "object", "properties": {
                "rows": {"type": "integer"}, "services": {"type": "integer"}, "first_minute": {"type": ["string", "null"]}, "last_minute": {"type": ["string", "null"]},
                "run_id": {"type": ["string", "null"]}, "loaded_at": {"type": ["string", "null"]}}}}},
            "RunsMeta": {"type": "object", "required": ["count", "total", "limit", "offset"], "properties": {"count": {"type": "integer"}, "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}},
            "Meta": {"type": "object", "properties": {"count": {"type": "integer"}, "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]}, "bucket": {"type": "string"}}},
            "MetricRow": {"type": "object", "properties": {
                "service": {"type": "string"}, "minute": {"type": "string", "format": "date-time"}, "request_count": {"type": "integer"}, "latency_count": {"type": "integer"},
                "avg_latency_ms": number, "p50_latency_ms": number, "p95_latency_ms": number, "p99_latency_ms": number, "max_latency_ms": number,
                "status_count": {"type": "integer"}, "error_count": {"type": "integer"}, "error_rate": number}},
            "RollupRow": {"type": "object", "properties": {
                "service": {"type": "string"}, "bucket": {"type": "string", "format": "date-time"}, "request_count": {"type": "integer"}, "latency_count": {"type": "integer"},
                "avg_latency_ms": number, "max_latency_ms": number, "max_p99_latency_ms": number, "status_count": {"type": "integer"}, "error_count": {"type": "integer"}, "error_rate": number}},
            "Manifest": {"type": "object", "description": "A run manifest as written to _runs/<run_id>.json.", "properties": {
                "run_id": {"type": "string"}, "status": {"type": "string", "enum": ["succeeded", "quality_gate_failed", "failed"]}}}
        }}
    })
}
