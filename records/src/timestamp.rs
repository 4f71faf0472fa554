//! Timestamp rule (README "Cleaning rules", rules 3–4): ISO 8601-like text, epoch numbers
//! by magnitude, then configured chrono patterns; microseconds since the
//! Unix epoch in UTC, within [2000-01-01, 2100-01-01).

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// 2000-01-01T00:00:00Z in microseconds.
pub const MIN_MICROS: i64 = 946_684_800_000_000;
/// 2100-01-01T00:00:00Z in microseconds (exclusive bound).
pub const MAX_MICROS: i64 = 4_102_444_800_000_000;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Why a present timestamp is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// No accepted form matches (`invalid_timestamp`).
    Invalid,
    /// A real instant outside the accepted range (`timestamp_out_of_range`).
    OutOfRange,
}

/// Parses timestamps with the built-in forms and configured patterns.
#[derive(Debug, Clone, Default)]
pub struct TimestampParser {
    formats: Vec<CustomFormat>,
}

#[derive(Debug, Clone)]
struct CustomFormat {
    pattern: String,
    has_offset: bool,
}

impl TimestampParser {
    /// `formats` are chrono `strftime` patterns, validated by the config.
    pub fn new(formats: &[String]) -> Self {
        let formats = formats
            .iter()
            .map(|p| CustomFormat {
                pattern: p.clone(),
                has_offset: ["%z", "%:z", "%::z", "%:::z", "%#z"].iter().any(|d| p.contains(d)),
            })
            .collect();
        Self { formats }
    }

    /// Microseconds since the epoch (UTC) of a normalized, present value.
    pub fn parse(&self, value: &str) -> Result<i64, TimestampError> {
        let micros = parse_iso(value.as_bytes())
            .or_else(|| parse_epoch(value.as_bytes()))
            .or_else(|| self.formats.iter().find_map(|f| f.parse(value)))
            .ok_or(TimestampError::Invalid)?;
        if (MIN_MICROS as i128..MAX_MICROS as i128).contains(&micros) {
            Ok(micros as i64)
        } else {
            Err(TimestampError::OutOfRange)
        }
    }
}

/// The UTC calendar day (days since 1970-01-01) of a timestamp.
pub fn event_date(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// `YYYY-MM-DD` of a day number from [`event_date`].
pub fn format_date(days: i32) -> String {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (epoch + chrono::Duration::days(days.into())).format("%Y-%m-%d").to_string()
}

impl CustomFormat {
    fn parse(&self, value: &str) -> Option<i128> {
        let micros = if self.has_offset {
            DateTime::parse_from_str(value, &self.pattern).ok()?.timestamp_micros()
        } else {
            match NaiveDateTime::parse_from_str(value, &self.pattern) {
                Ok(t) => t.and_utc().timestamp_micros(),
                Err(_) => NaiveDate::parse_from_str(value, &self.pattern)
                    .ok()?
                    .and_hms_opt(0, 0, 0)?
                    .and_utc()
                    .timestamp_micros(),
            }
        };
        Some(micros.into())
    }
}

/// `YYYY-MM-DD[Tt ]HH:MM:SS[.f{1,9}][Z|z|±HH|±HHMM|±HH:MM]`, real fields only.
fn parse_iso(b: &[u8]) -> Option<i128> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?;
    let days = date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();

    let mut rest = &b[19..];
    let mut fraction_micros = 0i64;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        // Pad or truncate to six digits: extra precision is cut, not rounded.
        for i in 0..6 {
            fraction_micros =
                fraction_micros * 10 + after_dot.get(i).filter(|_| i < n).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &after_dot[n..];
    }
    let offset_seconds = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (hh, mm) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            let seconds = hh * 3600 + mm * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * 1_000_000 + i128::from(fraction_micros))
}

