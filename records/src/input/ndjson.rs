//! NDJSON reader: one JSON object per line (README "Input"). Strings are taken as
//! they are, numbers and booleans as their exact JSON text, objects and
//! arrays as compact JSON, `null` as absent. Anything but an object is
//! malformed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, Visitor};

use super::{Format, ReadStats, RecordSink, field_index, push_json_key};
use crate::error::Result;

/// Reads a whole decoded NDJSON file (BOM included or not) into `sink`.
pub fn read_ndjson(data: &[u8], path: &str, sink: &mut impl RecordSink) -> Result<ReadStats> {
    super::read_all(data, Format::Ndjson, path, super::Limits::default(), sink)
}

/// Parses one piece of whole lines into `sink`; `data[0]` is on line `first_line`.
pub fn read_ndjson_piece(data: &[u8], first_line: i64, sink: &mut impl RecordSink) -> ReadStats {
    let mut stats = ReadStats::default();
    let mut extra = String::new();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        stats.records += 1;
        let number = first_line + index as i64;
        let Ok(text) = std::str::from_utf8(line) else {
            stats.malformed += 1;
            sink.malformed(number, &String::from_utf8_lossy(line), None);
            continue;
        };
        match parse_object(text, &mut extra) {
            Some(values) => {
                let fields = std::array::from_fn(|i| values[i].as_deref());
                sink.record(number, fields, (!extra.is_empty()).then_some(extra.as_str()));
            }
            None => {
                stats.malformed += 1;
                sink.malformed(number, text, None);
            }
        }
    }
    stats
}

/// Parses one line into the seven known fields, writing unknown keys into
/// `extra` as a JSON object. `None` when the line is not a JSON object.
pub(super) fn parse_object<'a>(text: &'a str, extra: &mut String) -> Option<[Option<Cow<'a, str>>; 7]> {
    // serde_json validates the whole line; the members are then split from
    // the valid text so numbers keep their exact JSON spelling.
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    let members = object_members(text)?;
    let mut fields: [Option<Cow<'a, str>>; 7] = Default::default();
    let mut seen = [false; 7];
    extra.clear();
    for (raw_key, raw_value) in members {
        let key = unquote(raw_key)?;
        match field_index(&key) {
            Some(i) if !seen[i] => {
                seen[i] = true;
                fields[i] = json_text(raw_value)?;
            }
            _ => {
                push_json_key(extra, &key);
                extra.push_str(&compact(raw_value)?);
            }
        }
    }
    if !extra.is_empty() {
        extra.push('}');
    }
    Some(fields)
}

/// The text value of a raw JSON value per README "Input": strings unescaped,
/// objects and arrays compacted, other values as written; `Some(None)` for null.
fn json_text(raw: &str) -> Option<Option<Cow<'_, str>>> {
    Some(match raw.as_bytes().first() {
        Some(b'n') => None,
        Some(b'"') => Some(unquote(raw)?),
        Some(b'{' | b'[') => Some(compact(raw)?),
        _ => Some(Cow::Borrowed(raw)),
    })
}

/// The text of a raw JSON string literal: a slice of the input unless it
/// holds escapes, which serde_json resolves.
fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') { Some(serde_json::from_str::<Str>(raw).ok()?.0) } else { Some(Cow::Borrowed(inner)) }
}

/// Compact JSON text of a raw value (objects and arrays lose their spacing).
fn compact(raw: &str) -> Option<Cow<'_, str>> {
    if raw.starts_with(['{', '[']) {
        let value: serde_json::Value = serde_json::from_str(raw).ok()?;
        Some(Cow::Owned(value.to_string()))
    } else {
        Some(Cow::Borrowed(raw))
    }
}

/// The raw `(key, value)` texts of the top-level members of `text`, which
/// must already be valid JSON. `None` when it is not an object.
fn object_members(text: &str) -> Option<Vec<(&str, &str)>> {
    let b = text.as_bytes();
    let mut i = skip_whitespace(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_whitespace(b, i + 1);
    let mut members = Vec::with_capacity(8);
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        let key_end = value_end(b, i)?;
        let key = &text[i..key_end];
        i = skip_whitespace(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_whitespace(b, i + 1);
        let end = value_end(b, i)?;
        members.push((key, &text[i..end]));
        i = skip_whitespace(b, end);
        match b.get(i) {
            Some(b',') => i = skip_whitespace(b, i + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

fn skip_whitespace(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// End (exclusive) of the valid JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => Some(
            i + b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(b.len() - i),
        ),
    }
}

/// End (exclusive) of the string literal whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// A JSON string, borrowed from the input unless it holds escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::test_support::Collect;

    fn read(text: &str) -> Collect {
        let mut sink = Collect::default();
        read_ndjson(text.as_bytes(), "t.ndjson", &mut sink).expect("readable");
        sink
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn numbers_booleans_objects_keep_their_json_text() {
        let c =
            read(r#"{"event_id":"e\"1","latency_ms":12.50,"status_code":200,"user_id":true,"service":{"a": [1, 2]}}"#);
        let f = &c.rows[0].1;
        assert_eq!(f[0], s("e\"1"));
        assert_eq!(f[4], s("12.50"));
        assert_eq!(f[5], s("200"));
        assert_eq!(f[6], s("true"));
        assert_eq!(f[1], s(r#"{"a":[1,2]}"#));
    }

    #[test]
    fn null_and_missing_keys_are_absent_and_keys_match_loosely() {
        let c = read(r#"{" Event_ID ":"e1","service":null}"#);
        assert_eq!(c.rows[0].1[0], s("e1"));
        assert_eq!(c.rows[0].1[1], None);
        assert_eq!(c.rows[0].1[2], None);
    }

    #[test]
    fn unknown_keys_go_to_extra() {
        let c = read(r#"{"event_id":"e1","region":"eu","n":1.0,"tags":{"k": "v"}}"#);
        assert_eq!(c.rows[0].2, s(r#"{"region":"eu","n":1.0,"tags":{"k":"v"}}"#));
    }

    #[test]
    fn exact_number_text_survives_nesting_escapes_and_spacing() {
        let c = read(r#" { "user_id" : "a\"}\\" , "latency_ms":1.50e1 ,"x":[{"y":"]}"}],"status_code":-0 } "#);
        let f = &c.rows[0].1;
        assert_eq!(f[6], s("a\"}\\"));
        assert_eq!(f[4], s("1.50e1"));
        assert_eq!(f[5], s("-0"));
        assert_eq!(c.rows[0].2, s(r#"{"x":[{"y":"]}"}]}"#));
    }

    #[test]
    fn non_objects_and_invalid_json_are_malformed_with_line_numbers() {
        let c = read("{\"event_id\":\"e1\"}\r\n\n[1,2]\n{\"event_id\":\n42\n\"str\"\n{\"a\":1} x\n");
        let lines: Vec<i64> = c.malformed.iter().map(|m| m.0).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert_eq!(c.malformed[0].1, "[1,2]");
        assert_eq!(c.rows.len(), 1);
    }
}
