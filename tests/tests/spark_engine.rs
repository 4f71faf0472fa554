//! The spark engine (README "Scaling out") against a real Spark Connect
//! server, Sail by default (`MINUTELY_TEST_SPARK=spark` for Apache Spark):
//! the same input gives the same layers on either engine, in one run or
//! in runs that alternate between engines, on a local folder and on S3;
//! an unreachable server stops the run before anything is written.

use std::path::{Path, PathBuf};

use tests::*;

/// The basic fixtures plus a generated set with duplicates across files
/// and dates, under `dir/all`.
fn dataset(dir: &Path) -> Vec<PathBuf> {
    tests::dataset(dir, 3000, 5)
}

/// `pipeline run` from `inbox` into `out`; `engine` is `None` for local,
/// or the Spark Connect URL.
fn run(dir: &Path, inbox: &str, out: &str, engine: Option<&str>, env: &[(&str, String)]) -> std::process::Output {
    let extra = engine.map(|remote| vec!["--engine", "spark", "--spark-remote", remote]).unwrap_or_default();
    let output = run_into(dir, inbox, out, &extra, env);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    output
}

#[test]
fn both_engines_give_the_same_layers_in_one_run_and_in_alternating_runs() {
    let server = SparkServer::start(&[]);
    let remote = Some(server.remote());
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    deliver(dir.path(), "in", &files);

    run(dir.path(), "in", "local", None, &[]);
    let spark = run(dir.path(), "in", "spark", remote, &[]);
    assert_same_layers(&dir.path().join("spark"), &dir.path().join("local"), "one run");
    assert_eq!(counts(&dir.path().join("spark")), counts(&dir.path().join("local")), "{}", text(&spark));
    assert_eq!(newest_manifest(&dir.path().join("spark"))["engine"], "spark");
    let spark_out = dir.path().join("spark");
    assert_eq!(table_snapshot(&spark_out), snapshot(&spark_out), "the spark engine's run is a table version too");
    assert_eq!(newest_manifest(&dir.path().join("local"))["engine"], "local");
    let gold = std::fs::read_dir(dir.path().join("spark/gold/service_minute_metrics")).expect("gold");
    for date in gold.flatten().filter(|d| !d.file_name().to_string_lossy().starts_with('_')) {
        let files = parquet_files(&date.path());
        assert_eq!(files.len(), 1, "one file per gold partition: {files:?}");
    }
    let staging = files_under(&dir.path().join("spark/_staging"));
    assert!(staging.is_empty(), "Spark's scratch files are removed with the staging: {staging:?}");

    // Three deliveries, alternating engines; and all on Spark.
    let thirds =
        [&files[..files.len() / 3], &files[files.len() / 3..files.len() * 2 / 3], &files[files.len() * 2 / 3..]];
    for (i, part) in thirds.iter().enumerate() {
        deliver(dir.path(), "alt-in", part);
        run(dir.path(), "alt-in", "alt", if i % 2 == 0 { remote } else { None }, &[]);
        deliver(dir.path(), "inc-in", part);
        run(dir.path(), "inc-in", "inc", remote, &[]);
    }
    assert_same_layers(&dir.path().join("alt"), &dir.path().join("local"), "spark, local, spark");
    assert_same_layers(&dir.path().join("inc"), &dir.path().join("local"), "three spark runs");

    // Nothing new is nothing new on either engine; a full refresh on Spark rebuilds the same.
    let again = run(dir.path(), "inc-in", "inc", remote, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing new"), "{}", text(&again));
    let spark = ["--engine", "spark", "--spark-remote", server.remote()];
    let refresh = run_into(dir.path(), "inc-in", "inc", &[&spark[..], &["--full-refresh"]].concat(), &[]);
    assert_eq!(refresh.status.code(), Some(0), "{}", text(&refresh));
    assert_same_layers(&dir.path().join("inc"), &dir.path().join("local"), "full refresh on Spark");

    // Killed after Spark wrote silver and gold into staging: the next run
    // (on the other engine) finishes the work.
    deliver(dir.path(), "crash-in", thirds[0]);
    run(dir.path(), "crash-in", "crash", remote, &[]);
    deliver(dir.path(), "crash-in", &files[files.len() / 3..]);
    let crashed =
        run_into(dir.path(), "crash-in", "crash", &[&spark[..], &["--crash-at", "gold-staged"]].concat(), &[]);
    assert!(crashed.status.code().is_none(), "must die by a signal: {}", text(&crashed));
    run(dir.path(), "crash-in", "crash", None, &[]);
    assert_same_layers(&dir.path().join("crash"), &dir.path().join("local"), "spark run killed, then a local run");
}

#[test]
fn layers_on_s3_through_spark_equal_a_local_run() {
    let s3 = S3Server::start("sparkout");
    let server = SparkServer::start(&s3.env());
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dataset(dir.path());
    deliver(dir.path(), "in", &files);
    run(dir.path(), "in", "local", None, &[]);

    let out = run(dir.path(), "in", "s3://sparkout/out", Some(server.remote()), &s3.env());
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"), "{}", text(&out));
    let options = s3.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = pipeline::storage::Storage::open_with("s3://sparkout/out", false, &options).expect("open S3");
    let copy = dir.path().join("from-s3");
    for entry in output.list("").expect("list") {
        let path = copy.join(&entry.relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, output.get(&entry.relative).expect("get")).expect("write");
    }
    assert!(!copy.join("_staging").exists(), "no staging left on S3");
    assert_same_layers(&copy, &dir.path().join("local"), "S3 through Spark");
}

#[test]
fn an_unreachable_spark_remote_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture("basic"), &dir.path().join("in"));
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let remote = format!("sc://127.0.0.1:{port}");
    let out = pipeline(
        dir.path(),
        &["run", "--input", "in", "--output", "out", "--engine", "spark", "--spark-remote", &remote],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&remote) && stderr.contains("connecting"), "{}", text(&out));
    assert!(
        files_under(&dir.path().join("out")).is_empty(),
        "nothing written: {:?}",
        files_under(&dir.path().join("out"))
    );

    // A cluster cannot reach a memory:// output: a usage error naming the way out.
    let out = pipeline(
        dir.path(),
        &["run", "--input", "in", "--output", "memory://x", "--engine", "spark", "--spark-remote", &remote],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spark_output"), "{}", text(&out));

    // Asking for Spark without a remote is a usage error naming the setting.
    let out = pipeline(dir.path(), &["run", "--input", "in", "--output", "out", "--engine", "spark"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spark_remote"), "{}", text(&out));
}

#[test]
fn deliveries_without_duplicates_or_with_nothing_but_duplicates_match_the_local_engine() {
    let server = SparkServer::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let header = "event_id,service,event_type,timestamp,latency_ms,status_code,user_id\n";
    let deliveries = [
        // No duplicates (one reject, so every layer has rows).
        (
            "a.csv",
            "e1,api,request,2026-01-12T10:15:00Z,12.5,200,u1\ne2,api,request,2026-01-12T10:16:00Z,x,500,u1\ne3,,request,2026-01-12T10:16:00Z,1,200,u1\n",
        ),
        // New events only, on a date with committed events and on a new one.
        ("b.csv", "e4,api,request,2026-01-12T10:15:30Z,2,404,u2\ne5,web,request,2026-01-13T00:00:00Z,,,u2\n"),
        // Nothing but duplicates of committed events: no date gets new events.
        ("c.csv", "e1,api,request,2026-01-12T11:00:00Z,99,200,u3\ne5,web,request,2026-01-13T00:00:01Z,1,200,u3\n"),
        // No clean row at all.
        ("d.csv", ",api,request,2026-01-12T10:15:00Z,1,200,u1\n"),
    ];
    for (name, rows) in deliveries {
        for inbox in ["in-local", "in-spark"] {
            std::fs::create_dir_all(dir.path().join(inbox)).expect("mkdir");
            std::fs::write(dir.path().join(inbox).join(name), format!("{header}{rows}")).expect("write");
        }
        run(dir.path(), "in-local", "local", None, &[]);
        run(dir.path(), "in-spark", "spark", Some(server.remote()), &[]);
        assert_same_layers(&dir.path().join("spark"), &dir.path().join("local"), &format!("after {name}"));
        assert_eq!(counts(&dir.path().join("spark")), counts(&dir.path().join("local")), "after {name}");
    }
}
