//! Parquet writing and S3 upload.
//!
//! [`write_parquet`] + [`put_object`] serve small files (a CDC batch of a few thousand rows).
//! [`LakeFileWriter`] serves exports of any size: it wraps parquet's `AsyncArrowWriter`
//! around an S3 multipart sink. Each time a row group is flushed its bytes go to the sink,
//! which uploads a part whenever it holds at least `part_size` bytes (S3's minimum is 5 MiB
//! for every part but the last). A file that ends up smaller than one part is sent with a
//! single PutObject instead, so small exports cost one request. A failure aborts the multipart
//! upload so no orphaned parts are billed; since keys are deterministic, a retry rewrites the
//! same object. The part being filled is held in memory or, with
//! [`LakeFileWriter::spilling`], in an anonymous temporary file (see [`super::part_buffer`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use parquet::arrow::{ArrowWriter, AsyncArrowWriter, async_writer::AsyncFileWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::part_buffer::PartBuffer;
use super::{LakeError, error_chain};
use crate::schema::{Entity, Registry};

/// S3's minimum size of every multipart part but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's maximum number of parts.
pub const MAX_PARTS: i32 = 10_000;

/// Key-value metadata key: entity name.
pub const META_ENTITY: &str = "dynabridge.entity";
/// Key-value metadata key: schema version of the rows.
pub const META_SCHEMA_VERSION: &str = "dynabridge.schema_version";
/// Key-value metadata key: fingerprint of that entity version.
pub const META_SCHEMA_FINGERPRINT: &str = "dynabridge.schema_fingerprint";
/// Key-value metadata key: fingerprint of the whole registry.
pub const META_REGISTRY_FINGERPRINT: &str = "dynabridge.registry_fingerprint";

/// Row group and compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Rows per row group at most (default 128 Ki).
    pub max_row_group_rows: usize,
    /// Estimated encoded bytes per row group at most (default 32 MiB): with the part size,
    /// this bounds a streaming writer's memory.
    pub max_row_group_bytes: usize,
    /// ZSTD level (default 3).
    pub zstd_level: i32,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            max_row_group_rows: 128 * 1024,
            max_row_group_bytes: 32 * 1024 * 1024,
            zstd_level: 3,
        }
    }
}

impl ParquetOptions {
    /// Settings for writers that stream an input of any size (aged-export, bulk
    /// conversion): row groups of at most 16,384 rows or 4 MiB, so a writer's memory (one
    /// open row group per file) reaches its plateau within the first few tens of thousands
    /// of rows and stays there — measured flat from 100k to 1M items (bench/README.md). Spark
    /// reads row groups of this size without a measurable cost.
    pub fn streaming() -> Self {
        ParquetOptions {
            max_row_group_rows: 16_384,
            max_row_group_bytes: 4 * 1024 * 1024,
            ..ParquetOptions::default()
        }
    }
}

/// What a file's key-value metadata says about its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The entity.
    pub entity: String,
    /// The schema version of every row.
    pub schema_version: i64,
    /// [`crate::schema::EntityVersion::fingerprint`].
    pub schema_fingerprint: String,
    /// [`Registry::fingerprint`].
    pub registry_fingerprint: String,
}

impl FileMeta {
    /// The metadata of files holding `entity`'s latest version.
    pub fn for_entity(registry: &Registry, entity: &Entity) -> Self {
        let latest = entity.latest();
        FileMeta {
            entity: entity.name().to_string(),
            schema_version: latest.version(),
            schema_fingerprint: latest.fingerprint().to_string(),
            registry_fingerprint: registry.fingerprint().to_string(),
        }
    }

    fn key_values(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new(META_ENTITY.into(), self.entity.clone()),
            KeyValue::new(META_SCHEMA_VERSION.into(), self.schema_version.to_string()),
            KeyValue::new(
                META_SCHEMA_FINGERPRINT.into(),
                self.schema_fingerprint.clone(),
            ),
            KeyValue::new(
                META_REGISTRY_FINGERPRINT.into(),
                self.registry_fingerprint.clone(),
            ),
        ]
    }
}

/// Writer properties: ZSTD, bounded row groups, the file metadata.
pub fn writer_properties(
    opts: &ParquetOptions,
    meta: &FileMeta,
) -> Result<WriterProperties, LakeError> {
    let level = ZstdLevel::try_new(opts.zstd_level)?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        // `Some(0)` panics inside parquet; a zero setting means "the smallest".
        .set_max_row_group_row_count(Some(opts.max_row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(opts.max_row_group_bytes.max(1)))
        .set_key_value_metadata(Some(meta.key_values()))
        .set_created_by(format!("dynabridge {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Writes `batches` as one Parquet file in memory.
pub fn write_parquet(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    props: WriterProperties,
) -> Result<Bytes, LakeError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(Bytes::from(writer.into_inner()?))
}

/// Uploads `body` to `s3://bucket/key` with one PutObject.
pub async fn put_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Bytes,
) -> Result<(), LakeError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/vnd.apache.parquet")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| s3_error("PutObject", bucket, key, &e))?;
    Ok(())
}

fn s3_error(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: &dyn std::error::Error,
) -> LakeError {
    LakeError::S3 {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: error_chain(err),
    }
}

/// The result of a streamed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    /// The object key.
    pub key: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes of the object.
    pub bytes: u64,
    /// Multipart parts uploaded (0 when a single PutObject was used).
    pub parts: usize,
}

