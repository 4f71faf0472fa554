//! `pipeline generate`: deterministic, realistic, dirty sample input.
//!
//! Events are spread over files of every supported kind (CSV, NDJSON,
//! gzipped or not) and carry every dialect point of README "Input" and every case
//! of the cleaning rules of §4 at low rates (a few percent of rows are
//! rejected), so a generated folder exercises the whole pipeline. Each file
//! has its own RNG seeded from the seed and its index: the output depends
//! only on `--events` and `--seed`, not on thread scheduling.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Options of `pipeline generate`.
#[derive(Debug, Clone)]
pub(crate) struct GenerateOptions {
    pub(crate) events: u64,
    pub(crate) seed: u64,
    pub(crate) out: PathBuf,
    /// First event time, seconds since the epoch (UTC).
    pub(crate) start_seconds: i64,
    /// Events spread evenly over this many seconds after `start_seconds`.
    pub(crate) span_seconds: i64,
    /// Distinct services: the first eight have real names, the rest are
    /// `service-09`, `service-10`, ...
    pub(crate) services: usize,
    /// Number of files; `None`: about 50,000 events a file, at least 8.
    pub(crate) files: Option<u64>,
    pub(crate) kinds: Kinds,
}

/// Which kinds of event file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kinds {
    /// CSV, NDJSON, gzipped CSV, gzipped NDJSON, in turn.
    Mixed,
    /// Plain CSV only.
    Csv,
    /// Plain NDJSON only.
    Ndjson,
}

impl GenerateOptions {
    pub(crate) const DEFAULT_SERVICES: usize = SERVICES.len();
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generated {
    pub(crate) files: u64,
    pub(crate) events: u64,
    pub(crate) bytes: u64,
}

const SERVICES: [&str; 8] =
    ["checkout", "payments", "search", "auth", "inventory", "shipping", "recommendations", "notifications"];
const EVENT_TYPES: [&str; 4] = ["request", "request", "request", "job"];
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-south-1"];

/// Writes `options.events` events under `options.out`, plus a few files the
/// pipeline must ignore.
pub(crate) fn generate(options: &GenerateOptions) -> Result<Generated> {
    let per_file = match options.files {
        Some(files) => options.events.div_ceil(files).max(1),
        None => (options.events / 8).clamp(250, 50_000),
    };
    let files = options.events.div_ceil(per_file);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(&options.out).map_err(io(&options.out))?;
    let bytes = (0..files)
        .into_par_iter()
        .map(|index| {
            let first = index * per_file;
            let count = per_file.min(options.events - first);
            let file = FileSpec::new(index, options.seed, options.kinds);
            let path = options.out.join(&file.name);
            let data = file.render(first, count, options)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, &data).map_err(io(&path))?;
            Ok(data.len() as u64)
        })
        .collect::<Result<Vec<u64>>>()?
        .into_iter()
        .sum();
    for (name, text) in [
        ("README.txt", "Not an event file: ignored by the pipeline.\n"),
        ("_incoming/partial.csv", "event_id,service\nignored,because-of-underscore-folder\n"),
        (".inflight.ndjson", "{\"event_id\":\"ignored-hidden-file\"}\n"),
    ] {
        let path = options.out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(Generated { files, events: options.events, bytes })
}

/// The shape of one generated file, from its index.
struct FileSpec {
    name: String,
    ndjson: bool,
    gzip: bool,
    bom: bool,
    crlf: bool,
    /// CSV column order; `region` is an unknown column kept in `_extra`.
    columns: Vec<&'static str>,
    rng: StdRng,
}

impl FileSpec {
    fn new(index: u64, seed: u64, kinds: Kinds) -> Self {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
        let (ndjson, gzip) = match (kinds, index % 4) {
            (Kinds::Csv, _) | (Kinds::Mixed, 0) => (false, false),
            (Kinds::Ndjson, _) | (Kinds::Mixed, 1) => (true, false),
            (Kinds::Mixed, 2) => (false, true),
            (Kinds::Mixed, _) => (true, true),
        };
        let ext = match (ndjson, gzip, index % 8 == 3) {
            (false, false, _) => "csv",
            (false, true, _) => "csv.gz",
            (true, false, _) => "ndjson",
            (true, true, true) => "jsonl.gz",
            (true, true, false) => "ndjson.gz",
        };
        let mut columns =
            vec!["event_id", "service", "event_type", "timestamp", "latency_ms", "status_code", "user_id", "region"];
        // Shuffle the column order (Fisher–Yates), and sometimes drop user_id.
        for i in (1..columns.len()).rev() {
            columns.swap(i, rng.random_range(0..=i));
        }
        if index % 5 == 4 {
            columns.retain(|c| *c != "user_id");
        }
        Self {
            name: format!("{}/events-{index:05}.{ext}", 12 + index % 3),
            ndjson,
            gzip,
            bom: index.is_multiple_of(3),
            crlf: index.is_multiple_of(2),
            columns,
            rng,
        }
    }

