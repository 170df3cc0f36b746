//! The bad-input corpus (`tests/corpus/`, format in its README): every case states its
//! expected outcome and is run against the code path that meets such input in production.
//!
//! - `library_cases` runs every case that has a library entry point: stream payloads and
//!   images through `shared::stream::StreamBatch::parse` and the CDC sink's own
//!   classification (`RangeSink::classify`, what decides quarantine), accepted images on
//!   through the codec, Parquet and back; Parquet bytes through `shared::lake::read_parquet`
//!   and `shared::codec::BatchDecoder`. Each call runs under `catch_unwind`: a panic fails the
//!   case.
//! - `function_cases` runs the cases marked `e2e` (and those only a function binary can
//!   judge: incremental-sync's trigger gate, raw payload bytes) through the real binaries on
//!   the local stack, and checks the quarantine files, rejects and typed errors they leave.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryArray, Decimal256Array, Float64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{Field, Schema, i256};
use bytes::Bytes;
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::sync::{final_report, order, orders_file, run_chain, upload};
use dynabridge_e2e::{Env, env, example_registry, lake_keys, windowed_event};
use dynabridge_shared::codec::{BatchDecoder, EntityEncoders, RowMeta, item_size};
use dynabridge_shared::lake::layout::{Area, LakeLayout};
use dynabridge_shared::lake::{
    FileMeta, ParquetOptions, read_parquet, write_parquet, writer_properties,
};
use dynabridge_shared::schema::{Attributes, Registry};
use dynabridge_shared::stream::StreamBatch;
use dynabridge_shared::stream::sink::RangeSink;
use serde_json::{Value, json};

const BUCKET: &str = "dynabridge-lake";
/// incremental-sync's object size ceiling in `function_cases` (oversize cases exceed it).
const MAX_OBJECT_BYTES: u64 = 1024 * 1024;

/// One corpus file.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    class: String,
    target: String,
    spec: Value,
}

impl Case {
    fn expect(&self) -> &Value {
        &self.spec["expect"]
    }
    fn e2e(&self) -> bool {
        self.spec["e2e"].as_bool().unwrap_or(false)
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let spec: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", f.display()));
            let name = format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                f.file_stem().unwrap().to_string_lossy()
            );
            let class = spec["class"].as_str().unwrap_or_default().to_string();
            let target = spec["target"].as_str().unwrap_or_default().to_string();
            assert!(!class.is_empty(), "{name}: no class");
            assert!(
                spec["expect"]["outcome"].is_string(),
                "{name}: no expect.outcome"
            );
            assert!(
                spec["description"].is_string(),
                "{name}: every case says what it is"
            );
            out.push(Case {
                name,
                class,
                target,
                spec,
            });
        }
    }
    out
}

/// Runs `f`, turning a panic into a failure message.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("PANIC in {what}: {msg}")
    })
}

fn contains(haystack: &str, expect: &Value, field: &str) -> Result<(), String> {
    match expect[field].as_str() {
        Some(needle) if !haystack.contains(needle) => {
            Err(format!("{field} {needle:?} not in {haystack:?}"))
        }
        _ => Ok(()),
    }
}

