//! The command line (README "Command line"): `run`, `generate`, `inspect`; logging setup,
//! the run summary, and exit codes (0 ok, 1 run failed, 2 usage or config,
//! 3 quality gate failed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config::{
    ConfigFile, EngineFlags, MaintenanceFlags, Overrides, PipelineConfig, PipelineFlags, RetentionFlags,
};
use crate::error::Error;
use crate::generate::{GenerateOptions, Kinds, generate};
use crate::inspect::{LAYER_NAMES, inspect};
use crate::runs::{CrashPoint, Manifest, Outcome, RunOptions, RunStatus, compact_output, run, vacuum};
use crate::storage::Storage;
use crate::tables::LogPolicy;

/// minutely: raw service events → bronze → silver → gold per-minute metrics.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Log format on stderr (level via RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MINUTELY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest new input files into bronze, silver and gold.
    Run(Box<RunArgs>),
    /// Write deterministic, realistic, dirty sample input.
    Generate(GenerateArgs),
    /// Show layers, partitions, rows, time ranges, schemas, rejects and runs.
    Inspect(InspectArgs),
    /// Merge the small files of every bronze, silver and rejects partition
    /// that holds small files from `compact_min_files` runs (runs do this
    /// for the partitions they write).
    Compact(CompactArgs),
    /// Expire bronze and rejects partitions and run manifests past their
    /// retention (`[retention]`); with --dry-run, only list them.
    Vacuum(VacuumArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Config file [default: config/minutely.toml when present].
    #[arg(long, env = "MINUTELY_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// Rebuild every layer from all input, ignoring earlier runs.
    #[arg(long)]
    full_refresh: bool,
    #[command(flatten)]
    pipeline: PipelineFlags,
    #[command(flatten)]
    engine: EngineFlags,
    #[command(flatten)]
    maintenance: MaintenanceFlags,
    /// Crash tests only: abort at this point of the run.
    #[arg(long, env = "MINUTELY_CRASH_AT", hide = true, value_parser = parse_crash_point)]
    crash_at: Option<CrashPoint>,
    /// Failure tests only: fail with an error at this point of the run.
    #[arg(long, env = "MINUTELY_FAIL_AT", hide = true, value_parser = parse_crash_point)]
    fail_at: Option<CrashPoint>,
}

fn parse_crash_point(name: &str) -> Result<CrashPoint, String> {
    CrashPoint::parse(name).ok_or_else(|| {
        let names: Vec<&str> = CrashPoint::ALL.iter().map(|(n, _)| *n).collect();
        format!("expected one of {}", names.join(", "))
    })
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of events to generate.
    #[arg(long)]
    events: u64,
    /// Seed; the same seed and count give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder to write into.
    #[arg(long, default_value = "input")]
    out: PathBuf,
    /// UTC date of the first event.
    #[arg(long, default_value = "2026-01-12")]
    start: chrono::NaiveDate,
    /// Minutes the events are spread over.
    #[arg(long, default_value_t = 3 * 24 * 60)]
    span_minutes: i64,
    /// Distinct services (1-1000).
    #[arg(long, default_value_t = GenerateOptions::DEFAULT_SERVICES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    services: usize,
    /// Number of files [default: about 50,000 events a file, at least 8 files].
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    files: Option<u64>,
    /// File kinds: every kind in turn (CSV, NDJSON, gzipped or not), or only plain CSV or NDJSON.
    #[arg(long, value_enum, default_value_t = Kinds::Mixed)]
    kinds: Kinds,
}

#[derive(Debug, Args)]
struct CompactArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// Output location (path, file://, memory://, s3://, gs://, az://).
    #[arg(long, env = "MINUTELY_OUTPUT")]
    output: Option<String>,
    #[command(flatten)]
    maintenance: MaintenanceFlags,
    /// Crash tests only: abort at this point of the compaction.
    #[arg(long, env = "MINUTELY_CRASH_AT", hide = true, value_parser = parse_crash_point)]
    crash_at: Option<CrashPoint>,
}

