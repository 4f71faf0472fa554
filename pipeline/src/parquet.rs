//! Layer files as Parquet bytes, and back.
//!
//! Encoding goes below polars' `ParquetWriter` for what it does not offer
//! (polars 0.55), and one decoder below its reader:
//!
//! - **An encoding per column.** polars tries a dictionary on every string
//!   and most number columns: it estimates each column's cardinality by
//!   hashing every value, then builds the dictionary with a hash map. On
//!   the columns in [`PLAIN`], whose values are mostly distinct or varied
//!   (ids, instants, latencies, line numbers, free text), that work is lost
//!   or buys little that zstd does not; they are written plain (README,
//!   "Parquet", has the measured cost).
//! - **Pages compressed on every core.** polars builds a row group's
//!   dictionaries in parallel, but encodes the other pages and compresses
//!   all of them one after another as it writes the file; here each
//!   column is encoded and compressed in one parallel task.
//! - **No gathering copy.** A batch's frame is one chunk a piece; polars
//!   copies each column's chunks into one array first. Here plain columns
//!   are written chunk by chunk ([`gathered_small`] only joins runs of
//!   small ones) and string dictionaries are built from the chunks
//!   ([`string_dictionary`]).
//! - **One zstd context a thread** ([`compressed`]). polars' compressor
//!   creates a context for every page, and creating one runs `cpuid`,
//!   which a virtual machine traps to its hypervisor: on a VM that can
//!   take longer than compressing a small page.
//! - **No min/max on free text** ([`NO_MIN_MAX`]).
//! - **Small pages, and reading only some.** Columns a reader filters on
//!   can be written in pages of [`PAGE_ROWS`] rows, each with its own
//!   statistics ([`encode`]'s `paged`); [`decode_pages`] then decompresses
//!   and decodes, in every column, only the pages whose statistics a
//!   reader needs. polars' reader decodes whole row groups.
//!
//! Everything else is polars' own: the Arrow-to-Parquet schema (and the
//! Arrow schema in the footer that polars and pyarrow read types from),
//! page encoders, statistics and the file layout.

