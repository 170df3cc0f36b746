//! Writes one checkpointed range of stream records to the lake.
//!
//! Used by stream-fanout (`cdc/`, every operation) and ttl-cleanup (`expired/`, TTL
//! deletions). For a range — the records [`crate::checkpoint::Checkpoints::begin`] says are
//! not yet durable — it writes:
//!
//! - one Parquet file per entity, at a key that is a pure function of the area, entity, day,
//!   shard and the range's first/last sequence numbers, holding exactly the range's records
//!   of that entity in stream order (so a retry rewrites the same bytes to the same key);
//! - one quarantine file (JSON lines: reason, kind, attribute, sequence number, the raw
//!   record) for the records that could not be decoded or failed the schema, so a poison
//!   record never blocks the shard and is never silently dropped.
//!
//! [`RangeSink::output_keys`] names those keys up front (the checkpoint records them before
//! anything is written) and [`RangeSink::write`] writes them; both derive the keys from the
//! same [`RangeLayout`], so they always agree. Empty files are not written.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::json;

use crate::codec::{EntityEncoders, RowMeta, stream_seq};
use crate::error::DynabridgeError;
use crate::lake::layout::{Area, LakeLayout, day_of_micros};
use crate::lake::writer::{FileMeta, ParquetOptions, put_object, write_parquet, writer_properties};
use crate::schema::Registry;
use crate::stream::{BatchRecord, Rejection};

/// Where a range goes.
#[derive(Debug, Clone)]
pub struct RangeSink {
    s3: aws_sdk_s3::Client,
    bucket: String,
    layout: LakeLayout,
    area: Area,
    source: String,
    registry: Arc<Registry>,
    options: ParquetOptions,
}

/// The keys of one range, derived from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLayout {
    /// The `dt` partition: the UTC day of the range's first record.
    pub day: NaiveDate,
    /// Entities whose records the range holds (by the registry's selector).
    pub entities: BTreeSet<String>,
}

/// A file written for a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The entity.
    pub entity: String,
    /// The object key.
    pub key: String,
    /// Rows in it.
    pub rows: usize,
}

/// A record sent to quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Index of the record in the slice given to [`RangeSink::write`].
    pub index: usize,
    /// Its sequence number.
    pub sequence_number: String,
    /// Reason class (`MalformedRecord`, `ImageTooLarge`, `NoEntity`, `WrongType`, ...).
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
}

/// What [`RangeSink::write`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Parquet files written.
    pub files: Vec<WrittenFile>,
    /// Records quarantined.
    pub quarantined: Vec<Quarantined>,
    /// The quarantine object, when something was quarantined.
    pub quarantine_key: Option<String>,
    /// For each record of the slice: its entity when it was written to a file.
    pub entity_of: Vec<Option<String>>,
}

impl SinkReport {
    /// The key of the file holding `entity`'s rows, if one was written.
    pub fn file_of(&self, entity: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.entity == entity)
            .map(|f| f.key.as_str())
    }
}

