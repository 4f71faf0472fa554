//! Configuration: built-in defaults < `config/*.toml` < environment < flags.
//!
//! Each setting is described once, in a `section!` entry (key, type,
//! default, environment variable, flag, range, doc); the file's sections,
//! the clap flags and the merge come from it. The TOML file is parsed once
//! into [`ConfigFile`] (unknown keys are an error naming the key);
//! [`Overrides`] carries what the environment and the command line set
//! (clap reads both, flag first); [`ConfigFile::resolve`] merges them into
//! the validated [`PipelineConfig`] a run uses, and `api` resolves its
//! `[api]` section the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Config file read when `--config` is not given, relative to the working directory.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "config/minutely.toml";

/// Declares a config section once: each setting's TOML key, type, default,
/// environment variable, flag and range, with its doc comment. From that
/// one list come the section as the file holds it (`$section`, which is also
/// the resolved value), the environment and flag overrides (`$flags`, clap
/// arguments a command flattens in), and `$section::resolve`, which
/// merges them (file < environment < flag) and checks each range. Adding a
/// setting is one entry here.
///
/// Three kinds of entries: plain ones (`key: T = default, env "VAR"`, an
/// optional `flag "name"` when the flag is not the key, an optional
/// `within RANGE`); `optional { key: T, env "VAR"; }`, unset by default;
/// `lists { key: T, flag "name", value_name "V"; }`, where each flag adds
/// to the file's list instead of replacing it.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $table:literal => $section:ident, $flags:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty = $default:expr, env $env:literal $(, flag $flag:literal)? $(, within $range:expr)?;
            )*
        }
        $(optional {
            $(
                $(#[doc = $odoc:literal])*
                $ofield:ident: $oty:ty, env $oenv:literal $(, flag $oflag:literal)?;
            )*
        })?
        $(lists {
            $(
                $(#[doc = $ldoc:literal])*
                $lfield:ident: $lty:ty, flag $lflag:literal, value_name $lvalue:literal;
            )*
        })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $section {
            $($(#[doc = $doc])* pub $field: $ty,)*
            $($($(#[doc = $odoc])* pub $ofield: Option<$oty>,)*)?
            $($($(#[doc = $ldoc])* pub $lfield: Vec<$lty>,)*)?
        }

        impl Default for $section {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                    $($($ofield: None,)*)?
                    $($($lfield: Vec::new(),)*)?
                }
            }
        }

        #[doc = concat!("What the environment and flags set in `[", $table, "]`; unset keeps the file's value.")]
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct $flags {
            $($(#[doc = $doc])* #[arg(long $(= $flag)?, env = $env)] pub $field: Option<$ty>,)*
            $($($(#[doc = $odoc])* #[arg(long $(= $oflag)?, env = $oenv)] pub $ofield: Option<$oty>,)*)?
            $($($(#[doc = $ldoc])* #[arg(long = $lflag, value_name = $lvalue)] pub $lfield: Vec<$lty>,)*)?
        }

        impl $section {
            /// This section with `flags` over it (a list flag adds to the
            /// file's list), each value checked against its range.
            pub fn resolve(&self, flags: $flags) -> Result<Self> {
                let resolved = Self {
                    $($field: flags.$field.unwrap_or_else(|| self.$field.clone()),)*
                    $($($ofield: flags.$ofield.or_else(|| self.$ofield.clone()),)*)?
                    $($($lfield: self.$lfield.iter().cloned().chain(flags.$lfield).collect(),)*)?
                };
                $($(
                    if !($range).contains(&resolved.$field) {
                        return Err(out_of_range::<$flags>($table, stringify!($field), &($range), &resolved.$field));
                    }
                )?)*
                Ok(resolved)
            }
        }
    };
}

/// The error for a setting outside its range, naming where it can be set.
fn out_of_range<F: clap::Args>(
    table: &str,
    key: &str,
    range: &impl std::fmt::Debug,
    value: &impl std::fmt::Debug,
) -> Error {
    let command = F::augment_args(clap::Command::new("settings"));
    let arg = command.get_arguments().find(|a| a.get_id() == key);
    let env = arg.and_then(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let flag = arg.and_then(|a| a.get_long()).unwrap_or(key);
    Error::Config(format!("{key} must be within {range:?}, got {value:?} ([{table}] {key}, {env} or --{flag})"))
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Settings of `pipeline run`, `generate` and `inspect`.
    #[serde(default)]
    pub pipeline: PipelineSettings,
    /// Where the global stages run.
    #[serde(default)]
    pub engine: EngineSettings,
    /// Compaction of the layers' small files.
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    /// What `pipeline vacuum` expires.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Settings of the `api` server.
    #[serde(default)]
    pub api: ApiSettings,
}

/// Where a run's global stages (duplicate detection against history, silver
/// events, gold) run; reading, bronze and rules 1–4 always run in `pipeline`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// This machine, with polars.
    #[default]
    Local,
    /// A Spark Connect server (Apache Spark, Databricks, EMR, Sail, ...).
    Spark,
}

impl EngineKind {
    /// The name config, flags and manifests use.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Local => "local",
            EngineKind::Spark => "spark",
        }
    }
}

section! {
    /// `[pipeline]`: settings of `pipeline run`, `generate` and `inspect`.
    "pipeline" => PipelineSettings, PipelineFlags {
        /// Input location: a folder path or URL (`file://`, `memory://`, ...), read recursively.
        input: String = "input".into(), env "MINUTELY_INPUT";
        /// Output location holding `bronze/`, `silver/`, `gold/` and `_runs/`.
        output: String = "output".into(), env "MINUTELY_OUTPUT";
        /// Quality gate: a run whose rejected/bronze row ratio exceeds this exits with code 3.
        max_reject_ratio: f64 = 0.25, env "MINUTELY_MAX_REJECT_RATIO", within 0.0..=1.0;
        /// Quality gate: a run that finds more unreadable input files than this exits with code 3.
        max_unreadable_files: u64 = 0, env "MINUTELY_MAX_UNREADABLE_FILES";
        /// Rows parsed per processing batch; bounds memory: two batches are in
        /// flight (one parsed, one written) at about 1 KB a row.
        batch_rows: usize = 100_000, env "MINUTELY_BATCH_ROWS", within 1..;
        /// A CSV record or NDJSON line longer than this many bytes is malformed;
        /// bronze keeps its first bytes and the reader skips the rest unread.
        max_record_bytes: usize = 1 << 20, env "MINUTELY_MAX_RECORD_BYTES", within 16..=1 << 30;
        /// zstd level of the layer files: 1 encodes fastest, higher levels
        /// give smaller files for more CPU (README, "Parquet").
        zstd_level: i32 = crate::storage::DEFAULT_ZSTD_LEVEL, env "MINUTELY_ZSTD_LEVEL", within 1..=22;
        /// Object store outputs: seconds a run's lease lasts unless renewed (every third of it).
        /// A crashed run blocks the next one for at most this long.
        lease_secs: u64 = 60, env "MINUTELY_LEASE_SECS", within 1..=86_400;
        /// MiB that duplicate detection, and then gold, may hold beyond the
        /// batches in flight: exact event ids up to it, then a Bloom filter of
        /// this size with ids spilled under `_staging`; gold reads a date in as
        /// many passes as it needs to stay within it (README, "Memory").
        memory_budget_mb: u64 = 512, env "MINUTELY_MEMORY_BUDGET_MB", within 1..=1 << 20;
        /// List only the newest part of the input: from the folder of the
        /// greatest path ingested so far on. For inboxes whose paths sort in
        /// delivery order (dated folders); a full listing still runs every
        /// `full_listing_hours` (README "Incremental listing").
        incremental_listing: bool = false, env "MINUTELY_INCREMENTAL_LISTING";
        /// With `incremental_listing`: the most hours between full listings,
        /// which find files delivered under paths that sort before the newest.
        full_listing_hours: u64 = 24, env "MINUTELY_FULL_LISTING_HOURS", within 1..=87_600;
    }
    lists {
        /// Extra chrono `strftime` patterns tried after the built-in timestamp
        /// forms, in order; each `--timestamp-format` adds one.
        timestamp_formats: String, flag "timestamp-format", value_name "FMT";
    }
}

section! {
    /// `[engine]`: where a run's global stages run.
    "engine" => EngineSettings, EngineFlags {
        /// Where the global stages run: this machine, or a Spark Connect server.
        kind: EngineKind = EngineKind::Local, env "MINUTELY_ENGINE", flag "engine";
    }
    optional {
        /// Spark Connect URL of the `spark` engine, `sc://host:port[/;param=value...]`.
        spark_remote: String, env "MINUTELY_SPARK_REMOTE";
        /// The output location as the Spark cluster names it, when that differs
        /// from `output` (`s3a://` on Apache Spark, a mount); default: `output`
        /// (a local folder as an absolute path).
        spark_output: String, env "MINUTELY_SPARK_OUTPUT";
    }
}

section! {
    /// `[maintenance]`: compaction of the layers' small files, after every
    /// run and by `pipeline compact` (README "Compaction").
    "maintenance" => MaintenanceSettings, MaintenanceFlags {
        /// A bronze, silver or rejects partition is compacted once it holds
        /// small files (under half of `target_file_mb`) from this many runs.
        compact_min_files: usize = 16, env "MINUTELY_COMPACT_MIN_FILES", within 2..=100_000;
        /// Compaction merges small files into files of up to this many MiB
        /// (compressed); a merge holds its files decoded in memory.
        target_file_mb: u64 = 32, env "MINUTELY_TARGET_FILE_MB", within 1..=1024;
        /// Each table gets a checkpoint (its whole state, in Parquet) every
        /// this many versions, so that opening it reads only the versions
        /// since (README "Tables").
        checkpoint_interval: u64 = crate::tables::DEFAULT_CHECKPOINT_INTERVAL, env "MINUTELY_CHECKPOINT_INTERVAL", within 1..=1_000_000;
        /// After each checkpoint, a table's commits and checkpoints below
        /// the newest checkpoint older than this many hours are deleted:
        /// time travel reaches back at least this far (README "Tables").
        log_retention_hours: u64 = crate::tables::DEFAULT_LOG_RETENTION_HOURS, env "MINUTELY_LOG_RETENTION_HOURS", within 0..=1_000_000;
        /// Data files a table version removed (a replaced gold partition,
        /// merged or expired files) stay this many hours for time travel
        /// before they are deleted; 0 deletes them at once, which keeps a
        /// plain Hive read of a layer correct (README "Keeping replaced files").
        keep_replaced_hours: u64 = 0, env "MINUTELY_KEEP_REPLACED_HOURS", within 0..=1_000_000;
    }
}

section! {
    /// `[retention]`: what `pipeline vacuum` expires (README "Retention");
    /// unset keeps everything.
    "retention" => RetentionSettings, RetentionFlags {}
    optional {
        /// Bronze partitions whose ingest date is more than this many days
        /// before today are removed from the table and deleted.
        bronze_days: u64, env "MINUTELY_BRONZE_DAYS";
        /// Rejects partitions whose ingest date is more than this many days
        /// before today are removed from the table and deleted.
        rejects_days: u64, env "MINUTELY_REJECTS_DAYS";
        /// Run manifests older than this many days are deleted (the newest
        /// run's is always kept, and the ingested-files index keeps every
        /// file they ingested).
        runs_days: u64, env "MINUTELY_RUNS_DAYS";
    }
}

section! {
    /// `[api]`: settings of the `api` server.
    "api" => ApiSettings, ApiFlags {
        /// Address the HTTP server binds to.
        bind: String = "127.0.0.1:8080".into(), env "MINUTELY_BIND";
        /// Seconds between polls of `_runs/` for a newer successful run (0 counts as 1).
        reload_interval_secs: u64 = 5, env "MINUTELY_RELOAD_INTERVAL_SECS";
        /// Memory the server may use for gold, in MiB: the newest dates are kept
        /// decoded (the hot window) and older ones are read from the layer files
        /// on demand into a cache, both within this budget.
        memory_budget_mb: u64 = 256, env "MINUTELY_API_MEMORY_BUDGET_MB", within 1..;
    }
    optional {
        /// Bearer tokens, one `<name> <sha256 hex of the token>` a line (`#`
        /// comments); every path but `/health` then needs one. Re-read when it
        /// changes. Unset: the API is open (README, "Access").
        tokens_file: PathBuf, env "MINUTELY_API_TOKENS_FILE";
        /// TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS
        /// only and picks up a renewed certificate without a restart.
        tls_cert: PathBuf, env "MINUTELY_API_TLS_CERT";
        /// TLS private key (PEM) of `tls_cert`.
        tls_key: PathBuf, env "MINUTELY_API_TLS_KEY";
    }
}

/// What the environment and flags set for a pipeline command.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub pipeline: PipelineFlags,
    pub engine: EngineFlags,
    pub maintenance: MaintenanceFlags,
    pub retention: RetentionFlags,
}

/// The validated settings of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub pipeline: PipelineSettings,
    /// `spark_remote` is set (and an `sc://` URL) when `kind` is `spark`.
    pub engine: EngineSettings,
    pub maintenance: MaintenanceSettings,
    pub retention: RetentionSettings,
}

impl ConfigFile {
    /// Reads `path`, or the default path when `None`. A missing default file
    /// means built-in defaults; a missing explicit file is an error.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::ConfigFile { path, source }),
        }
    }

    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| Error::ConfigParse { path: path.to_path_buf(), message: e.message().to_string() })
    }

    /// Merges overrides and validates the result.
    pub fn resolve(&self, overrides: Overrides) -> Result<PipelineConfig> {
        let config = PipelineConfig {
            pipeline: self.pipeline.resolve(overrides.pipeline)?,
            engine: self.engine.resolve(overrides.engine)?,
            maintenance: self.maintenance.resolve(overrides.maintenance)?,
            retention: self.retention.resolve(overrides.retention)?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl PipelineConfig {
    /// `memory_budget_mb` in bytes.
    pub fn memory_budget(&self) -> usize {
        (self.pipeline.memory_budget_mb as usize) << 20
    }

    /// Checks what spans settings; each setting's own range is checked by `resolve`.
    fn validate(&self) -> Result<()> {
        for format in &self.pipeline.timestamp_formats {
            validate_strftime(format)?;
        }
        let retention = &self.retention;
        for (key, days) in [
            ("bronze_days", retention.bronze_days),
            ("rejects_days", retention.rejects_days),
            ("runs_days", retention.runs_days),
        ] {
            if days == Some(0) {
                return Err(Error::Config(format!(
                    "{key} must be at least 1 day, got 0 ([retention] {key}, MINUTELY_{} or --{}); leave it unset to keep everything",
                    key.to_uppercase(),
                    key.replace('_', "-")
                )));
            }
        }
        if self.engine.kind == EngineKind::Spark && self.maintenance.keep_replaced_hours > 0 {
            // Spark reads a layer's folder whole, kept files included.
            return Err(Error::Config(
                "keep_replaced_hours ([maintenance] keep_replaced_hours, MINUTELY_KEEP_REPLACED_HOURS or \
                 --keep-replaced-hours) must be 0 with engine kind \"spark\": the spark engine reads every file \
                 of a layer folder, and would read kept replaced files as current"
                    .into(),
            ));
        }
        match (self.engine.kind, &self.engine.spark_remote) {
            (EngineKind::Spark, None) => Err(Error::Config(
                "engine kind \"spark\" needs spark_remote ([engine] spark_remote, MINUTELY_SPARK_REMOTE or --spark-remote)"
                    .into(),
            )),
            (_, Some(remote)) if !remote.starts_with("sc://") => {
                Err(Error::Config(format!("spark_remote must be an sc://host:port URL, got {remote:?}")))
            }
            _ => Ok(()),
        }
    }
}

/// Rejects a chrono pattern with an unknown or incomplete `%` directive.
pub(crate) fn validate_strftime(format: &str) -> Result<()> {
    use chrono::format::{Item, StrftimeItems};
    if format.trim().is_empty() || StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(Error::Config(format!("timestamp format {format:?} is not a valid strftime pattern")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_flags(pipeline: PipelineFlags) -> Overrides {
        Overrides { pipeline, ..Overrides::default() }
    }

    fn engine_flags(engine: EngineFlags) -> Overrides {
        Overrides { engine, ..Overrides::default() }
    }

    #[test]
    fn every_shipped_config_file_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config/ exists in the repository") {
            let path = entry.expect("readable dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let file = ConfigFile::load(Some(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                file.resolve(Overrides::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no config files found in {}", dir.display());
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = ConfigFile::parse("[pipeline]\nimput = \"x\"\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("imput"), "{err}");
    }

    #[test]
    fn flags_override_file_and_formats_accumulate() {
        let file = ConfigFile::parse(
            "[pipeline]\ninput = \"a\"\ntimestamp_formats = [\"%d/%m/%Y %H:%M:%S\"]\n",
            Path::new("x.toml"),
        )
        .expect("valid");
        let config = file
            .resolve(pipeline_flags(PipelineFlags {
                input: Some("b".into()),
                timestamp_formats: vec!["%Y%m%d%H%M%S".into()],
                ..PipelineFlags::default()
            }))
            .expect("valid");
        let config = config.pipeline;
        assert_eq!(config.input, "b");
        assert_eq!(config.output, "output");
        assert_eq!(config.timestamp_formats, ["%d/%m/%Y %H:%M:%S", "%Y%m%d%H%M%S"]);
    }

    #[test]
    fn bad_strftime_and_ratio_are_config_errors() {
        let file = ConfigFile::default();
        let bad_format =
            pipeline_flags(PipelineFlags { timestamp_formats: vec!["%Q".into()], ..PipelineFlags::default() });
        assert!(file.resolve(bad_format).unwrap_err().is_usage());
        let bad_ratio = pipeline_flags(PipelineFlags { max_reject_ratio: Some(1.5), ..PipelineFlags::default() });
        assert!(file.resolve(bad_ratio).unwrap_err().is_usage());
    }

    #[test]
    fn spark_engine_needs_an_sc_remote() {
        let file = ConfigFile::parse("[engine]\nkind = \"spark\"\n", Path::new("x.toml")).expect("valid");
        let err = file.resolve(Overrides::default()).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("spark_remote"), "{err}");
        let http = engine_flags(EngineFlags { spark_remote: Some("http://h:15002".into()), ..EngineFlags::default() });
        assert!(file.resolve(http).unwrap_err().to_string().contains("sc://"));
        let remote = engine_flags(EngineFlags { spark_remote: Some("sc://h:15002".into()), ..EngineFlags::default() });
        let config = file.resolve(remote).expect("valid").engine;
        assert_eq!((config.kind, config.spark_remote.as_deref()), (EngineKind::Spark, Some("sc://h:15002")));
        let local = engine_flags(EngineFlags { kind: Some(EngineKind::Local), ..EngineFlags::default() });
        assert_eq!(file.resolve(local).expect("valid").engine.kind, EngineKind::Local);
    }

    #[test]
    fn the_spark_engine_refuses_kept_replaced_files() {
        let remote =
            || engine_flags(EngineFlags { spark_remote: Some("sc://h:15002".into()), ..EngineFlags::default() });
        let spark = "[engine]\nkind = \"spark\"\n";
        let file = ConfigFile::parse(&format!("{spark}[maintenance]\nkeep_replaced_hours = 24\n"), Path::new("x.toml"))
            .expect("valid");
        let err = file.resolve(remote()).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("keep_replaced_hours"), "{err}");
        let file = ConfigFile::parse("[maintenance]\nkeep_replaced_hours = 24\n", Path::new("x.toml")).expect("valid");
        assert_eq!(file.resolve(Overrides::default()).expect("valid").maintenance.keep_replaced_hours, 24);
        let file = ConfigFile::parse(spark, Path::new("x.toml")).expect("valid");
        assert_eq!(file.resolve(remote()).expect("valid").maintenance.keep_replaced_hours, 0);
    }

    #[test]
    fn unknown_engine_kind_is_a_parse_error_naming_it() {
        let err = ConfigFile::parse("[engine]\nkind = \"flink\"\n", Path::new("x.toml")).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("flink"), "{err}");
    }

    #[test]
    fn a_setting_out_of_range_names_its_key_variable_and_flag() {
        let file = ConfigFile::parse("[pipeline]\nzstd_level = 30\n", Path::new("x.toml")).expect("valid");
        let err = file.resolve(Overrides::default()).unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert!(
            err.to_string().contains(
                "zstd_level must be within 1..=22, got 30 ([pipeline] zstd_level, MINUTELY_ZSTD_LEVEL or --zstd-level)"
            ),
            "{err}"
        );
        let file = ConfigFile::parse("[api]\nmemory_budget_mb = 0\n", Path::new("x.toml")).expect("valid");
        let err = file.api.resolve(ApiFlags::default()).unwrap_err();
        assert!(
            err.to_string().contains("[api] memory_budget_mb, MINUTELY_API_MEMORY_BUDGET_MB or --memory-budget-mb"),
            "{err}"
        );
    }

    #[test]
    fn flags_beat_the_file_and_a_flag_named_apart_from_its_key_is_read() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            pipeline: PipelineFlags,
            #[command(flatten)]
            engine: EngineFlags,
        }
        let cli = Cli::try_parse_from(["x", "--batch-rows", "7", "--engine", "spark", "--spark-remote", "sc://h:1"])
            .expect("valid flags");
        let file = ConfigFile::parse("[pipeline]\nbatch_rows = 5\n", Path::new("x.toml")).expect("valid");
        let config = file
            .resolve(Overrides { pipeline: cli.pipeline, engine: cli.engine, ..Overrides::default() })
            .expect("valid");
        assert_eq!(config.pipeline.batch_rows, 7);
        assert_eq!(config.engine.kind, EngineKind::Spark);
    }
}
