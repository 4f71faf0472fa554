//! Configuration: built-in defaults < `config/*.toml` < environment < flags.
//!
//! The TOML file is parsed once into [`ConfigFile`] (unknown keys are an
//! error naming the key); [`Overrides`] carries what the environment and the
//! command line set (clap reads both, flag first); [`ConfigFile::resolve`]
//! merges them into the validated [`PipelineConfig`] a run uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Config file read when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/minutely.toml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Settings of `pipeline run`, `generate` and `inspect`.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// Where the global stages run.
    #[serde(default)]
    pub engine: EngineSection,
    /// Settings of the `api` server.
    #[serde(default)]
    pub api: ApiSection,
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

/// `[engine]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    pub kind: EngineKind,
    /// Spark Connect URL of the `spark` engine, `sc://host:port[/;param=value...]`.
    pub spark_remote: Option<String>,
    /// The output location as the Spark cluster names it, when that differs
    /// from `output` (`s3a://` on Apache Spark, a mount); default: `output`
    /// (a local folder as an absolute path).
    pub spark_output: Option<String>,
}

/// `[pipeline]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Input location: a folder path or URL (`file://`, `memory://`, ...), read recursively.
    pub input: String,
    /// Output location holding `bronze/`, `silver/`, `gold/` and `_runs/`.
    pub output: String,
    /// Quality gate: a run whose rejected/bronze row ratio exceeds this exits with code 3.
    pub max_reject_ratio: f64,
    /// Quality gate: a run that finds more unreadable input files than this exits with code 3.
    pub max_unreadable_files: u64,
    /// Extra chrono `strftime` patterns tried after the built-in timestamp forms, in order.
    pub timestamp_formats: Vec<String>,
    /// Rows parsed per processing batch; bounds memory: two batches are in
    /// flight (one parsed, one written) at about 1 KB a row.
    pub batch_rows: usize,
    /// A CSV record or NDJSON line longer than this many bytes is malformed;
    /// bronze keeps its first bytes and the reader skips the rest unread.
    pub max_record_bytes: usize,
    /// zstd level of the layer files: 1 encodes fastest, higher levels
    /// give smaller files for more CPU (README, "Parquet").
    pub zstd_level: i32,
    /// Object store outputs: seconds a run's lease lasts unless renewed (every third of it).
    /// A crashed run blocks the next one for at most this long.
    pub lease_secs: u64,
    /// MiB that duplicate detection, and then gold, may hold beyond the
    /// batches in flight: exact event ids up to it, then a Bloom filter of
    /// this size with ids spilled under `_staging`; gold reads a date in as
    /// many passes as it needs to stay within it (README, "Memory").
    pub memory_budget_mb: u64,
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            input: "input".into(),
            output: "output".into(),
            max_reject_ratio: 0.25,
            max_unreadable_files: 0,
            timestamp_formats: Vec::new(),
            batch_rows: 100_000,
            max_record_bytes: 1 << 20,
            zstd_level: crate::storage::DEFAULT_ZSTD_LEVEL,
            lease_secs: 60,
            memory_budget_mb: 512,
        }
    }
}

/// `[api]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address the HTTP server binds to.
    pub bind: String,
    /// Seconds between polls of `_runs/` for a newer successful run.
    pub reload_interval_secs: u64,
    /// Memory the server may use for gold, in MiB: the newest dates are kept
    /// decoded (the hot window) and older ones are read from the layer files
    /// on demand into a cache, both within this budget.
    pub memory_budget_mb: u64,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self { bind: "127.0.0.1:8080".into(), reload_interval_secs: 5, memory_budget_mb: 256 }
    }
}

/// Values set by environment variables or flags; `None` leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub input: Option<String>,
    pub output: Option<String>,
    pub max_reject_ratio: Option<f64>,
    pub max_unreadable_files: Option<u64>,
    /// Added to the file's formats (not replacing them).
    pub timestamp_formats: Vec<String>,
    pub batch_rows: Option<usize>,
    pub max_record_bytes: Option<usize>,
    pub zstd_level: Option<i32>,
    pub lease_secs: Option<u64>,
    pub memory_budget_mb: Option<u64>,
    pub engine: Option<EngineKind>,
    pub spark_remote: Option<String>,
    pub spark_output: Option<String>,
}