use std::cell::RefCell;
use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use polars::prelude::*;
use polars_arrow::array::{DictionaryArray, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::bitmap::MutableBitmap;
use polars_arrow::compute::concatenate::concatenate;
use polars_arrow::datatypes::IntegerType;
use polars_buffer::Buffer;
use polars_parquet::parquet::CowBuffer;
use polars_parquet::parquet::compression::Compression;
use polars_parquet::parquet::metadata::{ColumnChunkMetadata, FileMetadata, RowGroupMetadata};
use polars_parquet::parquet::page::{CompressedDictPage, DataPageHeader};
use polars_parquet::parquet::statistics::Statistics;
use polars_parquet::read::{BasicDecompressor, Filter, PageReader, column_iter_to_arrays};
use polars_parquet::write::{
    CompressedDataPage, CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding, FileWriter, Page,
    Version, WriteOptions, ZstdLevel, array_to_columns, fallible_streaming_iterator, get_dtype_encoding,
    to_parquet_schema,
};
use rayon::prelude::*;

use crate::bronze::{EXTRA, RAW, SOURCE_LINE};
use crate::silver::columns::{EVENT_ID, EVENT_TIME, LATENCY_MS, USER_ID};

/// Rows per row group.
pub(crate) const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Fewest rows of the arrays a plain column is written from (each one
/// page or more), unless the row group has fewer.
const MIN_PAGE_ROWS: usize = 2048;

/// Rows per page of the columns [`encode`] is asked to write in small
/// pages: about 8 KiB of 64-bit values.
pub(crate) const PAGE_ROWS: usize = 1024;

/// Columns written without a dictionary, whatever layer they are in: in
/// bronze and silver their values are mostly distinct (`event_id`,
/// `timestamp`, `event_time`, `_source_line`) or varied enough that a
/// dictionary costs more than it saves (`latency_ms`, `user_id`, `_extra`,
/// `_raw`). Other columns get polars' choice: a dictionary where the
/// values repeat enough, as `service`, `event_type` and `status_code` do.
const PLAIN: [&str; 8] = [EVENT_ID, "timestamp", EVENT_TIME, LATENCY_MS, USER_ID, EXTRA, RAW, SOURCE_LINE];

/// Columns of free text, as read, with null counts but no min/max
/// statistics: no query prunes row groups on them (a raw `timestamp` in
/// any of its formats, `_extra`'s JSON, a malformed line), and finding the
/// least and greatest of long strings that share their first bytes costs
/// a byte comparison per row.
const NO_MIN_MAX: [&str; 3] = ["timestamp", EXTRA, RAW];

/// A frame as Parquet bytes: zstd at `zstd_level`, min/max/null-count
/// statistics (null counts only on [`NO_MIN_MAX`]), row groups of
/// `group_rows` ([`ROW_GROUP_ROWS`] unless a reader prunes them finer).
/// (Distinct counts are left out: computing them hashes every value and
/// no reader uses them for pruning.) The plain columns named in `paged`
/// are written in pages of [`PAGE_ROWS`] rows, each with its own
/// statistics, for readers that decode only some of a group's pages
/// ([`decode_pages`]); other columns get pages of up to 1 MiB.
///
/// The frame's chunks are not gathered first; see [`arrays`] for how
/// each column is taken.
pub(crate) fn encode(df: &DataFrame, zstd_level: i32, group_rows: usize, paged: &[&str]) -> PolarsResult<Vec<u8>> {
    let group_rows = group_rows.max(1);
    let schema = df.schema().to_arrow(CompatLevel::newest());
    let parquet_schema = to_parquet_schema(&schema)?;
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        version: Version::V1,
        compression: CompressionOptions::Zstd(Some(ZstdLevel::try_new(zstd_level)?)),
        data_page_size: None,
    };
    let plans: Vec<(Vec<Encoding>, WriteOptions, Option<usize>)> = schema
        .iter_values()
        .map(|field| {
            let name = field.name.as_str();
            let encoding = match PLAIN.contains(&name) {
                true => vec![Encoding::Plain],
                false => get_dtype_encoding(&field.dtype),
            };
            let mut options = options;
            if NO_MIN_MAX.contains(&name) {
                options.statistics.min_value = false;
                options.statistics.max_value = false;
            }
            (encoding, options, paged.contains(&name).then_some(PAGE_ROWS))
        })
        .collect();
    let mut buffer = Vec::new();
    let mut writer = FileWriter::new_with_parquet_schema(&mut buffer, schema, parquet_schema.clone(), options);
    for offset in (0..df.height()).step_by(group_rows) {
        let rows = df.slice(offset as i64, group_rows);
        let columns = rows
            .columns()
            .par_iter()
            .zip(parquet_schema.fields())
            .zip(&plans)
            .map(|((column, parquet_type), (encoding, options, page_rows))| {
                // Pages by leaf column (one for the flat columns of the layers).
                let mut leaves: Vec<Vec<CompressedPage>> = Vec::new();
                for (array, encoding) in arrays(column.as_materialized_series(), encoding, *page_rows)? {
                    let chunk_leaves = array_to_columns(array, parquet_type.clone(), *options, &encoding)?;
                    leaves.resize_with(chunk_leaves.len(), Vec::new);
                    for (pages, leaf) in leaves.iter_mut().zip(chunk_leaves) {
                        for page in leaf {
                            pages.push(compressed(page?, zstd_level)?);
                        }
                    }
                }
                Ok(leaves)
            })
            .collect::<PolarsResult<Vec<Vec<Vec<CompressedPage>>>>>()?;
        let leaves = columns.iter().flatten().map(|pages| {
            Ok(DynStreamingIterator::new(fallible_streaming_iterator::convert(pages.iter().map(PolarsResult::Ok))))
        });
        writer.write(rows.height() as u64, DynIter::new(leaves))?;
    }
    writer.end(None)?;
    Ok(buffer)
}

thread_local! {
    /// The thread's zstd context, with the level it was made for.
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// `page` (version 1) compressed with zstd at `level` by the thread's
/// context, made once a thread and level (see the module's notes): what
/// polars' `Compressor` writes, but for the context.
fn compressed(page: Page, level: i32) -> PolarsResult<CompressedPage> {
    if let Page::Data(data) = &page
        && !matches!(data.header(), DataPageHeader::V1(_))
    {
        // Version 2 keeps a page's levels uncompressed; [`encode`] writes version 1.
        polars_bail!(ComputeError: "a version 2 data page to compress");
    }
    let compress = |bytes: &[u8]| -> PolarsResult<Vec<u8>> {
        ZSTD.with_borrow_mut(|slot| {
            if slot.as_ref().is_none_or(|(made_for, _)| *made_for != level) {
                *slot = Some((level, zstd::bulk::Compressor::new(level)?));
            }
            let (_, compressor) = slot.as_mut().expect("made above");
            Ok(compressor.compress(bytes)?)
        })
    };
    Ok(match page {
        Page::Data(data) => {
            let compressed = compress(data.buffer())?;
            let rows = data.num_rows.ok_or_else(|| polars_err!(ComputeError: "a data page without its rows"))?;
            let (header, size, descriptor) = (data.header().clone(), data.buffer().len(), data.descriptor);
            let page = CompressedDataPage::new(
                header,
                CowBuffer::Owned(compressed),
                Compression::Zstd,
                size,
                descriptor,
                rows,
            );
            CompressedPage::Data(page)
        }
        Page::Dict(dict) => {
            let compressed = CowBuffer::Owned(compress(&dict.buffer)?);
            let size = dict.buffer.len();
            CompressedPage::Dict(CompressedDictPage::new(
                compressed,
                Compression::Zstd,
                size,
                dict.num_values,
                dict.is_sorted,
            ))
        }
    })
}

/// A row group's column as the arrays to encode (each one page or more),
/// with their encodings: a plain column chunk by chunk
/// ([`gathered_small`]), cut into arrays of `page_rows` when given; a
/// string column that may get a dictionary as one dictionary array built
/// from its chunks ([`string_dictionary`]); any other column gathered
/// into one array, for polars to decide.
fn arrays(
    series: &Series,
    encoding: &[Encoding],
    page_rows: Option<usize>,
) -> PolarsResult<Vec<(ArrayRef, Vec<Encoding>)>> {
    let chunks = || {
        (0..series.n_chunks())
            .filter(|&i| !series.chunks()[i].is_empty())
            .map(|i| series.to_arrow(i, CompatLevel::newest()))
    };
    let plain = |chunks: Vec<ArrayRef>| {
        let arrays = gathered_small(chunks)?;
        let rows = page_rows.unwrap_or(usize::MAX).max(1);
        let pages = arrays.into_iter().flat_map(|array| {
            let len = array.len();
            (0..len).step_by(rows).map(move |offset| array.sliced(offset, rows.min(len - offset)))
        });
        Ok(pages.map(|array| (array, vec![Encoding::Plain])).collect())
    };
    match encoding {
        [Encoding::Plain] => plain(chunks().collect()),
        _ if series.dtype() == &DataType::String => {
            let strings: Vec<ArrayRef> = chunks().collect();
            let views: Option<Vec<&Utf8ViewArray>> =
                strings.iter().map(|array| array.as_any().downcast_ref::<Utf8ViewArray>()).collect();
            match views.and_then(|views| string_dictionary(&views)) {
                Some(dictionary) => Ok(vec![(dictionary.boxed(), vec![Encoding::RleDictionary])]),
                None => plain(strings),
            }
        }
        _ => Ok(vec![(series.rechunk().to_arrow(0, CompatLevel::newest()), encoding.to_vec())]),
    }
}

/// `chunks` with runs of small ones (a piece's rows of one date, a
/// batch's deferred rows) gathered into arrays of at least
/// [`MIN_PAGE_ROWS`], so that pages are not a few rows each; chunks that
/// large already are not copied.
fn gathered_small(chunks: Vec<ArrayRef>) -> PolarsResult<Vec<ArrayRef>> {
    fn gather(small: &mut Vec<ArrayRef>) -> PolarsResult<ArrayRef> {
        let gathered = match small.as_slice() {
            [one] => one.clone(),
            many => concatenate(&many.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?,
        };
        small.clear();
        Ok(gathered)
    }
    let (mut out, mut small, mut small_rows) = (Vec::new(), Vec::new(), 0);
    for chunk in chunks {
        if chunk.len() >= MIN_PAGE_ROWS {
            if !small.is_empty() {
                out.push(gather(&mut small)?);
                small_rows = 0;
            }
            out.push(chunk);
            continue;
        }
        small_rows += chunk.len();
        small.push(chunk);
        if small_rows >= MIN_PAGE_ROWS {
            out.push(gather(&mut small)?);
            small_rows = 0;
        }
    }
    if !small.is_empty() {
        out.push(gather(&mut small)?);
    }
    Ok(out)
}

/// A string column's chunks as one dictionary array, keys in order of
/// first appearance as polars builds them; `None` when more than three
/// quarters of its values are distinct, where polars writes it plain.
///
/// polars would first gather the chunks into one array (a copy of every
/// string), then estimate the column's cardinality (a hash of every
/// value), then build the dictionary (another). Here the chunks are read
/// as they are, there is no estimate, and a value equal to the one before
/// it costs no hash: the lineage columns hold one value a piece.
fn string_dictionary(chunks: &[&Utf8ViewArray]) -> Option<DictionaryArray<u32>> {
    let rows: usize = chunks.iter().map(|chunk| chunk.len()).sum();
    let too_many = |distinct: usize| rows > 128 && distinct * 4 > rows * 3;
    let mut keys = Vec::with_capacity(rows);
    let mut validity = MutableBitmap::with_capacity(rows);
    let mut index: PlHashMap<&str, u32> = PlHashMap::default();
    let mut values = MutableBinaryViewArray::<str>::new();
    let mut last: Option<(&str, u32)> = None;
    for value in chunks.iter().flat_map(|chunk| chunk.iter()) {
        validity.push(value.is_some());
        let Some(value) = value else {
            keys.push(0);
            continue;
        };
        let key = match last {
            Some((previous, key)) if previous == value => key,
            _ => match index.get(value) {
                Some(&key) => key,
                None => {
                    let key = values.len() as u32;
                    index.insert(value, key);
                    values.push_value(value);
                    if too_many(index.len()) {
                        return None;
                    }
                    key
                }
            },
        };
        last = Some((value, key));
        keys.push(key);
    }
    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), validity.into());
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(ArrowDataType::Utf8View), false);
    DictionaryArray::try_new(dtype, keys, values.freeze().boxed()).ok()
}

