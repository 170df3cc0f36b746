//! The lake: where files go ([`layout`]), how they are written ([`writer`]) and read back
//! ([`reader`]), including straight from S3 one row group at a time ([`remote`]).
//!
//! Files are Spark-safe Parquet, ZSTD-compressed, with bounded row groups and key-value
//! metadata naming the entity, schema version and fingerprints ([`FileMeta`]). Small outputs
//! go up with one PutObject; large ones stream through [`LakeFileWriter`], which uploads each
//! flushed row group as multipart parts so memory stays bounded by one row group plus one
//! part, whatever the input size.

pub mod footer;
pub mod items;
pub mod layout;
pub mod part_buffer;
pub mod pipeline;
pub mod reader;
pub mod remote;
pub mod writer;

pub use footer::check_footer_tail;
pub use layout::{Area, LakeLayout, day_of_micros, safe_segment};
pub use part_buffer::PartBuffer;
pub use pipeline::ParquetPipeline;
pub use reader::{
    GuardedReader, check_column_chunks, int96_schema_hint, parquet_reader, read_parquet,
};
pub use remote::{ObjectFailure, S3ParquetObject, open_row_group};
pub use writer::{
    FileMeta, LakeFileWriter, ParquetOptions, UploadSummary, put_object, write_parquet,
    writer_properties,
};

/// Failures writing or reading lake files.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building a record batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// An S3 call failed after the SDK's retries.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// e.g. `UploadPart`.
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK error with its source chain.
        message: String,
    },
    /// The temporary file holding a part ([`LakeFileWriter::spilling`]) failed.
    #[error("spill file: {operation} failed: {error}")]
    Spill {
        /// `create`, `write`, `read back` or `truncate`.
        operation: &'static str,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A setting cannot be used (e.g. a part size under S3's 5 MiB minimum).
    #[error("invalid lake setting: {0}")]
    Invalid(String),
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