/// The validated settings of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub input: String,
    pub output: String,
    pub max_reject_ratio: f64,
    pub max_unreadable_files: u64,
    pub timestamp_formats: Vec<String>,
    pub batch_rows: usize,
    pub max_record_bytes: usize,
    pub zstd_level: i32,
    pub lease_secs: u64,
    pub memory_budget_mb: u64,
    pub engine: EngineKind,
    /// Set (and an `sc://` URL) when `engine` is `spark`.
    pub spark_remote: Option<String>,
    pub spark_output: Option<String>,
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
        let file = &self.pipeline;
        let mut timestamp_formats = file.timestamp_formats.clone();
        timestamp_formats.extend(overrides.timestamp_formats);
        let config = PipelineConfig {
            input: overrides.input.unwrap_or_else(|| file.input.clone()),
            output: overrides.output.unwrap_or_else(|| file.output.clone()),
            max_reject_ratio: overrides.max_reject_ratio.unwrap_or(file.max_reject_ratio),
            max_unreadable_files: overrides.max_unreadable_files.unwrap_or(file.max_unreadable_files),
            timestamp_formats,
            batch_rows: overrides.batch_rows.unwrap_or(file.batch_rows),
            max_record_bytes: overrides.max_record_bytes.unwrap_or(file.max_record_bytes),
            zstd_level: overrides.zstd_level.unwrap_or(file.zstd_level),
            lease_secs: overrides.lease_secs.unwrap_or(file.lease_secs),
            memory_budget_mb: overrides.memory_budget_mb.unwrap_or(file.memory_budget_mb),
            engine: overrides.engine.unwrap_or(self.engine.kind),
            spark_remote: overrides.spark_remote.or_else(|| self.engine.spark_remote.clone()),
            spark_output: overrides.spark_output.or_else(|| self.engine.spark_output.clone()),
        };
        config.validate()?;
        Ok(config)
    }
}

impl PipelineConfig {
    /// [`PipelineConfig::memory_budget_mb`] in bytes.
    pub fn memory_budget(&self) -> usize {
        (self.memory_budget_mb as usize) << 20
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.max_reject_ratio) {
            return Err(Error::Config(format!("max_reject_ratio must be within 0..=1, got {}", self.max_reject_ratio)));
        }
        if self.batch_rows == 0 {
            return Err(Error::Config("batch_rows must be at least 1".into()));
        }
        if !(16..=1 << 30).contains(&self.max_record_bytes) {
            return Err(Error::Config(format!(
                "max_record_bytes must be within 16..=1073741824, got {}",
                self.max_record_bytes
            )));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(Error::Config(format!("zstd_level must be within 1..=22, got {}", self.zstd_level)));
        }
        if !(1..=86_400).contains(&self.lease_secs) {
            return Err(Error::Config(format!("lease_secs must be within 1..=86400, got {}", self.lease_secs)));
        }
        if !(1..=1 << 20).contains(&self.memory_budget_mb) {
            return Err(Error::Config(format!(
                "memory_budget_mb must be within 1..=1048576, got {}",
                self.memory_budget_mb
            )));
        }
        for format in &self.timestamp_formats {
            validate_strftime(format)?;
        }
        match (self.engine, &self.spark_remote) {
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
pub fn validate_strftime(format: &str) -> Result<()> {
    use chrono::format::{Item, StrftimeItems};
    if format.trim().is_empty() || StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(Error::Config(format!("timestamp format {format:?} is not a valid strftime pattern")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .resolve(Overrides {
                input: Some("b".into()),
                timestamp_formats: vec!["%Y%m%d%H%M%S".into()],
                ..Overrides::default()
            })
            .expect("valid");
        assert_eq!(config.input, "b");
        assert_eq!(config.output, "output");
        assert_eq!(config.timestamp_formats, ["%d/%m/%Y %H:%M:%S", "%Y%m%d%H%M%S"]);
    }

    #[test]
    fn bad_strftime_and_ratio_are_config_errors() {
        let file = ConfigFile::default();
        let bad_format = Overrides { timestamp_formats: vec!["%Q".into()], ..Overrides::default() };
        assert!(file.resolve(bad_format).unwrap_err().is_usage());
        let bad_ratio = Overrides { max_reject_ratio: Some(1.5), ..Overrides::default() };
        assert!(file.resolve(bad_ratio).unwrap_err().is_usage());
    }

    #[test]
    fn spark_engine_needs_an_sc_remote() {
        let file = ConfigFile::parse("[engine]\nkind = \"spark\"\n", Path::new("x.toml")).expect("valid");
        let err = file.resolve(Overrides::default()).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("spark_remote"), "{err}");
        let http = Overrides { spark_remote: Some("http://h:15002".into()), ..Overrides::default() };
        assert!(file.resolve(http).unwrap_err().to_string().contains("sc://"));
        let remote = Overrides { spark_remote: Some("sc://h:15002".into()), ..Overrides::default() };
        let config = file.resolve(remote).expect("valid");
        assert_eq!((config.engine, config.spark_remote.as_deref()), (EngineKind::Spark, Some("sc://h:15002")));
        let local = Overrides { engine: Some(EngineKind::Local), ..Overrides::default() };
        assert_eq!(file.resolve(local).expect("valid").engine, EngineKind::Local);
    }

    #[test]
    fn unknown_engine_kind_is_a_parse_error_naming_it() {
        let err = ConfigFile::parse("[engine]\nkind = \"flink\"\n", Path::new("x.toml")).unwrap_err();
        assert!(err.is_usage() && err.to_string().contains("flink"), "{err}");
    }
}