/// Parquet bytes as a frame, optionally only some columns.
pub(crate) fn decode(bytes: Bytes, columns: Option<&[&str]>) -> PolarsResult<DataFrame> {
    decode_with(bytes, None, columns)
}

/// Parquet bytes as a frame, optionally only some columns, read by
/// `footer` when it was read already (else it is read from the bytes).
/// Only the row groups `footer` lists are decoded (see [`with_groups`]),
/// so the bytes of the others may be missing (zeros).
pub(crate) fn decode_with(
    bytes: Bytes,
    footer: Option<Arc<FileMetadata>>,
    columns: Option<&[&str]>,
) -> PolarsResult<DataFrame> {
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    if let Some(footer) = footer {
        reader.set_metadata(footer);
    }
    reader.with_columns(columns.map(|c| c.iter().map(|s| s.to_string()).collect())).finish()
}

/// The footer of whole Parquet bytes.
pub(crate) fn footer(bytes: &Bytes) -> PolarsResult<FileMetadata> {
    polars_parquet::parquet::read::read_metadata(&mut Cursor::new(bytes.clone()))
        .map_err(|e| PolarsError::ComputeError(e.to_string().into()))
}

/// The statistics a row group of the file `footer` describes holds for
/// its top-level column `column`, if any (and if they decode).
pub(crate) fn column_statistics(footer: &FileMetadata, group: &RowGroupMetadata, column: &str) -> Option<Statistics> {
    let chunk = group.parquet_columns().iter().find(|c| c.descriptor().path_in_schema == [column])?;
    chunk.statistics(&footer.footer_buf).and_then(Result::ok)
}

