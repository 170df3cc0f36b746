//! Writes a small set of items (a sweep page, a cascade) to the lake in one go: one
//! Parquet file per entity under `<area>/entity=<E>/dt=<day>/<name>.parquet`, and the items
//! that fail the schema as JSON lines under `quarantine/source=<source>/dt=<day>/<name>.jsonl`
//! — so every item handed in is durably in the lake, valid or not.
//!
//! For large, streaming outputs use [`super::writer::LakeFileWriter`] instead.

use chrono::NaiveDate;
use serde_json::json;

use crate::codec::{EntityEncoders, RowMeta, dynamodb_json_map};
use crate::error::DynabridgeError;
use crate::lake::layout::{Area, LakeLayout};
use crate::lake::writer::{FileMeta, ParquetOptions, put_object, write_parquet, writer_properties};
use crate::schema::{Attributes, Registry};

/// Where [`write_items`] puts things.
#[derive(Debug, Clone, Copy)]
pub struct ItemsTarget<'a> {
    /// The S3 client.
    pub s3: &'a aws_sdk_s3::Client,
    /// The lake bucket.
    pub bucket: &'a str,
    /// The lake layout.
    pub layout: &'a LakeLayout,
    /// The area of the Parquet files.
    pub area: Area,
    /// The quarantine source (the function name).
    pub source: &'a str,
    /// The `dt` partition.
    pub day: NaiveDate,
    /// The object name (without extension), unique and deterministic for this set.
    pub name: &'a str,
}

/// Counts of [`write_items`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ItemsWritten {
    /// Rows in Parquet files.
    pub rows: usize,
    /// Items quarantined.
    pub quarantined: usize,
}

/// Writes `items` (each with its row metadata); see the module docs.
pub async fn write_items(
    target: ItemsTarget<'_>,
    registry: &Registry,
    items: &[(Attributes, RowMeta<'_>)],
) -> Result<ItemsWritten, DynabridgeError> {
    let mut encoders = EntityEncoders::new(registry);
    let mut quarantine = String::new();
    let mut written = ItemsWritten::default();
    for (attrs, meta) in items {
        if let Err(e) = encoders.append(attrs, meta) {
            let line = json!({
                "source": target.source,
                "area": target.area.as_str(),
                "kind": e.kind(),
                "reason": e.to_string(),
                "attribute": e.attribute(),
                "item": dynamodb_json_map(attrs.iter()),
            });
            quarantine.push_str(&line.to_string());
            quarantine.push('\n');
            written.quarantined += 1;
        }
    }
    let batches = encoders
        .finish()
        .map_err(|e| DynabridgeError::Other(format!("encoding {}: {e}", target.name)))?;
    for (entity_name, batch) in batches {
        let entity = registry.entity(&entity_name)?;
        let props = writer_properties(
            &ParquetOptions::default(),
            &FileMeta::for_entity(registry, entity),
        )?;
        let bytes = write_parquet(&batch.schema(), std::slice::from_ref(&batch), props)?;
        let key = format!(
            "{}{}.parquet",
            target
                .layout
                .partition(target.area, &entity_name, target.day),
            target.name
        );
        put_object(target.s3, target.bucket, &key, bytes).await?;
        written.rows += batch.num_rows();
    }
    if !quarantine.is_empty() {
        let key = target.layout.quarantine_key(
            target.source,
            target.day,
            &format!("{}.jsonl", target.name),
        );
        target
            .s3
            .put_object()
            .bucket(target.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .body(quarantine.into_bytes().into())
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("S3", "PutObject", e))?;
    }
    Ok(written)
}
