//! item → Arrow → Parquet bytes → Arrow → item, over every field type and the edge cases of
//! the lake contract.

mod common;

use arrow::datatypes::{DataType, TimeUnit};
use common::*;
use dynabridge_shared::codec::{BatchDecoder, BatchEncoder, Op, RowMeta, stream_seq};
use dynabridge_shared::lake::{
    FileMeta, ParquetOptions, read_parquet, write_parquet, writer_properties,
};
use dynabridge_shared::schema::{Attributes, ItemError, Registry};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_dynamo::AttributeValue as V;

fn order_item() -> Attributes {
    item(vec![
        ("pk", s("ORDER#ü-1")),
        ("sk", s("ORDER")),
        ("schema_version", n("2")),
        ("customer_id", s("CUSTOMER#42")),
        ("total", n("1234567890123456.78")),
        ("placed_at", n("1763712000123")),
        (
            "lines",
            V::L(vec![
                deep_map(30),
                V::Bs(vec![vec![0, 1, 255], vec![]]),
                V::Null(true),
            ]),
        ),
        ("status", s("")),
        ("currency", s("EUR")),
        ("shipped_on", s("2026-11-21")),
        (
            "weights",
            V::Ns(vec!["1.5".into(), "-0.001".into(), "1234567.891".into()]),
        ),
        ("discount", n("0.1")),
        ("ref_number", n("12345678901234567890123456789012345678")),
        ("gift", V::Bool(false)),
        ("expires_at", n("1763712000.5")),
        // Not in the schema: kept in `_extra`.
        ("notes_ñ日本", s("")),
        ("deep", deep_map(31)),
        ("bin_extra", V::Bs(vec![b"a".to_vec(), vec![0xff; 3]])),
        (
            "nums_extra",
            V::Ns(vec![
                "-99999999999999999999999999999999999999".into(),
                "1E-130".into(),
            ]),
        ),
        ("list_extra", V::L(vec![])),
        ("null_extra", V::Null(true)),
    ])
}

fn customer_item() -> Attributes {
    item(vec![
        ("pk", s("CUSTOMER#42")),
        ("sk", s("PROFILE")),
        ("entity_type", s("Customer")),
        ("schema_version", n("2")),
        ("email", s("ada@example.com")),
        ("full_name", s("Ada Lövelace 👩‍💻")),
        ("created_at", s("2026-11-21T10:15:00.123456Z")),
        ("tags", V::Ss(vec!["vip".into(), "".into(), "日本".into()])),
        ("loyalty_points", n("99999999999999999999")),
        ("prefs", m(vec![("lang", s("en")), ("ключ", s(""))])),
        (
            "address",
            m(vec![
                ("city", s("London")),
                ("zip", s("")),
                (
                    "geo",
                    m(vec![("lat", n("51.507351")), ("lon", n("-0.127758"))]),
                ),
            ]),
        ),
        ("tier", s("gold")),
        ("avatar", V::B(vec![])),
        (
            "attachments",
            V::Bs(vec![vec![1, 2, 3], vec![0], vec![0xde, 0xad]]),
        ),
        ("birthday", s("0001-01-01")),
    ])
}

fn roundtrip(registry: &Registry, entity: &str, items: &[Attributes]) -> Vec<Attributes> {
    let entity = registry.entity(entity).unwrap();
    let mut enc = BatchEncoder::new(entity);
    for (i, it) in items.iter().enumerate() {
        let seq = stream_seq(&i.to_string());
        enc.append(
            it,
            &RowMeta {
                op: Op::Insert,
                seq: &seq,
                event_time_micros: 1_763_712_000_000_000,
            },
        )
        .unwrap_or_else(|e| panic!("row {i}: {e}"));
    }
    let batch = enc.finish().unwrap();
    let props = writer_properties(
        &ParquetOptions::default(),
        &FileMeta::for_entity(registry, entity),
    )
    .unwrap();
    let bytes = write_parquet(enc.schema(), &[batch], props).unwrap();
    let batches = read_parquet(bytes).unwrap();
    let dec = BatchDecoder::new(entity);
    batches
        .iter()
        .flat_map(|b| dec.decode(b))
        .map(|r| r.unwrap().item)
        .collect()
}

#[test]
fn order_roundtrip_is_identical() {
    let registry = example_registry();
    let original = order_item();
    let back = roundtrip(&registry, "Order", std::slice::from_ref(&original));
    let mut expected = original.clone();
    // NULL in `_extra` survives as NULL; the type-level rule only concerns typed fields.
    expected.insert("null_extra".into(), V::Null(true));
    assert_items_equal(&expected, &back[0]);
    // Verbatim `number` and `_extra` numbers keep their exact text.
    assert_eq!(back[0]["ref_number"], original["ref_number"]);
    assert_eq!(back[0]["nums_extra"], original["nums_extra"]);
    assert_eq!(back[0]["deep"], original["deep"]);
}

