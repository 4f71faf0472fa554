//! The spark engine: the global stages as Spark plans, sent over Spark
//! Connect to Apache Spark, Databricks, EMR, Sail or any other server that
//! speaks it.
//!
//! The run stages each batch's clean rows (rules 1–4 passed) as
//! candidates under `_staging/<run_id>/_spark/candidates/`, partitioned by
//! event date, with their lineage: `_source_file` and `_source_line` give
//! the processing order within a run (files are read in path order), and
//! committed silver comes before every candidate. [`Engine::finish`] then
//! asks Spark to
//!
//! 1. mark duplicates: a candidate whose (event date, event id) is in
//!    committed silver, or is not the first among the candidates;
//! 2. write the others as silver events, partitioned by event date;
//! 3. write the duplicates' bronze rows as `duplicate_event_id` rejects;
//! 4. recompute gold for every date that got new events, from its committed
//!    and new events, one file per date (exact `percentile`).
//!
//! Spark writes only under the scratch folder; the engine then moves its
//! files to the names the layers use, inside the run's staging, and the
//! run's commit publishes them as it does the local engine's.

use std::collections::BTreeSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use spark_connect::row::Value;
use spark_connect::{DataFrame, SparkError, SparkSession, col};
use tracing::info;

use super::{Engine, Finished, RunContext, StagedWrite};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::layout::{self, BRONZE, SILVER_EVENTS, SILVER_REJECTS, STAGING};
use crate::silver::columns::*;
use crate::silver::{Counters, Evaluated, Reason, STATE_INVALID, STATE_MISSING, timestamp::format_date};
use crate::storage::Storage;

/// Scratch folder of a run's Spark work, inside its staging.
const SCRATCH: &str = "_spark";
/// The silver events columns, in order (`silver::events_schema`).
const EVENT_COLUMNS: &str =
    "event_id, service, event_type, event_time, latency_ms, status_code, user_id, _source_file, _source_line, _run_id";
/// The port of an `sc://host` URL without one (Spark Connect's default).
const DEFAULT_SPARK_CONNECT_PORT: u16 = 15002;

pub(crate) struct SparkEngine {
    session: SparkSession,
    remote: String,
    /// The output location as the Spark cluster names it.
    root: String,
}

impl SparkEngine {
    /// Connects to `spark_remote` and checks the server answers.
    pub fn connect(config: &PipelineConfig, output: &Storage) -> Result<Self> {
        let remote = config
            .engine
            .spark_remote
            .clone()
            .ok_or_else(|| Error::Config("engine \"spark\" needs spark_remote".into()))?;
        let root = match (&config.engine.spark_output, output.local_root()) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(dir)) => dir.display().to_string(),
            (None, None) if output.location().starts_with("memory://") => {
                return Err(Error::Config(
                    "the spark engine cannot reach a memory:// output; set spark_output or use another output".into(),
                ));
            }
            (None, None) => output.location().trim_end_matches('/').to_string(),
        };
        reachable(&remote)?;
        let session =
            SparkSession::builder().remote(&remote).get_or_create().map_err(spark_error(&remote, "connecting"))?;
        let version = session.version().map_err(spark_error(&remote, "connecting"))?;
        // Timestamps are UTC instants, written as Parquet TIMESTAMP(MICROS, UTC) like the local engine's.
        for (key, value) in
            [("spark.sql.session.timeZone", "UTC"), ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")]
        {
            session.conf().set(key, value).map_err(spark_error(&remote, "setting the session's configuration"))?;
        }
        info!(remote, version, root, "Connected to Spark.");
        Ok(Self { session, remote, root })
    }

    fn error(&self, context: &'static str) -> impl FnOnce(SparkError) -> Error {
        spark_error(&self.remote, context)
    }

    fn unexpected(&self, message: String) -> Error {
        Error::SparkResult { remote: self.remote.clone(), message }
    }

    /// `relative` (to the output root) as Spark names it.
    fn url(&self, relative: &str) -> String {
        format!("{}/{relative}", self.root)
    }

    /// Registers the Parquet files under `relative` as the temporary view `name`.
    fn view(&self, name: &str, relative: &str) -> Result<()> {
        self.session
            .read()
            .parquet(&self.url(relative))
            .create_or_replace_temp_view(name)
            .map_err(self.error("reading staged or committed Parquet"))
    }

    /// Runs `query` and writes its rows as zstd Parquet under `relative`,
    /// partitioned by `partition_by`.
    fn write(&self, query: &str, relative: &str, partition_by: &[&str]) -> Result<()> {
        let df = self.session.sql(query).map_err(self.error("planning a query"))?;
        self.save(&df, relative, partition_by)
    }

    fn save(&self, df: &DataFrame, relative: &str, partition_by: &[&str]) -> Result<()> {
        df.write()
            .mode("overwrite")
            .option("compression", "zstd")
            .partition_by(partition_by.iter().copied())
            .parquet(&self.url(relative))
            .map_err(self.error("writing Parquet"))
    }

    fn collect(&self, query: &str) -> Result<Vec<Vec<Value>>> {
        let df = self.session.sql(query).map_err(self.error("planning a query"))?;
        let rows = df.collect().map_err(self.error("running a query"))?;
        Ok(rows.into_iter().map(|row| (0..row.len()).filter_map(|i| row.get(i).cloned()).collect()).collect())
    }
}

