//! End-to-end: the real `pipeline` builds gold from the fixtures, the real
//! `api` serves it on 127.0.0.1:0, and a second run is picked up by reload.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::*;

fn run(dir: &std::path::Path) {
    let out = pipeline(dir, &["run", "--input", "in", "--output", "out", "--max-reject-ratio", "1"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn api_serves_fixture_gold_rejects_bad_requests_and_reloads_after_a_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture("basic"), &dir.path().join("in"));
    std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
    let server = ApiServer::start(dir.path(), "out", &[]);
    let (status, body) = server.get("/health");
    assert_eq!((status, body["status"].clone()), (503, json!("unavailable")), "no gold before the first run");

    run(dir.path());
    let health = server.wait_for("the first run", |b| b["status"] == "ok");
    let first_run = health["gold"]["run_id"].clone();
    assert_eq!(health["gold"]["rows"], 6);
    assert_eq!(health["gold"]["services"], 4);
    assert_eq!(health["gold"]["first_minute"], "2026-01-12T10:15:00Z");
    assert_eq!(health["gold"]["last_minute"], "2026-01-13T00:00:00Z");

    // Hand-computed gold of fixtures/basic (see pipeline_layers.rs).
    let (status, body) = server.get("/metrics?service=Checkout&from=2026-01-12&to=2026-01-12T10:17:00Z");
    assert_eq!(status, 200);
    assert_eq!(
        body["meta"],
        json!({"count": 2, "total": 2, "limit": 1000, "offset": 0, "from": "2026-01-12T00:00:00Z", "to": "2026-01-12T10:17:00Z"})
    );
    let minute = &body["data"][0];
    assert_eq!(minute["minute"], "2026-01-12T10:15:00Z");
    assert_eq!(
        (minute["request_count"].clone(), minute["avg_latency_ms"].clone(), minute["p50_latency_ms"].clone()),
        (json!(2), json!(9.75), json!(9.75))
    );
    assert_eq!((minute["max_latency_ms"].clone(), minute["error_rate"].clone()), (json!(12.5), json!(0.0)));
    assert_eq!(body["data"][1]["error_rate"], 1.0);
    assert_eq!(body["data"][1]["avg_latency_ms"], Value::Null);

    let (_, body) = server.get("/metrics?service=search,payments");
    let services: Vec<_> = body["data"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["service"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(services, ["payments", "search"]);
    assert_eq!(body["data"][0]["error_rate"], Value::Null, "payments has no status codes");

    let (_, body) = server.get("/metrics/rollup?bucket=1d&service=auth");
    assert_eq!(body["data"][0]["bucket"], "2026-01-12T00:00:00Z");
    assert_eq!(body["data"][0]["request_count"], 3);
    assert_eq!(body["data"][1]["bucket"], "2026-01-13T00:00:00Z");

    let (_, body) = server.get("/services");
    let rows: Vec<_> =
        body["data"].as_array().expect("services").iter().map(|s| (s["service"].clone(), s["rows"].clone())).collect();
    assert_eq!(
        rows,
        [
            (json!("auth"), json!(2)),
            (json!("checkout"), json!(2)),
            (json!("payments"), json!(1)),
            (json!("search"), json!(1))
        ]
    );

    let (_, runs) = server.get("/runs");
    assert_eq!(runs["data"][0]["run_id"], first_run);
    assert_eq!(runs["meta"], json!({"count": 1, "total": 1, "limit": 100, "offset": 0}));
    let (status, manifest) = server.get(&format!("/runs/{}", first_run.as_str().unwrap_or_default()));
    assert_eq!((status, manifest["rows"]["silver_events"].clone()), (200, json!(10)));

    for (path, status, parameter) in [
        ("/metrics?from=not-a-date", 400, json!("from")),
        ("/metrics?from=2026-01-13&to=2026-01-12", 400, json!("to")),
        ("/metrics?limit=0", 400, json!("limit")),
        ("/metrics?offset=1.5", 400, json!("offset")),
        ("/metrics/rollup?bucket=2h", 400, json!("bucket")),
        ("/metrics?unknown=1", 400, json!("unknown")),
        ("/no/such/path", 404, Value::Null),
        ("/runs/20000101T000000000Z-00000000", 404, Value::Null),
    ] {
        let (got, body) = server.get(path);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["parameter"], parameter, "{path}: {body}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{path}: {body}");
    }

    // A late event arrives; the server picks up the new run by itself.
    std::fs::write(dir.path().join("in/e_late.csv"), "event_id,service,event_type,timestamp,latency_ms,status_code\nlate1,checkout,request,2026-01-12T10:15:45Z,1.5,200\n").expect("write");
    run(dir.path());
    server.wait_for("the second run", |b| b["gold"]["run_id"] != first_run && b["status"] == "ok");
    let (_, body) = server.get("/metrics?service=checkout&to=2026-01-12T10:16:00Z");
    assert_eq!(body["data"][0]["request_count"], 3);
    assert_eq!(body["data"][0]["avg_latency_ms"], 7.0);
}

#[test]
fn sigterm_shuts_the_server_down_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
    let mut server = ApiServer::start(dir.path(), "out", &[]);
    assert_eq!(server.get("/health").0, 503);
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill(1)");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