/// One row group of a file: its rows, and the least and greatest value of
/// an integer column (a timestamp's µs) when its statistics say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowGroup {
    pub rows: Range<usize>,
    pub bounds: Option<(i64, i64)>,
}

/// A file's row groups with the bounds of the 64-bit integer or timestamp
/// column `column`, from its footer. A group without a min and max for it
/// (no statistics, or only nulls) has none: a reader must read it.
pub(crate) fn row_groups(footer: &FileMetadata, column: &str) -> Vec<RowGroup> {
    let rows = group_rows(footer);
    let groups = footer.row_groups.iter().zip(rows);
    groups
        .map(|(group, rows)| RowGroup { rows, bounds: column_statistics(footer, group, column).and_then(int64_bounds) })
        .collect()
}

/// The least and greatest value statistics give a 64-bit integer or
/// timestamp column (a timestamp's µs), if they give both.
fn int64_bounds(statistics: Statistics) -> Option<(i64, i64)> {
    match statistics {
        Statistics::Int64(s) => s.min_value.zip(s.max_value),
        _ => None,
    }
}

/// The rows of each of a file's row groups, from its footer.
pub(crate) fn group_rows(footer: &FileMetadata) -> Vec<Range<usize>> {
    let mut start = 0;
    footer
        .row_groups
        .iter()
        .map(|group| {
            start += group.num_rows();
            start - group.num_rows()..start
        })
        .collect()
}

/// `footer` with only the row groups `keep` selects (by position): decoded
/// with it, Parquet bytes give those groups' rows, in file order, and the
/// other groups' bytes are never read.
pub(crate) fn with_groups(footer: &FileMetadata, keep: impl Fn(usize) -> bool) -> FileMetadata {
    let row_groups: Vec<_> =
        footer.row_groups.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, g)| g.clone()).collect();
    FileMetadata {
        version: footer.version,
        num_rows: row_groups.iter().map(|g| g.num_rows()).sum(),
        max_row_group_height: row_groups.iter().map(|g| g.num_rows()).max().unwrap_or(0),
        created_by: footer.created_by.clone(),
        row_groups,
        key_value_metadata: footer.key_value_metadata.clone(),
        schema_descr: footer.schema_descr.clone(),
        column_orders: footer.column_orders.clone(),
        footer_buf: footer.footer_buf.clone(),
    }
}

/// The byte ranges a reader of top-level `columns` of the row groups
/// `keep` selects (by position) reads, of a file of `size` bytes whose
/// footer is `footer`: their column chunks, and the magic bytes at either
/// end.
pub(crate) fn chunk_ranges(
    footer: &FileMetadata,
    columns: &[&str],
    keep: impl Fn(usize) -> bool,
    size: u64,
) -> Vec<Range<u64>> {
    let mut ranges = vec![0..4.min(size), size.saturating_sub(8)..size];
    ranges.extend(chunks(footer, keep, |name| columns.contains(&name)).map(|chunk| chunk.byte_range()));
    ranges
}