impl Drop for SparkEngine {
    fn drop(&mut self) {
        // Frees the server's session; a server that is gone frees it itself.
        let _ = self.session.stop();
    }
}

impl Engine for SparkEngine {
    fn check_batch(&mut self, _run: &RunContext, _batch: &mut [Evaluated]) -> Result<()> {
        Ok(()) // Rule 5 runs on Spark in `finish`, over every batch at once.
    }

    fn stage_events(&self, date: &str, part: &str, frames: Vec<polars::prelude::DataFrame>) -> StagedWrite {
        (format!("{SCRATCH}/{}/{part}", layout::partition("candidates", "event_date", date)), frames)
    }

    fn finish(&mut self, run: &RunContext, outputs: &mut Vec<String>, dates: &BTreeSet<i32>) -> Result<Finished> {
        // The candidates stay in the scratch folder: they are not published.
        outputs.retain(|p| !p.starts_with(&format!("{SCRATCH}/")));
        let scratch = format!("{STAGING}/{}/{SCRATCH}", run.run_id);
        let mut finished = Finished::default();
        if dates.is_empty() {
            return Ok(finished);
        }
        let committed = !run.full_refresh && has_events_on(run.output, dates)?;
        self.mark_duplicates(&scratch, committed, dates)?;
        let new_dates = self.count_duplicates(&mut finished)?;
        // An empty result may be written as a file without columns (Sail):
        // what is empty is not written.
        if !new_dates.is_empty() {
            self.write(
                &format!("SELECT {EVENT_COLUMNS}, event_date FROM minutely_decided WHERE NOT _duplicate"),
                &format!("{scratch}/silver"),
                &["event_date"],
            )?;
        }
        if finished.late_duplicates > 0 {
            self.reject_duplicates(run, &scratch)?;
        }
        if !new_dates.is_empty() {
            self.write_gold(&scratch, committed, &new_dates)?;
        }
        self.adopt_files(run, &scratch, dates, outputs, &mut finished)?;
        info!(
            duplicates = finished.late_duplicates,
            partitions = finished.gold_dates.len(),
            rows = finished.gold_rows,
            "Spark wrote silver and gold."
        );
        Ok(finished)
    }
}

