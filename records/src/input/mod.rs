//! Raw input: which files are event files, how their bytes are decoded, and
//! the CSV and NDJSON readers that turn them into records (README "Input").
//!
//! Readers push each record into a [`RecordSink`] with its seven known
//! fields exactly as read, unknown columns/keys as a JSON object, and the
//! physical line the record starts on. Malformed records are pushed with
//! their text. A file that cannot be decoded at all is an error naming it.

mod csv;
mod ndjson;
pub mod split;

use crate::error::{Error, Result};

pub use self::csv::{Columns, read_csv, read_csv_piece};
pub use self::ndjson::{read_ndjson, read_ndjson_piece};
pub use self::split::{Limits, Piece, Split, Splitter, Summary};

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
    /// A malformed record (field-count mismatch, invalid JSON, not an
    /// object, invalid UTF-8, too long), with a note in `extra` if any.
    fn malformed(&mut self, line: i64, raw: &str, extra: Option<&str>);
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

impl Default for Limits {
    fn default() -> Self {
        Self { max_record_bytes: 1 << 20, chunk_bytes: 4 << 20 }
    }
}

/// Parses one piece of a file into `sink`.
pub fn read_piece(piece: &Piece, sink: &mut impl RecordSink) -> ReadStats {
    match piece {
        Piece::Records { data, first_line, columns: Some(columns) } => read_csv_piece(data, *first_line, columns, sink),
        Piece::Records { data, first_line, columns: None } => read_ndjson_piece(data, *first_line, sink),
        Piece::Oversized { line, head, bytes } => {
            // The head is cut at a byte count: drop a character it splits.
            let text = match std::str::from_utf8(head) {
                Ok(text) => text.into(),
                Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&head[..e.valid_up_to()]),
                Err(_) => String::from_utf8_lossy(head),
            };
            sink.malformed(*line, &text, Some(&format!(r#"{{"_record_bytes":{bytes}}}"#)));
            ReadStats { records: 1, malformed: 1 }
        }
    }
}

/// Reads a whole decoded file held in memory into `sink`, one piece after
/// the other; the streaming path is [`Splitter`] and [`read_piece`].
pub fn read_all(
    data: &[u8],
    format: Format,
    path: &str,
    limits: Limits,
    sink: &mut impl RecordSink,
) -> Result<ReadStats> {
    read_in_blocks(data, format, path, limits, data.len().max(1), sink)
}

/// Like [`read_all`], feeding the splitter `block` bytes at a time.
pub fn read_in_blocks(
    data: &[u8],
    format: Format,
    path: &str,
    limits: Limits,
    block: usize,
    sink: &mut impl RecordSink,
) -> Result<ReadStats> {
    let mut pieces = Vec::new();
    let mut keep = |split: Split| {
        if let Split::Piece(piece) = split {
            pieces.push(piece);
        }
        Ok(())
    };
    let mut splitter = Splitter::new(format, limits, path);
    for block in data.chunks(block) {
        splitter.push(block, &mut keep)?;
    }
    let summary = splitter.finish(&mut keep)?;
    if !summary.text {
        return Err(not_text(path));
    }
    let mut stats = ReadStats::default();
    for piece in &pieces {
        stats.add(read_piece(piece, sink));
    }
    Ok(stats)
}

/// The error of a file whose every record is invalid UTF-8: such a file is
/// not text in the expected encoding, not a file with a few bad rows.
pub fn not_text(path: &str) -> Error {
    Error::UnreadableInput { path: path.to_string(), message: "no record is valid UTF-8".into() }
}

/// Counts of one file's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    pub malformed: u64,
}

impl ReadStats {
    pub fn add(&mut self, other: ReadStats) {
        self.records += other.records;
        self.malformed += other.malformed;
    }
}

/// Appends `"key":` to a JSON object under construction.
fn push_json_key(out: &mut String, key: &str) {
    out.push(if out.is_empty() { '{' } else { ',' });
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(key).unwrap_or_default());
    out.push(':');
}

#[cfg(any(test, feature = "reference"))]
pub mod test_support {
    use super::csv::is_blank;
    use super::split::BOM;
    use super::{Columns, ReadStats, RecordSink};
    use crate::error::{Error, Result};

