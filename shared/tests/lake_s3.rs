//! Lake writer against the local S3 (s3s-fs): single PutObject for small files, streamed
//! multipart uploads with bounded memory for large ones, abort on failure.

mod common;

use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use common::*;
use dynabridge_devstack::{LocalStack, StackOptions};
use dynabridge_shared::codec::{BatchDecoder, BatchEncoder, Op, RowMeta};
use dynabridge_shared::lake::writer::MIN_PART_SIZE;
use dynabridge_shared::lake::{
    FileMeta, LakeFileWriter, LakeLayout, ParquetOptions, put_object, read_parquet, write_parquet,
    writer_properties,
};
use dynabridge_shared::schema::Registry;
use serde_dynamo::AttributeValue as V;

const BUCKET: &str = "lake";

async fn stack() -> LocalStack {
    let stack = LocalStack::start(StackOptions {
        eventbridge: false,
        ..Default::default()
    })
    .expect("local stack");
    stack
        .s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    stack
}

/// Deterministic, incompressible bytes (xorshift), so ZSTD cannot shrink the test data.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn customer(i: u64, avatar_len: usize) -> dynabridge_shared::schema::Attributes {
    item(vec![
        ("pk", s(&format!("CUSTOMER#{i:06}"))),
        ("sk", s("PROFILE")),
        ("entity_type", s("Customer")),
        ("schema_version", n("2")),
        ("email", s(&format!("c{i}@example.com"))),
        ("created_at", s("2026-11-21T00:00:00Z")),
        ("tier", s("basic")),
        ("loyalty_points", n(&i.to_string())),
        ("avatar", V::B(noise(i, avatar_len))),
    ])
}

fn batch_of(
    registry: &Registry,
    from: u64,
    to: u64,
    avatar_len: usize,
) -> (RecordBatch, Arc<arrow::datatypes::Schema>) {
    let mut enc = BatchEncoder::new(registry.entity("Customer").unwrap());
    for i in from..to {
        let seq = format!("{i:040}");
        enc.append(
            &customer(i, avatar_len),
            &RowMeta {
                op: Op::Snapshot,
                seq: &seq,
                event_time_micros: 0,
            },
        )
        .unwrap();
    }
    let schema = enc.schema().clone();
    (enc.finish().unwrap(), schema)
}