impl SparkEngine {
    /// Rule 5 as the view `minutely_decided` (staged under `scratch`): the
    /// candidates with `_duplicate`, true when committed silver (if
    /// `committed`) has the (event date, event id) or an earlier candidate
    /// (path, then line) does.
    fn mark_duplicates(&self, scratch: &str, committed: bool, dates: &BTreeSet<i32>) -> Result<()> {
        self.view("minutely_candidates", &format!("{scratch}/candidates"))?;
        let seen = if committed {
            self.view("minutely_committed", SILVER_EVENTS)?;
            let dates: BTreeSet<String> = dates.iter().map(|d| format_date(*d)).collect();
            format!(
                "SELECT DISTINCT CAST(event_date AS DATE) AS event_date, {EVENT_ID} FROM minutely_committed WHERE {}",
                date_filter(&dates)
            )
        } else {
            format!("SELECT CAST(NULL AS DATE) AS event_date, CAST(NULL AS STRING) AS {EVENT_ID} WHERE false")
        };
        let decided = format!(
            "SELECT c.*, (k.{EVENT_ID} IS NOT NULL OR row_number() OVER (PARTITION BY c.event_date, c.{EVENT_ID} \
               ORDER BY c._source_file, c._source_line) > 1) AS _duplicate \
             FROM (SELECT {EVENT_COLUMNS}, {LATENCY_STATE}, {STATUS_STATE}, CAST(event_date AS DATE) AS event_date \
                   FROM minutely_candidates) c \
             LEFT JOIN ({seen}) k ON c.event_date = k.event_date AND c.{EVENT_ID} = k.{EVENT_ID}"
        );
        // Written once and read back: the window is the costly part, and
        // counts, silver and rejects all read its result.
        self.write(&decided, &format!("{scratch}/decided"), &[])?;
        self.view("minutely_decided", &format!("{scratch}/decided"))
    }

    /// Counts the duplicates, and how their optional fields became null
    /// (to take them out of the counters); returns the dates (`YYYY-MM-DD`)
    /// that get new events.
    fn count_duplicates(&self, finished: &mut Finished) -> Result<BTreeSet<String>> {
        let count_if = |condition: &str| format!("COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)");
        let of_duplicates = |column: &str, state: i8| count_if(&format!("_duplicate AND {column} = {state}"));
        let per_date = self.collect(&format!(
            "SELECT {}, {}, {}, {}, {}, {}, CAST(event_date AS STRING) FROM minutely_decided GROUP BY event_date",
            count_if("NOT _duplicate"),
            count_if("_duplicate"),
            of_duplicates(LATENCY_STATE, STATE_MISSING),
            of_duplicates(LATENCY_STATE, STATE_INVALID),
            of_duplicates(STATUS_STATE, STATE_MISSING),
            of_duplicates(STATUS_STATE, STATE_INVALID),
        ))?;
        let mut new_dates = BTreeSet::new();
        for row in per_date {
            let [new_events, duplicates, latency_missing, latency_invalid, status_missing, status_invalid] =
                longs(&row).map_err(|m| self.unexpected(m))?;
            finished.late_duplicates += duplicates;
            finished.late_duplicate_counters.add(&Counters {
                latency_invalid,
                latency_missing,
                status_invalid,
                status_missing,
            });
            match row.last() {
                Some(Value::String(date)) if new_events > 0 => {
                    new_dates.insert(date.clone());
                }
                Some(Value::String(_)) => {}
                other => return Err(self.unexpected(format!("{other:?} where an event date was expected"))),
            }
        }
        Ok(new_dates)
    }

    /// Writes the duplicates' bronze rows as `duplicate_event_id` rejects.
    fn reject_duplicates(&self, run: &RunContext, scratch: &str) -> Result<()> {
        let bronze = layout::partition(BRONZE, "ingest_date", run.ingest_date);
        self.view("minutely_bronze", &layout::staged(run.run_id, &bronze))?;
        let code = Reason::DuplicateEventId.code();
        self.write(
            &format!(
                "SELECT b.*, '{code}' AS {REJECT_REASON}, array('{code}') AS {REJECT_REASONS} \
                 FROM minutely_bronze b LEFT SEMI JOIN (SELECT * FROM minutely_decided WHERE _duplicate) d \
                 ON b._source_file = d._source_file AND b._source_line = d._source_line"
            ),
            &format!("{scratch}/rejects"),
            &[],
        )
    }