#[derive(Debug, Args)]
struct VacuumArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// Output location (path, file://, memory://, s3://, gs://, az://).
    #[arg(long, env = "MINUTELY_OUTPUT")]
    output: Option<String>,
    /// Only print what would be removed.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    retention: RetentionFlags,
    /// Tests only: the UTC date retention counts back from [default: today].
    #[arg(long, hide = true)]
    today: Option<chrono::NaiveDate>,
    /// Crash tests only: abort at this point of the vacuum.
    #[arg(long, env = "MINUTELY_CRASH_AT", hide = true, value_parser = parse_crash_point)]
    crash_at: Option<CrashPoint>,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// One of bronze, silver, rejects, gold, runs [default: all].
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(LAYER_NAMES))]
    layer: Option<String>,
    #[command(flatten)]
    common: ConfigArgs,
    /// Output location (path, file://, memory://, s3://, gs://, az://).
    #[arg(long, env = "MINUTELY_OUTPUT")]
    output: Option<String>,
}

/// Parses arguments, runs the command, and maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error.chain());
            ExitCode::from(if error.is_usage() { 2 } else { 1 })
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Run(args) => {
            let file = ConfigFile::load(args.common.config.as_deref())?;
            let config = file.resolve(Overrides {
                pipeline: args.pipeline,
                engine: args.engine,
                maintenance: args.maintenance,
                ..Overrides::default()
            })?;
            let started = Instant::now();
            match run(
                &config,
                RunOptions {
                    full_refresh: args.full_refresh,
                    log: log_policy(&config),
                    crash_at: args.crash_at,
                    fail_at: args.fail_at,
                },
            )? {
                Outcome::NothingNew { files_skipped } => {
                    println!("Nothing new to ingest ({files_skipped} files already ingested); nothing written.");
                    Ok(ExitCode::SUCCESS)
                }
                Outcome::Committed(manifest) => {
                    print_summary(&manifest, started.elapsed().as_secs_f64());
                    if manifest.status == RunStatus::QualityGateFailed {
                        if manifest.reject_ratio > manifest.max_reject_ratio {
                            eprintln!(
                                "error: quality gate failed: reject ratio {:.4} is above the maximum {}",
                                manifest.reject_ratio, manifest.max_reject_ratio
                            );
                        }
                        let unreadable = manifest.unreadable_files.len() as u64;
                        if unreadable > manifest.max_unreadable_files {
                            eprintln!(
                                "error: quality gate failed: {unreadable} unreadable input file(s), more than the maximum {}",
                                manifest.max_unreadable_files
                            );
                        }
                        return Ok(ExitCode::from(3));
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Generate(args) => {
            let started = Instant::now();
            let options = GenerateOptions {
                events: args.events,
                seed: args.seed,
                out: args.out.clone(),
                start_seconds: args.start.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
                span_seconds: args.span_minutes.max(1) * 60,
                services: args.services,
                files: args.files,
                kinds: args.kinds,
            };
            let done = generate(&options)?;
            println!(
                "Generated {} events in {} files ({:.1} MB) under {} in {:.2}s.",
                done.events,
                done.files,
                done.bytes as f64 / 1e6,
                args.out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact(args) => {
            let file = ConfigFile::load(args.common.config.as_deref())?;
            let pipeline = PipelineFlags { output: args.output, ..PipelineFlags::default() };
            let config = file.resolve(Overrides { pipeline, maintenance: args.maintenance, ..Overrides::default() })?;
            let started = Instant::now();
            let options = RunOptions { log: log_policy(&config), crash_at: args.crash_at, ..RunOptions::default() };
            match compact_output(&config, &options)? {
                None => println!(
                    "Nothing to compact: no partition holds small files from {} runs.",
                    config.maintenance.compact_min_files
                ),
                Some(m) => {
                    let files: Vec<&String> = m.outputs.iter().filter(|p| p.ends_with(".parquet")).collect();
                    let partitions: std::collections::BTreeSet<&str> =
                        files.iter().filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir)).collect();
                    println!(
                        "Compaction {} merged {} files into {} in {} partitions in {:.2}s.",
                        m.run_id,
                        m.compacted.len(),
                        files.len(),
                        partitions.len(),
                        started.elapsed().as_secs_f64()
                    );
                    println!("  manifest: {}/{}", m.output.trim_end_matches('/'), Manifest::path(&m.run_id));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vacuum(args) => {
            let file = ConfigFile::load(args.common.config.as_deref())?;
            let pipeline = PipelineFlags { output: args.output, ..PipelineFlags::default() };
            let config = file.resolve(Overrides { pipeline, retention: args.retention, ..Overrides::default() })?;
            let today = args.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let options = RunOptions { log: log_policy(&config), crash_at: args.crash_at, ..RunOptions::default() };
            let expiry = vacuum(&config, today, args.dry_run, &options)?;
            let verb = if args.dry_run { "Would remove" } else { "Removed" };
            println!(
                "{verb} {} files ({:.1} MB) of {} expired partitions, {} expired run manifests \
                 and {} replaced files whose time for time travel is up.",
                expiry.files.len(),
                expiry.bytes as f64 / 1e6,
                expiry.partitions.len(),
                expiry.runs.len(),
                expiry.replaced.len()
            );
            if args.dry_run {
                for partition in &expiry.partitions {
                    println!("  {partition}");
                }
            }
            if let Some(run_id) = expiry.run_id {
                println!("  manifest: {}/{}", config.pipeline.output.trim_end_matches('/'), Manifest::path(&run_id));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(args) => {
            let file = ConfigFile::load(args.common.config.as_deref())?;
            let pipeline = PipelineFlags { output: args.output, ..PipelineFlags::default() };
            let config = file.resolve(Overrides { pipeline, ..Overrides::default() })?;
            let output = Storage::open(&config.pipeline.output, false)?;
            print!("{}", inspect(&output, args.layer.as_deref())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// When tables get checkpoints and lose old log files, and how long
/// replaced files stay (`[maintenance]`).
fn log_policy(config: &PipelineConfig) -> LogPolicy {
    LogPolicy {
        checkpoint_interval: config.maintenance.checkpoint_interval,
        retention_hours: config.maintenance.log_retention_hours,
        keep_replaced_hours: config.maintenance.keep_replaced_hours,
    }
}

fn print_summary(m: &Manifest, seconds: f64) {
    println!("Run {} {} in {seconds:.2}s.", m.run_id, m.status.as_str());
    println!(
        "  input files: {} ingested, {} already ingested, {} unreadable",
        m.files.len(),
        m.files_skipped,
        m.unreadable_files.len()
    );
    for file in &m.unreadable_files {
        println!("  unreadable (skipped until it changes): {}: {}", file.path, file.error);
    }
    println!(
        "  bronze {} rows -> silver {} events + {} rejects ({:.2}%) -> gold {} rows in {} partitions",
        m.rows.bronze,
        m.rows.silver_events,
        m.rows.silver_rejects,
        m.reject_ratio * 100.0,
        m.rows.gold,
        m.gold_partitions.len()
    );
    if !m.rejects_by_reason.is_empty() {
        let reasons: Vec<String> = m.rejects_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("  rejects by reason: {}", reasons.join(", "));
    }
    let c = &m.counters;
    println!(
        "  nulled optional fields: latency {} invalid / {} missing, status {} invalid / {} missing",
        c.latency_invalid, c.latency_missing, c.status_invalid, c.status_missing
    );
    if m.rows.bronze > 0 && seconds > 0.0 {
        println!("  throughput: {:.0} events/s", m.rows.bronze as f64 / seconds);
    }
    println!("  manifest: {}/{}", m.output.trim_end_matches('/'), Manifest::path(&m.run_id));
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