#[test]
fn customer_roundtrip_is_identical() {
    let registry = example_registry();
    let original = customer_item();
    let back = roundtrip(&registry, "Customer", std::slice::from_ref(&original));
    assert_items_equal(&original, &back[0]);
}

#[test]
fn old_versions_are_upcast_on_write() {
    let registry = example_registry();
    // Version 1 (no version attribute → oldest): `name` is renamed, `tier` defaulted.
    let v1 = item(vec![
        ("pk", s("CUSTOMER#7")),
        ("sk", s("PROFILE")),
        ("entity_type", s("Customer")),
        ("email", s("x@example.com")),
        ("name", s("X")),
        ("created_at", s("2026-01-01T00:00:00Z")),
        ("loyalty_points", n("5")),
    ]);
    let back = roundtrip(&registry, "Customer", &[v1]);
    assert_eq!(back[0]["full_name"], s("X"));
    assert_eq!(back[0]["tier"], s("basic"));
    assert_eq!(back[0]["schema_version"], n("2"));
    assert!(!back[0].contains_key("name"));

    let order_v1 = item(vec![
        ("pk", s("ORDER#9")),
        ("sk", s("ORDER")),
        ("schema_version", n("1")),
        ("customer_id", s("C")),
        ("total", n("10")),
        ("placed_at", n("0")),
        ("legacy_code", s("dropped")),
    ]);
    let back = roundtrip(&registry, "Order", &[order_v1]);
    assert_eq!(back[0]["currency"], s("EUR"));
    assert!(
        !back[0].contains_key("legacy_code"),
        "drop removes the attribute"
    );
}

const EDGE_REGISTRY: &str = r#"{
  "keys": [{"name": "pk", "type": "string", "required": true}],
  "entities": [{"name": "Edge", "selector": {"key_prefix": {"attribute": "pk", "prefix": "E#"}},
    "versions": [{"version": 1, "fields": [
      {"name": "d38", "type": {"decimal": {"precision": 38, "scale": 0}}},
      {"name": "d38s", "type": {"decimal": {"precision": 38, "scale": 38}}},
      {"name": "small", "type": {"decimal": {"precision": 38, "scale": 10}}},
      {"name": "i", "type": "int"},
      {"name": "ts", "type": {"timestamp": "iso8601"}},
      {"name": "ts_s", "type": {"timestamp": "epoch_seconds"}},
      {"name": "ts_ms", "type": {"timestamp": "epoch_millis"}},
      {"name": "d", "type": "date"},
      {"name": "j", "type": "json"},
      {"name": "m", "type": "string_map"},
      {"name": "dbl", "type": "double"}
    ]}]}]
}"#;

#[test]
fn edge_values_roundtrip() {
    let registry = Registry::from_json_str(EDGE_REGISTRY, "edge").unwrap();
    let items = vec![
        item(vec![
            ("pk", s("E#1")),
            ("d38", n("-99999999999999999999999999999999999999")),
            ("d38s", n("0.99999999999999999999999999999999999999")),
            ("small", n("1.5E-7")),
            ("i", n("-9223372036854775808")),
            ("ts", s("0001-01-01T00:00:00Z")),
            ("ts_s", n("-62135596800")),
            ("ts_ms", n("253402300799999.999")),
            ("d", s("9999-12-31")),
            ("j", deep_map(31)),
            ("m", m(vec![])),
            ("dbl", n("-9.9999999999999E+125")),
        ]),
        item(vec![
            ("pk", s("E#2")),
            ("d38", n("1E+37")),
            ("small", n("-0.0000000001")),
            ("i", n("9223372036854775807")),
            ("ts", s("9999-12-31T23:59:59.999999Z")),
            ("ts_s", n("0.000001")),
            ("j", V::Ss(vec!["".into()])),
            ("dbl", n("1E-130")),
        ]),
        item(vec![("pk", s("E#3"))]),
    ];
    let back = roundtrip(&registry, "Edge", &items);
    for (orig, got) in items.iter().zip(&back) {
        let mut expected = orig.clone();
        expected.insert("schema_version".into(), n("1"));
        assert_items_equal(&expected, got);
    }
}

#[test]
fn lake_schema_uses_only_spark_safe_types() {
    let registry = example_registry();
    for e in registry.entities() {
        let enc = BatchEncoder::new(e);
        for f in enc.schema().fields() {
            check_type(f.name(), f.data_type());
        }
    }
    fn check_type(name: &str, dt: &DataType) {
        match dt {
            DataType::Timestamp(unit, tz) => {
                assert_eq!(*unit, TimeUnit::Microsecond, "{name}");
                assert_eq!(tz.as_deref(), Some("UTC"), "{name}");
            }
            DataType::Decimal128(p, _) => assert!(*p <= 38),
            DataType::Utf8
            | DataType::Int64
            | DataType::Int32
            | DataType::Float64
            | DataType::Date32
            | DataType::Boolean
            | DataType::Binary => {}
            DataType::List(f) => check_type(name, f.data_type()),
            DataType::Struct(fs) => {
                assert!(!fs.is_empty(), "{name}: empty struct");
                for f in fs {
                    check_type(f.name(), f.data_type());
                }
            }
            DataType::Map(f, _) => check_type(name, f.data_type()),
            other => panic!("{name}: {other} is not in the lake contract"),
        }
    }
}