/// Epoch number: `[+-]digits[.digits]`, seconds when |v| < 10^11,
/// milliseconds when < 10^14, microseconds otherwise; floored to µs, exact.
fn parse_epoch(b: &[u8]) -> Option<i128> {
    let (negative, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let all_digits = |t: &[u8]| !t.is_empty() && t.iter().all(u8::is_ascii_digit);
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let frac = frac.unwrap_or_default();
    let significant = int.iter().skip_while(|&&c| c == b'0').count();
    if significant > 30 {
        // Far beyond any accepted instant in every unit.
        return Some(if negative { i128::MIN } else { i128::MAX });
    }
    let whole: i128 = int.iter().fold(0, |acc, &c| acc * 10 + i128::from(c - b'0'));
    let scale_digits = if whole < 100_000_000_000 {
        6
    } else if whole < 100_000_000_000_000 {
        3
    } else {
        0
    };
    // Keep the fraction digits that land on whole microseconds; remember
    // whether anything non-zero was cut, to floor negative values.
    let mut micros = whole * 10i128.pow(scale_digits);
    let mut place = 10i128.pow(scale_digits);
    for i in 0..scale_digits as usize {
        place /= 10;
        micros += place * frac.get(i).map_or(0, |&d| i128::from(d - b'0'));
    }
    let cut_nonzero = frac.iter().skip(scale_digits as usize).any(|&d| d != b'0');
    Some(if negative { -micros - i128::from(cut_nonzero) } else { micros })
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<i64, TimestampError> {
        TimestampParser::default().parse(v)
    }

    fn micros(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).expect("valid test instant").timestamp_micros()
    }

    #[test]
    fn iso_with_t_lowercase_t_and_space() {
        let want = micros("2026-01-12T10:15:00Z");
        for v in ["2026-01-12T10:15:00Z", "2026-01-12t10:15:00z", "2026-01-12 10:15:00", "2026-01-12T10:15:00"] {
            assert_eq!(parse(v), Ok(want), "{v}");
        }
    }

    #[test]
    fn offsets_in_every_form() {
        let want = micros("2026-01-12T04:45:00Z");
        for v in [
            "2026-01-12T10:15:00+05:30",
            "2026-01-12T10:15:00+0530",
            "2026-01-12T04:45:00+00",
            "2026-01-12T02:45:00-02",
        ] {
            assert_eq!(parse(v), Ok(want), "{v}");
        }
        assert_eq!(parse("2026-01-12T10:15:00+5:30"), Err(TimestampError::Invalid));
        assert_eq!(parse("2026-01-12T10:15:00+24:00"), Err(TimestampError::Invalid));
        assert_eq!(parse("2026-01-12T10:15:00 Z"), Err(TimestampError::Invalid));
    }

    #[test]
    fn fraction_of_one_to_nine_digits_is_truncated_to_micros() {
        let base = micros("2026-01-12T10:15:00Z");
        assert_eq!(parse("2026-01-12T10:15:00.5Z"), Ok(base + 500_000));
        assert_eq!(parse("2026-01-12T10:15:00.123456Z"), Ok(base + 123_456));
        assert_eq!(parse("2026-01-12T10:15:00.123456789Z"), Ok(base + 123_456));
        assert_eq!(parse("2026-01-12T10:15:00.999999999"), Ok(base + 999_999));
        assert_eq!(parse("2026-01-12T10:15:00.1234567890Z"), Err(TimestampError::Invalid));
        assert_eq!(parse("2026-01-12T10:15:00.Z"), Err(TimestampError::Invalid));
    }

    #[test]
    fn calendar_and_clock_fields_must_be_real() {
        assert!(parse("2024-02-29T00:00:00Z").is_ok(), "leap day");
        for v in [
            "2023-02-29T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-01-12T24:00:00Z",
            "2026-01-12T23:60:00Z",
            "2026-01-12T23:59:60Z",
            "2026-1-12T10:15:00Z",
            "2026-01-12",
            "12/01/2026 10:15:00",
        ] {
            assert_eq!(parse(v), Err(TimestampError::Invalid), "{v}");
        }
    }

    #[test]
    fn range_is_2000_inclusive_to_2100_exclusive() {
        assert_eq!(parse("1999-12-31T23:59:59Z"), Err(TimestampError::OutOfRange));
        assert_eq!(parse("1999-12-31T23:59:59.999999Z"), Err(TimestampError::OutOfRange));
        assert_eq!(parse("2000-01-01T00:00:00Z"), Ok(MIN_MICROS));
        assert_eq!(parse("2099-12-31T23:59:59.999999Z"), Ok(MAX_MICROS - 1));
        assert_eq!(parse("2100-01-01T00:00:00Z"), Err(TimestampError::OutOfRange));
        assert_eq!(parse("2000-01-01T00:30:00+01:00"), Err(TimestampError::OutOfRange), "offset moves it before 2000");
    }

    #[test]
    fn epoch_unit_follows_magnitude() {
        let want = micros("2026-01-12T10:15:00Z");
        assert_eq!(parse("1768212900"), Ok(want), "10 digits: seconds");
        assert_eq!(parse("1768212900000"), Ok(want), "13 digits: milliseconds");
        assert_eq!(parse("1768212900000000"), Ok(want), "16 digits: microseconds");
        assert_eq!(parse("+1768212900"), Ok(want));
        assert_eq!(parse("4102444799"), Ok(MAX_MICROS - 1_000_000), "last second before 2100");
        assert_eq!(parse("4102444799999"), Ok(MAX_MICROS - 1_000), "last millisecond before 2100");
        assert_eq!(parse("99999999999"), Err(TimestampError::OutOfRange), "just under 10^11 is seconds: year 5138");
        assert_eq!(parse("100000000000"), Err(TimestampError::OutOfRange), "10^11 is milliseconds: 1973");
    }

    #[test]
    fn decimal_epochs_are_read_exactly_and_floored() {
        let want = micros("2026-01-12T10:15:00Z");
        assert_eq!(parse("1768212900.123456789"), Ok(want + 123_456));
        assert_eq!(parse("1768212900123.4567"), Ok(want + 123_456));
        assert_eq!(parse("1768212900123456.9"), Ok(want + 123_456));
        // 0.1 is not exact in binary floating point; read as a decimal it is.
        assert_eq!(parse("1768212900.1"), Ok(want + 100_000));
        assert_eq!(parse("946684799.9999999"), Err(TimestampError::OutOfRange));
        assert_eq!(parse("946684800.0000001"), Ok(MIN_MICROS));
    }

    #[test]
    fn malformed_epochs_are_invalid_and_huge_ones_out_of_range() {
        for v in ["1768212900.", ".5", "17682129e2", "1 768", "--1", "0x10"] {
            assert_eq!(parse(v), Err(TimestampError::Invalid), "{v}");
        }
        assert_eq!(parse("-1768212900"), Err(TimestampError::OutOfRange));
        assert_eq!(parse(&"9".repeat(60)), Err(TimestampError::OutOfRange));
    }

    #[test]
    fn configured_patterns_are_tried_after_builtins() {
        let p = TimestampParser::new(&["%d/%m/%Y %H:%M:%S".into(), "%Y%m%d %H%M%S %z".into(), "%d.%m.%Y".into()]);
        assert_eq!(p.parse("12/01/2026 10:15:00"), Ok(micros("2026-01-12T10:15:00Z")));
        assert_eq!(p.parse("20260112 101500 +0100"), Ok(micros("2026-01-12T09:15:00Z")));
        assert_eq!(p.parse("12.01.2026"), Ok(micros("2026-01-12T00:00:00Z")));
        assert_eq!(p.parse("31/02/2026 10:15:00"), Err(TimestampError::Invalid));
        assert_eq!(p.parse("01/01/1999 00:00:00"), Err(TimestampError::OutOfRange));
    }

    #[test]
    fn event_date_and_its_text() {
        let t = micros("2026-01-12T23:59:59.999999Z");
        assert_eq!(format_date(event_date(t)), "2026-01-12");
        assert_eq!(format_date(event_date(t + 1)), "2026-01-13");
    }
}