/// The column chunks of the row groups `keep` selects (by position)
/// whose top-level column's name is `read`, in file order.
pub(crate) fn chunks<'a>(
    footer: &'a FileMetadata,
    keep: impl Fn(usize) -> bool + 'a,
    read: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a ColumnChunkMetadata> + 'a {
    let groups = footer.row_groups.iter().enumerate().filter(move |(i, _)| keep(*i));
    groups.flat_map(|(_, group)| group.parquet_columns()).filter(move |chunk| top_level(chunk).is_some_and(&read))
}

/// The name of the top-level column a column chunk belongs to.
fn top_level(chunk: &ColumnChunkMetadata) -> Option<&str> {
    chunk.descriptor().path_in_schema.first().map(|name| name.as_str())
}

/// Top-level `columns` of the rows of the row groups `keep` selects (by
/// position) whose pages of `by`, a 64-bit integer or timestamp column,
/// are `needed`, in file order: each of `by`'s data pages is offered as a
/// [`RowGroup`] of its rows (the file's) and bounds (from its statistics;
/// `None` when it has none). Only the pages that hold such
/// rows are decompressed and decoded, in every column: a file written
/// with small pages of `by` ([`encode`]'s `paged`, ordered by it) gives
/// a reader that needs a few of a group's rows those pages, not the
/// group. `chunk` gives the bytes of a column chunk from its byte range
/// in the file. One frame a group with a needed page, in file order.
pub(crate) fn decode_pages(
    footer: &FileMetadata,
    keep: impl Fn(usize) -> bool,
    columns: &[&str],
    by: &str,
    needed: impl Fn(&RowGroup) -> bool + Sync,
    chunk: impl Fn(Range<u64>) -> Option<Bytes> + Sync,
) -> PolarsResult<Vec<DataFrame>> {
    let schema = polars_parquet::read::infer_schema(footer)?;
    let bytes = |meta: &ColumnChunkMetadata| {
        let missing = || PolarsError::ComputeError(format!("the bytes of column chunk {:?}", meta.byte_range()).into());
        chunk(meta.byte_range()).map(Buffer::from_owner).ok_or_else(missing)
    };
    let groups: Vec<_> =
        footer.row_groups.iter().zip(group_rows(footer)).enumerate().filter(|(i, _)| keep(*i)).collect();
    // Groups on every core, as polars' reader does; each in file order.
    let frames = groups
        .into_par_iter()
        .map(|(_, (group, first))| {
            let of = |name: &str| group.parquet_columns().iter().find(|chunk| top_level(chunk) == Some(name));
            let rows = group.num_rows();
            let filter = match of(by) {
                None => None,
                Some(meta) => {
                    let mask = page_mask(meta, bytes(meta)?, first.start, &needed)?;
                    match mask.set_bits() {
                        0 => return Ok(None),
                        set if set == rows => None,
                        _ => Some(Filter::Mask(mask)),
                    }
                }
            };
            let height = filter.as_ref().map_or(rows, |filter| filter.num_rows(rows));
            let decoded = columns
                .iter()
                .map(|&name| {
                    let unknown = || PolarsError::ColumnNotFound(name.to_string().into());
                    let (meta, field) = of(name).zip(schema.get(name)).ok_or_else(unknown)?;
                    let pages = PageReader::new(Cursor::new(bytes(meta)?), meta, Vec::new(), usize::MAX);
                    let decompressor = BasicDecompressor::new(pages, Vec::new());
                    let primitive = &meta.descriptor().descriptor.primitive_type;
                    let (arrays, _) =
                        column_iter_to_arrays(vec![decompressor], vec![primitive], field.clone(), filter.clone())?;
                    Ok(Series::try_from((field.name.clone(), arrays))?.into_column())
                })
                .collect::<PolarsResult<Vec<Column>>>()?;
            DataFrame::new(height, decoded).map(Some)
        })
        .collect::<PolarsResult<Vec<Option<DataFrame>>>>()?;
    Ok(frames.into_iter().flatten().collect())
}

/// One bit a row of a column chunk whose group starts at row `first` of
/// its file: set when the data page holding it is `needed` by its rows
/// (the file's) and bounds. Only the page headers are read.
fn page_mask(
    meta: &ColumnChunkMetadata,
    bytes: Buffer<u8>,
    first: usize,
    needed: impl Fn(&RowGroup) -> bool,
) -> PolarsResult<Bitmap> {
    let mut mask = MutableBitmap::with_capacity(meta.num_values().max(0) as usize);
    for page in PageReader::new(Cursor::new(bytes), meta, Vec::new(), usize::MAX) {
        let CompressedPage::Data(page) = page? else { continue };
        let bounds = page.statistics().and_then(Result::ok).and_then(int64_bounds);
        let start = first + mask.len();
        let rows = page.num_values();
        mask.extend_constant(rows, needed(&RowGroup { rows: start..start + rows, bounds }));
    }
    Ok(mask.into())
}

