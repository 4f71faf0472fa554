//! Checkpoints: every `interval` versions a table gets
//! `_delta_log/%020d.checkpoint.parquet`, its whole state at that version
//! (protocol, metadata and one `add` per live file), and `_last_checkpoint`
//! naming it. A reader then opens the table from the newest checkpoint and
//! the commits after it, however many versions came before; so does
//! [`super::log::head`].
//!
//! The state a checkpoint holds is kept beside the output as JSON lines too
//! (`_state/tables/<layer>/<version>.json`, the newest one only), so the
//! next checkpoint is that state plus the commits after it, replayed: this
//! writer never reads Parquet checkpoints back. Without such a file (a
//! table's first checkpoint) the whole log is replayed.
//!
//! The columns are built here as Arrow arrays and written with polars'
//! Parquet writer: `partitionValues`, `format.options` and `configuration`
//! are maps of strings, as the protocol's checkpoint schema has them. Removes are not kept: publishing deletes a removed file with
//! its version, so there is nothing for a tombstone to protect.

use std::collections::BTreeMap;

use polars::prelude::{ArrowDataType, ArrowField, PolarsResult};
use polars_arrow::array::{Array, BooleanArray, ListArray, PrimitiveArray, StructArray, Utf8ViewArray};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::offset::OffsetsBuffer;
use polars_parquet::parquet::error::ParquetError;
use polars_parquet::parquet::schema::Repetition;
use polars_parquet::parquet::schema::types::{GroupConvertedType, GroupLogicalType};
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Compressor, DynIter, DynStreamingIterator, Encoding, FileWriter, ParquetType,
    SchemaDescriptor, StatisticsOptions, Version, WriteOptions, array_to_columns, fallible_streaming_iterator,
    to_parquet_leaves, to_parquet_type,
};
use rayon::prelude::*;
use serde_json::{Value, json};
use tracing::info;

use super::log;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// Versions between checkpoints unless `[maintenance] checkpoint_interval`
/// says otherwise.
pub(crate) const DEFAULT_INTERVAL: u64 = 100;

/// Where the JSON copies of a table's checkpointed states live.
pub(super) fn states_dir(layer: &str) -> String {
    format!("_state/tables/{layer}")
}

/// Writes a checkpoint of the table in `layer` at `version` (its newest).
pub(super) fn write(output: &Storage, layer: &str, version: u64) -> Result<()> {
    let dir = states_dir(layer);
    let saved: Vec<(u64, String)> =
        output.list(&dir)?.into_iter().filter_map(|e| Some((state_version(&e.relative)?, e.relative))).collect();
    let actions = state_at(output, layer, version, &saved)?;
    output.put(&format!("{dir}/{version:020}.json"), log::to_lines(&actions))?;
    let bytes = encode(&actions).map_err(|source| Error::Parquet {
        action: "encode",
        path: log::checkpoint_path(layer, version),
        source,
    })?;
    output.put(&log::checkpoint_path(layer, version), bytes)?;
    let adds = actions.iter().filter(|a| a.get("add").is_some()).count();
    let hint = json!({"version": version, "size": actions.len(), "numOfAddFiles": adds});
    output.put(&log::last_checkpoint_path(layer), hint.to_string())?;
    for (_, older) in saved.iter().filter(|(v, _)| *v < version) {
        output.delete(older)?;
    }
    info!(table = layer, version, files = adds, "Wrote a table checkpoint.");
    Ok(())
}

fn state_version(relative: &str) -> Option<u64> {
    relative.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
}

/// The table's state at `version`: its protocol, its metadata and an `add`
/// for each live file (by path), as JSON actions. It starts from the newest
/// of the `saved` states (version, path) at or before `version`.
fn state_at(output: &Storage, layer: &str, version: u64, saved: &[(u64, String)]) -> Result<Vec<Value>> {
    let unreplayable = |version: u64, what: &str, reason: String| Error::Table {
        table: output.describe(layer),
        version,
        reason: format!("{what} cannot be replayed for a checkpoint: {reason}"),
    };
    let mut state = State::default();
    let first = match saved.iter().filter(|(v, _)| *v <= version).max() {
        Some((saved, path)) => {
            state.apply(log::parse_actions(&output.get(path)?).map_err(|e| unreplayable(*saved, path, e))?);
            saved + 1
        }
        None => 0,
    };
    let commits: Vec<(u64, bytes::Bytes)> = (first..=version)
        .into_par_iter()
        .map(|v| Ok((v, output.get(&log::commit_path(layer, v))?)))
        .collect::<Result<_>>()?;
    for (v, bytes) in commits {
        state.apply(log::parse_actions(&bytes).map_err(|e| unreplayable(v, "its commit", e))?);
    }
    Ok(state.into_actions())
}

