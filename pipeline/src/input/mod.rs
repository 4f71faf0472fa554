//! Raw input: which files are event files, how their bytes are decoded, and
//! the CSV and NDJSON readers that turn them into records (SPEC §2).
//!
//! Readers push each record into a [`RecordSink`] with its seven known
//! fields exactly as read, unknown columns/keys as a JSON object, and the
//! physical line the record starts on. Malformed records are pushed with
//! their text. A file that cannot be decoded at all is an error naming it.

mod csv;
mod ndjson;

use std::borrow::Cow;
use std::io::Read;

use crate::error::{Error, Result};

pub use self::csv::read_csv;
pub use self::ndjson::read_ndjson;

/// The raw fields, in the column order of bronze.
pub const FIELDS: [&str; 7] =
    ["event_id", "service", "event_type", "timestamp", "latency_ms", "status_code", "user_id"];

/// Index of a known field in [`FIELDS`], matched after trimming, case-insensitively.
pub fn field_index(name: &str) -> Option<usize> {
    let name = name.trim();
    FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name))
}

/// Receives the records of one file in order.
pub trait RecordSink {
    /// A well-formed record: known fields (None when absent) and unknown ones as a JSON object.
    fn record(&mut self, line: i64, fields: [Option<&str>; 7], extra: Option<&str>);
    /// A malformed record (field-count mismatch, invalid JSON, not an object, invalid UTF-8).
    fn malformed(&mut self, line: i64, raw: &str);
}

/// How an event file is encoded, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    pub format: Format,
    pub gzip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

/// The kind of an event file at `relative` path (with `/` separators), or
/// `None` when the file is to be ignored: another extension, or a path
/// component starting with `.` or `_`.
pub fn classify(relative: &str) -> Option<FileKind> {
    if relative.split('/').any(|c| c.is_empty() || c.starts_with('.') || c.starts_with('_')) {
        return None;
    }
    let (stem, gzip) = match relative.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (relative, false),
    };
    let format = if stem.ends_with(".csv") {
        Format::Csv
    } else if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        Format::Ndjson
    } else {
        return None;
    };
    Some(FileKind { format, gzip })
}

/// Decompresses (when gzipped) and strips a UTF-8 byte-order mark.
pub fn decode<'a>(bytes: &'a [u8], kind: FileKind, path: &str) -> Result<Cow<'a, [u8]>> {
    let data: Cow<'a, [u8]> = if kind.gzip {
        let mut out = Vec::with_capacity(bytes.len() * 6);
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| Error::UnreadableInput {
            path: path.to_string(),
            message: format!("not a valid gzip stream ({e})"),
        })?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(bytes)
    };
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    Ok(match data {
        Cow::Borrowed(b) => Cow::Borrowed(b.strip_prefix(BOM).unwrap_or(b)),
        Cow::Owned(mut v) => {
            if v.starts_with(BOM) {
                v.drain(..BOM.len());
            }
            Cow::Owned(v)
        }
    })
}

/// Reads one decoded file into `sink`; returns how many records were malformed.
pub fn read_file(data: &[u8], kind: FileKind, path: &str, sink: &mut impl RecordSink) -> Result<ReadStats> {
    match kind.format {
        Format::Csv => read_csv(data, path, sink),
        Format::Ndjson => read_ndjson(data, path, sink),
    }
}

/// Counts of one file's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    pub malformed: u64,
}

/// Fails when a file has records but none of them is valid UTF-8: such a
/// file is not text in the expected encoding, not a file with a few bad rows.
fn check_text(stats: ReadStats, invalid_utf8: u64, path: &str) -> Result<ReadStats> {
    if stats.records > 0 && invalid_utf8 == stats.records {
        return Err(Error::UnreadableInput { path: path.to_string(), message: "no record is valid UTF-8".into() });
    }
    Ok(stats)
}

/// Appends `"key":` to a JSON object under construction.
fn push_json_key(out: &mut String, key: &str) {
    out.push(if out.is_empty() { '{' } else { ',' });
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(key).unwrap_or_default());
    out.push(':');
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::RecordSink;

    /// Collects records as owned values for assertions.
    #[derive(Debug, Default)]
    pub struct Collect {
        pub rows: Vec<(i64, [Option<String>; 7], Option<String>)>,
        pub malformed: Vec<(i64, String)>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, line: i64, fields: [Option<&str>; 7], extra: Option<&str>) {
            self.rows.push((line, fields.map(|f| f.map(str::to_string)), extra.map(str::to_string)));
        }
        fn malformed(&mut self, line: i64, raw: &str) {
            self.malformed.push((line, raw.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_follows_extension_and_ignore_rules() {
        let csv = Some(FileKind { format: Format::Csv, gzip: false });
        let ndjson_gz = Some(FileKind { format: Format::Ndjson, gzip: true });
        assert_eq!(classify("a/b.csv"), csv);
        assert_eq!(classify("x.ndjson.gz"), ndjson_gz);
        assert_eq!(classify("x.jsonl.gz"), ndjson_gz);
        assert_eq!(classify("x.json"), None);
        assert_eq!(classify("x.csv.bak"), None);
        assert_eq!(classify(".hidden.csv"), None);
        assert_eq!(classify("_tmp/a.csv"), None);
        assert_eq!(classify("a/.git/b.csv"), None);
    }

    #[test]
    fn bom_is_stripped_and_bad_gzip_names_the_file() {
        let kind = FileKind { format: Format::Csv, gzip: false };
        assert_eq!(&*decode(b"\xEF\xBB\xBFa,b", kind, "f.csv").expect("plain"), b"a,b");
        let gz = FileKind { format: Format::Csv, gzip: true };
        let err = decode(b"not gzip", gz, "in/f.csv.gz").unwrap_err();
        assert!(err.to_string().contains("in/f.csv.gz"), "{err}");
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::test_support::Collect;
    use super::*;

    proptest! {
        #[test]
        fn readers_never_panic_and_count_every_record(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for format in [Format::Csv, Format::Ndjson] {
                let mut sink = Collect::default();
                if let Ok(stats) = read_file(&bytes, FileKind { format, gzip: false }, "p", &mut sink) {
                    prop_assert_eq!(stats.records as usize, sink.rows.len() + sink.malformed.len());
                    prop_assert_eq!(stats.malformed as usize, sink.malformed.len());
                }
            }
        }

        #[test]
        fn csv_like_text_never_panics(text in "[a-z,\"\r\n ]{0,200}") {
            let mut sink = Collect::default();
            let _ = read_csv(format!("event_id,service\n{text}").as_bytes(), "p.csv", &mut sink);
        }

        #[test]
        fn json_like_text_never_panics(text in r#"[{}\[\]":,a-z0-9 \\\n.-]{0,200}"#) {
            let _ = read_ndjson(text.as_bytes(), "p.ndjson", &mut Collect::default());
        }
    }
}