#[cfg(test)]
mod tests {
    use crate::frames::concat_frames;
    use polars_parquet::parquet::metadata::ColumnChunkMetadata;
    use polars_parquet::parquet::read::read_metadata;

    use super::*;

    /// 300k rows (two row groups), nulls in every column but one, a
    /// `PLAIN` column of each kind (`latency_ms` with ten values, which
    /// polars would write with a dictionary), dictionary-worthy ones and
    /// free text (`_extra`).
    fn frame() -> DataFrame {
        let n = ROW_GROUP_ROWS + 43_690;
        let every = |k: usize, i: usize| !i.is_multiple_of(k);
        let ids: StringChunked = (0..n).map(|i| every(97, i).then(|| format!("e-{i:08}"))).collect();
        let services: StringChunked = (0..n).map(|i| every(89, i).then(|| ["api", "web", "db"][i % 3])).collect();
        let latency: Float64Chunked = (0..n).map(|i| every(83, i).then_some((i % 10) as f64 / 7.0)).collect();
        let status: Int32Chunked = (0..n).map(|i| every(79, i).then_some(200 + (i % 4) as i32 * 100)).collect();
        let lines = Int64Chunked::from_vec("_source_line".into(), (0..n as i64).collect());
        let times: Int64Chunked = (0..n).map(|i| every(71, i).then_some(i as i64 * 1_003)).collect();
        let times = times.with_name("event_time".into()).into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
        let extra: StringChunked =
            (0..n).map(|i| every(67, i).then(|| format!("{{\"region\":\"r-{}\"}}", i % 1000))).collect();
        let columns = vec![
            ids.with_name("event_id".into()).into_column(),
            services.with_name("service".into()).into_column(),
            times.into_column(),
            latency.with_name("latency_ms".into()).into_column(),
            status.with_name("status_code".into()).into_column(),
            lines.into_column(),
            extra.with_name("_extra".into()).into_column(),
        ];
        DataFrame::new(n, columns).expect("frame")
    }

    /// `df` as a batch's pieces come: frames of uneven size (one empty, one
    /// across the row group boundary) stacked as chunks, not copied.
    fn in_pieces(df: &DataFrame) -> DataFrame {
        in_pieces_of(df, &[0, 1_000, 1_000, 70_001, 200_000, ROW_GROUP_ROWS + 5, df.height()])
    }

    /// `df` stacked from its slices between `bounds`.
    fn in_pieces_of(df: &DataFrame, bounds: &[usize]) -> DataFrame {
        let mut pieces = bounds.windows(2).map(|w| df.slice(w[0] as i64, w[1] - w[0]));
        let mut stacked = pieces.next().expect("a piece");
        for piece in pieces {
            stacked.vstack_mut_owned(piece).expect("stack");
        }
        stacked
    }

    /// Each column chunk's statistics, by row group.
    fn statistics(bytes: &[u8]) -> Vec<Vec<(String, Statistics)>> {
        let metadata = read_metadata(&mut Cursor::new(bytes)).expect("metadata");
        let footer = &metadata.footer_buf;
        let column = |c: &ColumnChunkMetadata| {
            let statistics = c.statistics(footer).expect("statistics").expect("decode statistics");
            (c.descriptor().path_in_schema[0].to_string(), statistics)
        };
        metadata.row_groups.iter().map(|group| group.parquet_columns().iter().map(column).collect()).collect()
    }

    #[test]
    fn each_file_is_compressed_at_its_own_level_though_the_context_is_reused() {
        let df = frame();
        let files: Vec<Vec<u8>> = [1, 19, 1, 19]
            .into_iter()
            .map(|level| {
                let bytes = encode(&df, level, ROW_GROUP_ROWS, &[]).expect("encode");
                assert!(decode(Bytes::from(bytes.clone()), None).expect("decode").equals_missing(&df));
                bytes
            })
            .collect();
        let sizes: Vec<usize> = files.iter().map(Vec::len).collect();
        assert!(files[0] == files[2] && files[1] == files[3], "the same bytes at the same level: {sizes:?}");
        assert!(sizes[1] < sizes[0], "level 19 compresses more than level 1: {sizes:?}");
    }

