//! Parquet encoding on its own thread, so decoding items and encoding Parquet overlap.
//!
//! Converting items is two CPU-bound stages: decode + validate + build Arrow batches, then
//! Parquet-encode + ZSTD-compress them. [`ParquetPipeline`] runs the second stage on a
//! dedicated thread fed through a bounded channel: on a multi-core Lambda (1,769 MB and up
//! gives two vCPUs) the stages run side by side, and memory stays bounded by `depth` batches in
//! flight plus the writer's open row group.
//!
//! Errors are not lost: if the encoding thread fails, the next [`ParquetPipeline::write`] or
//! [`ParquetPipeline::finish`] returns its error.

use std::io::Write;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::LakeError;

/// A Parquet file being encoded on a background thread.
#[derive(Debug)]
pub struct ParquetPipeline<W: Write + Send + 'static> {
    sender: Option<SyncSender<RecordBatch>>,
    worker: Option<JoinHandle<Result<W, LakeError>>>,
}

impl<W: Write + Send + 'static> ParquetPipeline<W> {
    /// Starts the encoding thread writing `schema`'s batches to `sink` with `props`; at most
    /// `depth` (≥ 1) batches wait in the channel.
    pub fn spawn(
        sink: W,
        schema: SchemaRef,
        props: WriterProperties,
        depth: usize,
    ) -> Result<Self, LakeError> {
        let (sender, receiver) = sync_channel::<RecordBatch>(depth.max(1));
        let worker = std::thread::Builder::new()
            .name("parquet-encode".into())
            .spawn(move || {
                let mut writer = ArrowWriter::try_new(sink, schema, Some(props))?;
                for batch in receiver {
                    writer.write(&batch)?;
                }
                Ok(writer.into_inner()?)
            })
            .map_err(|e| LakeError::Invalid(format!("cannot start the Parquet thread: {e}")))?;
        Ok(ParquetPipeline {
            sender: Some(sender),
            worker: Some(worker),
        })
    }

    /// Queues `batch` (blocks while `depth` batches are waiting). If the encoding thread has
    /// failed, returns its error.
    pub fn write(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        let sent = match &self.sender {
            Some(sender) => sender.send(batch).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The receiver is gone: the thread returned early with an error.
            self.sender = None;
            self.join()?;
            Err(LakeError::Invalid(
                "the Parquet thread stopped before the file was finished".into(),
            ))
        }
    }

    /// Closes the file (footer written) and returns the sink.
    pub fn finish(mut self) -> Result<W, LakeError> {
        self.sender = None;
        self.join()
    }

    fn join(&mut self) -> Result<W, LakeError> {
        let worker = self
            .worker
            .take()
            .ok_or_else(|| LakeError::Invalid("the Parquet thread was already joined".into()))?;
        worker
            .join()
            .map_err(|_| LakeError::Invalid("the Parquet thread panicked".into()))?
    }
}

impl<W: Write + Send + 'static> Drop for ParquetPipeline<W> {
    fn drop(&mut self) {
        // Unfinished (an error path): stop the thread; the partial file is the caller's to
        // discard.
        self.sender = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    #[test]
    fn batches_written_on_the_thread_read_back_in_order() {
        let mut p =
            ParquetPipeline::spawn(Vec::new(), schema(), WriterProperties::default(), 2).unwrap();
        for start in [0i64, 100, 200] {
            let values = Int64Array::from_iter_values(start..start + 100);
            p.write(RecordBatch::try_new(schema(), vec![Arc::new(values)]).unwrap())
                .unwrap();
        }
        let bytes = p.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut all = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            all.extend(col.values().iter().copied());
        }
        assert_eq!(all, (0..300).collect::<Vec<i64>>());
    }

    #[test]
    fn a_batch_of_the_wrong_schema_is_an_error_not_a_hang() {
        let mut p =
            ParquetPipeline::spawn(Vec::new(), schema(), WriterProperties::default(), 1).unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let bad = RecordBatch::try_new(
            other,
            vec![Arc::new(arrow::array::StringArray::from(vec!["x"]))],
        )
        .unwrap();
        // The first send may still succeed (the channel has room); the error surfaces at the
        // latest on finish.
        let first = p.write(bad.clone());
        let outcome = match first {
            Err(e) => Err(e),
            Ok(()) => {
                let _ = p.write(bad.clone());
                let _ = p.write(bad);
                p.finish().map(|_| ())
            }
        };
        assert!(outcome.is_err());
    }
}
