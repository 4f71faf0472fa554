//! Cutting a file's decoded byte stream into [`Piece`]s of whole records,
//! so a large file is parsed on every core while it is still being read.
//!
//! The splitter sees each byte once, holds at most one chunk plus one
//! record, and knows three things a parser of one piece cannot: where
//! records end (CSV quoting, with the same `csv_core` state machine the
//! parser uses, and the same shortcut for plain records, so a cut is
//! always where a fresh parser starts in step),
//! which physical line each piece starts on, and whether any record is
//! text at all (README "Input": a file whose every record is invalid UTF-8 is
//! unreadable). A record longer than `max_record_bytes` is cut down to
//! its head here and the rest is skipped as it streams past.

use std::sync::Arc;

use csv_core::ReadRecordResult;

use super::Format;
use super::csv::{Columns, empty_lines, give_back, is_blank, plain_blank, plain_record, take_core, utf8_fields};
use crate::error::{Error, Result};

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Size limits of the splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A record longer than this is [`Piece::Oversized`].
    pub max_record_bytes: usize,
    /// Pieces are cut at the first record end after this many bytes.
    pub chunk_bytes: usize,
}

/// A run of one file's records, parsed on its own by [`super::read_piece`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Whole records. `data[0]` is on physical line `first_line`.
    Records { data: Vec<u8>, first_line: i64, columns: Option<Arc<Columns>> },
    /// A record longer than the limit: its first bytes and its full length.
    Oversized { line: i64, head: Vec<u8>, bytes: u64 },
}