    #[test]
    fn frames_read_back_equal_with_plain_columns_plain() {
        let df = frame();
        let bytes = encode(&df, 1, ROW_GROUP_ROWS, &[]).expect("encode");
        let back = decode(Bytes::from(bytes.clone()), None).expect("decode");
        assert_eq!(back.schema(), df.schema());
        assert!(back.equals_missing(&df), "{back:?}\n{df:?}");

        let metadata = read_metadata(&mut Cursor::new(&bytes)).expect("metadata");
        assert_eq!(metadata.row_groups.len(), 2);
        for group in &metadata.row_groups {
            for chunk in group.parquet_columns() {
                let name = chunk.descriptor().path_in_schema[0].as_str();
                let dictionary = chunk.dictionary_page_offset().is_some();
                assert_eq!(dictionary, ["service", "status_code"].contains(&name), "{name}");
            }
        }
    }

    #[test]
    fn chunks_are_written_as_the_same_rows_and_statistics() {
        let whole = frame();
        let pieces = in_pieces(&whole);
        assert!(pieces.column("event_id").expect("event_id").n_chunks() > 1, "not in pieces");
        let bytes = encode(&pieces, 1, ROW_GROUP_ROWS, &[]).expect("encode");
        let back = decode(Bytes::from(bytes.clone()), None).expect("decode");
        assert!(back.equals_missing(&whole), "{back:?}\n{whole:?}");
        let mut rechunked = pieces.clone();
        rechunked.rechunk_mut();
        assert_eq!(statistics(&bytes), statistics(&encode(&rechunked, 1, ROW_GROUP_ROWS, &[]).expect("encode")));
    }

    #[test]
    fn strings_get_a_dictionary_unless_mostly_distinct() {
        let n = 10_000;
        let constant = Column::new_scalar("_source_file".into(), Scalar::from(PlSmallStr::from("a/b.csv")), n);
        let distinct: StringChunked = (0..n).map(|i| (i % 11 != 0).then(|| format!("type-{i}"))).collect();
        let df =
            DataFrame::new(n, vec![constant, distinct.with_name("event_type".into()).into_column()]).expect("frame");
        let pieces = in_pieces_of(&df, &[0, 3_000, 3_000, 7_777, n]);
        let bytes = encode(&pieces, 1, ROW_GROUP_ROWS, &[]).expect("encode");
        assert!(decode(Bytes::from(bytes.clone()), None).expect("decode").equals_missing(&df));
        let metadata = read_metadata(&mut Cursor::new(&bytes)).expect("metadata");
        let dictionaries: Vec<bool> =
            metadata.row_groups[0].parquet_columns().iter().map(|c| c.dictionary_page_offset().is_some()).collect();
        assert_eq!(dictionaries, [true, false]);
    }

    #[test]
    fn small_chunks_are_gathered_into_larger_pages() {
        // 1,000 chunks of 10 rows, as a batch's deferred rows come.
        let n = 10_000;
        let lines = Int64Chunked::from_vec("_source_line".into(), (0..n as i64).map(|i| i * 7_919 % 100_003).collect());
        let df = DataFrame::new(n, vec![lines.into_column()]).expect("frame");
        let bounds: Vec<usize> = (0..=n).step_by(10).collect();
        let pieces = in_pieces_of(&df, &bounds);
        assert_eq!(pieces.column("_source_line").expect("column").n_chunks(), 1_000);
        let bytes = encode(&pieces, 1, ROW_GROUP_ROWS, &[]).expect("encode");
        assert!(decode(Bytes::from(bytes.clone()), None).expect("decode").equals_missing(&df));
        // A page (header, zstd frame) per 10 rows would about double the column.
        let size = |bytes: &[u8]| {
            let metadata = read_metadata(&mut Cursor::new(bytes)).expect("metadata");
            metadata.row_groups[0].parquet_columns()[0].compressed_size()
        };
        let mut whole = pieces.clone();
        whole.rechunk_mut();
        assert!(size(&bytes) < size(&encode(&whole, 1, ROW_GROUP_ROWS, &[]).expect("encode")) * 11 / 10);
    }

    #[test]
    fn free_text_has_null_counts_but_no_min_max() {
        let df = frame();
        for group in statistics(&encode(&df, 1, ROW_GROUP_ROWS, &[]).expect("encode")) {
            for (name, statistics) in group {
                let Statistics::Binary(s) = statistics else { continue };
                let free_text = NO_MIN_MAX.contains(&name.as_str());
                assert_eq!((s.min_value.is_none(), s.max_value.is_none()), (free_text, free_text), "{name}");
                assert!(s.null_count.is_some_and(|n| n > 0), "{name}");
            }
        }
    }

    #[test]
    fn an_empty_frame_keeps_its_schema() {
        let df = frame().clear();
        let back = decode(Bytes::from(encode(&df, 1, ROW_GROUP_ROWS, &[]).expect("encode")), None).expect("decode");
        assert_eq!((back.height(), back.schema()), (0, df.schema()));
    }

