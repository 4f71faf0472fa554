//! The value rules: null tokens, `latency_ms` and `status_code` never panic,
//! and what they accept is in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use records::value::{Optional, latency, normalize, status};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let value = normalize(Some(text));
    if let Some(v) = value {
        assert_eq!(v, v.trim(), "normalized values are trimmed");
    }
    if let Optional::Valid(x) = latency(value) {
        assert!(x.is_finite() && x >= 0.0 && x.is_sign_positive(), "{text:?} -> {x}");
    }
    if let Optional::Valid(code) = status(value) {
        assert!((100..=599).contains(&code), "{text:?} -> {code}");
    }
});