/// A table's state as a replay of its actions.
#[derive(Default)]
struct State {
    protocol: Option<Value>,
    metadata: Option<Value>,
    adds: BTreeMap<String, Value>,
}

impl State {
    /// Applies the actions of one commit (or of a saved state), in order.
    fn apply(&mut self, actions: Vec<Value>) {
        for action in actions {
            if action.get("protocol").is_some() {
                self.protocol = Some(action);
            } else if action.get("metaData").is_some() {
                self.metadata = Some(action);
            } else if let Some(path) = action.get("add").and_then(|a| a["path"].as_str()) {
                self.adds.insert(path.to_string(), action);
            } else if let Some(path) = action.get("remove").and_then(|r| r["path"].as_str()) {
                self.adds.remove(path);
            }
        }
    }

    fn into_actions(self) -> Vec<Value> {
        self.protocol.into_iter().chain(self.metadata).chain(self.adds.into_values()).collect()
    }
}

/// The type of a checkpoint column, as the protocol's checkpoint schema has it.
enum Kind {
    Str,
    Int,
    Long,
    Bool,
    /// `map<string, string>`
    Map,
    /// `array<string>`
    StrList,
    Struct(&'static [(&'static str, Kind)]),
}

/// A checkpoint's columns: one struct per action type, one row per action.
const COLUMNS: &[(&str, Kind)] = &[
    ("txn", Kind::Struct(&[("appId", Kind::Str), ("version", Kind::Long), ("lastUpdated", Kind::Long)])),
    (
        "add",
        Kind::Struct(&[
            ("path", Kind::Str),
            ("partitionValues", Kind::Map),
            ("size", Kind::Long),
            ("modificationTime", Kind::Long),
            ("dataChange", Kind::Bool),
            ("stats", Kind::Str),
        ]),
    ),
    ("remove", Kind::Struct(&[("path", Kind::Str), ("deletionTimestamp", Kind::Long), ("dataChange", Kind::Bool)])),
    (
        "metaData",
        Kind::Struct(&[
            ("id", Kind::Str),
            ("name", Kind::Str),
            ("description", Kind::Str),
            ("format", Kind::Struct(&[("provider", Kind::Str), ("options", Kind::Map)])),
            ("schemaString", Kind::Str),
            ("partitionColumns", Kind::StrList),
            ("configuration", Kind::Map),
            ("createdTime", Kind::Long),
        ]),
    ),
    ("protocol", Kind::Struct(&[("minReaderVersion", Kind::Int), ("minWriterVersion", Kind::Int)])),
];

impl Kind {
    fn dtype(&self) -> ArrowDataType {
        match self {
            Kind::Str => ArrowDataType::Utf8View,
            Kind::Int => ArrowDataType::Int32,
            Kind::Long => ArrowDataType::Int64,
            Kind::Bool => ArrowDataType::Boolean,
            // A list of entries in Arrow; a `map` in the file (see `parquet_type`).
            Kind::Map => ArrowDataType::LargeList(Box::new(ArrowField::new("key_value".into(), map_entries(), false))),
            Kind::StrList => {
                ArrowDataType::LargeList(Box::new(ArrowField::new("element".into(), ArrowDataType::Utf8View, true)))
            }
            Kind::Struct(fields) => ArrowDataType::Struct(
                fields.iter().map(|(name, kind)| ArrowField::new((*name).into(), kind.dtype(), true)).collect(),
            ),
        }
    }

