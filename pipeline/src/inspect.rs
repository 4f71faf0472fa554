//! `pipeline inspect`: what is in an output location, without other tools:
//! per layer its partitions, row counts, time range and schema; rejects by
//! reason; and the run history, newest first.

use std::collections::BTreeMap;
use std::fmt::Write;

use polars::prelude::*;

use crate::bronze;
use crate::error::{Error, Result};
use crate::gold::MINUTE;
use crate::layout::{self, BRONZE, GOLD, SILVER_REJECTS};
use crate::runs::load_manifests;
use crate::silver::columns::{EVENT_TIME, REJECT_REASON};
use crate::storage::Storage;
use crate::tables;

/// Layers `inspect` knows, by the name a user types.
pub(crate) const LAYER_NAMES: [&str; 5] = ["bronze", "silver", "rejects", "gold", "runs"];

/// A text report of `layer` (or everything) under `output`.
pub(crate) fn inspect(output: &Storage, layer: Option<&str>) -> Result<String> {
    let wanted = |name: &str| layer.is_none_or(|l| l == name);
    let mut report = String::new();
    for (dir, key) in layout::LAYERS {
        let name = match dir {
            BRONZE => "bronze",
            SILVER_REJECTS => "rejects",
            GOLD => "gold",
            _ => "silver",
        };
        if wanted(name) || (layer == Some("silver") && dir == SILVER_REJECTS) {
            inspect_layer(output, dir, key, &mut report)?;
        }
    }
    if wanted("runs") {
        inspect_runs(output, &mut report)?;
    }
    Ok(report)
}

fn inspect_layer(output: &Storage, dir: &str, key: &str, report: &mut String) -> Result<()> {
    // The tables' live files: not their logs' checkpoints, nor replaced files kept for time travel.
    let files = tables::live_files(output, dir)?;
    let _ = writeln!(report, "== {dir} ({} files)", files.len());
    if files.is_empty() {
        let _ = writeln!(report, "   (empty)\n");
        return Ok(());
    }
    let time_column = match dir {
        BRONZE | SILVER_REJECTS => bronze::INGESTED_AT,
        GOLD => MINUTE,
        _ => EVENT_TIME,
    };
    let mut partitions: BTreeMap<String, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
    let mut schema = None;
    let needed: &[&str] = if dir == SILVER_REJECTS { &[time_column, REJECT_REASON] } else { &[time_column] };
    for path in &files {
        // The whole first file gives the schema; the others only what is counted.
        let df = output.get_parquet(path, schema.is_some().then_some(needed))?;
        let partition = layout::partition_value(path, key).unwrap_or("?").to_string();
        *partitions.entry(partition).or_default() += df.height() as u64;
        let times = df
            .column(time_column)
            .and_then(|c| c.datetime().map(|d| d.physical().clone()))
            .map_err(Error::polars("reading the time column"))?;
        first = first.into_iter().chain(times.min()).min();
        last = last.into_iter().chain(times.max()).max();
        if dir == SILVER_REJECTS {
            let column = df.column(REJECT_REASON).and_then(|c| c.str()).map_err(Error::polars("reading reasons"))?;
            for reason in column.iter().flatten() {
                *reasons.entry(reason.to_string()).or_default() += 1;
            }
        }
        schema.get_or_insert_with(|| df.schema().clone());
    }
    let total: u64 = partitions.values().sum();
    let _ = writeln!(report, "   rows: {total}");
    let show = |t: Option<i64>| {
        t.and_then(chrono::DateTime::from_timestamp_micros)
            .map_or("-".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    let _ = writeln!(report, "   {time_column}: {} .. {}", show(first), show(last));
    let _ = writeln!(report, "   partitions ({key}):");
    for (partition, rows) in &partitions {
        let _ = writeln!(report, "     {partition}  {rows} rows");
    }
    if let Some(schema) = schema {
        let _ = writeln!(report, "   schema ({key} is a Hive partition column, not in the files):");
        for (name, dtype) in schema.iter() {
            let _ = writeln!(report, "     {name}: {dtype}");
        }
    }
    if !reasons.is_empty() {
        let _ = writeln!(report, "   rejects by reason:");
        for (reason, n) in &reasons {
            let _ = writeln!(report, "     {reason}: {n}");
        }
    }
    report.push('\n');
    Ok(())
}

fn inspect_runs(output: &Storage, report: &mut String) -> Result<()> {
    let manifests = load_manifests(output)?;
    let _ = writeln!(report, "== runs ({})", manifests.len());
    for m in manifests.iter().rev() {
        if m.is_maintenance() {
            let merged_into = m.outputs.iter().filter(|p| p.ends_with(".parquet")).count();
            let _ = writeln!(
                report,
                "   {}  maintenance: {} files merged into {merged_into}, {} expired files and {} expired manifests deleted",
                m.run_id,
                m.compacted.len(),
                m.expired.len(),
                m.expired_runs.len()
            );
            continue;
        }
        let _ = writeln!(
            report,
            "   {}  {:<19}  {:<5}  files {:>4}  unreadable {:>3}  bronze {:>9}  events {:>9}  rejects {:>7}  gold {:>7}{}",
            m.run_id,
            m.status.as_str(),
            m.engine.as_str(),
            m.files.len(),
            m.unreadable_files.len(),
            m.rows.bronze,
            m.rows.silver_events,
            m.rows.silver_rejects,
            m.rows.gold,
            m.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default()
        );
        for file in &m.unreadable_files {
            let _ = writeln!(
                report,
                "      unreadable: {} ({} bytes, xxh3 {}): {}",
                file.path, file.size, file.content_hash, file.error
            );
        }
    }
    Ok(())
}
