//! End-to-end: the real `pipeline run` on the hand-written fixture set in
//! `fixtures/basic`, every layer compared with rows worked out by hand.

use std::path::Path;

use tests::*;

struct Layers {
    bronze: polars::prelude::DataFrame,
    events: polars::prelude::DataFrame,
    rejects: polars::prelude::DataFrame,
    gold: polars::prelude::DataFrame,
}

fn run_basic(out: &Path) -> (std::process::Output, Layers) {
    let input = fixture("basic");
    let output = pipeline(
        out,
        &["run", "--input", input.to_str().expect("utf-8 path"), "--output", "out", "--max-reject-ratio", "0.6"],
    );
    let root = out.join("out");
    let layers = Layers {
        bronze: sorted(&read_layer(&root.join("bronze/events"), "ingest_date"), &["_source_file", "_source_line"]),
        events: sorted(&read_layer(&root.join("silver/events"), "event_date"), &["_source_file", "_source_line"]),
        rejects: sorted(&read_layer(&root.join("silver/rejects"), "ingest_date"), &["_source_file", "_source_line"]),
        gold: read_layer(&root.join("gold/service_minute_metrics"), "event_date"),
    };
    (output, layers)
}

fn basic() -> (tempfile::TempDir, std::process::Output, Layers) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (output, layers) = run_basic(dir.path());
    (dir, output, layers)
}

