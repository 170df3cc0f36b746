//! `shared::lake::S3ParquetObject` (how incremental-sync reads inbound files) against the
//! local stack's S3: the footer is fetched by range — one GET of the last 64 KiB, a second one
//! only for a bigger footer — and walked with bounded work before the `parquet` crate decodes
//! it (`shared::lake::footer`), so a hostile footer is refused at once.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use dynabridge_devstack::{LocalStack, StackOptions};
use dynabridge_shared::lake::S3ParquetObject;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

const BUCKET: &str = "lake";

/// A 3-row file whose footer carries `metadata_bytes` of key-value metadata.
fn parquet_file(metadata_bytes: usize) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pk", DataType::Utf8, false),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "padding".into(),
            "x".repeat(metadata_bytes),
        )]))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

async fn object(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) -> S3ParquetObject {
    let size = body.len() as u64;
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().trim_matches('"').to_string();
    S3ParquetObject::new(s3.clone(), BUCKET, key, &etag, size)
}

#[tokio::test]
async fn footers_are_read_by_range_and_checked_before_decoding() {
    let stack = LocalStack::start(StackOptions {
        eventbridge: false,
        ..Default::default()
    })
    .unwrap();
    let s3 = stack.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // A small footer: one ranged GET.
    let mut small = object(&s3, "inbound/small.parquet", parquet_file(10)).await;
    let meta = small.metadata().await.unwrap();
    assert_eq!(meta.metadata().file_metadata().num_rows(), 3);
    assert_eq!(meta.schema().fields().len(), 2);
    assert_eq!(small.requests(), 1);

    // A 200 KiB footer: the last 64 KiB first, then the rest of the footer.
    let mut big = object(&s3, "inbound/big.parquet", parquet_file(200 * 1024)).await;
    let meta = big.metadata().await.unwrap();
    assert_eq!(meta.metadata().file_metadata().num_rows(), 3);
    let padding = meta
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == "padding"))
        .and_then(|kv| kv.value.clone())
        .unwrap();
    assert_eq!(padding.len(), 200 * 1024);
    assert_eq!(big.requests(), 2);

    // The fuzz-found footer whose list<bool> kept the parquet crate busy for 25 s.
    let hostile = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/parquet_read/footer-list-of-booleans-25s"),
    )
    .unwrap();
    let mut hostile = object(&s3, "inbound/hostile.parquet", hostile).await;
    let started = std::time::Instant::now();
    let err = hostile.metadata().await.unwrap_err().to_string();
    assert!(err.contains("list of booleans"), "{err}");
    // Refused without decoding: far below the 25 s the decoder took (a generous bound for a
    // loaded debug build; the check itself takes microseconds).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A footer claiming more bytes than the object holds.
    let mut lying = parquet_file(10);
    let n = lying.len();
    lying[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut lying = object(&s3, "inbound/lying.parquet", lying).await;
    let err = lying.metadata().await.unwrap_err().to_string();
    assert!(err.contains("claims"), "{err}");
}