    /// Gold of `dates` (those with new events), from their committed (if
    /// `committed`) and new events: one file per date, sorted by service and
    /// minute like the local engine's.
    fn write_gold(&self, scratch: &str, committed: bool, dates: &BTreeSet<String>) -> Result<()> {
        self.view("minutely_new", &format!("{scratch}/silver"))?;
        let gold_input = |view: &str| {
            format!(
                "SELECT CAST(event_date AS DATE) AS event_date, {SERVICE}, {EVENT_TIME}, {LATENCY_MS}, {STATUS_CODE} \
                 FROM {view}"
            )
        };
        let mut events = gold_input("minutely_new");
        if committed {
            // Literal dates, so that only their partitions of the history are read.
            events = format!("{events} UNION ALL {} WHERE {}", gold_input("minutely_committed"), date_filter(dates));
        }
        let is_error = format!("CASE WHEN {STATUS_CODE} < 200 OR {STATUS_CODE} > 299 THEN 1 ELSE 0 END");
        let gold = format!(
            "SELECT {SERVICE}, date_trunc('MINUTE', {EVENT_TIME}) AS minute, \
               COUNT(*) AS request_count, COUNT({LATENCY_MS}) AS latency_count, \
               AVG({LATENCY_MS}) AS avg_latency_ms, \
               percentile({LATENCY_MS}, 0.5) AS p50_latency_ms, \
               percentile({LATENCY_MS}, 0.95) AS p95_latency_ms, \
               percentile({LATENCY_MS}, 0.99) AS p99_latency_ms, \
               MAX({LATENCY_MS}) AS max_latency_ms, \
               COUNT({STATUS_CODE}) AS status_count, \
               CAST(COALESCE(SUM({is_error}), 0) AS BIGINT) AS error_count, \
               CASE WHEN COUNT({STATUS_CODE}) > 0 \
                 THEN CAST(SUM({is_error}) AS DOUBLE) / CAST(COUNT({STATUS_CODE}) AS DOUBLE) END AS error_rate, \
               event_date \
             FROM ({events}) GROUP BY event_date, {SERVICE}, date_trunc('MINUTE', {EVENT_TIME})"
        );
        // One task per date, so one file per gold partition.
        let df = self.session.sql(&gold).map_err(self.error("planning gold"))?;
        let df = df
            .repartition_by_expressions(0, vec![col("event_date").expression().clone()])
            .sort_within_partitions(vec![col(SERVICE).expression().clone(), col("minute").expression().clone()]);
        self.save(&df, &format!("{scratch}/gold"), &["event_date"])
    }

    /// Moves Spark's files to the names the layers use, inside the run's
    /// staging, adds them to `outputs` and records the gold dates and rows.
    fn adopt_files(
        &self,
        run: &RunContext,
        scratch: &str,
        dates: &BTreeSet<i32>,
        outputs: &mut Vec<String>,
        finished: &mut Finished,
    ) -> Result<()> {
        let mut adopt = |from: &str, to: String| -> Result<()> {
            run.output.rename(from, &layout::staged(run.run_id, &to))?;
            outputs.push(to);
            Ok(())
        };
        let mut gold_dates = BTreeSet::new();
        for (date, files) in spark_files(run.output, &format!("{scratch}/silver"))? {
            let Some(day) = dates.iter().copied().find(|d| format_date(*d) == date) else {
                return Err(self.unexpected(format!("silver events in event_date={date}, a date it was not given")));
            };
            gold_dates.insert(day);
            let dir = layout::partition(SILVER_EVENTS, "event_date", &date);
            for (i, from) in files.iter().enumerate() {
                adopt(from, format!("{dir}/part-{}-spark-{i:05}.parquet", run.run_id))?;
            }
        }
        let dir = layout::partition(SILVER_REJECTS, "ingest_date", run.ingest_date);
        for files in spark_files(run.output, &format!("{scratch}/rejects"))?.values() {
            for (i, from) in files.iter().enumerate() {
                adopt(from, format!("{dir}/part-{}-duplicates-{i:05}.parquet", run.run_id))?;
            }
        }
        let mut gold_rows = 0;
        for (date, files) in spark_files(run.output, &format!("{scratch}/gold"))? {
            let [from] = files.as_slice() else {
                return Err(self.unexpected(format!("{} gold files for event_date={date}, not one", files.len())));
            };
            let to = layout::gold_file(&date, run.run_id);
            adopt(from, to.clone())?;
            gold_rows += run.output.get_parquet(&layout::staged(run.run_id, &to), Some(&[SERVICE]))?.height() as u64;
        }
        finished.gold_dates = gold_dates;
        finished.gold_rows = gold_rows;
        Ok(())
    }
}

