//! The timestamp parser (ISO forms, epoch numbers, a configured strftime
//! pattern): never panics, and whatever it accepts is within the range README "Cleaning rules" accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use records::timestamp::{MAX_MICROS, MIN_MICROS, TimestampParser, event_date, format_date};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parser = TimestampParser::new(&["%d/%m/%Y %H:%M:%S".to_string()]);
    if let Ok(micros) = parser.parse(text) {
        assert!((MIN_MICROS..MAX_MICROS).contains(&micros), "{text:?} -> {micros}");
        let date = format_date(event_date(micros));
        assert!(date.len() == 10 && date.starts_with("20"), "{text:?} -> {date}");
    }
});