fn equal(actual: &str, expect: &Value, field: &str) -> Result<(), String> {
    match expect[field].as_str() {
        Some(want) if want != actual => Err(format!("{field}: expected {want:?}, got {actual:?}")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Inputs: stream payloads (given, wrapped from an image, or generated) and Parquet bytes.

fn stream_record(seq: u64, op: &str, image: &Value) -> Value {
    let mut keys = serde_json::Map::new();
    for k in ["pk", "sk"] {
        if let Some(v) = image.get(k) {
            keys.insert(k.into(), v.clone());
        }
    }
    let image_field = if op == "INSERT" || op == "MODIFY" {
        "NewImage"
    } else {
        "OldImage"
    };
    json!({
        "eventID": format!("corpus-{seq}"),
        "eventName": op,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/app/stream/corpus",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795222800.0,
            "Keys": keys,
            image_field: image,
            "SequenceNumber": format!("{seq:021}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn valid_order_image(i: usize) -> Value {
    json!({"pk": {"S": format!("ORDER#{i}")}, "sk": {"S": "ORDER"}, "schema_version": {"N": "2"},
        "customer_id": {"S": "CUSTOMER#1"}, "total": {"N": "10.00"},
        "placed_at": {"N": "1795316400000"}, "currency": {"S": "EUR"}})
}

/// `levels` nested values, the outermost being level 1 (DynamoDB's way of counting).
fn nested(levels: usize, kind: &str) -> Value {
    let mut v = json!({"S": "leaf"});
    for _ in 1..levels {
        v = if kind == "L" {
            json!({ "L": [v] })
        } else {
            json!({ "M": {"k": v} })
        };
    }
    v
}

fn image_size(image: &Value) -> usize {
    let item: serde_dynamo::Item = serde_json::from_value(image.clone()).expect("generator image");
    item_size(&item.into_inner())
}

/// Generated images (too big or too deep to commit by hand).
fn generate_image(spec: &Value) -> Value {
    match spec["generate"].as_str().unwrap_or_default() {
        "item_of_size" => {
            let target = spec["bytes"].as_u64().unwrap() as usize;
            let mut image = valid_order_image(1);
            let base = image_size(&image) + "blob".len();
            image["blob"] = json!({"S": "x".repeat(target - base)});
            assert_eq!(image_size(&image), target);
            image
        }
        "nested" => {
            let mut image = valid_order_image(1);
            let attr = spec["attribute"].as_str().unwrap();
            image[attr] = nested(
                spec["levels"].as_u64().unwrap() as usize,
                spec["kind"].as_str().unwrap_or("M"),
            );
            image
        }
        other => panic!("unknown image generator {other:?}"),
    }
}

/// The Lambda payload of a stream or item case.
fn stream_payload(case: &Case) -> Value {
    let s = &case.spec;
    match case.target.as_str() {
        "item" => {
            let image = if s.get("generate").is_some() {
                generate_image(s)
            } else {
                s["input"].clone()
            };
            let op = s["op"].as_str().unwrap_or("INSERT");
            json!({"Records": [stream_record(1, op, &image)]})
        }
        _ if s["generate"] == "stream_batch" => {
            let n = s["records"].as_u64().unwrap() as usize;
            let pad = s["image_bytes"].as_u64().unwrap_or(0) as usize;
            let records: Vec<Value> = (0..n)
                .map(|i| {
                    let mut image = valid_order_image(i);
                    if pad > 0 {
                        image["blob"] = json!({"S": "x".repeat(pad)});
                    }
                    stream_record(i as u64 + 1, "INSERT", &image)
                })
                .collect();
            json!({ "Records": records })
        }
        _ => s["input"].clone(),
    }
}

fn order_items(n: usize) -> Vec<Attributes> {
    (0..n)
        .map(|i| order(i, 1_795_316_400_000, "12.50"))
        .collect()
}

/// Replaces (or adds) one column of `batch`.
fn set_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    let field = Field::new(name, array.data_type().clone(), true);
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        Err(_) => {
            fields.push(field);
            columns.push(array);
        }
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
    )
    .expect("generated batch")
}

fn column(spec: &Value, rows: usize) -> ArrayRef {
    let values: Vec<Value> = match spec["values"].as_array() {
        Some(v) => v.clone(),
        None => vec![spec["value"].clone(); rows],
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    match spec["type"].as_str().unwrap() {
        "utf8" => Arc::new(values.iter().map(text).collect::<StringArray>()),
        "binary" => Arc::new(
            values
                .iter()
                .map(|v| v.as_str().map(|s| s.as_bytes().to_vec()))
                .collect::<BinaryArray>(),
        ),
        "invalid_utf8" => {
            // A STRING column whose bytes are not UTF-8 (what a broken writer produces).
            let raw: Vec<&[u8]> = (0..rows).map(|_| b"caf\xe9\xff".as_slice()).collect();
            let bin = BinaryArray::from(raw);
            let (offsets, data, nulls) = bin.into_parts();
            // SAFETY: deliberately invalid UTF-8; the array is only written to Parquet bytes.
            Arc::new(unsafe { StringArray::new_unchecked(offsets, data, nulls) })
        }
        "float64" => Arc::new(values.iter().map(|v| v.as_f64()).collect::<Float64Array>()),
        "int32" => Arc::new(
            values
                .iter()
                .map(|v| v.as_i64().map(|x| x as i32))
                .collect::<arrow::array::Int32Array>(),
        ),
        "timestamp_ns" => Arc::new(
            values
                .iter()
                .map(|v| v.as_i64())
                .collect::<TimestampNanosecondArray>()
                .with_timezone("UTC"),
        ),
        t if t.starts_with("decimal256") => {
            let precision = spec["precision"].as_u64().unwrap() as u8;
            let arr = values
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| i256::from_string(s).expect("decimal digits"))
                })
                .collect::<Decimal256Array>()
                .with_precision_and_scale(precision, 0)
                .expect("decimal256");
            Arc::new(arr)
        }
        other => panic!("unknown column type {other:?}"),
    }
}

fn parquet_of(batch: RecordBatch, registry: &Registry, entity: &str) -> Bytes {
    let meta = FileMeta::for_entity(registry, registry.entity(entity).unwrap());
    write_parquet(
        &batch.schema(),
        &[batch],
        writer_properties(&ParquetOptions::default(), &meta).unwrap(),
    )
    .unwrap()
}

/// Generated Parquet (or not-Parquet) bytes.
fn generate_parquet(spec: &Value, registry: &Registry) -> Bytes {
    let g = &spec["generate"];
    let rows = g["rows"].as_u64().unwrap_or(2) as usize;
    let base = match g["kind"].as_str().unwrap_or("orders") {
        "orders" => orders_file(registry, &order_items(rows), 1000, &[]).unwrap(),
        "customers" => {
            let entity = registry.entity("Customer").unwrap();
            let mut enc = dynabridge_shared::codec::BatchEncoder::new(entity);
            for i in 0..rows {
                let item: serde_dynamo::Item = serde_json::from_value(json!({
                    "pk": {"S": format!("CUSTOMER#{i}")}, "sk": {"S": "PROFILE"},
                    "entity_type": {"S": "Customer"}, "schema_version": {"N": "2"},
                    "email": {"S": "c@example.com"}, "created_at": {"S": "2026-01-01T00:00:00Z"},
                    "tier": {"S": "basic"}}))
                .unwrap();
                enc.append(
                    &item.into_inner(),
                    &RowMeta {
                        op: dynabridge_shared::codec::Op::Snapshot,
                        seq: "1",
                        event_time_micros: 0,
                    },
                )
                .unwrap();
            }
            let batch = enc.finish().unwrap();
            parquet_of(batch, registry, "Customer")
        }
        "text" => Bytes::from(g["text"].as_str().unwrap().as_bytes().to_vec()),
        "hex" => Bytes::from(hex_bytes(g["hex"].as_str().unwrap())),
        "bytes" => {
            // Deterministic pseudo-random bytes (xorshift), not Parquet.
            let len = g["len"].as_u64().unwrap() as usize;
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            Bytes::from(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect::<Vec<u8>>(),
            )
        }
        other => panic!("unknown parquet generator {other:?}"),
    };
    let mut bytes = base.to_vec();
    if let Some(cols) = g["set_columns"].as_array() {
        let mut batches = read_parquet(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(batches.len(), 1);
        let mut batch = batches.remove(0);
        for c in cols {
            let array = column(c, batch.num_rows());
            batch = set_column(&batch, c["name"].as_str().unwrap(), array);
        }
        bytes = parquet_of(batch, registry, "Order").to_vec();
    }
    let len = bytes.len();
    if let Some(f) = g["truncate_to_fraction"].as_f64() {
        bytes.truncate((len as f64 * f) as usize);
    }
    if let Some(n) = g["drop_tail_bytes"].as_u64() {
        bytes.truncate(len - n as usize);
    }
    if let Some(m) = g["overwrite_tail_magic"].as_str() {
        bytes[len - 4..].copy_from_slice(m.as_bytes());
    }
    if let Some(footer_len) = g["footer_len"].as_u64() {
        bytes[len - 8..len - 4].copy_from_slice(&(footer_len as u32).to_le_bytes());
    }
    if let Some(fill) = g["fill_footer"].as_u64() {
        let footer_len = u32::from_le_bytes(bytes[len - 8..len - 4].try_into().unwrap()) as usize;
        for b in &mut bytes[len - 8 - footer_len..len - 8] {
            *b = fill as u8;
        }
    }
    if let Some(fill) = g["fill_data"].as_u64() {
        // Overwrite the column chunks (between the leading magic and the footer).
        let footer_len = u32::from_le_bytes(bytes[len - 8..len - 4].try_into().unwrap()) as usize;
        for b in &mut bytes[4..len - 8 - footer_len] {
            *b = fill as u8;
        }
    }
    Bytes::from(bytes)
}

// ---------------------------------------------------------------------------------------
// Library runs.

fn sink(registry: &Registry) -> RangeSink {
    // `classify` never calls S3; the client only satisfies the constructor.
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .build();
    RangeSink::new(
        aws_sdk_s3::Client::from_conf(conf),
        BUCKET,
        LakeLayout::new(""),
        Area::Cdc,
        "stream-fanout",
        Arc::new(registry.clone()),
    )
}

fn check_typed_error(error_type: &str, message: &str, expect: &Value) -> Result<(), String> {
    if expect["outcome"] != "typed_error" {
        return Err(format!(
            "expected {}, got typed error {error_type}: {message}",
            expect["outcome"]
        ));
    }
    equal(error_type, expect, "error_type")?;
    contains(message, expect, "message_contains")
}

/// Checks each record's outcome against `expect` (one expectation for every record, or
/// `records: [...]` one per record). Returns the outcome names seen.
fn run_stream(case: &Case, registry: &Registry) -> Result<Vec<String>, String> {
    let payload = stream_payload(case).to_string();
    let expect = case.expect();
    let parsed = no_panic("StreamBatch::parse", || StreamBatch::parse(&payload))?;
    let batch = match parsed {
        Ok(mut b) => {
            // As the handlers do: entities and upcasts resolved once for both sinks.
            no_panic("StreamBatch::resolve", || b.resolve(registry))?;
            b
        }
        Err(e) => {
            check_typed_error(e.error_type(), &e.to_string(), expect)?;
            return Ok(vec!["typed_error".into()]);
        }
    };
    let per_record: Vec<Value> = match expect["records"].as_array() {
        Some(list) => list.clone(),
        None => vec![expect.clone(); batch.records.len()],
    };
    if per_record.len() != batch.records.len() {
        return Err(format!(
            "expected {} records, parsed {}",
            per_record.len(),
            batch.records.len()
        ));
    }
    let sink = sink(registry);
    let mut seen = Vec::new();
    let mut encoders = EntityEncoders::new(registry);
    let mut accepted = 0;
    for (i, (record, want)) in batch.records.iter().zip(&per_record).enumerate() {
        let got = no_panic("RangeSink::classify", || sink.classify(record))?;
        let at = |e: String| format!("record {i}: {e}");
        match got {
            Ok(entity) => {
                if want["outcome"] != "accept" {
                    return Err(at(format!(
                        "expected {}, accepted as {entity}",
                        want["outcome"]
                    )));
                }
                equal(&entity, want, "entity").map_err(at)?;
                let change = record.change.as_ref().unwrap();
                equal(change.op.as_str(), want, "op").map_err(at)?;
                // Accepted: it must also encode (as the sink does) for the round trip below.
                if let Some(image) = change.image() {
                    let seq = dynabridge_shared::codec::stream_seq(&change.sequence_number);
                    let meta = RowMeta {
                        op: change.op,
                        seq: &seq,
                        event_time_micros: change.event_time_micros,
                    };
                    no_panic("EntityEncoders::append", || {
                        encoders.append_view(&mut image.clone(), &meta).map(drop)
                    })?
                    .map_err(|e| at(format!("classified as accepted but encoding failed: {e}")))?;
                    accepted += 1;
                }
                seen.push("accept".to_string());
            }
            Err(q) => {
                if want["outcome"] != "quarantine" {
                    return Err(at(format!(
                        "expected {}, quarantined as {}: {}",
                        want["outcome"], q.kind, q.reason
                    )));
                }
                equal(&q.kind, want, "kind").map_err(at)?;
                contains(&q.reason, want, "reason_contains").map_err(at)?;
                seen.push("quarantine".to_string());
            }
        }
    }
    // Accepted rows survive the lake round trip (Parquet out, Parquet in, decoded).
    if accepted > 0 {
        for (entity, rb) in no_panic("finish", || encoders.finish())?.map_err(|e| e.to_string())? {
            let bytes = parquet_of(rb, registry, &entity);
            let back = read_parquet(bytes).map_err(|e| format!("round trip read: {e}"))?;
            let decoder = BatchDecoder::new(registry.entity(&entity).unwrap());
            for b in &back {
                for row in decoder.decode(b) {
                    row.map_err(|e| format!("round trip decode: {e}"))?;
                }
            }
        }
    }
    Ok(seen)
}

fn run_parquet(case: &Case, registry: &Registry) -> Result<Vec<String>, String> {
    let bytes = generate_parquet(&case.spec, registry);
    let expect = case.expect();
    let read = no_panic("read_parquet", || read_parquet(bytes))?;
    let batches = match read {
        Ok(b) => b,
        Err(e) => {
            let e = dynabridge_shared::DynabridgeError::from(e);
            check_typed_error(e.error_type(), &e.to_string(), expect)?;
            return Ok(vec!["typed_error".into()]);
        }
    };
    let entity = case.spec["read_as"].as_str().unwrap_or("Order");
    let decoder = BatchDecoder::new(registry.entity(entity).unwrap());
    let mut seen = Vec::new();
    for batch in &batches {
        for (row, result) in no_panic("BatchDecoder::decode", || decoder.decode(batch))?
            .into_iter()
            .enumerate()
        {
            match result {
                Ok(_) if expect["outcome"] == "accept" => seen.push("accept".to_string()),
                Ok(d) => {
                    return Err(format!(
                        "row {row}: expected {}, decoded {:?}",
                        expect["outcome"], d.item
                    ));
                }
                Err(e) => {
                    if expect["outcome"] != "reject" {
                        return Err(format!(
                            "row {row}: expected {}, got {e}",
                            expect["outcome"]
                        ));
                    }
                    equal(e.kind(), expect, "kind")?;
                    equal(e.attribute().unwrap_or_default(), expect, "attribute")?;
                    contains(&e.to_string(), expect, "reason_contains")?;
                    seen.push("reject".to_string());
                }
            }
        }
    }
    if let Some(n) = expect["rows"].as_u64()
        && seen.len() as u64 != n
    {
        return Err(format!("expected {n} rows, got {}", seen.len()));
    }
    if seen.is_empty() {
        return Err("no rows read".into());
    }
    Ok(seen)
}

fn run_raw_library(case: &Case) -> Result<Vec<String>, String> {
    // The runtime deserialises the payload before any handler runs: a payload that is not
    // JSON never reaches product code. Library level, that is the parse error.
    let body = raw_body(case);
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let e = StreamBatch::parse(&v.to_string())
                .err()
                .ok_or("raw payload parsed as a batch")?;
            check_typed_error(e.error_type(), &e.to_string(), case.expect())?;
        }
        Err(_) if case.expect()["outcome"] == "typed_error" => {}
        Err(e) => return Err(format!("expected {}, got {e}", case.expect()["outcome"])),
    }
    Ok(vec!["typed_error".into()])
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn raw_body(case: &Case) -> Vec<u8> {
    let g = &case.spec["generate"];
    match g["raw"].as_str().unwrap_or_default() {
        "hex" => hex_bytes(g["hex"].as_str().unwrap()),
        "text" => g["text"].as_str().unwrap().as_bytes().to_vec(),
        "deep_json" => {
            let n = g["depth"].as_u64().unwrap() as usize;
            format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }
        other => panic!("unknown raw generator {other:?}"),
    }
}

/// Seeds for the fuzz targets (`scripts/fuzz --seeds` regenerates `fuzz/seeds/`): each
/// small case's input, as the target that parses it sees it.
fn write_seed(dir: &Path, case: &Case, registry: &Registry) {
    const MAX_SEED_BYTES: usize = 32 * 1024;
    let (target, bytes) = match case.target.as_str() {
        "stream" | "item" => (
            "stream_event",
            serde_json::to_vec(&stream_payload(case)).unwrap(),
        ),
        "raw_payload" => ("stream_event", raw_body(case)),
        "parquet" => (
            "parquet_read",
            generate_parquet(&case.spec, registry).to_vec(),
        ),
        "sync_event" => (
            "sync_trigger",
            serde_json::to_vec(&fill_placeholders(&case.spec["input"], "lake")).unwrap(),
        ),
        _ => return,
    };
    if bytes.len() > MAX_SEED_BYTES {
        return;
    }
    let name = case.name.replace('/', "-");
    let out = dir.join(target);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), bytes).unwrap();
}