/// `event_date` among `dates` (`YYYY-MM-DD`), as a filter on the partition
/// column alone, so Spark reads only those partitions.
fn date_filter(dates: &BTreeSet<String>) -> String {
    let list = dates.iter().map(|d| format!("DATE'{d}'")).collect::<Vec<_>>().join(", ");
    format!("CAST(event_date AS DATE) IN ({list})")
}

/// Fails fast when nothing listens at the remote's address: the client
/// retries a refused connection with backoff for minutes.
fn reachable(remote: &str) -> Result<()> {
    let authority = remote.trim_start_matches("sc://").split(['/', ';']).next().unwrap_or_default();
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:{DEFAULT_SPARK_CONNECT_PORT}")
    };
    let unreachable = |source| Error::SparkUnreachable { remote: remote.to_string(), address: address.clone(), source };
    let addrs = address.to_socket_addrs().map_err(unreachable)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host name resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(unreachable(last))
}

/// Whether committed silver has events on any of `dates`.
fn has_events_on(output: &Storage, dates: &BTreeSet<i32>) -> Result<bool> {
    for date in dates {
        if !output.parquet_files(&layout::partition(SILVER_EVENTS, "event_date", &format_date(*date)))?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn spark_error(remote: &str, context: &'static str) -> impl FnOnce(SparkError) -> Error + use<> {
    let remote = remote.to_string();
    move |source| Error::Spark { remote, context, source: Box::new(source) }
}

/// The Parquet files Spark wrote under `dir`, by the `key=value` folder
/// they are in (`""` for files directly in `dir`), in path order.
fn spark_files(output: &Storage, dir: &str) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut files: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in output.list(dir)? {
        let name = entry.relative.rsplit('/').next().unwrap_or_default();
        if name.starts_with(['_', '.']) || !name.ends_with(".parquet") {
            continue; // _SUCCESS, checksum files
        }
        let inner = entry.relative[dir.len()..].trim_start_matches('/');
        let value = inner.rsplit_once('/').and_then(|(folder, _)| folder.split_once('=')).map(|(_, v)| v.to_string());
        files.entry(value.unwrap_or_default()).or_default().push(entry.relative.clone());
    }
    Ok(files)
}

/// The values of a row of counts (Spark gives `COUNT` and `SUM` as longs).
fn longs<const N: usize>(row: &[Value]) -> std::result::Result<[u64; N], String> {
    let mut out = [0; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = match row.get(i) {
            Some(Value::Long(n)) => u64::try_from(*n).unwrap_or_default(),
            Some(Value::Integer(n)) => u64::try_from(*n).unwrap_or_default(),
            Some(Value::Null) | None if i > 0 => 0,
            other => return Err(format!("{other:?} where a count was expected")),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_columns_are_the_silver_schema_in_order() {
        let names: Vec<String> = crate::silver::events_schema().iter_names().map(|n| n.to_string()).collect();
        assert_eq!(EVENT_COLUMNS.split(", ").collect::<Vec<_>>(), names);
    }

    #[test]
    fn counts_are_read_from_longs_and_null_sums() {
        let row = [Value::Long(3), Value::Null, Value::Integer(2)];
        assert_eq!(longs::<3>(&row), Ok([3, 0, 2]));
        assert!(longs::<1>(&[Value::String("x".into())]).is_err());
        assert!(longs::<1>(&[]).is_err(), "a missing count is an error, not zero");
    }

    #[test]
    fn a_remote_nobody_listens_on_is_unreachable_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let err = reachable(&format!("sc://127.0.0.1:{port}/;user_id=x")).unwrap_err();
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(reachable("sc://no-such-host.invalid").is_err());
    }
}
