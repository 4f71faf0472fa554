//! CSV reader (RFC 4180 with the dialect points of README "Input"), on the `csv`
//! crate in flexible mode so a field-count mismatch is a malformed record,
//! not a failed file, and every record knows its physical start line.
//!
//! The header is read by the [`super::split::Splitter`], which hands each
//! piece of records its [`Columns`]; a piece is parsed on its own.

use std::cell::RefCell;

use csv_core::ReadRecordResult;

use super::{FIELDS, Format, ReadStats, RecordSink, field_index, push_json_key};
use crate::error::{Error, Result};

/// Reads a whole decoded CSV file (BOM included or not) into `sink`.
pub fn read_csv(data: &[u8], path: &str, sink: &mut impl RecordSink) -> Result<ReadStats> {
    super::read_all(data, Format::Csv, path, super::Limits::default(), sink)
}

/// Where each header column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns(pub(super) Vec<Target>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Known(usize),
    Extra(String),
}

impl Columns {
    /// Maps each header column to a known field (first occurrence wins) or
    /// to `_extra` under its trimmed name (`_col<N>` when the name is empty).
    pub fn from_header(header: &[&[u8]], path: &str) -> Result<Self> {
        let mut seen = [false; FIELDS.len()];
        let targets = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let name = std::str::from_utf8(name).map_err(|_| Error::UnreadableInput {
                    path: path.to_string(),
                    message: "the CSV header is not valid UTF-8".into(),
                })?;
                Ok(match field_index(name) {
                    Some(k) if !seen[k] => {
                        seen[k] = true;
                        Target::Known(k)
                    }
                    _ if name.trim().is_empty() => Target::Extra(format!("_col{}", i + 1)),
                    _ => Target::Extra(name.trim().to_string()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(targets))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The seven known fields of a record with one value per column;
    /// the unknown columns go into `extra` as a JSON object (left empty
    /// when there are none).
    pub(super) fn place<'a>(
        &self,
        values: impl IntoIterator<Item = &'a str>,
        extra: &mut String,
    ) -> [Option<&'a str>; 7] {
        let mut fields = [None; 7];
        extra.clear();
        for (target, value) in self.0.iter().zip(values) {
            match target {
                Target::Known(i) => fields[*i] = Some(value),
                Target::Extra(name) => {
                    push_json_key(extra, name);
                    extra.push_str(&serde_json::to_string(value).unwrap_or_default());
                }
            }
        }
        if !extra.is_empty() {
            extra.push('}');
        }
        fields
    }
}

thread_local! {
    /// Built `csv_core` readers of this thread, for reuse: building one (its
    /// transition table) costs more than splitting a small file or parsing
    /// a small piece. (csv_core's `Clone` copies only part of that table, so
    /// a built reader cannot be cloned instead.)
    static CORES: RefCell<Vec<csv_core::Reader>> = const { RefCell::new(Vec::new()) };
}

/// A `csv_core` reader in its initial state: a reset one from this
/// thread's pool, or a new one. Give it back with [`give_back`].
pub(super) fn take_core() -> csv_core::Reader {
    match CORES.with_borrow_mut(Vec::pop) {
        Some(mut core) => {
            core.reset();
            core
        }
        None => csv_core::Reader::new(),
    }
}

/// Returns a reader to this thread's pool, which keeps a few.
pub(super) fn give_back(core: csv_core::Reader) {
    CORES.with_borrow_mut(|pool| {
        if pool.len() < 4 {
            pool.push(core);
        }
    });
}

/// Parses one piece of whole records (after the header) into `sink`.
/// `data[0]` is on physical line `first_line`.
///
/// It drives `csv_core` directly, as the `csv` crate does, with a reader
/// from this thread's pool: building one per piece dominated small pieces.
pub fn read_csv_piece(data: &[u8], first_line: i64, columns: &Columns, sink: &mut impl RecordSink) -> ReadStats {
    let mut core = take_core();
    let stats = read_with(&mut core, data, first_line, columns, sink);
    give_back(core);
    stats
}

fn read_with(
    core: &mut csv_core::Reader,
    data: &[u8],
    first_line: i64,
    columns: &Columns,
    sink: &mut impl RecordSink,
) -> ReadStats {
    // A reader strips a byte-order mark at the start of its first input;
    // mid-file one is data. An empty line first (skipped) keeps it so.
    let (mut out, mut ends) = (vec![0u8; 4096], vec![0usize; 32]);
    let (skipped, ..) = core.read_record(b"\n", &mut out, &mut ends);
    debug_assert_eq!(skipped, ReadRecordResult::InputEmpty);
    let mut stats = ReadStats::default();
    let targets = &columns.0;
    let (mut position, mut line, mut counted_to) = (0usize, first_line, 0usize);
    let mut extra = String::new();
    loop {
        // Where this read starts: after the previous record's terminator
        // (or part of it), before any empty lines.
        let read_from = position;
        let start = position + empty_lines(&data[position..]);
        if let Some((len, terminator)) = plain_record(&data[start..]) {
            let record = &data[start..start + len];
            position = start + len + terminator;
            if plain_blank(record) && targets.len() > 1 {
                continue;
            }
            stats.records += 1;
            line += memchr::memchr_iter(b'\n', &data[counted_to..start]).count() as i64;
            // Commas are ASCII: valid text splits at them into valid fields.
            match std::str::from_utf8(record) {
                Ok(text) if plain_fields(record) == targets.len() => {
                    let fields = columns.place(plain_split(text), &mut extra);
                    sink.record(line, fields, (!extra.is_empty()).then_some(extra.as_str()));
                }
                _ => {
                    stats.malformed += 1;
                    sink.malformed(line, &String::from_utf8_lossy(record), None);
                }
            }
            // The record's one line break is its terminator's.
            (line, counted_to) = (line + 1, position);
            continue;
        }
        let (mut out_len, mut ends_len) = (0, 0);
        let found = loop {
            let (result, nin, nout, nend) =
                core.read_record(&data[position..], &mut out[out_len..], &mut ends[ends_len..]);
            position += nin;
            out_len += nout;
            ends_len += nend;
            match result {
                // All of the piece is given at once: an empty input next is its end.
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                ReadRecordResult::Record => break true,
                ReadRecordResult::End => break false,
            }
        };
        if !found {
            return stats;
        }
        let ends = &ends[..ends_len];
        let field = |i: usize| &out[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        if is_blank(ends.len(), field(0)) && targets.len() > 1 {
            continue;
        }
        stats.records += 1;
        let start = read_from + data[read_from..position].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        line += memchr::memchr_iter(b'\n', &data[counted_to..start]).count() as i64;
        counted_to = start;
        let raw = || String::from_utf8_lossy(&data[start..position]).trim_end_matches(['\r', '\n']).to_string();
        if ends.len() != targets.len() {
            stats.malformed += 1;
            sink.malformed(line, &raw(), None);
            continue;
        }
        let Some(values) = utf8_fields(&out, ends) else {
            stats.malformed += 1;
            sink.malformed(line, &raw(), None);
            continue;
        };
        let fields = columns.place(values, &mut extra);
        sink.record(line, fields, (!extra.is_empty()).then_some(extra.as_str()));
    }
}

/// The fields of a record as text, from `csv_core`'s output `out` and
/// field `ends`; `None` when a field is not valid UTF-8. One check of the
/// whole record replaces one per field: fields each valid are valid
/// together, and a valid whole splits into valid fields exactly when every
/// end falls on a character boundary.
pub(super) fn utf8_fields<'a>(out: &'a [u8], ends: &'a [usize]) -> Option<impl Iterator<Item = &'a str>> {
    let text = std::str::from_utf8(&out[..ends.last().copied().unwrap_or(0)]).ok()?;
    if !ends.iter().all(|&end| text.is_char_boundary(end)) {
        return None;
    }
    Some(ends.iter().scan(0, move |start, &end| {
        let field = text.get(*start..end);
        *start = end;
        field
    }))
}

/// The record at the start of `data` when it is plain: no quote and no
/// `\r` come before its `\n` or `\r\n`. `csv_core` reads such a record as
/// its bytes up to that terminator, split at every comma, so a plain
/// record (most of them) is taken without running the state machine over
/// it. Returns its length and its terminator's. `data` must start at a
/// record, past any empty lines ([`empty_lines`]): a quote then always
/// opens a quoted field or is inside one, which only `csv_core` follows.
pub(super) fn plain_record(data: &[u8]) -> Option<(usize, usize)> {
    let end = memchr::memchr3(b'\n', b'\r', b'"', data)?;
    match (data[end], data.get(end + 1)) {
        (b'\n', _) => Some((end, 1)),
        (b'\r', Some(b'\n')) => Some((end, 2)),
        _ => None,
    }
}

/// The length of the line breaks at the start of `data`: `csv_core` skips
/// them before a record.
pub(super) fn empty_lines(data: &[u8]) -> usize {
    data.iter().take_while(|&&b| matches!(b, b'\r' | b'\n')).count()
}

/// The number of fields of a plain record (see [`plain_record`]). (A
/// plain loop: records are short, and `memchr` would be called per record.)
fn plain_fields(record: &[u8]) -> usize {
    record.iter().filter(|&&b| b == b',').count() + 1
}

/// Whether a plain record is a blank line (see [`is_blank`]): a comma is
/// not blank, so a blank plain record is one field.
pub(super) fn plain_blank(record: &[u8]) -> bool {
    record.iter().all(u8::is_ascii_whitespace)
}

/// The fields of a plain record's text: the text between its commas.
fn plain_split(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.bytes().position(|b| b == b',') {
            Some(comma) => {
                rest = Some(&current[comma + 1..]);
                Some(&current[..comma])
            }
            None => rest.take(),
        }
    })
}

/// A blank line: a record of `fields` fields, the first one `first`, that
/// is one empty (or whitespace-only) field.
pub(super) fn is_blank(fields: usize, first: &[u8]) -> bool {
    fields == 1 && first.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::test_support::Collect;

    fn read(text: &str) -> Collect {
        let mut sink = Collect::default();
        read_csv(text.as_bytes(), "t.csv", &mut sink).expect("readable");
        sink
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn columns_in_any_order_with_messy_header_names() {
        let c = read(" Service ,EVENT_ID,timestamp\napi,e1,2026-01-01T00:00:00Z\n");
        let (line, f, extra) = &c.rows[0];
        assert_eq!(*line, 2);
        assert_eq!(f[0], s("e1"));
        assert_eq!(f[1], s("api"));
        assert_eq!(f[3], s("2026-01-01T00:00:00Z"));
        assert_eq!(f[4], None, "missing column reads as absent");
        assert_eq!(*extra, None);
    }

    #[test]
    fn values_are_kept_untrimmed_and_empty_is_not_null() {
        let c = read("event_id,service\n  e1 ,\n");
        assert_eq!(c.rows[0].1[0], s("  e1 "));
        assert_eq!(c.rows[0].1[1], s(""));
    }

    #[test]
    fn quoted_commas_quotes_and_line_breaks_keep_start_line() {
        let c = read("event_id,user_id\r\ne1,\"a,b\"\r\ne2,\"say \"\"hi\"\"\nnext\"\r\ne3,u\r\n");
        assert_eq!(c.rows.len(), 3);
        assert_eq!(c.rows[0].1[6], s("a,b"));
        assert_eq!(c.rows[1].1[6], s("say \"hi\"\nnext"));
        assert_eq!((c.rows[1].0, c.rows[2].0), (3, 5));
    }

    #[test]
    fn blank_lines_are_not_records_but_count_as_lines() {
        let c = read("event_id,service\n\ne1,a\n   \n\ne2,b\n");
        let lines: Vec<i64> = c.rows.iter().map(|r| r.0).collect();
        assert_eq!(lines, [3, 6]);
    }

    #[test]
    fn unknown_columns_go_to_extra_as_json() {
        let c = read("event_id,region, ,service\ne1,eu \"w\",x,a\n");
        assert_eq!(c.rows[0].2, s(r#"{"region":"eu \"w\"","_col3":"x"}"#));
    }

    #[test]
    fn field_count_mismatch_is_malformed_with_raw_text() {
        let c = read("event_id,service\ne1,a,extra\ne2\ne3,b\n");
        assert_eq!(c.malformed, [(2, "e1,a,extra".to_string()), (3, "e2".to_string())]);
        assert_eq!(c.rows.len(), 1);
        assert_eq!(c.rows[0].0, 4);
    }

    #[test]
    fn invalid_utf8_row_is_malformed_but_all_invalid_is_unreadable() {
        let mut sink = Collect::default();
        read_csv(b"event_id,service\ne1,\xff\ne2,a\n", "t.csv", &mut sink).expect("one good row");
        assert_eq!(sink.malformed.len(), 1);
        assert_eq!(sink.rows.len(), 1);
        let err = read_csv(b"event_id,service\ne1,\xff\n", "in/t.csv", &mut Collect::default()).unwrap_err();
        assert!(err.to_string().contains("in/t.csv"), "{err}");
    }

    #[test]
    fn a_character_split_across_two_fields_is_malformed() {
        // "é" is C3 A9: valid as one record's bytes, invalid in each field.
        let mut sink = Collect::default();
        read_csv(b"event_id,service\n\xc3,\xa9\nd\xc3\xa9j\xc3\xa0,\xc3\xa9\n", "t.csv", &mut sink)
            .expect("one good row");
        assert_eq!(sink.malformed.len(), 1);
        assert_eq!(sink.rows.len(), 1);
        assert_eq!(sink.rows[0].1[0], s("déjà"));
        assert_eq!(sink.rows[0].1[1], s("é"));
    }

    #[test]
    fn header_only_and_empty_files_have_no_records() {
        assert!(read("event_id,service\n").rows.is_empty());
        assert!(read("").rows.is_empty());
    }
}
