//! Reading Parquet back into record batches, including files Spark/Databricks writes.
//!
//! Spark still writes timestamps as the legacy INT96 by default. parquet-rs reads INT96 as
//! `Timestamp(Nanosecond)`, which overflows for instants outside 1677–2262; here every INT96
//! column is read as microseconds instead (Spark's own precision), so any date Spark can
//! store comes back exactly.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Type as PhysicalType;

use super::LakeError;

/// A record batch reader whose decoding panics become errors.
///
/// The `parquet` crate still panics on some corrupt pages (e.g. a division by zero in the
/// byte-array decoder for a page claiming no values; found by the `parquet_read` fuzz
/// target). An inbound file is untrusted input: such a panic must reject the file, not fail
/// every retry of the invocation, so each `next` runs under `catch_unwind` (the release
/// profile unwinds, see `docs/decisions.md`) and a panic ends the reader with an error.
#[derive(Debug)]
pub struct GuardedReader {
    inner: Option<ParquetRecordBatchReader>,
}

impl GuardedReader {
    /// Guards `reader`.
    pub fn new(reader: ParquetRecordBatchReader) -> Self {
        GuardedReader {
            inner: Some(reader),
        }
    }
}

impl Iterator for GuardedReader {
    type Item = Result<RecordBatch, arrow::error::ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.next())) {
            Ok(item) => item,
            Err(panic) => {
                self.inner = None;
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown");
                Some(Err(arrow::error::ArrowError::ParquetError(format!(
                    "the Parquet decoder failed on corrupt data (panic: {message})"
                ))))
            }
        }
    }
}

/// A batch reader over a Parquet file held in memory, INT96 read as µs UTC.
pub fn parquet_reader(bytes: Bytes, batch_size: usize) -> Result<GuardedReader, LakeError> {
    // Bounded work before the crate decodes the footer (`lake::footer`).
    super::footer::check_footer_tail(&bytes)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
    check_column_chunks(builder.metadata(), bytes.len() as u64)?;
    let int96: Vec<String> = builder
        .parquet_schema()
        .columns()
        .iter()
        .filter(|c| c.physical_type() == PhysicalType::INT96)
        .map(|c| c.path().string())
        .collect();
    let builder = if int96.is_empty() {
        builder
    } else {
        let hinted = Schema::new_with_metadata(
            hint_fields(builder.schema().fields(), "", &int96),
            builder.schema().metadata().clone(),
        );
        let options = ArrowReaderOptions::new().with_schema(Arc::new(hinted));
        ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)?
    };
    Ok(GuardedReader::new(
        builder.with_batch_size(batch_size.max(1)).build()?,
    ))
}

/// Refuses a footer whose column chunks do not lie inside the file: a negative offset or size
/// makes the `parquet` crate panic (`ColumnChunkMetaData::byte_range` asserts), and a chunk
/// past the end can only be corruption. Call it on every footer before reading row groups
/// (found by the `parquet_read` fuzz target).
pub fn check_column_chunks(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> Result<(), parquet::errors::ParquetError> {
    for (g, row_group) in metadata.row_groups().iter().enumerate() {
        for (c, column) in row_group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let len = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l));
            if end.is_none_or(|end| end > file_len) {
                return Err(parquet::errors::ParquetError::General(format!(
                    "row group {g} column {c}: chunk at offset {start} of {len} bytes is outside the {file_len}-byte file"
                )));
            }
        }
    }
    Ok(())
}

/// The Arrow schema to read a file with so that every INT96 column comes back as µs UTC
/// (`None` when the file has no INT96 column and the inferred schema is right as is). Pass it
/// to [`ArrowReaderOptions::with_schema`] with any reader, in memory or remote
/// ([`crate::lake::remote`]).
pub fn int96_schema_hint(
    parquet_schema: &parquet::schema::types::SchemaDescriptor,
    inferred: &Schema,
) -> Option<Schema> {
    let int96: Vec<String> = parquet_schema
        .columns()
        .iter()
        .filter(|c| c.physical_type() == PhysicalType::INT96)
        .map(|c| c.path().string())
        .collect();
    if int96.is_empty() {
        return None;
    }
    Some(Schema::new_with_metadata(
        hint_fields(inferred.fields(), "", &int96),
        inferred.metadata().clone(),
    ))
}

/// Reads a whole Parquet file held in memory.
pub fn read_parquet(bytes: Bytes) -> Result<Vec<RecordBatch>, LakeError> {
    parquet_reader(bytes, 8192)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(LakeError::from)
}

fn hint_fields(fields: &Fields, prefix: &str, int96: &[String]) -> Fields {
    fields
        .iter()
        .map(|f| {
            let path = if prefix.is_empty() {
                f.name().clone()
            } else {
                format!("{prefix}.{}", f.name())
            };
            Arc::new(
                Field::new(
                    f.name(),
                    hint_type(f.data_type(), &path, int96),
                    f.is_nullable(),
                )
                .with_metadata(f.metadata().clone()),
            )
        })
        .collect()
}

fn hint_type(dt: &DataType, path: &str, int96: &[String]) -> DataType {
    match dt {
        DataType::Timestamp(TimeUnit::Nanosecond, None) if int96.iter().any(|p| p == path) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(crate::codec::UTC.into()))
        }
        DataType::Struct(children) => DataType::Struct(hint_fields(children, path, int96)),
        DataType::List(child) => {
            // Parquet's LIST groups put the element under `<name>.list.<element>`.
            let inner = hint_fields(
                &Fields::from(vec![child.as_ref().clone()]),
                &format!("{path}.list"),
                int96,
            );
            DataType::List(inner[0].clone())
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return dt.clone();
            };
            let kv = hint_fields(kv, &format!("{path}.{}", entries.name()), int96);
            DataType::Map(
                Arc::new(Field::new(
                    entries.name(),
                    DataType::Struct(kv),
                    entries.is_nullable(),
                )),
                *sorted,
            )
        }
        other => other.clone(),
    }
}