impl Piece {
    /// Decoded bytes this piece holds.
    pub fn len(&self) -> usize {
        match self {
            Piece::Records { data, .. } => data.len(),
            Piece::Oversized { head, .. } => head.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the splitter reports, in stream order.
#[derive(Debug)]
pub enum Split {
    Piece(Piece),
    /// The first record that is not invalid UTF-8 was cut: the file is text.
    Text,
}

/// Counts over a whole stream, from [`Splitter::finish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records (header and blank lines excluded).
    pub records: u64,
    /// Whether any record is not invalid UTF-8 (always, when there are none).
    pub text: bool,
}

/// Cuts one file's decoded bytes, fed in blocks of any size, into pieces.
pub struct Splitter {
    path: String,
    limits: Limits,
    /// Bytes not yet handed out. In normal mode it starts at a record
    /// boundary; while skipping it holds only bytes of the long record.
    buf: Vec<u8>,
    /// Physical line of `buf[0]` (while skipping: of the long record).
    line: i64,
    /// How far into `buf` the scanner has read.
    scanned: usize,
    /// Where in `buf` the record being scanned began (the previous one's end).
    record_start: usize,
    started: bool,
    summary: Summary,
    /// An over-long record being skipped.
    skipping: Option<Skip>,
    format: FormatState,
}

struct Skip {
    head: Vec<u8>,
    bytes: u64,
    /// Line breaks inside the record so far.
    newlines: i64,
    /// Whether it is so far a blank line (one field of whitespace), which
    /// is no record however long.
    blank: bool,
    /// CSV field ends seen so far.
    fields: usize,
    /// Whether the last byte seen is `\r` (NDJSON: part of a CRLF ending).
    last_cr: bool,
}

enum FormatState {
    Csv(Box<CsvState>),
    Ndjson,
}

struct CsvState {
    core: csv_core::Reader,
    /// Field bytes and ends of the record being scanned; grows up to
    /// `max_record_bytes + 1`.
    out: Vec<u8>,
    out_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    columns: Option<Arc<Columns>>,
    /// Whether `core` has been given input: it strips a byte-order mark
    /// from the start of its first input only, which must therefore hold
    /// three bytes, as a whole-file read's does.
    fed: bool,
}

impl CsvState {
    fn clear_record(&mut self) {
        self.out_len = 0;
        self.ends_len = 0;
    }
}

impl Drop for CsvState {
    fn drop(&mut self) {
        // `Reader::default()` is unbuilt, but it is only a placeholder here.
        give_back(std::mem::take(&mut self.core));
    }
}

/// What one step of scanning ended with.
enum Step {
    /// All of `buf` is scanned: feed more (or the stream is done).
    NeedInput,
    /// Switched between normal and skipping mode: scan on.
    Switched,
}

impl Splitter {
    /// A splitter for the file at `path` (which names it in errors).
    pub fn new(format: Format, limits: Limits, path: &str) -> Self {
        let format = match format {
            Format::Csv => FormatState::Csv(Box::new(CsvState {
                core: take_core(),
                out: vec![0; (limits.max_record_bytes + 1).min(64 << 10)],
                out_len: 0,
                ends: vec![0; 64],
                ends_len: 0,
                columns: None,
                fed: false,
            })),
            Format::Ndjson => FormatState::Ndjson,
        };
        Self {
            path: path.to_string(),
            limits,
            buf: Vec::new(),
            line: 1,
            scanned: 0,
            record_start: 0,
            started: false,
            summary: Summary::default(),
            skipping: None,
            format,
        }
    }

    /// Feeds the next decoded bytes of the file.
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        self.buf.extend_from_slice(data);
        if !self.started {
            // The byte-order mark test needs three bytes (or the end).
            if self.buf.len() < BOM.len() {
                return Ok(());
            }
            self.start();
        }
        self.scan(false, emit)
    }

    /// Ends the stream: hands out what is left and returns the counts.
    pub fn finish(mut self, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Summary> {
        if !self.started {
            self.start();
        }
        self.scan(true, emit)?;
        self.cut(self.buf.len(), emit)?;
        if self.summary.records == 0 {
            self.summary.text = true;
        }
        Ok(self.summary)
    }

    fn start(&mut self) {
        self.started = true;
        if self.buf.starts_with(BOM) {
            self.buf.drain(..BOM.len());
        }
    }

    fn scan(&mut self, eof: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        loop {
            let step = match (&self.skipping, &self.format) {
                (Some(_), FormatState::Csv(_)) => self.skip_csv(eof, emit)?,
                (Some(_), FormatState::Ndjson) => self.skip_ndjson(eof, emit)?,
                (None, FormatState::Csv(_)) => self.scan_csv(eof, emit)?,
                (None, FormatState::Ndjson) => self.scan_ndjson(eof, emit)?,
            };
            if let Step::NeedInput = step {
                return Ok(());
            }
        }
    }

    fn scan_ndjson(&mut self, eof: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Step> {
        loop {
            let end = match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                Some(i) => self.scanned + i,
                None if eof && self.record_start < self.buf.len() => self.buf.len(),
                None => {
                    self.scanned = self.buf.len();
                    if self.scanned - self.record_start > self.limits.max_record_bytes {
                        return self.begin_skip(false, emit);
                    }
                    return Ok(Step::NeedInput);
                }
            };
            let line = &self.buf[self.record_start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.scanned = (end + 1).min(self.buf.len());
            if line.len() > self.limits.max_record_bytes {
                self.whole_oversized(emit)?;
                continue;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.summary.records += 1;
                if !self.summary.text && std::str::from_utf8(line).is_ok() {
                    self.summary.text = true;
                    emit(Split::Text)?;
                }
            }
            self.record_start = self.scanned;
            if self.record_start >= self.limits.chunk_bytes {
                self.cut(self.record_start, emit)?;
            }
        }
    }

    fn skip_ndjson(&mut self, eof: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Step> {
        let end = memchr::memchr(b'\n', &self.buf);
        let skip = self.skipping.as_mut().expect("skipping");
        let part = &self.buf[..end.unwrap_or(self.buf.len())];
        skip.bytes += part.len() as u64;
        skip.blank &= part.iter().all(u8::is_ascii_whitespace);
        if let Some(&last) = part.last() {
            skip.last_cr = last == b'\r';
        }
        match end {
            Some(end) => {
                if skip.last_cr {
                    skip.bytes -= 1;
                }
                self.buf.drain(..=end);
                self.end_skip(1, emit)?;
                Ok(Step::Switched)
            }
            None if eof => {
                self.buf.clear();
                self.end_skip(0, emit)?;
                Ok(Step::NeedInput)
            }
            None => {
                self.buf.clear();
                Ok(Step::NeedInput)
            }
        }
    }

    fn scan_csv(&mut self, eof: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Step> {
        loop {
            if !eof && self.scanned == self.buf.len() {
                // csv_core reads an empty input as the end of the file.
                if self.scanned - content_start(&self.buf, self.record_start) > self.limits.max_record_bytes {
                    return self.begin_skip(false, emit);
                }
                return Ok(Step::NeedInput);
            }
            let FormatState::Csv(csv) = &mut self.format else { unreachable!("CSV state") };
            if let Some(columns) = &csv.columns
                && self.summary.text
                && self.scanned == self.record_start
            {
                // At a record (csv_core has not begun one: it may have
                // taken a quote without output), after the header, with
                // the file known to be text.
                let rest = &self.buf[self.scanned..];
                let lead = empty_lines(rest);
                let plain = plain_record(&rest[lead..]).filter(|&(len, _)| len <= self.limits.max_record_bytes);
                if let Some((len, terminator)) = plain {
                    let record = &rest[lead..lead + len];
                    if !(plain_blank(record) && columns.len() > 1) {
                        self.summary.records += 1;
                    }
                    self.scanned += lead + len + terminator;
                    self.record_start = self.scanned;
                    if self.record_start >= self.limits.chunk_bytes {
                        self.cut(self.record_start, emit)?;
                    }
                    continue;
                }
            }
            if !csv.fed && !eof && self.buf.len() - self.scanned < BOM.len() {
                return Ok(Step::NeedInput);
            }
            csv.fed = true;
            let (result, nin, nout, nend) = csv.core.read_record(
                &self.buf[self.scanned..],
                &mut csv.out[csv.out_len..],
                &mut csv.ends[csv.ends_len..],
            );
            self.scanned += nin;
            csv.out_len += nout;
            csv.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty if !eof => {
                    if self.scanned - content_start(&self.buf, self.record_start) > self.limits.max_record_bytes {
                        return self.begin_skip(false, emit);
                    }
                    return Ok(Step::NeedInput);
                }
                ReadRecordResult::InputEmpty => {}
                // Grown to max_record_bytes + 1 and full: the record is longer.
                ReadRecordResult::OutputFull if csv.out.len() > self.limits.max_record_bytes => {
                    return self.begin_skip(false, emit);
                }
                ReadRecordResult::OutputFull => {
                    let grown = (csv.out.len() * 2).min(self.limits.max_record_bytes + 1);
                    csv.out.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let grown = csv.ends.len() * 2;
                    csv.ends.resize(grown, 0);
                }
                ReadRecordResult::End => return Ok(Step::NeedInput),
                ReadRecordResult::Record => {
                    let start = content_start(&self.buf, self.record_start);
                    if trim_terminator(&self.buf[start..self.scanned]).len() > self.limits.max_record_bytes {
                        self.whole_oversized(emit)?;
                        continue;
                    }
                    self.csv_record(emit)?;
                    self.record_start = self.scanned;
                    if self.record_start >= self.limits.chunk_bytes {
                        self.cut(self.record_start, emit)?;
                    }
                }
            }
        }
    }

    fn skip_csv(&mut self, eof: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Step> {
        let FormatState::Csv(csv) = &mut self.format else { unreachable!("CSV state") };
        loop {
            let skip = self.skipping.as_mut().expect("skipping");
            if !eof && self.scanned == self.buf.len() {
                skip.bytes += self.buf.len() as u64;
                skip.newlines += count_lines(&self.buf);
                self.buf.clear();
                self.scanned = 0;
                return Ok(Step::NeedInput);
            }
            let (result, nin, nout, nend) =
                csv.core.read_record(&self.buf[self.scanned..], &mut csv.out, &mut csv.ends);
            self.scanned += nin;
            skip.fields += nend;
            skip.blank &= skip.fields <= 1 && csv.out[..nout].iter().all(u8::is_ascii_whitespace);
            match result {
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull | ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record | ReadRecordResult::End => {
                    let consumed = &self.buf[..self.scanned];
                    skip.bytes += trim_terminator(consumed).len() as u64;
                    skip.newlines += count_lines(consumed);
                    self.buf.drain(..self.scanned);
                    self.scanned = 0;
                    csv.clear_record();
                    self.end_skip(0, emit)?;
                    return Ok(Step::Switched);
                }
            }
        }
    }

    /// A CSV record other than an over-long one: the header, a blank line
    /// or a record.
    fn csv_record(&mut self, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        let FormatState::Csv(csv) = &mut self.format else { unreachable!("CSV state") };
        let ends = &csv.ends[..csv.ends_len];
        let blank = is_blank(ends.len(), &csv.out[..ends.first().copied().unwrap_or(0)]);
        let mut text = false;
        match &csv.columns {
            None if blank => {}
            None => {
                let fields = field_slices(&csv.out, ends);
                csv.columns = Some(Arc::new(Columns::from_header(&fields, &self.path)?));
                // The header is not part of any piece.
                self.line += count_lines(&self.buf[..self.scanned]);
                self.buf.drain(..self.scanned);
                self.scanned = 0;
            }
            Some(columns) if blank && columns.len() > 1 => {}
            Some(columns) => {
                self.summary.records += 1;
                // Only until the file is known to be text: then it no longer matters.
                text = !self.summary.text && (ends.len() != columns.len() || utf8_fields(&csv.out, ends).is_some());
            }
        }
        csv.clear_record();
        if text {
            self.summary.text = true;
            emit(Split::Text)?;
        }
        Ok(())
    }

    /// The record in `buf[record_start..scanned]` is whole but over the
    /// limit: hands out what precedes it, then it as oversized.
    fn whole_oversized(&mut self, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        self.begin_skip(true, emit)?;
        self.end_skip(0, emit)
    }

    /// The record at `buf[record_start..]` is over the limit: hands out the
    /// records before it, keeps its head, and drops its scanned bytes
    /// (`whole`: all of it, terminator included).
    fn begin_skip(&mut self, whole: bool, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<Step> {
        if let FormatState::Csv(csv) = &self.format
            && csv.columns.is_none()
        {
            return Err(Error::UnreadableInput {
                path: self.path.clone(),
                message: format!("the CSV header is longer than max_record_bytes ({})", self.limits.max_record_bytes),
            });
        }
        self.cut(self.record_start, emit)?;
        let content = match self.format {
            FormatState::Csv(_) => content_start(&self.buf[..self.scanned], 0),
            FormatState::Ndjson => 0,
        };
        self.line += count_lines(&self.buf[..content]);
        let scanned = &self.buf[content..self.scanned];
        let record = if whole { trim_terminator(scanned) } else { scanned };
        let (blank, fields) = match &mut self.format {
            FormatState::Csv(csv) => {
                let blank = csv.ends_len <= 1 && csv.out[..csv.out_len].iter().all(u8::is_ascii_whitespace);
                let fields = csv.ends_len;
                csv.clear_record();
                (blank, fields)
            }
            FormatState::Ndjson => (record.iter().all(u8::is_ascii_whitespace), 0),
        };
        self.skipping = Some(Skip {
            head: record[..record.len().min(self.limits.max_record_bytes)].to_vec(),
            bytes: record.len() as u64,
            newlines: count_lines(scanned),
            blank,
            fields,
            last_cr: record.ends_with(b"\r"),
        });
        self.buf.drain(..self.scanned);
        self.scanned = 0;
        self.record_start = 0;
        Ok(Step::Switched)
    }

    /// The over-long record ended (`newlines` more line breaks were dropped
    /// with its terminator): hands it out, unless it was a blank line.
    fn end_skip(&mut self, newlines: i64, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        let Some(skip) = self.skipping.take() else { return Ok(()) };
        let line = self.line;
        self.line += skip.newlines + newlines;
        let blank = skip.blank
            && match &self.format {
                FormatState::Csv(csv) => csv.columns.as_ref().is_some_and(|c| c.len() > 1),
                FormatState::Ndjson => true,
            };
        if blank {
            return Ok(());
        }
        self.summary.records += 1;
        emit(Split::Piece(Piece::Oversized { line, head: skip.head, bytes: skip.bytes }))?;
        if !self.summary.text {
            // An over-long record is malformed, not invalid UTF-8.
            self.summary.text = true;
            emit(Split::Text)?;
        }
        Ok(())
    }

    /// Hands out `buf[..end]` (whole records) as a piece.
    fn cut(&mut self, end: usize, emit: &mut dyn FnMut(Split) -> Result<()>) -> Result<()> {
        let columns = match &self.format {
            FormatState::Csv(csv) => match &csv.columns {
                Some(columns) => Some(columns.clone()),
                // Before the header there are only blank lines.
                None => return Ok(()),
            },
            FormatState::Ndjson => None,
        };
        if end == 0 {
            return Ok(());
        }
        let rest = self.buf.split_off(end);
        let data = std::mem::replace(&mut self.buf, rest);
        let first_line = self.line;
        self.line += count_lines(&data);
        self.scanned -= end;
        self.record_start -= end;
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            // Empty lines only: no record, only line numbers, already counted.
            return Ok(());
        }
        emit(Split::Piece(Piece::Records { data, first_line, columns }))
    }
}

/// Where the record that follows `start` begins: after the line breaks
/// (blank lines, the rest of a CRLF) before it.
fn content_start(buf: &[u8], start: usize) -> usize {
    start + buf[start..].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count()
}

fn count_lines(bytes: &[u8]) -> i64 {
    memchr::memchr_iter(b'\n', bytes).count() as i64
}

fn trim_terminator(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !matches!(b, b'\r' | b'\n')).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The fields of a `csv_core` record from its output and field ends.
fn field_slices<'a>(out: &'a [u8], ends: &[usize]) -> Vec<&'a [u8]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let field = &out[start..end];
            start = end;
            field
        })
        .collect()
}
