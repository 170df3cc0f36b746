//! Arrow → items for the physical variants other writers produce (Spark, pyarrow, DuckDB),
//! and per-row decoding errors.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date64Array, Decimal32Array, Decimal64Array, Decimal256Array, Int32Array,
    LargeBinaryArray, LargeListArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, i256};
use common::*;
use dynabridge_shared::codec::BatchDecoder;
use dynabridge_shared::schema::{ItemError, Registry};

const REG: &str = r#"{
  "keys": [{"name": "pk", "type": "string", "required": true}],
  "entities": [{"name": "T", "selector": {"attribute": {"attribute": "kind", "equals": "T"}},
    "versions": [
      {"version": 1, "fields": [{"name": "old_name", "type": "string"}]},
      {"version": 2, "upcast": [{"rename": {"from": "old_name", "to": "label"}}, {"default": {"field": "req", "value": {"S": "dflt"}}}], "fields": [
      {"name": "label", "type": "string"},
      {"name": "d32", "type": {"decimal": {"precision": 9, "scale": 2}}},
      {"name": "d64", "type": {"decimal": {"precision": 18, "scale": 4}}},
      {"name": "d256", "type": {"decimal": {"precision": 38, "scale": 0}}},
      {"name": "i", "type": "int"},
      {"name": "ts_ns", "type": {"timestamp": "iso8601"}},
      {"name": "ts_ms", "type": {"timestamp": "epoch_millis"}},
      {"name": "ts_s", "type": {"timestamp": "epoch_seconds"}},
      {"name": "d", "type": "date"},
      {"name": "ss", "type": "string_set"},
      {"name": "bin", "type": "binary"},
      {"name": "req", "type": "string", "required": true}
    ]}]}]
}"#;

fn col(name: &str, a: ArrayRef) -> (Field, ArrayRef) {
    (Field::new(name, a.data_type().clone(), true), a)
}