async fn get(stack: &LocalStack, key: &str) -> Bytes {
    stack
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("object exists")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_file_put_and_read_back() {
    let stack = stack().await;
    let registry = example_registry();
    let entity = registry.entity("Customer").unwrap();
    let (batch, schema) = batch_of(&registry, 0, 10, 16);
    let props = writer_properties(
        &ParquetOptions::default(),
        &FileMeta::for_entity(&registry, entity),
    )
    .unwrap();
    let body = write_parquet(&schema, &[batch], props).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let key = LakeLayout::new("").cdc_key(
        "Customer",
        day,
        "shardId-1",
        &format!("{:040}", 0),
        &format!("{:040}", 9),
    );
    put_object(&stack.s3(), BUCKET, &key, body.clone())
        .await
        .unwrap();
    // A retry rewrites the same key: still one object.
    put_object(&stack.s3(), BUCKET, &key, body).await.unwrap();
    assert!(
        stack.lake_root().join(BUCKET).join(&key).is_file(),
        "plain file in the lake folder"
    );
    let back = read_parquet(get(&stack, &key).await).unwrap();
    let rows: Vec<_> = back
        .iter()
        .flat_map(|b| BatchDecoder::new(entity).decode(b))
        .collect();
    assert_eq!(rows.len(), 10);
    assert_items_equal(&customer(3, 16), &rows[3].as_ref().unwrap().item);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_writer_uploads_parts_with_bounded_memory() {
    let stack = stack().await;
    let registry = example_registry();
    let entity = registry.entity("Customer").unwrap();
    let opts = ParquetOptions {
        max_row_group_rows: 100_000,
        max_row_group_bytes: 1024 * 1024,
        zstd_level: 1,
    };
    let props = writer_properties(&opts, &FileMeta::for_entity(&registry, entity)).unwrap();
    let key = "archive/entity=Customer/dt=2026-11-21/run-00001.parquet";
    let schema = BatchEncoder::new(entity).schema().clone();
    let mut writer =
        LakeFileWriter::new(stack.s3(), BUCKET, key, schema, props, MIN_PART_SIZE).unwrap();
    // 4,000 rows × 4 KiB of incompressible bytes ≈ 16 MiB, written 200 rows at a time.
    let total = 4_000u64;
    let mut peak = 0;
    for start in (0..total).step_by(200) {
        let (batch, _) = batch_of(&registry, start, start + 200, 4096);
        writer.write(&batch).await.unwrap();
        peak = peak.max(writer.memory_size());
    }
    assert!(
        peak < 4 * 1024 * 1024,
        "open row group stays bounded: {peak} bytes"
    );
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.rows, total);
    assert!(summary.parts >= 2, "{summary:?}");
    assert!(summary.bytes > 3 * MIN_PART_SIZE as u64, "{summary:?}");
    let body = get(&stack, key).await;
    assert_eq!(body.len() as u64, summary.bytes);
    let batches = read_parquet(body).unwrap();
    let rows: Vec<_> = batches
        .iter()
        .flat_map(|b| BatchDecoder::new(entity).decode(b))
        .collect();
    assert_eq!(rows.len() as u64, total);
    for i in [0u64, 1234, 3999] {
        assert_items_equal(&customer(i, 4096), &rows[i as usize].as_ref().unwrap().item);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_parts_give_the_same_object_as_parts_in_memory() {
    let stack = stack().await;
    let registry = example_registry();
    let entity = registry.entity("Customer").unwrap();
    let opts = ParquetOptions {
        max_row_group_rows: 100_000,
        max_row_group_bytes: 1024 * 1024,
        zstd_level: 1,
    };
    let props = || writer_properties(&opts, &FileMeta::for_entity(&registry, entity)).unwrap();
    let schema = BatchEncoder::new(entity).schema().clone();
    let spill = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for (key, spilled) in [
        (
            "archive/entity=Customer/dt=2026-11-21/memory-00001.parquet",
            false,
        ),
        (
            "archive/entity=Customer/dt=2026-11-21/spilled-00001.parquet",
            true,
        ),
    ] {
        let mut writer = if spilled {
            LakeFileWriter::spilling(
                stack.s3(),
                BUCKET,
                key,
                schema.clone(),
                props(),
                MIN_PART_SIZE,
                spill.path(),
            )
            .unwrap()
        } else {
            LakeFileWriter::new(
                stack.s3(),
                BUCKET,
                key,
                schema.clone(),
                props(),
                MIN_PART_SIZE,
            )
            .unwrap()
        };
        // ≈ 12 MiB of incompressible bytes: two full parts and a last, smaller one.
        for start in (0..3_000u64).step_by(200) {
            let (batch, _) = batch_of(&registry, start, start + 200, 4096);
            writer.write(&batch).await.unwrap();
        }
        let summary = writer.finish().await.unwrap();
        assert!(summary.parts >= 2, "{summary:?}");
        summaries.push((summary.parts, get(&stack, key).await));
    }
    assert_eq!(summaries[0].0, summaries[1].0, "same part boundaries");
    assert_eq!(summaries[0].1, summaries[1].1, "byte-identical objects");
    let rows: usize = read_parquet(summaries[1].1.clone())
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 3_000);
    // The spill files are anonymous: nothing is left in the folder.
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_streamed_file_uses_one_put_and_abort_leaves_nothing() {
    let stack = stack().await;
    let registry = example_registry();
    let entity = registry.entity("Customer").unwrap();
    let props = || {
        writer_properties(
            &ParquetOptions::default(),
            &FileMeta::for_entity(&registry, entity),
        )
        .unwrap()
    };
    let schema = BatchEncoder::new(entity).schema().clone();

    let key = "archive/entity=Customer/dt=2026-11-21/small-00001.parquet";
    let mut writer = LakeFileWriter::new(
        stack.s3(),
        BUCKET,
        key,
        schema.clone(),
        props(),
        MIN_PART_SIZE,
    )
    .unwrap();
    let (batch, _) = batch_of(&registry, 0, 5, 8);
    writer.write(&batch).await.unwrap();
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.parts, 0);
    assert_eq!(
        read_parquet(get(&stack, key).await).unwrap()[0].num_rows(),
        5
    );

    let key = "archive/entity=Customer/dt=2026-11-21/aborted-00001.parquet";
    let opts = ParquetOptions {
        max_row_group_bytes: 512 * 1024,
        ..Default::default()
    };
    let props = writer_properties(&opts, &FileMeta::for_entity(&registry, entity)).unwrap();
    let mut writer = LakeFileWriter::new(
        stack.s3(),
        BUCKET,
        key,
        schema.clone(),
        props,
        MIN_PART_SIZE,
    )
    .unwrap();
    for start in (0..2_000u64).step_by(200) {
        let (batch, _) = batch_of(&registry, start, start + 200, 4096);
        writer.write(&batch).await.unwrap();
    }
    writer.abort().await.unwrap();
    let head = stack
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await;
    assert!(head.is_err(), "aborted upload must not create the object");

    assert!(
        LakeFileWriter::new(
            stack.s3(),
            BUCKET,
            key,
            schema,
            props_small(&registry),
            1024
        )
        .is_err()
    );
}

fn props_small(registry: &Registry) -> parquet::file::properties::WriterProperties {
    let entity = registry.entity("Customer").unwrap();
    writer_properties(
        &ParquetOptions::default(),
        &FileMeta::for_entity(registry, entity),
    )
    .unwrap()
}