#[test]
fn file_carries_metadata_and_bounded_row_groups() {
    let registry = example_registry();
    let entity = registry.entity("Order").unwrap();
    let mut enc = BatchEncoder::new(entity);
    for i in 0..1000 {
        let mut it = order_item();
        it.insert("pk".into(), s(&format!("ORDER#{i}")));
        let seq = stream_seq(&i.to_string());
        enc.append(
            &it,
            &RowMeta {
                op: Op::Modify,
                seq: &seq,
                event_time_micros: i,
            },
        )
        .unwrap();
    }
    let batch = enc.finish().unwrap();
    let meta = FileMeta::for_entity(&registry, entity);
    let opts = ParquetOptions {
        max_row_group_rows: 300,
        ..Default::default()
    };
    let bytes = write_parquet(
        enc.schema(),
        &[batch],
        writer_properties(&opts, &meta).unwrap(),
    )
    .unwrap();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let md = reader.metadata();
    assert_eq!(md.num_row_groups(), 4);
    assert!(md.row_groups().iter().all(|rg| rg.num_rows() <= 300));
    let kv: std::collections::HashMap<_, _> = md
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["dynabridge.entity"], "Order");
    assert_eq!(kv["dynabridge.schema_version"], "2");
    assert_eq!(
        kv["dynabridge.schema_fingerprint"],
        entity.latest().fingerprint()
    );
    assert_eq!(
        kv["dynabridge.registry_fingerprint"],
        registry.fingerprint()
    );
    assert_eq!(entity.latest().fingerprint().len(), 64);
    let col = md.row_group(0).column(0);
    // The level is not stored in the file; the codec is.
    assert!(matches!(
        col.compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
}

#[test]
fn bad_row_leaves_batch_untouched() {
    let registry = example_registry();
    let entity = registry.entity("Order").unwrap();
    let mut enc = BatchEncoder::new(entity);
    let meta = RowMeta {
        op: Op::Insert,
        seq: "1",
        event_time_micros: 0,
    };
    let mut bad = order_item();
    bad.insert("total".into(), n("1.005"));
    let err = enc.append(&bad, &meta).unwrap_err();
    assert_eq!(err.attribute(), Some("total"));
    assert!(matches!(err, ItemError::InvalidValue { .. }), "{err}");
    assert!(enc.is_empty());
    enc.append(&order_item(), &meta).unwrap();
    let keys = item(vec![("pk", s("ORDER#x")), ("sk", s("ORDER"))]);
    enc.append_keys(
        &keys,
        &RowMeta {
            op: Op::Remove,
            seq: "2",
            event_time_micros: 0,
        },
    )
    .unwrap();
    assert_eq!(enc.finish().unwrap().num_rows(), 2);
}

#[test]
fn mixed_items_route_to_their_entities() {
    use dynabridge_shared::codec::{EntityEncoders, from_sdk_item, to_sdk_item};
    let registry = example_registry();
    let mut encoders = EntityEncoders::new(&registry);
    let meta = RowMeta {
        op: Op::Modify,
        seq: "1",
        event_time_micros: 0,
    };
    // aws-sdk items convert losslessly to the codec's item type and back.
    let sdk = to_sdk_item(order_item());
    let order = from_sdk_item(sdk);
    assert_eq!(order, order_item());
    assert_eq!(encoders.append(&order, &meta).unwrap(), "Order");
    assert_eq!(
        encoders.append(&customer_item(), &meta).unwrap(),
        "Customer"
    );
    assert_eq!(
        encoders.append(&customer_item(), &meta).unwrap(),
        "Customer"
    );
    assert_eq!(
        encoders
            .append(&item(vec![("pk", s("X#1"))]), &meta)
            .unwrap_err(),
        ItemError::NoEntity
    );
    let keys = item(vec![("pk", s("ORDER#2")), ("sk", s("ORDER"))]);
    encoders.append_keys("Order", &keys, &meta).unwrap();
    assert_eq!(encoders.len(), 4);
    let batches: Vec<_> = encoders
        .finish()
        .unwrap()
        .into_iter()
        .map(|(e, b)| (e, b.num_rows()))
        .collect();
    assert_eq!(
        batches,
        [("Customer".to_string(), 2), ("Order".to_string(), 2)]
    );
    assert!(encoders.is_empty());
}
