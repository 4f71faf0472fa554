//! What the two reader targets share: the input's first byte picks the
//! piece size, the block size fed to the splitter and a small record
//! limit; the rest is the file. Piece sizes grow quadratically with the
//! knob (1 to 1,126 bytes): tiny pieces are well covered, and inputs cut
//! into a few pieces keep the executions fast (each piece starts a parser).

use records::input::test_support::Collect;
use records::input::{Format, Limits, ReadStats, read_in_blocks};
use records::Result;

/// Checks one reader on `data` against `reference`, the whole-file reader.
pub fn check(data: &[u8], format: Format, reference: fn(&[u8], &str, &mut Collect) -> Result<ReadStats>) {
    let Some((&knobs, data)) = data.split_first() else { return };
    let chunk_bytes = 1 + usize::from(knobs & 0x0f).pow(2) * 5;
    let block = 1 + usize::from(knobs >> 4) * 5;

    // Streamed in any pieces and blocks, the records equal the reference's.
    let mut streamed = Collect::default();
    let limits = Limits { max_record_bytes: 1 << 20, chunk_bytes };
    let result = read_in_blocks(data, format, "f", limits, block, &mut streamed);
    let mut whole = Collect::default();
    match (result, reference(data, "f", &mut whole)) {
        (Ok(stats), Ok(_)) => {
            assert_eq!(streamed, whole, "streamed records differ from the whole-file read");
            invariants(&stats, &streamed);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("streamed {:?}, whole file {:?}", a.map(|_| ()), b.map(|_| ())),
    }

    // With a record limit small enough to cut records: the same invariants.
    let mut limited = Collect::default();
    let limits = Limits { max_record_bytes: 16 + usize::from(knobs % 32), chunk_bytes };
    if let Ok(stats) = read_in_blocks(data, format, "f", limits, block, &mut limited) {
        invariants(&stats, &limited);
        assert!(limited.malformed.iter().all(|(_, raw)| raw.len() <= limits.max_record_bytes * 3));
    }
}

/// Every record is exactly one row or one malformed row, and lines never go back.
fn invariants(stats: &ReadStats, sink: &Collect) {
    assert_eq!(stats.records as usize, sink.rows.len() + sink.malformed.len());
    assert_eq!(stats.records as usize, sink.order.len());
    assert_eq!(stats.malformed as usize, sink.malformed.len());
    assert!(sink.order.windows(2).all(|w| w[0].0 <= w[1].0), "lines go back: {:?}", sink.order);
    assert!(sink.order.iter().all(|(line, _)| *line >= 1));
}