impl RangeSink {
    /// A sink writing `area` files to `bucket` under `layout`; quarantine objects are filed
    /// under `source` (the function name).
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        layout: LakeLayout,
        area: Area,
        source: &str,
        registry: Arc<Registry>,
    ) -> Self {
        RangeSink {
            s3,
            bucket: bucket.to_string(),
            layout,
            area,
            source: source.to_string(),
            registry,
            options: ParquetOptions::default(),
        }
    }

    /// The lake layout.
    pub fn layout(&self) -> &LakeLayout {
        &self.layout
    }

    /// The day and entities of a range.
    pub fn range_layout(&self, records: &[&BatchRecord<'_>]) -> RangeLayout {
        let first_micros = records.first().map_or(0, |r| r.event_time_micros());
        let day = day_of_micros(first_micros).unwrap_or_default();
        let entities = records
            .iter()
            .filter(|r| r.change.is_ok())
            .filter_map(|r| r.entity_in(&self.registry).ok())
            .filter_map(|i| self.registry.entities().get(i))
            .map(|e| e.name().to_string())
            .collect();
        RangeLayout { day, entities }
    }

    fn file_key(
        &self,
        entity: &str,
        day: NaiveDate,
        shard: &str,
        first: &str,
        last: &str,
    ) -> String {
        let (first, last) = (unpadded(first), unpadded(last));
        match self.area {
            Area::Expired => self.layout.expired_key(entity, day, shard, first, last),
            _ => self.layout.cdc_key(entity, day, shard, first, last),
        }
    }

    fn quarantine_key(&self, day: NaiveDate, shard: &str, first: &str, last: &str) -> String {
        let (first, last) = (unpadded(first), unpadded(last));
        let name = format!("{}-{shard}-{first}-{last}.jsonl", self.area.as_str());
        self.layout.quarantine_key(&self.source, day, &name)
    }

    /// Every key writing this range may produce (for the checkpoint's pending range).
    pub fn output_keys(
        &self,
        records: &[&BatchRecord<'_>],
        shard: &str,
        first: &str,
        last: &str,
    ) -> Vec<String> {
        let layout = self.range_layout(records);
        let mut keys: Vec<String> = layout
            .entities
            .iter()
            .map(|e| self.file_key(e, layout.day, shard, first, last))
            .collect();
        keys.push(self.quarantine_key(layout.day, shard, first, last));
        keys
    }

    /// Encodes and writes the range; see the module docs. `first`/`last` are the range's
    /// sequence numbers as the checkpoint names them.
    pub async fn write(
        &self,
        records: &[&BatchRecord<'_>],
        shard: &str,
        first: &str,
        last: &str,
    ) -> Result<SinkReport, DynabridgeError> {
        let layout = self.range_layout(records);
        let mut encoders = EntityEncoders::new(&self.registry);
        let mut report = SinkReport {
            entity_of: vec![None; records.len()],
            ..Default::default()
        };
        let mut quarantine_lines = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let outcome = encode_record(&self.registry, &mut encoders, record);
            match outcome {
                Ok(entity) => report.entity_of[index] = Some(entity),
                Err(Rejection {
                    kind,
                    reason,
                    attribute,
                }) => {
                    let seq = record.sequence_number().to_string();
                    quarantine_lines.push(json!({
                        "source": self.source,
                        "area": self.area.as_str(),
                        "shard": shard,
                        "sequenceNumber": seq,
                        "kind": kind,
                        "reason": reason,
                        "attribute": attribute,
                        "record": record.raw,
                    }));
                    report.quarantined.push(Quarantined {
                        index,
                        sequence_number: seq,
                        kind,
                        reason,
                    });
                }
            }
        }
        let batches = encoders
            .finish()
            .map_err(|e| DynabridgeError::Other(format!("encoding the range: {e}")))?;
        for (entity_name, batch) in batches {
            let entity = self.registry.entity(&entity_name)?;
            let props =
                writer_properties(&self.options, &FileMeta::for_entity(&self.registry, entity))?;
            let bytes = write_parquet(&batch.schema(), std::slice::from_ref(&batch), props)?;
            let key = self.file_key(&entity_name, layout.day, shard, first, last);
            put_object(&self.s3, &self.bucket, &key, bytes).await?;
            report.files.push(WrittenFile {
                entity: entity_name,
                key,
                rows: batch.num_rows(),
            });
        }
        if !quarantine_lines.is_empty() {
            let key = self.quarantine_key(layout.day, shard, first, last);
            let mut body = String::new();
            for line in &quarantine_lines {
                body.push_str(&line.to_string());
                body.push('\n');
            }
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("application/x-ndjson")
                .body(body.into_bytes().into())
                .send()
                .await
                .map_err(|e| DynabridgeError::aws("S3", "PutObject", e))?;
            report.quarantine_key = Some(key);
        }
        Ok(report)
    }

    /// The entity a record is written under, or why it is quarantined — exactly what
    /// [`RangeSink::write`] decides for it (used for records an earlier attempt wrote).
    pub fn classify(&self, record: &BatchRecord<'_>) -> Result<String, Quarantined> {
        let mut scratch = EntityEncoders::new(&self.registry);
        encode_record(&self.registry, &mut scratch, record).map_err(|r| Quarantined {
            index: 0,
            sequence_number: record.sequence_number().to_string(),
            kind: r.kind,
            reason: r.reason,
        })
    }

    /// Deletes objects a crashed attempt wrote that this attempt does not produce.
    pub async fn delete(&self, keys: &[String]) -> Result<(), DynabridgeError> {
        for key in keys {
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| DynabridgeError::aws("S3", "DeleteObject", e))?;
        }
        Ok(())
    }
}

/// Sequence numbers as DynamoDB writes them (no padding) keep keys short: the lake column
/// `_seq` is padded for sorting, object names need not be.
fn unpadded(seq: &str) -> &str {
    let t = seq.trim_start_matches('0');
    if t.is_empty() { "0" } else { t }
}

/// Validates and buffers one record (its images already resolved by
/// [`crate::stream::StreamBatch::resolve`], or resolved now); returns its entity.
fn encode_record(
    registry: &Registry,
    encoders: &mut EntityEncoders,
    record: &BatchRecord<'_>,
) -> Result<String, Rejection> {
    let change = match &record.change {
        Err(p) => {
            return Err(Rejection {
                kind: p.kind.clone(),
                reason: p.reason.clone(),
                attribute: None,
            });
        }
        Ok(change) => change,
    };
    let index = record.entity_in(registry)?;
    let entity = registry.entities().get(index).ok_or_else(|| Rejection {
        kind: "NoEntity".into(),
        reason: format!("entity #{index} is not in the registry"),
        attribute: None,
    })?;
    let seq = stream_seq(&change.sequence_number);
    let meta = RowMeta {
        op: change.op,
        seq: &seq,
        event_time_micros: change.event_time_micros,
    };
    let written = match change.image() {
        Some(image) if record.entity.is_some() => encoders.append_resolved(entity, image, &meta),
        Some(image) => encoders.append_view(&mut image.clone(), &meta).map(drop),
        // KEYS_ONLY / NEW_IMAGE streams: a keys-only row for deletions.
        None => {
            return encoders
                .append_keys_view(entity, &change.keys, &meta)
                .map(|()| entity.name().to_string())
                .map_err(|e| Rejection {
                    kind: "InvalidKeys".into(),
                    reason: e.to_string(),
                    attribute: None,
                });
        }
    };
    written.map_err(|e| Rejection::from(&e))?;
    Ok(entity.name().to_string())
}
