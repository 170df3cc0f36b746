//! The independent-reader check: files written by the codec are read by pyarrow (and pyspark,
//! the reference for Databricks, when installed) from the project venv, which checks types and
//! exact values (decimal sums, timestamp instants). When pyspark is installed, a file written by
//! Spark (INT96 timestamps, decimals, arrays) is also decoded by the codec.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use dynabridge_shared::codec::{BatchDecoder, BatchEncoder, Op, RowMeta, stream_seq};
use dynabridge_shared::lake::{
    FileMeta, ParquetOptions, read_parquet, write_parquet, writer_properties,
};
use dynabridge_shared::schema::{Attributes, Registry};
use serde_dynamo::AttributeValue as V;
use serde_json::json;

fn python() -> PathBuf {
    venv_python().unwrap_or_else(|| {
        panic!(
            "no project venv (.venv with bin/python) was found above {}: run scripts/bootstrap \
             (it installs requirements.txt, including pyarrow for this check)",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/check_codec.py")
}

fn run_check(file: &Path, expected: &serde_json::Value) {
    let exp_path = file.with_extension("expected.json");
    std::fs::write(&exp_path, serde_json::to_vec_pretty(expected).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(script())
        .arg("check")
        .arg(file)
        .arg(&exp_path)
        .output()
        .expect("run check_codec.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(2) => {
            panic!("pyarrow is missing from the project venv: run scripts/bootstrap\n{stderr}")
        }
        _ => panic!("independent reader check failed:\n{stdout}\n{stderr}"),
    }
}

fn write_file(registry: &Registry, entity: &str, items: &[Attributes], path: &Path) {
    let entity = registry.entity(entity).unwrap();
    let mut enc = BatchEncoder::new(entity);
    for (i, it) in items.iter().enumerate() {
        let seq = stream_seq(&(i + 1).to_string());
        enc.append(
            it,
            &RowMeta {
                op: Op::Insert,
                seq: &seq,
                event_time_micros: 1_763_712_000_000_000,
            },
        )
        .unwrap();
    }
    let batch = enc.finish().unwrap();
    let meta = FileMeta::for_entity(registry, entity);
    let bytes = write_parquet(
        enc.schema(),
        &[batch],
        writer_properties(&ParquetOptions::default(), &meta).unwrap(),
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn pyarrow_and_pyspark_read_codec_files_exactly() {
    let registry = example_registry();
    let dir = tempfile::tempdir().unwrap();

    let orders = vec![
        item(vec![
            ("pk", s("ORDER#1")),
            ("sk", s("ORDER")),
            ("schema_version", n("2")),
            ("customer_id", s("C1")),
            ("total", n("1234567890123456.78")),
            ("placed_at", n("1763712000123")),
            ("shipped_on", s("2026-11-21")),
            ("weights", V::Ns(vec!["1.5".into(), "-0.001".into()])),
            ("discount", n("0.1")),
            ("ref_number", n("12345678901234567890123456789012345678")),
            ("gift", V::Bool(true)),
            ("expires_at", n("1763712000.5")),
            ("currency", s("EUR")),
            ("status", s("new")),
        ]),
        item(vec![
            ("pk", s("ORDER#2")),
            ("sk", s("ORDER")),
            ("schema_version", n("2")),
            ("customer_id", s("C2")),
            ("total", n("-1E-2")),
            ("placed_at", n("-1")),
            ("currency", s("USD")),
            ("expires_at", n("253402300799.999999")),
        ]),
        // Version 1: upcast on write (currency defaulted, legacy_code dropped).
        item(vec![
            ("pk", s("ORDER#3")),
            ("sk", s("ORDER")),
            ("schema_version", n("1")),
            ("customer_id", s("C3")),
            ("total", n("0.23")),
            ("placed_at", n("0")),
            ("legacy_code", s("x")),
        ]),
    ];
    let order_file = dir.path().join("orders.parquet");
    write_file(&registry, "Order", &orders, &order_file);
    let order_entity = registry.entity("Order").unwrap();
    run_check(
        &order_file,
        &json!({
            "rows": 3,
            "types": {
                "pk": "string", "total": "decimal128(18, 2)", "placed_at": "timestamp[us, tz=UTC]",
                "expires_at": "timestamp[us, tz=UTC]", "_event_time": "timestamp[us, tz=UTC]",
                "shipped_on": "date32[day]", "weights": "list<element: decimal128(10, 3) not null>",
                "discount": "double", "ref_number": "string", "gift": "bool", "_schema_version": "int32",
                "_op": "string", "_seq": "string", "_extra": "string", "lines": "string"
            },
            "spark_types": {
                "total": "decimal(18,2)", "placed_at": "timestamp", "shipped_on": "date",
                "weights": "array<decimal(10,3)>", "_schema_version": "int", "_event_time": "timestamp",
                "discount": "double", "gift": "boolean"
            },
            "decimal_sums": { "total": "1234567890123457.00" },
            "timestamps": {
                "placed_at": ["2025-11-21T08:00:00.123Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z"],
                "expires_at": ["2025-11-21T08:00:00.5Z", "9999-12-31T23:59:59.999999Z", null],
                "_event_time": ["2025-11-21T08:00:00Z", "2025-11-21T08:00:00Z", "2025-11-21T08:00:00Z"]
            },
            "values": {
                "pk": ["ORDER#1", "ORDER#2", "ORDER#3"],
                "currency": ["EUR", "USD", "EUR"],
                "weights": [["1.500", "-0.001"], null, null],
                "shipped_on": ["2026-11-21", null, null],
                "ref_number": ["12345678901234567890123456789012345678", null, null],
                "_entity": ["Order", "Order", "Order"],
                "_schema_version": [2, 2, 2],
                "_op": ["INSERT", "INSERT", "INSERT"],
                "_seq": ["0000000000000000000000000000000000000001", "0000000000000000000000000000000000000002", "0000000000000000000000000000000000000003"],
                "_extra": [null, null, null]
            },
            "metadata": {
                "dynabridge.entity": "Order",
                "dynabridge.schema_version": "2",
                "dynabridge.schema_fingerprint": order_entity.latest().fingerprint(),
                "dynabridge.registry_fingerprint": registry.fingerprint()
            }
        }),
    );

    let customers = vec![
        item(vec![
            ("pk", s("CUSTOMER#1")),
            ("sk", s("PROFILE")),
            ("entity_type", s("Customer")),
            ("schema_version", n("2")),
            ("email", s("ada@example.com")),
            ("full_name", s("Ada 👩‍💻")),
            ("created_at", s("2026-11-21T10:15:00.123456+02:00")),
            ("tags", V::Ss(vec!["vip".into(), "日本".into()])),
            ("loyalty_points", n("99999999999999999999")),
            ("prefs", m(vec![("lang", s("en"))])),
            (
                "address",
                m(vec![
                    ("city", s("London")),
                    (
                        "geo",
                        m(vec![("lat", n("51.507351")), ("lon", n("-0.127758"))]),
                    ),
                ]),
            ),
            ("tier", s("gold")),
            ("attachments", V::Bs(vec![vec![1, 2], vec![255]])),
            ("nickname", s("extra attribute")),
        ]),
        item(vec![
            ("pk", s("CUSTOMER#2")),
            ("sk", s("PROFILE")),
            ("entity_type", s("Customer")),
            ("email", s("b@example.com")),
            ("name", s("B")),
            ("created_at", s("1970-01-01T00:00:00Z")),
            ("loyalty_points", n("1")),
        ]),
    ];
    let customer_file = dir.path().join("customers.parquet");
    write_file(&registry, "Customer", &customers, &customer_file);
    run_check(
        &customer_file,
        &json!({
            "rows": 2,
            "types": {
                "loyalty_points": "decimal128(20, 0)",
                "created_at": "timestamp[us, tz=UTC]",
                "tags": "list<element: string not null>",
                "attachments": "list<element: binary not null>",
                "address": "struct<street: string, city: string, zip: string, geo: struct<lat: decimal128(9, 6), lon: decimal128(9, 6)>>",
                "avatar": "binary", "birthday": "date32[day]"
            },
            "spark_types": {
                "loyalty_points": "decimal(20,0)", "tags": "array<string>", "attachments": "array<binary>",
                "prefs": "map<string,string>",
                "address": "struct<street:string,city:string,zip:string,geo:struct<lat:decimal(9,6),lon:decimal(9,6)>>"
            },
            "decimal_sums": { "loyalty_points": "100000000000000000000" },
            "timestamps": { "created_at": ["2026-11-21T08:15:00.123456Z", "1970-01-01T00:00:00Z"] },
            "values": {
                "full_name": ["Ada 👩‍💻", "B"],
                "tier": ["gold", "basic"],
                "tags": [["vip", "日本"], null],
                "attachments": [[[1, 2], [255]], null],
                "prefs": [[["lang", "en"]], null],
                "address": [{"street": null, "city": "London", "zip": null, "geo": {"lat": "51.507351", "lon": "-0.127758"}}, null],
                "_extra": ["{\"nickname\":{\"S\":\"extra attribute\"}}", null]
            }
        }),
    );
}

#[test]
fn codec_reads_files_spark_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("spark-out");
    let out = Command::new(python())
        .arg(script())
        .arg("write-spark")
        .arg(&out_dir)
        .output()
        .expect("run check_codec.py");
    if out.status.code() == Some(3) {
        println!("pyspark is not installed in the venv: Spark-written file not checked");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("spark wrote a parquet file");
    let bytes = bytes::Bytes::from(std::fs::read(file).unwrap());
    let registry = example_registry();
    let entity = registry.entity("Order").unwrap();
    let batches = read_parquet(bytes).unwrap();
    let rows: Vec<_> = batches
        .iter()
        .flat_map(|b| BatchDecoder::new(entity).decode(b))
        .map(|r| r.unwrap().item)
        .collect();
    assert_eq!(rows.len(), 2);
    let mut rows = rows;
    rows.sort_by_key(|r| format!("{:?}", r["pk"]));
    let expected_1 = item(vec![
        ("pk", s("ORDER#1")),
        ("sk", s("ORDER")),
        ("schema_version", n("2")),
        ("customer_id", s("C1")),
        ("total", n("12.34")),
        ("placed_at", n("1795256100123.456")),
        ("shipped_on", s("2026-11-21")),
        ("weights", V::Ns(vec!["1.5".into(), "-0.001".into()])),
        ("currency", s("EUR")),
        ("expires_at", n("16725225600")),
    ]);
    assert_items_equal(&expected_1, &rows[0]);
    let expected_2 = item(vec![
        ("pk", s("ORDER#2")),
        ("sk", s("ORDER")),
        ("schema_version", n("2")),
        ("customer_id", s("C2")),
        ("total", n("-99999999.99")),
        ("placed_at", n("-2208988800000")),
        ("currency", s("USD")),
    ]);
    assert_items_equal(&expected_2, &rows[1]);
}