    fn render(mut self, first: u64, count: u64, options: &GenerateOptions) -> Result<Vec<u8>> {
        let mut events: Vec<Event> = Vec::with_capacity(count as usize);
        for i in first..first + count {
            let event = if i > first && self.rng.random_bool(0.01) {
                // A duplicate delivery: same id, same day, maybe other fields.
                let mut dup = events[self.rng.random_range(0..events.len())].clone();
                dup.latency = self.latency();
                dup
            } else {
                self.event(i, options)
            };
            events.push(event);
        }
        let text = if self.ndjson { self.ndjson_text(&events) } else { self.csv_text(&events)? };
        if !self.gzip {
            return Ok(text);
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
        encoder
            .write_all(&text)
            .and_then(|_| encoder.finish())
            .map_err(|source| Error::Io { path: self.name.clone().into(), source })
    }

    fn event(&mut self, i: u64, options: &GenerateOptions) -> Event {
        let (seed, total) = (options.seed, options.events.max(1));
        let rng = &mut self.rng;
        let offset = i128::from(i) * i128::from(options.span_seconds) / i128::from(total);
        let mut seconds = options.start_seconds + offset as i64;
        if rng.random_bool(0.01) {
            seconds -= rng.random_range(60..7_200); // late event
        }
        let micros = rng.random_range(0..1_000_000i64);
        let k = rng.random_range(0..options.services.max(1));
        let service = SERVICES.get(k).map_or_else(|| format!("service-{:02}", k + 1), |s| s.to_string());
        let service = service.as_str();
        Event {
            id: if chance(rng, 0.002) { "null".to_string() } else { format!("evt-{seed:x}-{i:010}") },
            service: messy_case(rng, service),
            event_type: if chance(rng, 0.002) {
                " N/A ".into()
            } else {
                EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())].to_string()
            },
            timestamp: timestamp(rng, seconds, micros),
            latency: self.latency(),
            status: status(&mut self.rng),
            user: user(&mut self.rng),
            region: REGIONS[self.rng.random_range(0..REGIONS.len())],
        }
    }

    fn latency(&mut self) -> String {
        let rng = &mut self.rng;
        let roll = rng.random_range(0..1000);
        let value = -(1.0f64 - rng.random::<f64>()).ln() * 40.0 + 1.0;
        match roll {
            0..=2 => format!("{value:.0}ms"),
            3..=4 => "-5".into(),
            5..=14 => String::new(),
            15..=16 => "NaN".into(),
            17 => "1e2".into(),
            _ => format!("{value:.3}"),
        }
    }

    fn csv_text(&mut self, events: &[Event]) -> Result<Vec<u8>> {
        let out = SharedBuffer::default();
        if self.bom {
            out.0.borrow_mut().extend_from_slice(b"\xEF\xBB\xBF");
        }
        let terminator = if self.crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
        let mut writer = csv::WriterBuilder::new().flexible(true).terminator(terminator).from_writer(out.clone());
        let header: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| if i % 3 == 0 { format!(" {} ", c.to_uppercase()) } else { c.to_string() })
            .collect();
        let csv_err = |e: csv::Error| Error::Io { path: self.name.clone().into(), source: e.into() };
        writer.write_record(&header).map_err(csv_err)?;
        for event in events {
            let mut record: Vec<&str> = self.columns.iter().map(|c| event.field(c)).collect();
            if self.rng.random_bool(0.001) {
                record.push("unexpected-extra-field"); // field-count mismatch: malformed
            }
            writer.write_record(&record).map_err(csv_err)?;
            if self.rng.random_bool(0.002) {
                writer.flush().map_err(|e| Error::Io { path: self.name.clone().into(), source: e })?;
                out.0.borrow_mut().extend_from_slice(if self.crlf { b"\r\n" } else { b"\n" }); // blank line
            }
        }
        writer.flush().map_err(|e| Error::Io { path: self.name.clone().into(), source: e })?;
        drop(writer);
        Ok(out.0.take())
    }

    fn ndjson_text(&mut self, events: &[Event]) -> Vec<u8> {
        let mut out = Vec::with_capacity(events.len() * 200);
        for event in events {
            let rng = &mut self.rng;
            if rng.random_bool(0.001) {
                out.extend_from_slice(b"{\"event_id\": \"broken\", \"service\": \n");
                continue;
            }
            let mut object = Map::new();
            object.insert("event_id".into(), json!(event.id));
            object
                .insert(if rng.random_bool(0.1) { " Service".into() } else { "service".into() }, json!(event.service));
            object.insert("event_type".into(), json!(event.event_type));
            object.insert("timestamp".into(), epoch_as_number(&event.timestamp));
            object.insert("latency_ms".into(), number_or_text(&event.latency));
            object.insert("status_code".into(), number_or_text(&event.status));
            object.insert("user_id".into(), if event.user.is_empty() { Value::Null } else { json!(event.user) });
            if rng.random_bool(0.05) {
                object.insert("tags".into(), json!({"region": event.region, "canary": rng.random_bool(0.5)}));
            }
            if rng.random_bool(0.01) {
                object.remove("user_id");
            }
            out.extend_from_slice(Value::Object(object).to_string().as_bytes());
            out.push(b'\n');
            if rng.random_bool(0.002) {
                out.extend_from_slice(b"\n");
            }
        }
        out
    }
}