    /// The column's Parquet type. A map is written from a list of entry
    /// structs (polars' own map path mishandles maps under a null parent),
    /// and polars computes a list's levels with the entries as a struct
    /// inside the repeated group (`for_levels`); the file's schema is a
    /// `MAP` with the key and value right in that group, as readers expect.
    /// Both give the same definition and repetition levels, since the extra
    /// struct is required.
    fn parquet_type(&self, name: &str, for_levels: bool) -> PolarsResult<ParquetType> {
        let group = |converted, logical, fields| {
            ParquetType::from_group(name.into(), Repetition::Optional, converted, logical, fields, None)
        };
        Ok(match self {
            Kind::Map => {
                let entries = match map_entries() {
                    ArrowDataType::Struct(fields) => fields.iter().map(to_parquet_type).collect::<PolarsResult<_>>()?,
                    _ => unreachable!("map entries are a struct"),
                };
                let entries = match for_levels {
                    true => {
                        vec![ParquetType::from_group("entries".into(), Repetition::Required, None, None, entries, None)]
                    }
                    false => entries,
                };
                let key_value =
                    ParquetType::from_group("key_value".into(), Repetition::Repeated, None, None, entries, None);
                group(Some(GroupConvertedType::Map), Some(GroupLogicalType::Map), vec![key_value])
            }
            Kind::Struct(fields) => group(
                None,
                None,
                fields.iter().map(|(name, kind)| kind.parquet_type(name, for_levels)).collect::<PolarsResult<_>>()?,
            ),
            _ => to_parquet_type(&ArrowField::new(name.into(), self.dtype(), true))?,
        })
    }

    /// The column of `values` (one per row; `None` where the row has no such field).
    fn array(&self, values: &[Option<&Value>]) -> PolarsResult<Box<dyn Array>> {
        let present = |v: &&Value| !v.is_null();
        Ok(match self {
            Kind::Str => {
                Utf8ViewArray::from_slice(values.iter().map(|v| v.and_then(Value::as_str)).collect::<Vec<_>>()).boxed()
            }
            Kind::Int => PrimitiveArray::<i32>::from(
                values
                    .iter()
                    .map(|v| v.and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()))
                    .collect::<Vec<_>>(),
            )
            .boxed(),
            Kind::Long => {
                PrimitiveArray::<i64>::from(values.iter().map(|v| v.and_then(Value::as_i64)).collect::<Vec<_>>())
                    .boxed()
            }
            Kind::Bool => {
                BooleanArray::from(values.iter().map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>()).boxed()
            }
            Kind::Map => {
                let (mut offsets, mut keys, mut items, mut valid) = (vec![0i64], Vec::new(), Vec::new(), Vec::new());
                for value in values {
                    let entries = value.filter(present).and_then(Value::as_object);
                    for (key, item) in entries.into_iter().flatten() {
                        keys.push(Some(key.as_str()));
                        items.push(item.as_str());
                    }
                    offsets.push(keys.len() as i64);
                    valid.push(entries.is_some());
                }
                let entries = StructArray::try_new(
                    map_entries(),
                    keys.len(),
                    vec![Utf8ViewArray::from_slice(keys).boxed(), Utf8ViewArray::from_slice(items).boxed()],
                    None,
                )?;
                ListArray::<i64>::try_new(
                    self.dtype(),
                    OffsetsBuffer::try_from(offsets)?,
                    entries.boxed(),
                    Some(Bitmap::from(valid)),
                )?
                .boxed()
            }
            Kind::StrList => {
                let (mut offsets, mut items, mut valid) = (vec![0i64], Vec::new(), Vec::new());
                for value in values {
                    let list = value.filter(present).and_then(Value::as_array);
                    items.extend(list.into_iter().flatten().map(Value::as_str));
                    offsets.push(items.len() as i64);
                    valid.push(list.is_some());
                }
                let items = Utf8ViewArray::from_slice(items).boxed();
                ListArray::<i64>::try_new(
                    self.dtype(),
                    OffsetsBuffer::try_from(offsets)?,
                    items,
                    Some(Bitmap::from(valid)),
                )?
                .boxed()
            }
            Kind::Struct(fields) => {
                let values: Vec<Option<&Value>> = values.iter().map(|v| v.filter(present)).collect();
                let children = fields
                    .iter()
                    .map(|(name, kind)| {
                        let column: Vec<Option<&Value>> = values.iter().map(|v| v.and_then(|v| v.get(*name))).collect();
                        kind.array(&column)
                    })
                    .collect::<PolarsResult<_>>()?;
                let valid = Bitmap::from_iter(values.iter().map(Option::is_some));
                StructArray::try_new(self.dtype(), values.len(), children, Some(valid))?.boxed()
            }
        })
    }
}

/// A map's entries: a string key and a string value that may be null.
fn map_entries() -> ArrowDataType {
    ArrowDataType::Struct(vec![
        ArrowField::new("key".into(), ArrowDataType::Utf8View, false),
        ArrowField::new("value".into(), ArrowDataType::Utf8View, true),
    ])
}