    #[test]
    fn row_groups_give_their_rows_and_bounds_and_a_footer_of_some_decodes_only_their_rows() {
        let df = frame();
        let bytes = Bytes::from(encode(&df, 1, 100_000, &[]).expect("encode"));
        let footer = read_metadata(&mut Cursor::new(bytes.clone())).expect("footer");
        let groups = row_groups(&footer, "event_time");
        let times = df.column("event_time").expect("time").datetime().expect("datetime").physical().clone();
        let starts: Vec<usize> = groups.iter().map(|g| g.rows.start).collect();
        assert_eq!(starts, [0, 100_000, 200_000, 300_000]);
        assert_eq!(groups.last().map(|g| g.rows.end), Some(df.height()));
        for group in &groups {
            let slice = times.slice(group.rows.start as i64, group.rows.len());
            assert_eq!(group.bounds, slice.min().zip(slice.max()), "{:?}", group.rows);
        }
        assert_eq!(row_groups(&footer, "no_such_column").iter().filter(|g| g.bounds.is_some()).count(), 0);
        assert_eq!(group_rows(&footer), groups.iter().map(|g| g.rows.clone()).collect::<Vec<_>>());
        let columns = ["event_time", "service"];
        let middle = Arc::new(with_groups(&footer, |i| i == 1 || i == 2));
        let rows = decode_with(bytes, Some(middle), Some(&columns)).expect("decode");
        let expected = df.slice(100_000, 200_000).select(columns).expect("select");
        assert!(rows.equals_missing(&expected));
    }

    /// Pages of `event_time` (1,024 rows, with bounds), then every gold
    /// input column of only the pages a reader needs, in file order.
    #[test]
    fn of_a_file_with_small_pages_only_the_needed_pages_are_decoded() {
        let df = frame();
        let columns = ["service", "event_time", "latency_ms", "status_code"];
        let bytes = Bytes::from(encode(&df, 1, 100_000, &["event_time", "latency_ms"]).expect("encode"));
        let footer = read_metadata(&mut Cursor::new(bytes.clone())).expect("footer");
        let chunk = |range: Range<u64>| Some(bytes.slice(range.start as usize..range.end as usize));
        let times = df.column("event_time").expect("time").datetime().expect("datetime").physical().clone();
        let offered = std::sync::Mutex::new(Vec::new());
        let wanted = [5_000, 150_000, 299_999];
        let needed = |page: &RowGroup| {
            offered.lock().expect("not poisoned").push(page.clone());
            wanted.iter().any(|row| page.rows.contains(row))
        };
        let rows = decode_pages(&footer, |_| true, &columns, "event_time", needed, chunk).expect("decode");
        let rows = concat_frames(rows).expect("concat");
        let mut pages = offered.into_inner().expect("not poisoned");
        pages.sort_by_key(|page| page.rows.start);
        // Every row offered once, in pages of up to 1,024 rows that do not span groups, with their bounds.
        assert_eq!(pages.first().map(|p| p.rows.start), Some(0));
        assert!(pages.windows(2).all(|w| w[0].rows.end == w[1].rows.start));
        assert_eq!(pages.last().map(|p| p.rows.end), Some(df.height()));
        assert!(
            pages.iter().all(|p| p.rows.len() <= PAGE_ROWS && p.rows.start / 100_000 == (p.rows.end - 1) / 100_000)
        );
        for page in &pages {
            let slice = times.slice(page.rows.start as i64, page.rows.len());
            assert_eq!(page.bounds, slice.min().zip(slice.max()), "{:?}", page.rows);
        }
        let expected = [4_096..5_120, 149_152..150_176, 299_328..300_000].map(|r| df.slice(r.start as i64, r.len()));
        let expected = concat_frames(expected.to_vec()).expect("concat").select(columns).expect("select");
        assert!(rows.equals_missing(&expected));
        // All pages of the kept groups, or none.
        let all = decode_pages(&footer, |i| i == 1, &columns, "event_time", |_| true, chunk).expect("decode");
        let second = df.slice(100_000, 100_000).select(columns).expect("select");
        assert_eq!(all.len(), 1);
        assert!(all[0].equals_missing(&second));
        assert!(decode_pages(&footer, |_| true, &columns, "event_time", |_| false, chunk).expect("decode").is_empty());
        // A column written in pages of 1 MiB: a needed page is the group.
        let whole = Bytes::from(encode(&df, 1, 100_000, &[]).expect("encode"));
        let footer = read_metadata(&mut Cursor::new(whole.clone())).expect("footer");
        let chunk = |range: Range<u64>| Some(whole.slice(range.start as usize..range.end as usize));
        let needed = |page: &RowGroup| page.rows.contains(&150_000);
        let rows = decode_pages(&footer, |_| true, &columns, "event_time", needed, chunk).expect("decode");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].equals_missing(&second));
    }
}