/// An S3 object being written part by part.
struct S3Sink {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    part_size: usize,
    buffer: PartBuffer,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    bytes: u64,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn external(err: LakeError) -> ParquetError {
    ParquetError::External(Box::new(err))
}

impl S3Sink {
    async fn upload_part(&mut self) -> Result<(), LakeError> {
        let body = self.buffer.take()?;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s3
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type("application/vnd.apache.parquet")
                    .send()
                    .await
                    .map_err(|e| s3_error("CreateMultipartUpload", &self.bucket, &self.key, &e))?;
                let id = out.upload_id().map(str::to_string).ok_or_else(|| {
                    LakeError::Invalid("CreateMultipartUpload returned no upload id".into())
                })?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part_number = i32::try_from(self.parts.len() + 1)
            .ok()
            .filter(|n| *n <= MAX_PARTS)
            .ok_or_else(|| {
                LakeError::Invalid(format!("more than {MAX_PARTS} parts: raise the part size"))
            })?;
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", &self.bucket, &self.key, &e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    async fn complete_upload(&mut self) -> Result<(), LakeError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = self.buffer.take()?;
            return put_object(&self.s3, &self.bucket, &self.key, body).await;
        };
        if !self.buffer.is_empty() {
            self.upload_part().await?;
        }
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.bucket, &self.key, &e))?;
        self.upload_id = None;
        Ok(())
    }

    async fn abort(&mut self) -> Result<(), LakeError> {
        self.buffer.clear()?;
        if let Some(upload_id) = self.upload_id.take() {
            self.s3
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| s3_error("AbortMultipartUpload", &self.bucket, &self.key, &e))?;
        }
        Ok(())
    }
}

impl AsyncFileWriter for S3Sink {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            self.bytes += bs.len() as u64;
            self.buffer.push(&bs).map_err(external)?;
            if self.buffer.len() >= self.part_size {
                self.upload_part().await.map_err(external)?;
            }
            Ok(())
        })
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move { self.complete_upload().await.map_err(external) })
    }
}

/// Streams record batches into one S3 object with bounded memory.
///
/// Call [`finish`](Self::finish) to complete the object; on any error call
/// [`abort`](Self::abort) (dropping the writer leaves an incomplete multipart upload for the
/// bucket's lifecycle rule to clean up).
pub struct LakeFileWriter {
    writer: AsyncArrowWriter<S3Sink>,
    rows: u64,
}

impl std::fmt::Debug for LakeFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeFileWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl LakeFileWriter {
    /// Starts writing `s3://bucket/key`; parts are at least `part_size` bytes (≥ 5 MiB), and
    /// the part being filled is held in memory.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        schema: SchemaRef,
        props: WriterProperties,
        part_size: usize,
    ) -> Result<Self, LakeError> {
        // A part plus one flushed row group (the estimate can be exceeded by a little).
        let capacity = part_size + props.max_row_group_bytes().unwrap_or(0) + 1024 * 1024;
        Self::with_buffer(
            s3,
            bucket,
            key,
            schema,
            props,
            part_size,
            PartBuffer::memory(capacity),
        )
    }

    /// Like [`new`](Self::new), but the part being filled is kept in an anonymous temporary
    /// file in `spill_dir` (e.g. Lambda's `/tmp`) and read back only to be uploaded: a task
    /// writing several files at once then holds at most one part in memory, not one per file.
    pub fn spilling(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        schema: SchemaRef,
        props: WriterProperties,
        part_size: usize,
        spill_dir: &Path,
    ) -> Result<Self, LakeError> {
        let buffer = PartBuffer::spill(spill_dir)?;
        Self::with_buffer(s3, bucket, key, schema, props, part_size, buffer)
    }

    fn with_buffer(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        schema: SchemaRef,
        props: WriterProperties,
        part_size: usize,
        buffer: PartBuffer,
    ) -> Result<Self, LakeError> {
        if part_size < MIN_PART_SIZE {
            return Err(LakeError::Invalid(format!(
                "part size {part_size} is under S3's minimum of {MIN_PART_SIZE} bytes"
            )));
        }
        let sink = S3Sink {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            part_size,
            buffer,
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
        };
        Ok(LakeFileWriter {
            writer: AsyncArrowWriter::try_new(sink, schema, Some(props))?,
            rows: 0,
        })
    }

    /// Adds a batch; uploads a part when a flushed row group fills one.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.writer.write(batch).await?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Bytes currently held in memory (the open row group).
    pub fn memory_size(&self) -> usize {
        self.writer.memory_size()
    }

    /// Writes the footer and completes the object.
    pub async fn finish(mut self) -> Result<UploadSummary, LakeError> {
        self.writer.finish().await?;
        let sink = self.writer.into_inner();
        Ok(UploadSummary {
            key: sink.key.clone(),
            rows: self.rows,
            bytes: sink.bytes,
            parts: sink.parts.len(),
        })
    }

    /// Abandons the object, aborting the multipart upload if one was started.
    pub async fn abort(self) -> Result<(), LakeError> {
        let mut sink = self.writer.into_inner();
        sink.abort().await
    }
}