/// A checkpoint file holding `actions`, one row each, in one row group.
fn encode(actions: &[Value]) -> PolarsResult<Vec<u8>> {
    let options = WriteOptions {
        statistics: StatisticsOptions::empty(),
        version: Version::V1,
        compression: CompressionOptions::Snappy,
        data_page_size: None,
    };
    let arrow_schema = COLUMNS.iter().map(|(name, kind)| ArrowField::new((*name).into(), kind.dtype(), true)).collect();
    let file_types = COLUMNS.iter().map(|(name, kind)| kind.parquet_type(name, false)).collect::<PolarsResult<_>>()?;
    let mut buffer = Vec::new();
    let mut writer = FileWriter::new_with_parquet_schema(
        &mut buffer,
        arrow_schema,
        SchemaDescriptor::new("schema".into(), file_types),
        options,
    );
    let mut leaves: Vec<Vec<CompressedPage>> = Vec::new();
    for (name, kind) in COLUMNS {
        let values: Vec<Option<&Value>> = actions.iter().map(|a| a.get(*name)).collect();
        let array = kind.array(&values)?;
        let levels_type = kind.parquet_type(name, true)?;
        let encodings = vec![Encoding::Plain; to_parquet_leaves(levels_type.clone()).len()];
        for leaf in array_to_columns(array, levels_type, options, &encodings)? {
            let leaf = leaf.map(|page| page.map_err(|e| ParquetError::FeatureNotSupported(e.to_string())));
            let mut pages = Vec::new();
            for page in Compressor::new_from_vec(leaf, options.compression, Vec::new()) {
                pages.push(page?);
            }
            leaves.push(pages);
        }
    }
    let columns = leaves.iter().map(|pages| {
        Ok(DynStreamingIterator::new(fallible_streaming_iterator::convert(pages.iter().map(PolarsResult::Ok))))
    });
    writer.write(actions.len() as u64, DynIter::new(columns))?;
    // No Arrow schema in the footer: readers take the Parquet types (plain strings, not views).
    writer.end(Some(Vec::new()))?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use polars_parquet::parquet::read::read_metadata;

    use super::*;

    fn actions() -> Vec<Value> {
        vec![
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"metaData": {"id": "x", "format": {"provider": "parquet", "options": {}},
                "schemaString": "{}", "partitionColumns": ["d"], "configuration": {}, "createdTime": 5}}),
            json!({"add": {"path": "d=1/a.parquet", "partitionValues": {"d": "1"}, "size": 10,
                "modificationTime": 7, "dataChange": true, "stats": "{\"numRecords\":3}"}}),
            json!({"add": {"path": "b.parquet", "partitionValues": {"d": null}, "size": 11,
                "modificationTime": 8, "dataChange": false}}),
            json!({"add": {"path": "d=2/c.parquet", "partitionValues": {"d": "2"}, "size": 12,
                "modificationTime": 9, "dataChange": true}}),
        ]
    }

    #[test]
    fn a_checkpoint_has_the_protocols_columns_with_maps_and_a_row_an_action() {
        let bytes = encode(&actions()).expect("encoded");
        let footer = read_metadata(&mut std::io::Cursor::new(&bytes)).expect("a Parquet file");
        assert_eq!(footer.num_rows, 5);
        let paths: Vec<String> = footer.schema().columns().iter().map(|c| c.path_in_schema.join(".")).collect();
        for want in [
            "add.path",
            "add.partitionValues.key_value.key",
            "add.partitionValues.key_value.value",
            "add.stats",
            "metaData.format.options.key_value.key",
            "metaData.partitionColumns.list.element",
            "metaData.configuration.key_value.value",
            "protocol.minReaderVersion",
            "txn.appId",
            "remove.path",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} missing from {paths:?}");
        }
        assert!(footer.key_value_metadata.as_ref().is_none_or(Vec::is_empty), "no Arrow schema in the footer");
    }

    #[test]
    fn a_state_replays_adds_and_removes_in_order() {
        let mut state = State::default();
        let replay = |lines: &[Value]| log::parse_actions(log::to_lines(lines).as_bytes());
        state.apply(replay(&actions()).expect("v0"));
        state.apply(
            replay(&[
                json!({"remove": {"path": "b.parquet"}}),
                json!({"add": {"path": "c.parquet"}}),
                json!({"commitInfo": {}}),
            ])
            .expect("v1"),
        );
        let paths: Vec<&str> = state.adds.keys().map(String::as_str).collect();
        assert_eq!(paths, ["c.parquet", "d=1/a.parquet", "d=2/c.parquet"]);
        assert_eq!(state.into_actions().len(), 5);
        assert!(log::parse_actions(b"{not json").is_err());
    }
}