/// A buffer the CSV writer writes into while blank lines are added beside it.
#[derive(Debug, Clone, Default)]
struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Event {
    id: String,
    service: String,
    event_type: String,
    timestamp: String,
    latency: String,
    status: String,
    user: String,
    region: &'static str,
}

impl Event {
    fn field(&self, column: &str) -> &str {
        match column {
            "event_id" => &self.id,
            "service" => &self.service,
            "event_type" => &self.event_type,
            "timestamp" => &self.timestamp,
            "latency_ms" => &self.latency,
            "status_code" => &self.status,
            "user_id" => &self.user,
            _ => self.region,
        }
    }
}

fn chance(rng: &mut StdRng, p: f64) -> bool {
    rng.random_bool(p)
}

fn messy_case(rng: &mut StdRng, service: &str) -> String {
    match rng.random_range(0..100) {
        0 => String::new(), // missing_service
        1..=3 => service.to_uppercase(),
        4..=6 => format!("  {service}\t"),
        _ => service.to_string(),
    }
}

/// A timestamp in one of the accepted forms, or (rarely) a bad one.
fn timestamp(rng: &mut StdRng, seconds: i64, micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp(seconds, (micros * 1000) as u32).unwrap_or_default();
    match rng.random_range(0..1000) {
        0..=2 => "not-a-date".into(),
        3 => "2026-02-30T10:00:00Z".into(),
        4..=5 => "1999-12-31T23:59:59Z".into(),
        6..=8 => String::new(),
        9..=99 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        100..=149 => {
            let india = chrono::FixedOffset::east_opt(19_800).expect("+05:30 is a valid UTC offset");
            t.with_timezone(&india).format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
        }
        150..=199 => format!("{}{:03}", t.format("%Y-%m-%dt%H:%M:%S.%6f"), rng.random_range(0..1000)),
        200..=299 => seconds.to_string(),
        300..=399 => (seconds * 1000 + micros / 1000).to_string(),
        400..=449 => (seconds * 1_000_000 + micros).to_string(),
        450..=499 => format!("{seconds}.{micros:06}"),
        500..=549 => t.format("%d/%m/%Y %H:%M:%S").to_string(), // needs the configured pattern
        _ => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    }
}

fn status(rng: &mut StdRng) -> String {
    match rng.random_range(0..1000) {
        0..=1 => "abc".into(),
        2 => "700".into(),
        3..=12 => String::new(),
        13..=20 => "+200".into(),
        21..=28 => "200.0".into(),
        29..=60 => "500".into(),
        61..=80 => "503".into(),
        81..=120 => "404".into(),
        121..=160 => "201".into(),
        _ => "200".into(),
    }
}

fn user(rng: &mut StdRng) -> String {
    match rng.random_range(0..1000) {
        0..=19 => String::new(),
        20..=22 => format!("u{}, \"vip\"\nline two", rng.random_range(0..1000)),
        _ => format!("u{:05}", rng.random_range(0..50_000)),
    }
}

/// Epoch values go into NDJSON as JSON numbers; other forms as strings.
fn epoch_as_number(text: &str) -> Value {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) { number_or_text(text) } else { json!(text) }
}

/// A JSON number when `text` is one (kept exactly), else a string.
fn number_or_text(text: &str) -> Value {
    serde_json::from_str::<serde_json::Number>(text).map(Value::Number).unwrap_or_else(|_| json!(text))
}
