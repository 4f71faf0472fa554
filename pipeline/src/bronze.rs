//! Bronze: one row per raw record, malformed ones included, values exactly
//! as read, plus lineage columns (README "Output layout").

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::input::{FIELDS, RecordSink};

pub(crate) const EXTRA: &str = "_extra";
pub(crate) const RAW: &str = "_raw";
pub(crate) const SOURCE_FILE: &str = "_source_file";
pub(crate) const SOURCE_LINE: &str = "_source_line";
pub(crate) const INGESTED_AT: &str = "_ingested_at";
pub(crate) const RUN_ID: &str = "_run_id";

/// `Timestamp(µs, UTC)`, the type of every instant the pipeline writes.
pub(crate) fn timestamp_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// The bronze schema, in column order: what the tests hold frames to, and
/// the bronze table's columns.
pub(crate) fn schema() -> Schema {
    let mut schema: Schema = FIELDS.iter().map(|f| Field::new((*f).into(), DataType::String)).collect();
    for (name, dtype) in [
        (EXTRA, DataType::String),
        (RAW, DataType::String),
        (SOURCE_FILE, DataType::String),
        (SOURCE_LINE, DataType::Int64),
        (INGESTED_AT, timestamp_type()),
        (RUN_ID, DataType::String),
    ] {
        schema.with_column(name.into(), dtype);
    }
    schema
}

/// Where a file's rows came from and which run ingested them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lineage<'a> {
    pub(crate) source_file: &'a str,
    pub(crate) ingested_at_micros: i64,
    pub(crate) run_id: &'a str,
}

/// Accumulates one file's records as columns.
pub(crate) struct BronzeBuilder {
    fields: [StringChunkedBuilder; 7],
    extra: StringChunkedBuilder,
    raw: StringChunkedBuilder,
    lines: Vec<i64>,
}

impl BronzeBuilder {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Self {
            fields: std::array::from_fn(|i| StringChunkedBuilder::new(FIELDS[i].into(), rows)),
            extra: StringChunkedBuilder::new(EXTRA.into(), rows),
            raw: StringChunkedBuilder::new(RAW.into(), rows),
            lines: Vec::with_capacity(rows),
        }
    }

    /// The bronze frame, lineage columns included.
    pub(crate) fn finish(self, lineage: Lineage) -> Result<DataFrame> {
        let height = self.lines.len();
        let constant = |name: &str, value: AnyValue<'static>, dtype: DataType| {
            Column::new_scalar(name.into(), Scalar::new(dtype, value), height)
        };
        let mut columns: Vec<Column> = self.fields.into_iter().map(|b| b.finish().into_column()).collect();
        columns.push(self.extra.finish().into_column());
        columns.push(self.raw.finish().into_column());
        columns.push(constant(SOURCE_FILE, AnyValue::StringOwned(lineage.source_file.into()), DataType::String));
        columns.push(Int64Chunked::from_vec(SOURCE_LINE.into(), self.lines).into_column());
        columns.push(
            constant(INGESTED_AT, AnyValue::Int64(lineage.ingested_at_micros), DataType::Int64)
                .cast(&timestamp_type())
                .map_err(Error::polars("building bronze lineage"))?,
        );
        columns.push(constant(RUN_ID, AnyValue::StringOwned(lineage.run_id.into()), DataType::String));
        DataFrame::new(height, columns).map_err(Error::polars("building the bronze frame"))
    }
}

impl RecordSink for BronzeBuilder {
    fn record(&mut self, line: i64, fields: [Option<&str>; 7], extra: Option<&str>) {
        for (builder, value) in self.fields.iter_mut().zip(fields) {
            builder.append_option(value);
        }
        self.extra.append_option(extra);
        self.raw.append_null();
        self.lines.push(line);
    }

    fn malformed(&mut self, line: i64, raw: &str, extra: Option<&str>) {
        for builder in &mut self.fields {
            builder.append_null();
        }
        self.extra.append_option(extra);
        self.raw.append_value(raw);
        self.lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_frame_has_the_bronze_schema() {
        let mut b = BronzeBuilder::with_capacity(2);
        b.record(2, [Some(" e1 "), Some("api"), None, None, None, None, None], Some(r#"{"x":"1"}"#));
        b.malformed(3, "a,b,c", None);
        let df = b
            .finish(Lineage { source_file: "a/b.csv", ingested_at_micros: 1_000_000, run_id: "r1" })
            .expect("valid frame");
        assert_eq!(df.schema().as_ref(), &schema());
        assert_eq!(df.column("event_id").unwrap().str().unwrap().get(0), Some(" e1 "));
        assert_eq!(df.column(RAW).unwrap().str().unwrap().get(1), Some("a,b,c"));
        assert_eq!(df.column(SOURCE_LINE).unwrap().i64().unwrap().get(1), Some(3));
        assert_eq!(df.column(SOURCE_FILE).unwrap().str().unwrap().get(1), Some("a/b.csv"));
    }
}