#[test]
fn explicit_missing_config_file_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = pipeline(dir.path(), &["run", "--config", "nope.toml", "--input", ".", "--output", "out"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope.toml"), "{}", text(&out));
}

#[test]
fn bronze_keeps_every_record_as_read_with_lineage() {
    let (_dir, out, layers) = basic();
    assert!(out.status.success(), "{}", text(&out));
    let b = &layers.bronze;
    let files: Vec<_> = strs(b, "_source_file").into_iter().flatten().collect();
    let lines = i64s(b, "_source_line");
    let expected_lines: Vec<(&str, i64)> = vec![
        ("a_bom_crlf.csv", 2),
        ("a_bom_crlf.csv", 3),
        ("a_bom_crlf.csv", 5),
        ("a_bom_crlf.csv", 7),
        ("b_missing_columns.csv", 2),
        ("c_events.ndjson", 1),
        ("c_events.ndjson", 3),
        ("c_events.ndjson", 4),
        ("c_events.ndjson", 5),
    ];
    let got: Vec<(String, i64)> = files.iter().cloned().zip(lines.iter().map(|l| l.expect("line"))).collect();
    let want: Vec<(String, i64)> = expected_lines.iter().map(|(f, l)| (f.to_string(), *l)).collect();
    assert_eq!(&got[..9], &want[..], "records, physical start lines, blank lines skipped");
    assert_eq!(b.height(), 9 + 12, "d_rules.csv has 12 records; notes.txt is ignored");

    // Values exactly as read: untrimmed, quotes and line breaks kept.
    let service = strs(b, "service");
    assert_eq!(service[0], s(" Checkout "));
    let user = strs(b, "user_id");
    assert_eq!(user[1], s("u2, \"quoted\""));
    assert_eq!(user[2], s("multi\r\nline"));
    assert_eq!(strs(b, "_extra")[0], s(r#"{"region":"eu"}"#));
    // Malformed CSV record: only _raw.
    assert_eq!(strs(b, "_raw")[3], s("e4,checkout,request,2026-01-12T10:16:05Z,3,404"));
    assert_eq!(strs(b, "event_id")[3], None);
    // Missing columns are null; present values stay text.
    assert_eq!((strs(b, "latency_ms")[4].clone(), strs(b, "timestamp")[4].clone()), (None, s("1768213020")));
    // NDJSON: numbers as their JSON text, objects compact, null absent, unknown keys in _extra.
    assert_eq!(strs(b, "timestamp")[5], s("1768213080000"));
    assert_eq!(strs(b, "latency_ms")[5], s("20"));
    assert_eq!(strs(b, "_extra")[5], s(r#"{"tags":{"a":1}}"#));
    assert_eq!(strs(b, "_raw")[6], s("[1,2]"));
    assert_eq!(strs(b, "status_code")[7], s("503.0"));
    assert_eq!(strs(b, "user_id")[7], None);
    assert_eq!(strs(b, "_extra")[7], s(r#"{"debug":true}"#));
    assert_eq!(strs(b, "_raw")[8], s(r#"{"event_id": "n3", "service": "search""#));
    // Lineage: one run id and ingest time for the whole run.
    let run_ids: std::collections::BTreeSet<_> = strs(b, "_run_id").into_iter().collect();
    assert_eq!(run_ids.len(), 1);
    assert!(times(b, "_ingested_at").iter().all(Option::is_some));
}

#[test]
fn silver_events_and_rejects_follow_every_rule() {
    let (_dir, out, layers) = basic();
    assert!(out.status.success(), "{}", text(&out));
    let e = &layers.events;
    let ids: Vec<_> = strs(e, "event_id").into_iter().flatten().collect();
    assert_eq!(ids, ["e1", "e2", "e3", "p1", "n1", "n2", "r1", "r1", "r11", "r12"]);
    assert_eq!(
        strs(e, "service"),
        ["checkout", "checkout", "checkout", "payments", "search", "search", "auth", "auth", "auth", "auth"].map(s)
    );
    assert_eq!(strs(e, "event_type")[9], s("login"));
    assert_eq!(
        times(e, "event_time"),
        [
            "2026-01-12T10:15:00.000000Z",
            "2026-01-12T10:15:30.123456Z",
            "2026-01-12T10:16:00.000000Z",
            "2026-01-12T10:17:00.000000Z",
            "2026-01-12T10:18:00.000000Z",
            "2026-01-12T10:18:30.000000Z",
            "2026-01-12T10:15:10.000000Z",
            "2026-01-13T00:00:00.000000Z",
            "2026-01-12T10:15:20.500000Z",
            "2026-01-12T10:15:30.000000Z",
        ]
        .map(s)
    );
    assert_eq!(
        f64s(e, "latency_ms"),
        [Some(12.5), Some(7.0), None, None, Some(20.0), Some(30.5), Some(5.0), Some(9.0), None, None]
    );
    assert_eq!(
        i64s(e, "status_code"),
        [Some(200), Some(200), Some(500), None, Some(200), Some(503), Some(200), Some(200), None, None]
    );
    assert_eq!(strs(e, "user_id")[1], s("u2, \"quoted\""));
    assert_eq!(strs(e, "user_id")[9], s("U12"));
    assert_eq!(strs(e, "event_date")[7], s("2026-01-13"));

    let r = &layers.rejects;
    let got: Vec<(String, i64, String)> = strs(r, "_source_file")
        .into_iter()
        .zip(i64s(r, "_source_line"))
        .zip(strs(r, "reject_reason"))
        .map(|((f, l), reason)| (f.expect("file"), l.expect("line"), reason.expect("reason")))
        .collect();
    let want = [
        ("a_bom_crlf.csv", 7, "malformed_row"),
        ("c_events.ndjson", 3, "malformed_row"),
        ("c_events.ndjson", 5, "malformed_row"),
        ("d_rules.csv", 3, "missing_event_id"),
        ("d_rules.csv", 4, "missing_service"),
        ("d_rules.csv", 5, "missing_event_type"),
        ("d_rules.csv", 6, "missing_timestamp"),
        ("d_rules.csv", 7, "invalid_timestamp"),
        ("d_rules.csv", 8, "timestamp_out_of_range"),
        ("d_rules.csv", 9, "missing_event_id"),
        ("d_rules.csv", 10, "duplicate_event_id"),
    ];
    assert_eq!(got, want.map(|(f, l, r)| (f.to_string(), l, r.to_string())));
    let all_reasons =
        r.column("reject_reasons").expect("column").list().expect("list").get_as_series(9).expect("row 9");
    let all_reasons: Vec<_> = all_reasons.str().expect("strings").iter().flatten().collect();
    assert_eq!(all_reasons, ["missing_event_id", "missing_service", "missing_event_type", "invalid_timestamp"]);
    // Rejects carry the bronze columns untouched.
    assert_eq!(strs(r, "event_type")[5], s(" - "));
    assert_eq!(layers.bronze.height(), e.height() + r.height(), "every bronze row in exactly one of events/rejects");
}

#[test]
fn gold_metrics_match_hand_computed_values() {
    let (_dir, out, layers) = basic();
    assert!(out.status.success(), "{}", text(&out));
    let g = sorted(&layers.gold, &["event_date", "service", "minute"]);
    let key: Vec<(String, String)> = strs(&g, "event_date")
        .into_iter()
        .zip(strs(&g, "service"))
        .map(|(d, s)| (d.expect("date"), s.expect("service")))
        .collect();
    let want_key = [
        ("2026-01-12", "auth"),
        ("2026-01-12", "checkout"),
        ("2026-01-12", "checkout"),
        ("2026-01-12", "payments"),
        ("2026-01-12", "search"),
        ("2026-01-13", "auth"),
    ];
    assert_eq!(key, want_key.map(|(d, s)| (d.to_string(), s.to_string())));
    assert_eq!(
        times(&g, "minute"),
        [
            "2026-01-12T10:15:00.000000Z",
            "2026-01-12T10:15:00.000000Z",
            "2026-01-12T10:16:00.000000Z",
            "2026-01-12T10:17:00.000000Z",
            "2026-01-12T10:18:00.000000Z",
            "2026-01-13T00:00:00.000000Z",
        ]
        .map(s)
    );
    assert_eq!(i64s(&g, "request_count"), [3, 2, 1, 1, 2, 1].map(Some));
    assert_eq!(i64s(&g, "latency_count"), [1, 2, 0, 0, 2, 1].map(Some));
    assert_eq!(f64s(&g, "avg_latency_ms"), [Some(5.0), Some(9.75), None, None, Some(25.25), Some(9.0)]);
    assert_eq!(f64s(&g, "p50_latency_ms"), [Some(5.0), Some(9.75), None, None, Some(25.25), Some(9.0)]);
    let close = |got: Vec<Option<f64>>, want: [Option<f64>; 6]| {
        for (g, w) in got.iter().zip(want) {
            match (g, w) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}"),
                _ => assert_eq!(*g, w, "{got:?} vs {want:?}"),
            }
        }
    };
    // Linear interpolation: 7 + 0.95 × (12.5 − 7), 20 + 0.95 × (30.5 − 20), ...
    close(f64s(&g, "p95_latency_ms"), [Some(5.0), Some(12.225), None, None, Some(29.975), Some(9.0)]);
    close(f64s(&g, "p99_latency_ms"), [Some(5.0), Some(12.445), None, None, Some(30.395), Some(9.0)]);
    assert_eq!(f64s(&g, "max_latency_ms"), [Some(5.0), Some(12.5), None, None, Some(30.5), Some(9.0)]);
    assert_eq!(i64s(&g, "status_count"), [1, 2, 1, 0, 2, 1].map(Some));
    assert_eq!(i64s(&g, "error_count"), [0, 0, 1, 0, 1, 0].map(Some));
    assert_eq!(f64s(&g, "error_rate"), [Some(0.0), Some(0.0), Some(1.0), None, Some(0.5), Some(0.0)]);
    let dtypes: Vec<String> = g.dtypes().iter().map(|d| d.to_string()).collect();
    assert_eq!(dtypes[..4], ["str", "datetime[μs, UTC]", "i64", "i64"]);
}

#[test]
fn manifest_records_counts_and_second_run_finds_nothing_new() {
    let (dir, out, _layers) = basic();
    assert!(out.status.success(), "{}", text(&out));
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("out/_runs")).expect("runs dir").flatten().collect();
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].path()).expect("read manifest")).expect("json manifest");
    assert_eq!(manifest["status"], "succeeded");
    assert_eq!(manifest["rows"]["bronze"], 21);
    assert_eq!(manifest["rows"]["silver_events"], 10);
    assert_eq!(manifest["rows"]["silver_rejects"], 11);
    assert_eq!(manifest["rejects_by_reason"]["malformed_row"], 3);
    assert_eq!(manifest["rejects_by_reason"]["missing_event_id"], 2);
    assert_eq!(
        manifest["counters"],
        serde_json::json!({"latency_invalid": 1, "latency_missing": 3, "status_invalid": 1, "status_missing": 2})
    );
    assert_eq!(manifest["gold_partitions"], serde_json::json!(["2026-01-12", "2026-01-13"]));
    let files: Vec<_> =
        manifest["files"].as_array().expect("files").iter().map(|f| f["path"].as_str().unwrap_or_default()).collect();
    assert_eq!(files, ["a_bom_crlf.csv", "b_missing_columns.csv", "c_events.ndjson", "d_rules.csv"]);
    assert_eq!(manifest["files"][2]["malformed"], 2);
    assert!(!dir.path().join("out/_staging").exists() || parquet_files(&dir.path().join("out/_staging")).is_empty());

    let input = fixture("basic");
    let again = pipeline(
        dir.path(),
        &["run", "--input", input.to_str().expect("utf-8"), "--output", "out", "--max-reject-ratio", "0.6"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing new"), "{}", text(&again));
    assert_eq!(std::fs::read_dir(dir.path().join("out/_runs")).expect("runs").count(), 1);
}

#[test]
fn quality_gate_exits_3_but_writes_layers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = fixture("basic");
    let out = pipeline(dir.path(), &["run", "--input", input.to_str().expect("utf-8"), "--output", "out"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("quality gate"), "{}", text(&out));
    assert!(!parquet_files(&dir.path().join("out/gold")).is_empty());
    let runs = std::fs::read_dir(dir.path().join("out/_runs")).expect("runs").flatten().next().expect("a manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(runs.path()).expect("read")).expect("json");
    assert_eq!(manifest["status"], "quality_gate_failed");
}

#[test]
fn gzip_files_are_read_and_ignore_rules_hold() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("_tmp")).expect("dirs");
    std::fs::create_dir_all(input.join("day")).expect("dirs");
    let csv = "event_id,service,event_type,timestamp\ng1,api,request,2026-01-12T10:00:00Z\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).expect("gzip");
    std::fs::write(input.join("day/x.csv.gz"), gz.finish().expect("gzip")).expect("write");
    let ndjson =
        "{\"event_id\":\"g2\",\"service\":\"api\",\"event_type\":\"request\",\"timestamp\":\"2026-01-12T10:00:01Z\"}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(ndjson.as_bytes()).expect("gzip");
    std::fs::write(input.join("day/y.jsonl.gz"), gz.finish().expect("gzip")).expect("write");
    for ignored in ["_tmp/z.csv", ".hidden.csv", "day/.partial.ndjson", "notes.json", "x.csv.bak"] {
        std::fs::write(input.join(ignored), csv).expect("write");
    }
    let out = pipeline(dir.path(), &["run", "--input", "in", "--output", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    let bronze = sorted(&read_layer(&dir.path().join("out/bronze/events"), "ingest_date"), &["_source_file"]);
    assert_eq!(strs(&bronze, "_source_file"), [s("day/x.csv.gz"), s("day/y.jsonl.gz")]);
}

#[test]
fn unreadable_files_are_recorded_and_skipped_until_they_change_while_the_rest_is_published() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).expect("dir");
    let csv = |id: &str| format!("event_id,service,event_type,timestamp\n{id},api,request,2026-01-12T10:00:00Z\n");
    std::fs::write(input.join("a.csv"), csv("e1")).expect("write");
    std::fs::write(input.join("broken.csv.gz"), "this is not gzip").expect("write");
    std::fs::write(input.join("binary.csv"), [0xff, 0xfe, 0x00, 0x81, b'\n', 0xc3, 0x28, b'\n']).expect("write");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--input", "in", "--output", "out"];
        args.extend_from_slice(extra);
        pipeline(dir.path(), &args)
    };
    let silver_ids = || strs(&read_layer(&dir.path().join("out/silver/events"), "event_date"), "event_id");

    // The good file is published; the run fails the quality gate (exit 3).
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("2 unreadable input file(s)"), "{}", text(&out));
    assert_eq!(silver_ids(), [s("e1")]);
    let manifest = newest_manifest(&dir.path().join("out"));
    assert_eq!(manifest["status"], "quality_gate_failed");
    let unreadable = manifest["unreadable_files"].as_array().expect("unreadable files");
    let paths: Vec<&str> = unreadable.iter().map(|f| f["path"].as_str().unwrap_or_default()).collect();
    assert_eq!(paths, ["binary.csv", "broken.csv.gz"]);
    assert_eq!(unreadable[1]["size"], 16);
    assert_eq!(unreadable[1]["content_hash"].as_str().map(str::len), Some(32));
    assert!(unreadable[0]["error"].as_str().unwrap_or_default().contains("not valid UTF-8"), "{manifest}");
    assert!(unreadable[1]["error"].as_str().unwrap_or_default().contains("gzip"), "{manifest}");
    let inspect = pipeline(dir.path(), &["inspect", "runs", "--output", "out"]);
    assert!(text(&inspect).contains("unreadable: broken.csv.gz (16 bytes"), "{}", text(&inspect));

    // Later runs skip them while they are unchanged.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Nothing new"), "{}", text(&out));

    // A fixed re-upload is ingested normally.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv("e2").as_bytes()).expect("gzip");
    std::fs::write(input.join("broken.csv.gz"), gz.finish().expect("gzip")).expect("write");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(silver_ids(), [s("e1"), s("e2")]);
    assert_eq!(newest_manifest(&dir.path().join("out"))["unreadable_files"], serde_json::json!([]));

    // Within the configured limit, an unreadable file passes the gate.
    std::fs::write(input.join("late.ndjson.gz"), "still not gzip").expect("write");
    let out = run(&["--max-unreadable-files", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let manifest = newest_manifest(&dir.path().join("out"));
    assert_eq!((manifest["status"].clone(), manifest["max_unreadable_files"].clone()), ("succeeded".into(), 1.into()));
    assert_eq!(manifest["unreadable_files"][0]["path"], "late.ndjson.gz");
}

#[test]
fn unknown_config_key_is_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bad.toml"), "[pipeline]\nmax_reject_ration = 0.1\n").expect("write");
    let out = pipeline(dir.path(), &["run", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("max_reject_ration"), "{}", text(&out));
}

#[test]
fn generated_sample_is_deterministic_and_passes_the_gate() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["g1", "g2"] {
        let out = pipeline(dir.path(), &["generate", "--events", "3000", "--seed", "7", "--out", name]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let listing = |d: &str| {
        let mut files: Vec<_> = files_under(&dir.path().join(d))
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(dir.path().join(d).join(&p)).expect("read");
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    assert_eq!(listing("g1"), listing("g2"), "same seed, same bytes");

    let out =
        pipeline(dir.path(), &["run", "--input", "g1", "--output", "out", "--timestamp-format", "%d/%m/%Y %H:%M:%S"]);
    assert!(out.status.success(), "{}", text(&out));
    let bronze = read_layer(&dir.path().join("out/bronze/events"), "ingest_date");
    let events = read_layer(&dir.path().join("out/silver/events"), "event_date");
    let rejects = read_layer(&dir.path().join("out/silver/rejects"), "ingest_date");
    assert_eq!(bronze.height(), events.height() + rejects.height());
    assert!(bronze.height() >= 3000, "every generated event is a bronze row");
    let reasons: std::collections::BTreeSet<_> = strs(&rejects, "reject_reason").into_iter().flatten().collect();
    for reason in [
        "malformed_row",
        "missing_event_id",
        "missing_service",
        "missing_event_type",
        "missing_timestamp",
        "invalid_timestamp",
        "timestamp_out_of_range",
        "duplicate_event_id",
    ] {
        assert!(reasons.contains(reason), "generated data exercises {reason}: {reasons:?}");
    }
    let gold = read_layer(&dir.path().join("out/gold/service_minute_metrics"), "event_date");
    let total: i64 = i64s(&gold, "request_count").into_iter().flatten().sum();
    assert_eq!(total as usize, events.height(), "gold request_count sums to silver rows");
}

#[test]
fn records_over_max_record_bytes_are_malformed_rows_with_their_head_and_the_rest_is_read() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).expect("dir");
    let row = |id: &str| format!("{id},api,request,2026-01-12T10:00:00Z");
    // A quoted field of 3 MB with line breaks in it, between two good rows.
    let long_field = "x\n".repeat(1_500_000);
    let long_csv = format!("e2,\"{long_field}\",request,2026-01-12T10:00:00Z");
    let csv = format!("event_id,service,event_type,timestamp\n{}\n{long_csv}\n{}\n", row("e1"), row("e3"));
    std::fs::write(input.join("a.csv"), &csv).expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(csv.replace("e1,", "g1,").replace("e2,", "g2,").replace("e3,", "g3,").as_bytes()).expect("gzip");
    std::fs::write(input.join("b.csv.gz"), gz.finish().expect("gzip")).expect("write");
    let json = |id: &str| {
        format!(r#"{{"event_id":"{id}","service":"api","event_type":"request","timestamp":"2026-01-12T10:00:00Z"}}"#)
    };
    let long_json = format!(r#"{{"event_id":"n2","user_id":"{}"}}"#, "y".repeat(2_000_000));
    let deep = format!(r#"{{"event_id":"n3","x":{}1{}}}"#, "[".repeat(20_000), "]".repeat(20_000));
    std::fs::write(input.join("c.ndjson"), format!("{}\n{long_json}\r\n{deep}\n{}\n", json("n1"), json("n4")))
        .expect("write");

    let out = pipeline(
        dir.path(),
        &["run", "--input", "in", "--output", "out", "--max-record-bytes", "65536", "--max-reject-ratio", "0.9"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let root = dir.path().join("out");
    let events = sorted(&read_layer(&root.join("silver/events"), "event_date"), &["_source_file", "_source_line"]);
    assert_eq!(strs(&events, "event_id"), [s("e1"), s("e3"), s("g1"), s("g3"), s("n1"), s("n4")]);
    // The long CSV record spans 1,500,001 lines, so e3 starts after them.
    assert_eq!(i64s(&events, "_source_line"), [Some(2), Some(1_500_004), Some(2), Some(1_500_004), Some(1), Some(4)]);
    let rejects = sorted(&read_layer(&root.join("silver/rejects"), "ingest_date"), &["_source_file", "_source_line"]);
    assert_eq!(strs(&rejects, "reject_reason"), vec![s("malformed_row"); 4]);
    assert_eq!(i64s(&rejects, "_source_line"), [Some(3), Some(3), Some(2), Some(3)]);
    let raws = strs(&rejects, "_raw");
    assert_eq!(raws[0].as_deref(), Some(&long_csv[..65536]), "the head of the long CSV record");
    assert_eq!(raws[1].as_deref(), Some(&long_csv.replace("e2,", "g2,")[..65536]));
    assert_eq!(raws[2].as_deref(), Some(&long_json[..65536]));
    assert_eq!(raws[3].as_deref(), Some(deep.as_str()), "too deep for serde_json, within the length limit");
    let extras = strs(&rejects, "_extra");
    let note = |n: usize| Some(format!(r#"{{"_record_bytes":{n}}}"#));
    assert_eq!(extras, [note(long_csv.len()), note(long_csv.len()), note(long_json.len()), None]);
}
