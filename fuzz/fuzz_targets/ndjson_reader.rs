//! The NDJSON reader (line splitter, object member splitter, record limit),
//! against the single-threaded whole-file reader.
#![no_main]

mod readers;

use libfuzzer_sys::fuzz_target;
use records::input::Format;
use records::input::test_support::reference_ndjson;

fuzz_target!(|data: &[u8]| readers::check(data, Format::Ndjson, reference_ndjson));