fn batch(cols: Vec<(Field, ArrayRef)>) -> RecordBatch {
    let (fields, arrays): (Vec<_>, Vec<_>) = cols.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

#[test]
fn accepts_other_writers_physical_types() {
    let reg = Registry::from_json_str(REG, "t").unwrap();
    let entity = reg.entity("T").unwrap();
    let ss = LargeListArray::new(
        Arc::new(Field::new("element", DataType::LargeUtf8, true)),
        OffsetBuffer::from_lengths([2, 0]),
        Arc::new(LargeStringArray::from(vec!["a", "ü"])),
        None,
    );
    let b = batch(vec![
        col("pk", Arc::new(StringViewArray::from(vec!["T#1", "T#2"]))),
        col(
            "label",
            Arc::new(LargeStringArray::from(vec![Some("x"), None])),
        ),
        col(
            "d32",
            Arc::new(
                Decimal32Array::from(vec![12345, -1])
                    .with_precision_and_scale(9, 2)
                    .unwrap(),
            ),
        ),
        // Scale 2 in the file, 4 in the schema: rescaled exactly.
        col(
            "d64",
            Arc::new(
                Decimal64Array::from(vec![150, 1])
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
        ),
        col(
            "d256",
            Arc::new(
                Decimal256Array::from(vec![i256::from_i128(-(10i128.pow(37))), i256::ZERO])
                    .with_precision_and_scale(76, 0)
                    .unwrap(),
            ),
        ),
        col("i", Arc::new(Int32Array::from(vec![i32::MIN, 7]))),
        col(
            "ts_ns",
            Arc::new(TimestampNanosecondArray::from(vec![1_000, 0])),
        ),
        col(
            "ts_ms",
            Arc::new(TimestampMillisecondArray::from(vec![-1, 1]).with_timezone("UTC")),
        ),
        col("ts_s", Arc::new(TimestampSecondArray::from(vec![1, 0]))),
        col("d", Arc::new(Date64Array::from(vec![86_400_000, 0]))),
        col("ss", Arc::new(ss)),
        col(
            "bin",
            Arc::new(LargeBinaryArray::from(vec![Some(&b"\x00"[..]), None])),
        ),
        col("req", Arc::new(StringArray::from(vec!["r", "r"]))),
        col(
            "_rescued_data",
            Arc::new(StringArray::from(vec![Some("ignored"), None])),
        ),
    ]);
    let rows = BatchDecoder::new(entity).decode(&b);
    let r0 = &rows[0].as_ref().unwrap().item;
    let expected = item(vec![
        ("pk", s("T#1")),
        ("kind", s("T")),
        ("schema_version", n("2")),
        ("label", s("x")),
        ("d32", n("123.45")),
        ("d64", n("1.5")),
        ("d256", n("-10000000000000000000000000000000000000")),
        ("i", n("-2147483648")),
        ("ts_ns", s("1970-01-01T00:00:00.000001Z")),
        ("ts_ms", n("-1")),
        ("ts_s", n("1")),
        ("d", s("1970-01-02")),
        ("ss", V::Ss(vec!["a".into(), "ü".into()])),
        ("bin", V::B(vec![0])),
        ("req", s("r")),
    ]);
    assert_eq!(r0, &expected);
    let r1 = &rows[1].as_ref().unwrap().item;
    assert!(!r1.contains_key("ss"), "an empty list is an absent set");
    assert!(!r1.contains_key("label"));
    assert_eq!(r1["d32"], n("-0.01"));
}

use serde_dynamo::AttributeValue as V;

#[test]
fn per_row_errors_name_the_column() {
    let reg = Registry::from_json_str(REG, "t").unwrap();
    let entity = reg.entity("T").unwrap();
    let dec = BatchDecoder::new(entity);

    // Missing required value on one row only: the other row decodes.
    let b = batch(vec![
        col("pk", Arc::new(StringArray::from(vec!["T#1", "T#2"]))),
        col("req", Arc::new(StringArray::from(vec![Some("r"), None]))),
    ]);
    let rows = dec.decode(&b);
    assert!(rows[0].is_ok());
    assert_eq!(
        rows[1].as_ref().unwrap_err(),
        &ItemError::Missing {
            attribute: "req".into()
        }
    );

    // A decimal that does not fit, a sub-µs timestamp, a wrong column type, an unknown column.
    let b = batch(vec![
        col(
            "pk",
            Arc::new(StringArray::from(vec!["T#1", "T#2", "T#3", "T#4"])),
        ),
        col("req", Arc::new(StringArray::from(vec!["r"; 4]))),
        col(
            "d32",
            Arc::new(
                Decimal64Array::from(vec![Some(123_456_789_012), None, None, None])
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
        ),
        col(
            "ts_ns",
            Arc::new(TimestampNanosecondArray::from(vec![
                None,
                Some(1),
                None,
                None,
            ])),
        ),
        col(
            "i",
            Arc::new(StringArray::from(vec![None, None, Some("7"), None])),
        ),
        col(
            "surprise",
            Arc::new(StringArray::from(vec![None, None, None, Some("x")])),
        ),
    ]);
    let rows = dec.decode(&b);
    let attrs: Vec<_> = rows
        .iter()
        .map(|r| r.as_ref().unwrap_err().attribute().unwrap().to_string())
        .collect();
    assert_eq!(attrs, ["d32", "ts_ns", "i", "surprise"]);
    assert_eq!(rows[2].as_ref().unwrap_err().kind(), "WrongType");

    // Stored versions: an older one is upcast (and then validated against the latest), a newer
    // one is refused.
    let b = batch(vec![
        col("pk", Arc::new(StringArray::from(vec!["T#1", "T#2"]))),
        col(
            "old_name",
            Arc::new(StringArray::from(vec!["legacy", "legacy"])),
        ),
        col("_schema_version", Arc::new(Int32Array::from(vec![1, 3]))),
        col(
            "_extra",
            Arc::new(StringArray::from(vec![r#"{"more":{"N":"1"}}"#, "{}"])),
        ),
    ]);
    let rows = dec.decode(&b);
    let r0 = rows[0].as_ref().unwrap();
    assert_eq!(r0.stored_version, 1);
    assert_eq!(r0.item["label"], s("legacy"));
    assert_eq!(r0.item["req"], s("dflt"));
    assert_eq!(r0.item["more"], n("1"));
    assert!(matches!(
        rows[1],
        Err(ItemError::UnknownVersion { version: 3, .. })
    ));

    // `_extra` must not shadow a typed column or hold bad JSON.
    let b = batch(vec![
        col("pk", Arc::new(StringArray::from(vec!["T#1", "T#2"]))),
        col("req", Arc::new(StringArray::from(vec!["r", "r"]))),
        col(
            "_extra",
            Arc::new(StringArray::from(vec![r#"{"req":{"S":"x"}}"#, "not json"])),
        ),
    ]);
    for r in dec.decode(&b) {
        assert_eq!(r.unwrap_err().attribute(), Some("_extra"));
    }
}
