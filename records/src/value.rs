//! Value rules: null tokens (rule 2) and the optional numeric fields
//! `latency_ms` and `status_code` (rule 7).

/// Trims Unicode whitespace; empty or a null token (`null`, `none`, `nan`,
/// `n/a`, `-`, any case) is missing.
pub fn normalize(value: Option<&str>) -> Option<&str> {
    let v = value?.trim();
    const NULL_TOKENS: [&str; 5] = ["null", "none", "nan", "n/a", "-"];
    if v.is_empty() || NULL_TOKENS.iter().any(|t| v.eq_ignore_ascii_case(t)) { None } else { Some(v) }
}

/// An optional field after its rule: counted separately when missing and
/// when present but invalid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optional<T> {
    Missing,
    Invalid,
    Valid(T),
}

impl<T> Optional<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Optional::Valid(v) => Some(v),
            _ => None,
        }
    }
}

/// `latency_ms`: a decimal number, finite and ≥ 0 (normalized value expected).
pub fn latency(value: Option<&str>) -> Optional<f64> {
    let Some(v) = value else { return Optional::Missing };
    match Decimal::parse(v).and_then(|_| v.parse::<f64>().ok()) {
        Some(x) if x.is_finite() && x >= 0.0 => Optional::Valid(x + 0.0), // -0 becomes 0
        _ => Optional::Invalid,
    }
}

/// `status_code`: a decimal number that is integral and within 100–599.
pub fn status(value: Option<&str>) -> Optional<i32> {
    let Some(v) = value else { return Optional::Missing };
    match Decimal::parse(v) {
        Some(d) if d.is_integral() => match v.parse::<f64>() {
            Ok(x) if (100.0..=599.0).contains(&x) => Optional::Valid(x as i32),
            _ => Optional::Invalid,
        },
        _ => Optional::Invalid,
    }
}

/// The parts of a decimal number: `[+-] digits [. digits] [e [+-] digits]`
/// (either side of the point may be empty, not both). No units, no `inf`.
#[derive(Debug, PartialEq)]
struct Decimal<'a> {
    int: &'a str,
    frac: &'a str,
    exp: i64,
}

impl<'a> Decimal<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let body = s.strip_prefix(['+', '-']).unwrap_or(s);
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return None;
        }
        let exp = match exp {
            None => 0,
            Some(e) => {
                let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if e_digits.is_empty() || !digits(e_digits) {
                    return None;
                }
                // Saturate: beyond ±10^6 the value is 0 or infinite either way.
                let magnitude = e_digits.parse::<i64>().unwrap_or(i64::MAX).min(1_000_000);
                if e.starts_with('-') { -magnitude } else { magnitude }
            }
        };
        Some(Decimal { int, frac, exp })
    }

    /// True when no non-zero digit stands after the decimal point once the
    /// exponent is applied (exactly, not through a float).
    fn is_integral(&self) -> bool {
        let point = self.int.len() as i64 + self.exp;
        self.int.bytes().chain(self.frac.bytes()).enumerate().all(|(i, b)| (i as i64) < point || b == b'0')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tokens_and_blank_are_missing() {
        for v in ["", "   ", "null", "NULL", "None", "nan", "NaN", "n/a", "N/A", "-", " \u{a0}\u{2003}- "] {
            assert_eq!(normalize(Some(v)), None, "{v:?}");
        }
        assert_eq!(normalize(None), None);
        assert_eq!(normalize(Some(" a b\t")), Some("a b"));
        assert_eq!(normalize(Some("nullx")), Some("nullx"));
        assert_eq!(normalize(Some("--")), Some("--"));
    }

    #[test]
    fn latency_accepts_decimal_numbers_only() {
        assert_eq!(latency(Some("12.5")), Optional::Valid(12.5));
        assert_eq!(latency(Some("+3")), Optional::Valid(3.0));
        assert_eq!(latency(Some(".5")), Optional::Valid(0.5));
        assert_eq!(latency(Some("5.")), Optional::Valid(5.0));
        assert_eq!(latency(Some("1e3")), Optional::Valid(1000.0));
        assert_eq!(latency(Some("0")), Optional::Valid(0.0));
        assert_eq!(latency(Some("-0")), Optional::Valid(0.0));
        assert_eq!(latency(None), Optional::Missing);
    }

    #[test]
    fn latency_rejects_units_negatives_and_non_finite() {
        for v in ["12ms", "-1", "-0.001", "inf", "infinity", "1e400", "1,5", "e5", ".", "1e", "0x10", "1_000"] {
            assert_eq!(latency(Some(v)), Optional::Invalid, "{v:?}");
        }
    }

    #[test]
    fn status_accepts_integral_values_in_range() {
        for (v, want) in [("200", 200), ("+200", 200), ("200.0", 200), ("2e2", 200), ("100", 100), ("599", 599)] {
            assert_eq!(status(Some(v)), Optional::Valid(want), "{v:?}");
        }
        assert_eq!(status(Some("0.5e3")), Optional::Valid(500));
    }

    #[test]
    fn status_rejects_fractions_out_of_range_and_text() {
        for v in ["200.5", "99", "600", "-200", "abc", "2OO", "200.0000000000000001", "1e400", ""] {
            assert_eq!(status(Some(v)), Optional::Invalid, "{v:?}");
        }
        assert_eq!(status(None), Optional::Missing);
    }
}
