//! Reading a Parquet object straight from S3, one row group at a time, with bounded memory.
//!
//! Files Databricks writes into the lake can be gigabytes; downloading one whole into a
//! Lambda's memory is not an option. [`S3ParquetObject`] implements parquet's
//! [`AsyncFileReader`] with ranged `GetObject` calls: the footer first (one suffix-sized
//! request), then only the column chunks of the row group being read. Memory is therefore
//! bounded by one row group's compressed column chunks plus the decoded batch, whatever the
//! file's size.
//!
//! Every request carries `If-Match: <etag>`, so all bytes come from the exact object version
//! the caller named (the version an idempotency key was built from). If the object is
//! overwritten or deleted meanwhile, reads fail with [`ObjectFailure::Changed`] /
//! [`ObjectFailure::Gone`] instead of silently mixing two versions.
//!
//! [`open_row_group`] opens one row group (optionally skipping its first rows, for exact
//! resumption) with INT96 timestamps read as µs UTC, like [`crate::lake::parquet_reader`].

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::reader::int96_schema_hint;
use crate::error::render_chain;

/// Why an object could not be read, as far as S3 is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectFailure {
    /// The object no longer has the expected ETag (`412 Precondition Failed`): it was
    /// overwritten after the event named it.
    Changed,
    /// The object no longer exists (`NoSuchKey` / 404).
    Gone,
    /// Any other S3 failure (throttling, 5xx, network, access): worth a retry.
    S3(String),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One S3 object version, readable by parquet through ranged `GetObject`s.
#[derive(Debug, Clone)]
pub struct S3ParquetObject {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    etag: String,
    size: u64,
    failure: Arc<Mutex<Option<ObjectFailure>>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl S3ParquetObject {
    /// The object `s3://bucket/key` whose ETag is `etag` (with or without quotes) and whose
    /// size is `size` bytes.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, key: &str, etag: &str, size: u64) -> Self {
        S3ParquetObject {
            client,
            bucket: bucket.to_string(),
            key: key.to_string(),
            etag: etag.trim_matches('"').to_string(),
            size,
            failure: Arc::new(Mutex::new(None)),
            requests: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The S3 failure behind the last read error, if the error came from S3 (rather than
    /// from the bytes, which means the file is not valid Parquet).
    pub fn last_failure(&self) -> Option<ObjectFailure> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// `GetObject` requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads and parses the footer (the file's metadata), INT96 columns hinted as µs UTC.
    pub async fn metadata(&mut self) -> Result<ArrowReaderMetadata, ParquetError> {
        let meta = Arc::new(self.load_metadata().await?);
        let plain = ArrowReaderMetadata::try_new(meta.clone(), ArrowReaderOptions::new())?;
        match int96_schema_hint(plain.parquet_schema(), plain.schema()) {
            None => Ok(plain),
            Some(hinted) => ArrowReaderMetadata::try_new(
                meta,
                ArrowReaderOptions::new().with_schema(Arc::new(hinted)),
            ),
        }
    }

    /// Fetches the footer (one ranged GET of the last 64 KiB, a second one only for a bigger
    /// footer), checks it with bounded work (`lake::footer`) and decodes it; the column chunks
    /// must lie inside the object.
    async fn load_metadata(&self) -> Result<ParquetMetaData, ParquetError> {
        const PREFETCH: u64 = 64 * 1024;
        let size = self.size;
        if size < 12 {
            return Err(ParquetError::General(format!(
                "object is {size} bytes: too small to be a Parquet file"
            )));
        }
        let prefetch = size.min(PREFETCH);
        let mut tail = self.fetch(size - prefetch..size).await?;
        let n = tail.len();
        let mut len = [0u8; 4];
        len.copy_from_slice(&tail[n - 8..n - 4]);
        let footer = u64::from(u32::from_le_bytes(len)) + 8;
        if footer > prefetch && footer <= size {
            let head = self.fetch(size - footer..size - prefetch).await?;
            let mut whole = Vec::with_capacity(footer as usize);
            whole.extend_from_slice(&head);
            whole.extend_from_slice(&tail);
            tail = Bytes::from(whole);
        }
        let metadata_len = super::footer::check_footer_tail(&tail)?;
        let end = tail.len() - 8;
        let meta = ParquetMetaDataReader::decode_metadata(&tail[end - metadata_len..end])?;
        super::reader::check_column_chunks(&meta, size)?;
        Ok(meta)
    }

    async fn fetch(&self, range: Range<u64>) -> Result<Bytes, ParquetError> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .if_match(format!("\"{}\"", self.etag))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) => {
                let failure = classify(&e);
                let message = format!("GetObject s3://{}/{}: {failure:?}", self.bucket, self.key);
                if let Ok(mut f) = self.failure.lock() {
                    *f = Some(failure);
                }
                return Err(ParquetError::External(message.into()));
            }
        };
        let body = out.body.collect().await.map_err(|e| {
            let failure = ObjectFailure::S3(render_chain(&e));
            if let Ok(mut f) = self.failure.lock() {
                *f = Some(failure.clone());
            }
            ParquetError::External(format!("reading GetObject body: {failure:?}").into())
        })?;
        let bytes = body.into_bytes();
        let want = (range.end - range.start) as usize;
        if bytes.len() != want {
            return Err(ParquetError::EOF(format!(
                "asked for {want} bytes at {}, got {}",
                range.start,
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

fn classify<E, R>(err: &SdkError<E, R>) -> ObjectFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = err {
        match se.err().code() {
            Some("PreconditionFailed") => return ObjectFailure::Changed,
            Some("NoSuchKey") | Some("NotFound") => return ObjectFailure::Gone,
            _ => {}
        }
    }
    let text = render_chain(err);
    if text.contains("PreconditionFailed") || text.contains("412") {
        ObjectFailure::Changed
    } else if text.contains("NoSuchKey") {
        ObjectFailure::Gone
    } else {
        ObjectFailure::S3(text)
    }
}

impl AsyncFileReader for S3ParquetObject {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move { self.fetch(range).await })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move { Ok(Arc::new(self.load_metadata().await?)) })
    }
}

/// Reads row group `row_group` of `object` (skipping its first `skip_rows` rows) into
/// memory and returns a reader yielding batches of at most `batch_size` rows.
///
/// Only that row group's column chunks are fetched: memory is bounded by one row group.
pub async fn open_row_group(
    object: &S3ParquetObject,
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    skip_rows: usize,
    batch_size: usize,
) -> Result<Option<super::reader::GuardedReader>, ParquetError> {
    let mut builder =
        ParquetRecordBatchStreamBuilder::new_with_metadata(object.clone(), metadata.clone())
            .with_row_groups(vec![row_group])
            .with_batch_size(batch_size.max(1));
    if skip_rows > 0 {
        builder = builder.with_offset(skip_rows);
    }
    let mut stream = builder.build()?;
    Ok(stream
        .next_row_group()
        .await?
        .map(super::reader::GuardedReader::new))
}