#[test]
fn library_cases() {
    let registry = example_registry();
    let all = cases();
    assert!(all.len() >= 60, "the corpus holds {} cases", all.len());
    let mut failures = Vec::new();
    let mut tally: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut ran = 0;
    for case in &all {
        if let Some(dir) = std::env::var_os("DYNABRIDGE_FUZZ_SEEDS_DIR") {
            write_seed(Path::new(&dir), case, &registry);
        }
        let result = match case.target.as_str() {
            "stream" | "item" => run_stream(case, &registry),
            "parquet" => run_parquet(case, &registry),
            "raw_payload" => run_raw_library(case),
            // incremental-sync's trigger gate lives in the binary: `function_cases`.
            "sync_event" | "sync_file" => continue,
            other => Err(format!("unknown target {other:?}")),
        };
        ran += 1;
        match result {
            Ok(seen) => {
                let outcome = case.expect()["outcome"].as_str().unwrap().to_string();
                *tally.entry((case.class.clone(), outcome)).or_default() += 1;
                assert!(!seen.is_empty() || case.expect()["records"] == json!([]));
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    for ((class, outcome), n) in &tally {
        println!("corpus (library) {class:>12} {outcome:>12}: {n}");
    }
    println!(
        "corpus (library): {ran} cases run, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Function runs: the real binaries on the local stack.

async fn stream_fanout(e: &Env) -> FunctionProcess {
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env(e.resources.function_env())
        .with_env([("DYNABRIDGE_PUBLISH_ENTITIES", "none")])
        .with_timeout(Duration::from_secs(60));
    FunctionProcess::new(spec).await.unwrap()
}

fn outcome_error(outcome: &InvokeOutcome) -> Option<(String, String)> {
    match outcome {
        InvokeOutcome::Error {
            error_type,
            error_message,
        } => Some((error_type.clone(), error_message.clone())),
        _ => None,
    }
}

/// A stream case through stream-fanout: typed errors come back as the invocation's error;
/// quarantined records are in the quarantine file with their kind, the batch succeeds.
async fn stream_case_e2e(
    e: &Env,
    f: &mut FunctionProcess,
    case: &Case,
    shard: &str,
) -> Result<(), String> {
    let payload = stream_payload(case);
    let event = match payload.get("Records").and_then(Value::as_array) {
        Some(records) => windowed_event(records, shard),
        None => payload.clone(),
    };
    let inv = f.invoke(&event).await.map_err(|e| e.to_string())?;
    let expect = case.expect();
    if let Some((t, m)) = outcome_error(&inv.outcome) {
        return check_typed_error(&t, &m, expect);
    }
    let resp = inv
        .outcome
        .response()
        .ok_or_else(|| format!("invocation did not answer: {:?}", inv.outcome))?;
    if expect["outcome"] == "typed_error" {
        return Err(format!("expected a typed error, got {resp}"));
    }
    if resp["batchItemFailures"] != json!([]) {
        return Err(format!("the batch must succeed: {resp}"));
    }
    let want: Vec<&Value> = match expect["records"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![expect; payload["Records"].as_array().map_or(0, Vec::len)],
    };
    let want_kinds: Vec<&str> = want
        .iter()
        .filter(|w| w["outcome"] == "quarantine")
        .map(|w| w["kind"].as_str().unwrap_or("?"))
        .collect();
    let quarantine: Vec<String> = lake_keys(&e.stack, BUCKET, "quarantine/source=stream-fanout")
        .into_iter()
        .filter(|k| k.contains(&format!("-{shard}-")))
        .collect();
    let lines: Vec<Value> = quarantine
        .iter()
        .flat_map(|k| dynabridge_e2e::read_json_lines(&e.stack.lake_root().join(BUCKET).join(k)))
        .collect();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or(""))
        .collect();
    if kinds != want_kinds {
        return Err(format!(
            "quarantine kinds {kinds:?}, expected {want_kinds:?}"
        ));
    }
    if lines.iter().any(|l| l["record"].is_null()) {
        return Err("a quarantine line lost its raw record".into());
    }
    let accepted = want.len() - want_kinds.len();
    let cdc = lake_keys(&e.stack, BUCKET, "cdc/")
        .into_iter()
        .filter(|k| k.contains(&format!("/{shard}-")))
        .count();
    if accepted > 0 && cdc == 0 {
        return Err(format!(
            "{accepted} accepted records but no CDC file for {shard}"
        ));
    }
    Ok(())
}

async fn sync_process(e: &Env) -> FunctionProcess {
    dynabridge_e2e::sync::start(
        e,
        e.stack.aws_env(),
        &[(
            "DYNABRIDGE_SYNC_MAX_OBJECT_BYTES",
            &MAX_OBJECT_BYTES.to_string(),
        )],
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

fn fill_placeholders(v: &Value, bucket: &str) -> Value {
    let text = v.to_string().replace("${bucket}", bucket);
    serde_json::from_str(&text).unwrap()
}

/// A trigger event through incremental-sync.
async fn sync_event_e2e(e: &Env, f: &mut FunctionProcess, case: &Case) -> Result<(), String> {
    let event = fill_placeholders(&case.spec["input"], &e.resources.names.lake_bucket);
    let expect = case.expect();
    let inv = f.invoke(&event).await.map_err(|e| e.to_string())?;
    if let Some((t, m)) = outcome_error(&inv.outcome) {
        return check_typed_error(&t, &m, expect);
    }
    let resp = inv
        .outcome
        .response()
        .ok_or_else(|| format!("invocation did not answer: {:?}", inv.outcome))?;
    match expect["outcome"].as_str().unwrap() {
        "refuse" => {
            let rep = &resp["files"][0];
            if rep["status"] != "refused" {
                return Err(format!("expected refused, got {rep}"));
            }
            equal(rep["reason"].as_str().unwrap_or_default(), expect, "reason")
        }
        "accept" => equal(
            resp["trigger"].as_str().unwrap_or_default(),
            expect,
            "trigger",
        ),
        other => Err(format!("expected {other}, got {resp}")),
    }
}

/// A Parquet case (or an oversize object) uploaded to the inbound folder and synced.
async fn sync_file_e2e(
    e: &Env,
    f: &mut FunctionProcess,
    case: &Case,
    registry: &Registry,
) -> Result<(), String> {
    let sync = &case.spec["sync"];
    let key = sync["key"].as_str().ok_or("sync.key")?;
    let body = generate_parquet(&case.spec, registry);
    let event = upload(e, key, body).await.map_err(|e| e.to_string())?;
    let responses = run_chain(f, &event).await.map_err(|e| e.to_string())?;
    let rep = final_report(&responses, key).ok_or("no report for the file")?;
    equal(rep["status"].as_str().unwrap_or_default(), sync, "status")?;
    contains(
        rep["reason"].as_str().unwrap_or_default(),
        sync,
        "reason_contains",
    )?;
    if let Some(counts) = sync["counts"].as_object() {
        for (k, v) in counts {
            if &rep["counts"][k] != v {
                return Err(format!(
                    "counts.{k}: expected {v}, got {}",
                    rep["counts"][k]
                ));
            }
        }
    }
    if sync["status"] == "rejected" || sync["counts"]["rejected"].as_u64().unwrap_or(0) > 0 {
        // The rejection is in the lake with its reason, not only in the response.
        let stem = key.rsplit('/').next().unwrap().trim_end_matches(".parquet");
        let found = lake_keys(&e.stack, BUCKET, "quarantine/source=incremental-sync")
            .iter()
            .any(|k| k.contains(stem));
        if !found {
            return Err(format!("no rejects/quarantine object for {key}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_cases() {
    let registry = example_registry();
    let e = env(true).await.unwrap();
    let mut fanout = stream_fanout(&e).await;
    let mut sync = sync_process(&e).await;
    let mut failures = Vec::new();
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, case) in cases().iter().enumerate() {
        let shard = format!("shardId-corpus{i:03}");
        let result = match case.target.as_str() {
            "stream" | "item" if case.e2e() => {
                *ran.entry("stream-fanout").or_default() += 1;
                stream_case_e2e(&e, &mut fanout, case, &shard).await
            }
            "raw_payload" => {
                *ran.entry("stream-fanout").or_default() += 1;
                match fanout.invoke_raw(raw_body(case)).await {
                    Ok(inv) => match outcome_error(&inv.outcome) {
                        Some((t, m)) => check_typed_error(&t, &m, &case.spec["e2e_expect"]),
                        None => Err(format!("expected a typed error, got {:?}", inv.outcome)),
                    },
                    Err(err) => Err(err.to_string()),
                }
            }
            "sync_event" => {
                *ran.entry("incremental-sync").or_default() += 1;
                sync_event_e2e(&e, &mut sync, case).await
            }
            "parquet" | "sync_file" if case.spec.get("sync").is_some() => {
                *ran.entry("incremental-sync").or_default() += 1;
                sync_file_e2e(&e, &mut sync, case, &registry).await
            }
            _ => continue,
        };
        if let Err(err) = result {
            failures.push(format!("{}: {err}", case.name));
        }
    }
    println!("corpus (functions): {ran:?}, {} failed", failures.len());
    assert_eq!(fanout.cold_starts(), 1, "stream-fanout never crashed");
    assert_eq!(sync.cold_starts(), 1, "incremental-sync never crashed");
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}