    /// Collects records as owned values for assertions.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct Collect {
        pub rows: Vec<(i64, [Option<String>; 7], Option<String>)>,
        pub malformed: Vec<(i64, String)>,
        /// Notes of malformed records, by line.
        pub notes: Vec<(i64, String)>,
        /// Every record in order: its line, and whether it is malformed.
        pub order: Vec<(i64, bool)>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, line: i64, fields: [Option<&str>; 7], extra: Option<&str>) {
            self.rows.push((line, fields.map(|f| f.map(str::to_string)), extra.map(str::to_string)));
            self.order.push((line, false));
        }
        fn malformed(&mut self, line: i64, raw: &str, extra: Option<&str>) {
            self.malformed.push((line, raw.to_string()));
            self.order.push((line, true));
            if let Some(extra) = extra {
                self.notes.push((line, extra.to_string()));
            }
        }
    }

    /// The single-threaded whole-file readers the streaming ones replaced,
    /// kept as the reference they must equal record for record.
    fn check_text(stats: ReadStats, invalid_utf8: u64, path: &str) -> Result<ReadStats> {
        if stats.records > 0 && invalid_utf8 == stats.records {
            return Err(Error::UnreadableInput { path: path.to_string(), message: "no record is valid UTF-8".into() });
        }
        Ok(stats)
    }

    pub fn reference_csv(data: &[u8], path: &str, sink: &mut impl RecordSink) -> Result<ReadStats> {
        let data = data.strip_prefix(BOM).unwrap_or(data);
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
        let mut record = csv::ByteRecord::new();
        let mut stats = ReadStats::default();

        let header = loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => return Ok(stats),
                Ok(true) if is_blank(record.len(), record.get(0).unwrap_or_default()) => continue,
                Ok(true) => break record.clone(),
                Err(e) => panic!("reading memory: {e}"),
            }
        };
        let header: Vec<&[u8]> = header.iter().collect();
        let columns = Columns::from_header(&header, path)?;
        let targets = &columns.0;

        let mut invalid_utf8 = 0;
        let (mut line, mut counted_to) = (1i64, 0usize);
        let mut extra = String::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => panic!("reading memory: {e}"),
            }
            if is_blank(record.len(), record.get(0).unwrap_or_default()) && targets.len() > 1 {
                continue;
            }
            stats.records += 1;
            // The csv crate's positions start at the previous record's line
            // terminator and its line counter skips blank lines: find the
            // record's first byte and count `\n` up to it (incrementally).
            let mut start = record.position().map_or(counted_to, |p| p.byte() as usize).clamp(counted_to, data.len());
            while matches!(data.get(start), Some(b'\r' | b'\n')) {
                start += 1;
            }
            line += data[counted_to..start].iter().filter(|&&b| b == b'\n').count() as i64;
            counted_to = start;
            let raw = || {
                let end = (reader.position().byte() as usize).min(data.len());
                let text = String::from_utf8_lossy(&data[start..end]);
                text.trim_end_matches(['\r', '\n']).to_string()
            };
            if record.len() != targets.len() {
                stats.malformed += 1;
                sink.malformed(line, &raw(), None);
                continue;
            }
            let Ok(values) = record.iter().map(std::str::from_utf8).collect::<Result<Vec<&str>, _>>() else {
                invalid_utf8 += 1;
                stats.malformed += 1;
                sink.malformed(line, &raw(), None);
                continue;
            };
            let fields = columns.place(values, &mut extra);
            sink.record(line, fields, (!extra.is_empty()).then_some(extra.as_str()));
        }
        check_text(stats, invalid_utf8, path)
    }

    /// The whole file as one piece: what the streaming splitter adds
    /// (pieces, line numbers across them, the text check) is what is tested.
    pub fn reference_ndjson(data: &[u8], path: &str, sink: &mut impl RecordSink) -> Result<ReadStats> {
        let data = data.strip_prefix(BOM).unwrap_or(data);
        let invalid_utf8 = data
            .split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .filter(|line| std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)).is_err())
            .count() as u64;
        check_text(super::read_ndjson_piece(data, 1, sink), invalid_utf8, path)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Collect;
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
    fn a_bom_is_stripped_at_the_start_only() {
        let mut sink = Collect::default();
        read_csv(b"\xEF\xBB\xBFevent_id,service\n\xEF\xBB\xBFe1,a\n", "f.csv", &mut sink).expect("readable");
        assert_eq!(sink.rows[0].1[0].as_deref(), Some("\u{feff}e1"));
    }

    /// Found by the csv_reader fuzz target: fed one byte at a time, a second
    /// byte-order mark reached the CSV parser in pieces and was kept as data.
    #[test]
    fn a_second_bom_fed_byte_by_byte_is_stripped_as_a_whole_file_read_strips_it() {
        let data = b"\xef\xbb\xbf\xef\xbb\xbf\n\n\n?\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\n\n\n\n\xf5";
        let mut whole = Collect::default();
        let reference = test_support::reference_csv(data, "f", &mut whole).map(|_| ()).map_err(|e| e.to_string());
        for block in [1, 2, 3, 100] {
            let limits = Limits { max_record_bytes: 1 << 20, chunk_bytes: 78 };
            let mut streamed = Collect::default();
            let result = read_in_blocks(data, Format::Csv, "f", limits, block, &mut streamed);
            assert_eq!(result.map(|_| ()).map_err(|e| e.to_string()), reference, "block {block}");
        }
    }

    #[test]
    fn an_over_long_record_keeps_its_head_and_length_and_the_next_is_read() {
        let limits = Limits { max_record_bytes: 16, chunk_bytes: 8 };
        let long = format!("e2,\"{}\nx\"", "y".repeat(40));
        let text = format!("event_id,service\ne1,a\n{long}\ne3,b\n");
        for block in [1, 3, 7, 1000] {
            let mut sink = Collect::default();
            let stats =
                read_in_blocks(text.as_bytes(), Format::Csv, "f.csv", limits, block, &mut sink).expect("readable");
            assert_eq!(stats, ReadStats { records: 3, malformed: 1 });
            assert_eq!(sink.malformed, [(3, long[..16].to_string())], "block {block}");
            assert_eq!(sink.notes, [(3, format!(r#"{{"_record_bytes":{}}}"#, long.len()))]);
            let lines: Vec<i64> = sink.rows.iter().map(|r| r.0).collect();
            assert_eq!(lines, [2, 5], "block {block}");
        }
        let limits = Limits { max_record_bytes: 24, chunk_bytes: 8 };
        let json = format!("{{\"event_id\":\"e1\"}}\r\n{{\"x\":\"{}\"}}\r\n{{\"event_id\":\"e3\"}}\n", "y".repeat(40));
        for block in [1, 5, 1000] {
            let mut sink = Collect::default();
            read_in_blocks(json.as_bytes(), Format::Ndjson, "f.ndjson", limits, block, &mut sink).expect("readable");
            assert_eq!(sink.malformed, [(2, format!(r#"{{"x":"{}"#, "y".repeat(18)))]);
            assert_eq!(sink.notes, [(2, r#"{"_record_bytes":48}"#.to_string())]);
            assert_eq!(sink.rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
        }
    }

    #[test]
    fn an_over_long_header_or_binary_file_is_unreadable() {
        let limits = Limits { max_record_bytes: 16, chunk_bytes: 8 };
        let err = read_all(&[b'h'; 40], Format::Csv, "in/f.csv", limits, &mut Collect::default()).unwrap_err();
        assert!(err.to_string().contains("in/f.csv") && err.to_string().contains("max_record_bytes"), "{err}");
        let err = read_all(b"\xff\xfe\n\xff\n", Format::Ndjson, "b.ndjson", limits, &mut Collect::default());
        assert!(err.is_err());
    }

    #[test]
    fn json_nested_past_the_parser_limit_is_a_malformed_row() {
        let deep =
            format!("{{\"event_id\":{}1{}}}\n{{\"event_id\":\"e2\"}}\n", "[".repeat(100_000), "]".repeat(100_000));
        let mut sink = Collect::default();
        let limits = Limits { max_record_bytes: 1 << 20, ..Limits::default() };
        read_all(deep.as_bytes(), Format::Ndjson, "d.ndjson", limits, &mut sink).expect("readable");
        assert_eq!(sink.malformed.len(), 1);
        assert_eq!(sink.rows.len(), 1);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::test_support::{Collect, reference_csv, reference_ndjson};
    use super::*;

    /// Reads `data` as the pipeline does, in pieces of about `chunk` bytes
    /// fed `block` bytes at a time.
    fn streamed(data: &[u8], format: Format, chunk: usize, block: usize, max: usize) -> Result<Collect> {
        let mut sink = Collect::default();
        let limits = Limits { max_record_bytes: max, chunk_bytes: chunk };
        let stats = read_in_blocks(data, format, "p", limits, block, &mut sink)?;
        assert_eq!(stats.records as usize, sink.rows.len() + sink.malformed.len());
        assert_eq!(stats.malformed as usize, sink.malformed.len());
        Ok(sink)
    }

    fn reference(data: &[u8], format: Format) -> Result<Collect> {
        let mut sink = Collect::default();
        match format {
            Format::Csv => reference_csv(data, "p", &mut sink)?,
            Format::Ndjson => reference_ndjson(data, "p", &mut sink)?,
        };
        Ok(sink)
    }

    /// CSV-ish bytes: quotes, separators, both line ends, blank and
    /// whitespace lines, byte-order marks and invalid UTF-8 anywhere.
    fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            4 => "[a-c]{1,3}".prop_map(String::into_bytes),
            2 => Just(b",".to_vec()),
            2 => Just(b"\"".to_vec()),
            2 => Just(b"\n".to_vec()),
            1 => Just(b"\r\n".to_vec()),
            1 => Just(b"\r".to_vec()),
            1 => Just(b" ".to_vec()),
            1 => Just(b"\xEF\xBB\xBF".to_vec()),
            1 => Just(b"\xff".to_vec()),
        ];
        (
            prop_oneof![Just(&b"event_id,service\n"[..]), Just(&b"a\n"[..]), Just(&b""[..])],
            proptest::collection::vec(token, 0..80),
        )
            .prop_map(|(header, tokens)| [header.to_vec(), tokens.concat()].concat())
    }

    fn ndjson_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            4 => Just(br#"{"event_id":"e1","service":"a"}"#.to_vec()),
            2 => Just(br#"{"x":[1,{"y":"]"}],"latency_ms":1.50}"#.to_vec()),
            3 => Just(b"\n".to_vec()),
            1 => Just(b"\r\n".to_vec()),
            1 => Just(b"  ".to_vec()),
            1 => Just(b"[1]".to_vec()),
            1 => Just(b"\xEF\xBB\xBF".to_vec()),
            1 => Just(b"\xff".to_vec()),
            1 => "[a-z\"{}:,]{1,4}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    fn same(streamed: Result<Collect>, reference: Result<Collect>) -> std::result::Result<(), TestCaseError> {
        match (streamed, reference) {
            (Ok(s), Ok(r)) => prop_assert_eq!(s, r),
            (Err(s), Err(r)) => prop_assert_eq!(s.to_string(), r.to_string()),
            (s, r) => prop_assert!(false, "streamed {:?} vs reference {:?}", s.map(|_| ()), r.map(|_| ())),
        }
        Ok(())
    }

    /// Over-long records aside, the layers equal the reference's; an
    /// over-long one is a malformed row in the reference's place.
    fn same_but_long(data: &[u8], format: Format, s: Result<Collect>) -> std::result::Result<(), TestCaseError> {
        let (Ok(s), Ok(r)) = (s, reference(data, format)) else { return Ok(()) };
        prop_assert_eq!(s.order.len(), r.order.len());
        let (mut s_rows, mut s_bad, mut r_rows, mut r_bad) = (0, 0, 0, 0);
        for (&(s_line, s_malformed), &(r_line, r_malformed)) in s.order.iter().zip(&r.order) {
            prop_assert_eq!(s_line, r_line);
            let long = s_malformed && s.notes.iter().any(|n| n.0 == s_line);
            if !long {
                prop_assert_eq!(s_malformed, r_malformed);
                if s_malformed {
                    prop_assert_eq!(&s.malformed[s_bad], &r.malformed[r_bad]);
                } else {
                    prop_assert_eq!(&s.rows[s_rows], &r.rows[r_rows]);
                }
            }
            if s_malformed {
                s_bad += 1
            } else {
                s_rows += 1
            }
            if r_malformed { r_bad += 1 } else { r_rows += 1 }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn csv_in_any_pieces_equals_the_whole_file_read(data in csv_bytes(), chunk in 1usize..64, block in 1usize..64) {
            same(streamed(&data, Format::Csv, chunk, block, 1 << 20), reference(&data, Format::Csv))?;
        }

        #[test]
        fn ndjson_in_any_pieces_equals_the_whole_file_read(data in ndjson_bytes(), chunk in 1usize..64, block in 1usize..64) {
            same(streamed(&data, Format::Ndjson, chunk, block, 1 << 20), reference(&data, Format::Ndjson))?;
        }

        #[test]
        fn csv_records_over_the_limit_become_malformed_rows(data in csv_bytes(), chunk in 1usize..64, block in 1usize..64, max in 16usize..40) {
            same_but_long(&data, Format::Csv, streamed(&data, Format::Csv, chunk, block, max))?;
        }

        #[test]
        fn ndjson_lines_over_the_limit_become_malformed_rows(data in ndjson_bytes(), chunk in 1usize..64, block in 1usize..64, max in 16usize..40) {
            same_but_long(&data, Format::Ndjson, streamed(&data, Format::Ndjson, chunk, block, max))?;
        }

        #[test]
        fn readers_never_panic_and_count_every_record(bytes in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..64) {
            for format in [Format::Csv, Format::Ndjson] {
                let _ = streamed(&bytes, format, chunk, 7, 16);
                same(streamed(&bytes, format, chunk, 7, 1 << 20), reference(&bytes, format))?;
            }
        }
    }
}
