//! The pipeline against a real S3 API (moto on 127.0.0.1, started by
//! `scripts/s3-server.sh`): input and layers on S3, incremental runs, and
//! the lease that makes runs exclusive on an object store (README "Runs").

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline::storage::Storage;
use tests::*;

const INPUT_EVENTS: &str = "3000";

fn s3(server: &S3Server, url: &str) -> Storage {
    let options = server.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Storage::open_with(url, true, &options).expect("open S3 location")
}

/// Generates input locally and uploads it under `url`.
fn upload_input(dir: &Path, server: &S3Server, url: &str) {
    let out = pipeline(dir, &["generate", "--events", INPUT_EVENTS, "--seed", "11", "--out", "input"]);
    assert!(out.status.success(), "{}", text(&out));
    let input = s3(server, url);
    for relative in files_under(&dir.join("input")) {
        let bytes = std::fs::read(dir.join("input").join(&relative)).expect("read input file");
        input.put(relative.to_str().expect("utf-8"), bytes).expect("upload");
    }
}

/// Copies every object under an S3 location into a local folder, so the
/// layer helpers can read it.
fn download(server: &S3Server, url: &str, to: &Path) {
    let output = s3(server, url);
    for entry in output.list("").expect("list") {
        let path = to.join(&entry.relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, output.get(&entry.relative).expect("get")).expect("write");
    }
}

fn run_s3(dir: &Path, server: &S3Server, output: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut all = server.env();
    all.extend(env.iter().cloned());
    pipeline_env(
        dir,
        &[
            "run",
            "--input",
            "input",
            "--output",
            output,
            "--max-reject-ratio",
            "1",
            "--timestamp-format",
            "%d/%m/%Y %H:%M:%S",
        ],
        &all,
    )
}

/// The same input run on a local folder: the reference result.
fn local_reference(dir: &Path) -> Vec<Vec<String>> {
    let out = pipeline(
        dir,
        &[
            "run",
            "--input",
            "input",
            "--output",
            "local",
            "--max-reject-ratio",
            "1",
            "--timestamp-format",
            "%d/%m/%Y %H:%M:%S",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    snapshot(&dir.join("local"))
}

#[test]
fn layers_on_s3_equal_a_local_run_and_known_files_are_skipped() {
    let server = S3Server::start("layers");
    let dir = tempfile::tempdir().expect("temp dir");
    upload_input(dir.path(), &server, "s3://layers/in");
    let reference = local_reference(dir.path());

    let args = ["--input", "s3://layers/in", "--output", "s3://layers/out", "--max-reject-ratio", "1"];
    let run = |extra: &[&str]| {
        let mut all = vec!["run", "--timestamp-format", "%d/%m/%Y %H:%M:%S"];
        all.extend_from_slice(&args);
        all.extend_from_slice(extra);
        pipeline_env(dir.path(), &all, &server.env())
    };
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    download(&server, "s3://layers/out", &dir.path().join("from-s3"));
    assert_eq!(snapshot(&dir.path().join("from-s3")), reference, "S3 layers differ from a local run");
    assert!(!dir.path().join("from-s3/_lock").exists(), "the lease is released after the run");
    assert!(!dir.path().join("from-s3/_staging").exists(), "no staging left behind");
    // A local folder counts its requests as S3 receives them (README
    // "Storage requests"): a first run finds no checkpoint on either, and
    // only the lock differs (on S3 a lease object written once, a file
    // lock on a local folder).
    let requests = |out: &str| {
        let runs = dir.path().join(out).join("_runs");
        let [manifest] = files_under(&runs).try_into().expect("one manifest");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(runs.join(manifest)).expect("read")).expect("json");
        manifest["storage_requests"].clone()
    };
    let (on_s3, mut on_local) = (requests("from-s3"), requests("local"));
    assert!(on_local["output"]["put"].as_u64().is_some_and(|n| n > 0), "{on_local}");
    on_local["output"]["put"] = (on_local["output"]["put"].as_u64().unwrap_or_default() + 1).into();
    assert_eq!(on_s3, on_local, "the same requests on S3 and on a local folder, but for the lease");

    let second = run(&[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("Nothing new"), "{}", text(&second));

    let inspect = pipeline_env(dir.path(), &["inspect", "runs", "--output", "s3://layers/out"], &server.env());
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect));
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("succeeded"), "{}", text(&inspect));

    // The API serves gold straight from S3.
    let api = ApiServer::start(dir.path(), "s3://layers/out", &server.env());
    let health = api.wait_for("gold loaded from S3", |b| b["status"] == "ok");
    let gold_rows = reference.last().expect("gold layer").len();
    assert_eq!(health["gold"]["rows"].as_u64(), Some(gold_rows as u64), "{health}");
}

#[test]
fn a_live_lease_blocks_a_run_and_a_dead_holders_lease_expires() {
    let server = S3Server::start("lease");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = pipeline(dir.path(), &["generate", "--events", INPUT_EVENTS, "--seed", "11", "--out", "input"]);
    assert!(out.status.success(), "{}", text(&out));
    let reference = local_reference(dir.path());
    let output = s3(&server, "s3://lease/out");

    // Someone else holds a live lease: the run fails fast, naming them.
    let live = format!(
        r#"{{"holder":"backfill on host-7","token":"t","expires_at":"{}"}}"#,
        (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339()
    );
    output.put("_lock", live).expect("put lease");
    let blocked = run_s3(dir.path(), &server, "s3://lease/out", &[]);
    assert_eq!(blocked.status.code(), Some(1), "{}", text(&blocked));
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("backfill on host-7"), "{}", text(&blocked));
    output.delete("_lock").expect("delete lease");

    // A run dies right after committing, leaving its lease behind.
    let lease = [("MINUTELY_LEASE_SECS", "4".to_string())];
    let crash = [("MINUTELY_LEASE_SECS", "4".to_string()), ("MINUTELY_CRASH_AT", "committed".to_string())];
    let crashed = run_s3(dir.path(), &server, "s3://lease/out", &crash);
    let died = Instant::now();
    assert!(crashed.status.code().is_none(), "expected an abort: {}", text(&crashed));
    assert!(output.get_opt("_lock").expect("get").is_some(), "a killed run cannot release its lease");

    // Until the lease expires the output stays locked...
    let early = run_s3(dir.path(), &server, "s3://lease/out", &lease);
    if died.elapsed() < Duration::from_secs(3) {
        assert_eq!(early.status.code(), Some(1), "{}", text(&early));
        assert!(String::from_utf8_lossy(&early.stderr).contains("lease"), "{}", text(&early));
    }
    // ...then the next run takes it over and finishes the dead run's work.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(died.elapsed()) + Duration::from_millis(300));
    let next = run_s3(dir.path(), &server, "s3://lease/out", &lease);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
    assert!(String::from_utf8_lossy(&next.stderr).contains("expired lease"), "{}", text(&next));
    download(&server, "s3://lease/out", &dir.path().join("from-s3"));
    assert_eq!(snapshot(&dir.path().join("from-s3")), reference, "recovered result differs from a clean run");
    assert!(!dir.path().join("from-s3/_lock").exists(), "the lease is released after the run");
}
