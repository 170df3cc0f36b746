//! End-to-end tests of `incremental-sync`: the real binary under the Lambda harness, on the
//! local stack (dynoxide, s3s-fs, moto EventBridge + SQS), continuations returned in the
//! response and driven by the test like the async self-invoke would.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as A;
use bytes::Bytes;
use dynabridge_devstack::faults::{Fault, FaultPlan, FaultyEndpoints, Service};
use dynabridge_devstack::provision::drain_queue;
use dynabridge_devstack::sources::schedule::scheduled_event;
use dynabridge_devstack::venv::venv_bin;
use dynabridge_e2e::sync::{
    example_registry, file_reports, final_report, order, orders_file, run_chain, start, upload,
};
use dynabridge_e2e::{Env, env};
use serde_json::{Value, json};

fn s(v: &str) -> A {
    A::S(v.into())
}
fn n(v: &str) -> A {
    A::N(v.into())
}

async fn get(e: &Env, pk: &str, sk: &str) -> Option<HashMap<String, A>> {
    e.stack
        .dynamodb()
        .get_item()
        .table_name(&e.resources.names.table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

async fn count_items(e: &Env, prefix: &str) -> usize {
    let mut count = 0;
    let mut start = None;
    loop {
        let out = e
            .stack
            .dynamodb()
            .scan()
            .table_name(&e.resources.names.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        count += out
            .items()
            .iter()
            .filter(|i| matches!(i.get("pk"), Some(A::S(p)) if p.starts_with(prefix)))
            .count();
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return count;
        }
    }
}

/// Stream records per key (INSERT/MODIFY/REMOVE) — how many times each item was written.
async fn stream_writes(e: &Env) -> BTreeMap<String, Vec<String>> {
    let streams = e.stack.dynamodb_streams();
    let desc = streams
        .describe_stream()
        .stream_arn(&e.resources.stream_arn)
        .send()
        .await
        .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let shards = desc
        .stream_description()
        .map(|d| d.shards().to_vec())
        .unwrap_or_default();
    for shard in shards {
        let mut iter = streams
            .get_shard_iterator()
            .stream_arn(&e.resources.stream_arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .clone();
        while let Some(it) = iter {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let rec = r.dynamodb().unwrap();
                let pk = match rec.keys().and_then(|k| k.get("pk")) {
                    Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(p)) => p.clone(),
                    _ => continue,
                };
                out.entry(pk)
                    .or_default()
                    .push(r.event_name().unwrap().as_str().to_string());
            }
            iter = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

async fn sync_completed_events(e: &Env) -> Vec<Value> {
    let sqs = e.stack.sqs().unwrap();
    let url = e.resources.events_queue_url.as_ref().unwrap();
    drain_queue(&sqs, url, Duration::from_secs(2))
        .await
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|v| v["detail-type"] == "Sync Completed")
        .collect()
}

fn lake_files(e: &Env, under: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &e.stack
            .lake_root()
            .join(&e.resources.names.lake_bucket)
            .join(under),
        &mut out,
    );
    out.sort();
    out
}

fn spark_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dynabridge-spark-{}", std::process::id()));
        let python = venv_bin("python").expect("project venv: run scripts/bootstrap");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/spark_inbound.py");
        let out = Command::new(python)
            .arg(script)
            .arg(&dir)
            .output()
            .expect("run spark_inbound.py");
        assert!(
            out.status.success(),
            "pyspark could not write the inbound files (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_by_pyspark_lands_in_dynamodb_with_exact_values() {
    let spark = spark_dir();
    let e = env(true).await.unwrap();
    // ORDER#3 exists and the file deletes it (`_op = DELETE`).
    e.stack
        .dynamodb()
        .put_item()
        .table_name(&e.resources.names.table)
        .item("pk", s("ORDER#3"))
        .item("sk", s("ORDER"))
        .send()
        .await
        .unwrap();
    let mut f = start(&e, e.stack.aws_env(), &[], Duration::from_secs(60))
        .await
        .unwrap();

    let mut events = Vec::new();
    for (folder, entity) in [("customers", "Customer"), ("orders", "Order")] {
        for entry in std::fs::read_dir(spark.join(folder)).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let key = format!("inbound/{entity}/{name}");
            let body = Bytes::from(std::fs::read(&p).unwrap());
            events.push((name, upload(&e, &key, body).await.unwrap()));
        }
    }
    let mut statuses = BTreeMap::new();
    for (name, ev) in &events {
        let responses = run_chain(&mut f, ev).await.unwrap();
        let reports = file_reports(&responses);
        assert_eq!(reports.len(), 1, "{responses:?}");
        statuses.insert(name.clone(), reports[0].clone());
    }
    // Spark's markers and checksums are refused without being read; the part files synced.
    for (name, report) in &statuses {
        if name.ends_with(".parquet") && !name.starts_with('.') {
            assert_eq!(report["status"], "completed", "{name}: {report}");
            assert_eq!(report["counts"]["rejected"], 0, "{report}");
            assert_eq!(report["counts"]["failed"], 0, "{report}");
        } else {
            assert_eq!(report["status"], "refused", "{name}: {report}");
            assert_eq!(report["reason"], "Hidden", "{name}: {report}");
        }
    }

    let c1 = get(&e, "CUSTOMER#1", "PROFILE").await.unwrap();
    let expected_c1 = HashMap::from([
        ("pk".to_string(), s("CUSTOMER#1")),
        ("sk".to_string(), s("PROFILE")),
        ("entity_type".to_string(), s("Customer")),
        ("schema_version".to_string(), n("2")),
        ("email".to_string(), s("ada@example.com")),
        ("full_name".to_string(), s("Ada Lovelace")),
        ("created_at".to_string(), s("2026-11-21T10:15:00.123456Z")),
        ("tags".to_string(), A::Ss(vec!["vip".into(), "eu".into()])),
        ("loyalty_points".to_string(), n("12345678901234567890")),
        (
            "prefs".to_string(),
            A::M(HashMap::from([
                ("lang".to_string(), s("en")),
                ("theme".to_string(), s("dark")),
            ])),
        ),
        (
            "address".to_string(),
            A::M(HashMap::from([
                ("street".to_string(), s("1 Main St")),
                ("city".to_string(), s("Paris")),
                ("zip".to_string(), s("75001")),
                (
                    "geo".to_string(),
                    A::M(HashMap::from([
                        ("lat".to_string(), n("48.856613")),
                        ("lon".to_string(), n("-2.352222")),
                    ])),
                ),
            ])),
        ),
        ("tier".to_string(), s("gold")),
        (
            "avatar".to_string(),
            A::B(aws_smithy_types_blob(&[0xCA, 0xFE])),
        ),
        ("birthday".to_string(), s("1990-02-03")),
    ]);
    assert_same(&expected_c1, &c1);

    let c2 = get(&e, "CUSTOMER#2", "PROFILE").await.unwrap();
    let expected_c2 = HashMap::from([
        ("pk".to_string(), s("CUSTOMER#2")),
        ("sk".to_string(), s("PROFILE")),
        ("entity_type".to_string(), s("Customer")),
        ("schema_version".to_string(), n("2")),
        ("email".to_string(), s("bo@example.com")),
        // INT96 before 1970 (and before the Julian/Gregorian switch Spark handles) is exact.
        ("created_at".to_string(), s("1900-01-01T00:00:00Z")),
        (
            "address".to_string(),
            A::M(HashMap::from([("city".to_string(), s("Oslo"))])),
        ),
        ("tier".to_string(), s("basic")),
    ]);
    assert_same(&expected_c2, &c2);

    let o1 = get(&e, "ORDER#1", "ORDER").await.unwrap();
    let expected_o1 = HashMap::from([
        ("pk".to_string(), s("ORDER#1")),
        ("sk".to_string(), s("ORDER")),
        ("schema_version".to_string(), n("2")),
        ("customer_id".to_string(), s("CUSTOMER#1")),
        ("total".to_string(), n("12345.67")),
        ("placed_at".to_string(), n("1795256100123")),
        ("currency".to_string(), s("EUR")),
        (
            "weights".to_string(),
            A::Ns(vec!["1.5".into(), "0.25".into()]),
        ),
        ("discount".to_string(), n("0.1")),
        (
            "ref_number".to_string(),
            n("123456789012345678901234567890"),
        ),
        ("gift".to_string(), A::Bool(true)),
        ("expires_at".to_string(), n("1798761600")),
        ("shipped_on".to_string(), s("2026-11-22")),
        ("status".to_string(), s("NEW")),
    ]);
    assert_same(&expected_o1, &o1);
    let o2 = get(&e, "ORDER#2", "ORDER").await.unwrap();
    assert_eq!(o2["total"], n("-0.01"));
    assert_eq!(o2["placed_at"], n("16725225600000"), "year 2500 survives");
    assert_eq!(o2["gift"], A::Bool(false));
    assert!(get(&e, "ORDER#3", "ORDER").await.is_none(), "DELETE row");

    let orders = statuses
        .iter()
        .find(|(k, v)| {
            k.ends_with(".parquet")
                && !k.starts_with('.')
                && v["key"].as_str().unwrap().contains("Order")
        })
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(orders["counts"]["written"], 2, "{orders}");
    assert_eq!(orders["counts"]["deleted"], 1, "{orders}");

    let done = sync_completed_events(&e).await;
    assert_eq!(done.len(), 2, "{done:?}");
    let od = done
        .iter()
        .find(|d| d["detail"]["entity"] == "Order")
        .unwrap();
    assert_eq!(od["source"], "dynabridge.dynabridge-app");
    for k in [
        "written",
        "skipped_stale",
        "deleted",
        "rejected",
        "duration_ms",
    ] {
        assert!(od["detail"][k].is_number(), "{k}: {od}");
    }
    assert_eq!(od["detail"]["deleted"], 1);
    assert_eq!(f.cold_starts(), 1, "no crash");
    // Item values never appear in the function's logs at INFO.
    let logs = f.logs().join("\n");
    assert!(!logs.contains("ada@example.com"), "attribute value logged");
}

fn aws_smithy_types_blob(b: &[u8]) -> aws_sdk_dynamodb::primitives::Blob {
    aws_sdk_dynamodb::primitives::Blob::new(b.to_vec())
}

fn assert_same(expected: &HashMap<String, A>, actual: &HashMap<String, A>) {
    let mut keys: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (expected.get(k), actual.get(k)) {
            (Some(A::Ss(a)), Some(A::Ss(b))) | (Some(A::Ns(a)), Some(A::Ns(b))) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort();
                b.sort();
                assert_eq!(a, b, "attribute {k}");
            }
            (a, b) => assert_eq!(a, b, "attribute {k}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_mode_never_overwrites_a_newer_item() {
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let table = &e.resources.names.table;
    let ddb = e.stack.dynamodb();
    // Items 0..50 are already newer than the file's rows.
    for i in 0..50 {
        let mut it = order(i, 2_000, "99.99");
        it.insert(
            "status".into(),
            serde_dynamo::AttributeValue::S("newer".into()),
        );
        ddb.put_item()
            .table_name(table)
            .set_item(Some(dynabridge_shared::codec::to_sdk_item(it)))
            .send()
            .await
            .unwrap();
    }
    // The file: 300 rows at placed_at 1000, plus row 300 repeating key 5 with an older
    // version (stale within the file) and row 301 repeating key 60 with a newer one.
    let mut items: Vec<_> = (0..300).map(|i| order(i, 1_000, "10.00")).collect();
    items.push(order(5, 500, "5.00"));
    items.push(order(60, 1_500, "15.00"));
    let body = orders_file(&registry, &items, 40, &[]).unwrap();
    let ev = upload(&e, "inbound/Order/guarded.parquet", body)
        .await
        .unwrap();
    let mut f = start(
        &e,
        e.stack.aws_env(),
        &[
            ("DYNABRIDGE_SYNC_MODE", "guarded"),
            ("DYNABRIDGE_SYNC_GUARD_ATTRIBUTE", "placed_at"),
            ("DYNABRIDGE_SYNC_BATCH_ROWS", "20"),
            ("DYNABRIDGE_SYNC_DEADLINE_MARGIN_MS", "2500"),
        ],
        Duration::from_secs(3),
    )
    .await
    .unwrap();

    // Drive the chain by hand, writing newer versions between hops (interleaved writes).
    let mut next = Some(ev);
    let mut hops = 0;
    let mut interleaved = Vec::new();
    let mut responses = Vec::new();
    while let Some(event) = next.take() {
        let out = f.invoke(&event).await.unwrap();
        let resp = out
            .outcome
            .response()
            .cloned()
            .unwrap_or_else(|| panic!("{out:?}"));
        next = resp.get("continuation").filter(|c| !c.is_null()).cloned();
        responses.push(resp);
        hops += 1;
        // Newer writes land for keys the file has not reached yet (and some it has).
        for i in [100 + hops * 7, 250 + hops, 10 + hops] {
            if i < 300 && !interleaved.contains(&i) {
                let mut it = order(i, 3_000, "77.77");
                it.insert(
                    "status".into(),
                    serde_dynamo::AttributeValue::S("interleaved".into()),
                );
                ddb.put_item()
                    .table_name(table)
                    .set_item(Some(dynabridge_shared::codec::to_sdk_item(it)))
                    .send()
                    .await
                    .unwrap();
                interleaved.push(i);
            }
        }
    }
    assert!(hops >= 2, "the file should need continuations, took {hops}");
    let report = final_report(&responses, "inbound/Order/guarded.parquet").unwrap();
    assert_eq!(report["status"], "completed", "{report}");
    let c = &report["counts"];
    assert_eq!(c["rows_read"], 302);
    assert_eq!(c["failed"], 0);
    assert_eq!(c["rejected"], 0);
    for i in 0..300usize {
        let it = get(&e, &format!("ORDER#{i:06}"), "ORDER").await.unwrap();
        let placed = match &it["placed_at"] {
            A::N(v) => v.parse::<u64>().unwrap(),
            other => panic!("{other:?}"),
        };
        if i < 50 {
            assert!(
                placed >= 2_000,
                "key {i} was pre-existing and newer: {it:?}"
            );
        } else if i == 60 {
            assert_eq!(placed, 1_500, "newest row of the file wins within a batch");
        } else if interleaved.contains(&i) {
            assert_eq!(
                placed, 3_000,
                "key {i}: a newer interleaved write was overwritten"
            );
        } else {
            assert_eq!(placed, 1_000, "key {i}");
        }
    }
    let skipped = c["skipped_stale"].as_u64().unwrap();
    let written = c["written"].as_u64().unwrap();
    assert_eq!(skipped + written, 302, "{c}");
    assert!(
        skipped >= 52,
        "50 pre-existing + 2 stale within the file: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_events_and_the_catch_up_schedule_apply_each_file_once() {
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let a: Vec<_> = (0..30).map(|i| order(i, 1_000, "1.00")).collect();
    let b: Vec<_> = (100..120).map(|i| order(i, 1_000, "2.00")).collect();
    let ev_a = upload(
        &e,
        "inbound/Order/a.parquet",
        orders_file(&registry, &a, 100, &[]).unwrap(),
    )
    .await
    .unwrap();
    // b's event is "lost": only the catch-up schedule can find it.
    upload(
        &e,
        "inbound/Order/b.parquet",
        orders_file(&registry, &b, 100, &[]).unwrap(),
    )
    .await
    .unwrap();
    let mut f = start(&e, e.stack.aws_env(), &[], Duration::from_secs(60))
        .await
        .unwrap();

    let r1 = run_chain(&mut f, &ev_a).await.unwrap();
    assert_eq!(
        final_report(&r1, "inbound/Order/a.parquet").unwrap()["status"],
        "completed"
    );
    // A change made after the sync must survive every duplicate.
    e.stack
        .dynamodb()
        .update_item()
        .table_name(&e.resources.names.table)
        .key("pk", s("ORDER#000003"))
        .key("sk", s("ORDER"))
        .update_expression("SET #s = :v")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":v", s("changed-later"))
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let r = run_chain(&mut f, &ev_a).await.unwrap();
        assert_eq!(
            final_report(&r, "inbound/Order/a.parquet").unwrap()["status"],
            "duplicate"
        );
    }
    let tick = scheduled_event("dynabridge-sync-catch-up", chrono::Utc::now(), None);
    let r = run_chain(&mut f, &tick).await.unwrap();
    let reports = file_reports(&r);
    assert_eq!(reports.len(), 1, "only b is new: {r:?}");
    assert_eq!(reports[0]["key"], "inbound/Order/b.parquet");
    assert_eq!(reports[0]["status"], "completed");
    assert_eq!(r[0]["skipped"]["already_synced"], 1);
    let r = run_chain(&mut f, &tick).await.unwrap();
    assert!(file_reports(&r).is_empty(), "{r:?}");
    assert_eq!(r[0]["skipped"]["already_synced"], 2);
    assert_eq!(
        get(&e, "ORDER#000003", "ORDER").await.unwrap()["status"],
        s("changed-later")
    );
    assert_eq!(count_items(&e, "ORDER#").await, 50);
    // Each item was written exactly once.
    let writes = stream_writes(&e).await;
    assert!(
        writes
            .values()
            .all(|w| w.iter().filter(|x| *x == "INSERT").count() == 1)
    );

    // A changed file (new ETag) is a new version and is applied again.
    let a2: Vec<_> = (0..30).map(|i| order(i, 2_000, "3.00")).collect();
    let ev_a2 = upload(
        &e,
        "inbound/Order/a.parquet",
        orders_file(&registry, &a2, 100, &[]).unwrap(),
    )
    .await
    .unwrap();
    assert_ne!(
        ev_a2["detail"]["object"]["etag"],
        ev_a["detail"]["object"]["etag"]
    );
    let r = run_chain(&mut f, &ev_a2).await.unwrap();
    let rep = final_report(&r, "inbound/Order/a.parquet").unwrap();
    assert_eq!(rep["status"], "completed");
    assert_eq!(rep["counts"]["written"], 30);
    assert_eq!(
        get(&e, "ORDER#000003", "ORDER").await.unwrap()["total"],
        n("3")
    );
    // The old event (old ETag) names a version that no longer exists.
    let r = run_chain(&mut f, &ev_a).await.unwrap();
    assert_eq!(
        final_report(&r, "inbound/Order/a.parquet").unwrap()["status"],
        "duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_one_invocation_completes_across_continuations_exactly_once() {
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let rows = 3_000;
    let items: Vec<_> = (0..rows)
        .map(|i| order(i, 1_000 + i as u64, "4.20"))
        .collect();
    let body = orders_file(&registry, &items, 450, &[]).unwrap();
    let ev = upload(&e, "inbound/Order/large.parquet", body)
        .await
        .unwrap();
    let mut f = start(
        &e,
        e.stack.aws_env(),
        &[
            ("DYNABRIDGE_SYNC_BATCH_ROWS", "100"),
            ("DYNABRIDGE_SYNC_DEADLINE_MARGIN_MS", "3500"),
            // A slow table: the ceiling makes each invocation cover only part of the file.
            ("DYNABRIDGE_SYNC_MAX_WRITE_UNITS_PER_SECOND", "1000"),
        ],
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let responses = run_chain(&mut f, &ev).await.unwrap();
    assert!(
        responses.len() >= 3,
        "expected several invocations, got {}",
        responses.len()
    );
    let report = final_report(&responses, "inbound/Order/large.parquet").unwrap();
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["counts"]["rows_read"], rows);
    assert_eq!(report["counts"]["written"], rows);
    assert_eq!(f.cold_starts(), 1, "no invocation timed out or crashed");
    assert_eq!(count_items(&e, "ORDER#").await, rows);
    let writes = stream_writes(&e).await;
    assert_eq!(writes.len(), rows);
    for (pk, w) in &writes {
        assert_eq!(w, &["INSERT"], "{pk} written {w:?}");
    }
    let done = sync_completed_events(&e).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["detail"]["written"], rows);
    assert_eq!(done[0]["detail"]["invocations"], responses.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_throttling_and_unprocessed_items_every_row_is_written_or_reported() {
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let rows = 600;
    let items: Vec<_> = (0..rows).map(|i| order(i, 1_000, "7.00")).collect();
    let body = orders_file(&registry, &items, 200, &[7, 8]).unwrap();
    let ev = upload(&e, "inbound/Order/faulty.parquet", body)
        .await
        .unwrap();
    let plan = FaultPlan::new(7)
        .on(Service::DynamoDb, "BatchWriteItem", Fault::Throttle, 0.3)
        .on(
            Service::DynamoDb,
            "BatchWriteItem",
            Fault::PartialBatch,
            0.5,
        );
    let faulty = FaultyEndpoints::start(&e.stack, plan).unwrap();
    // Only DynamoDB goes through the fault proxy.
    let aws_env: Vec<(String, String)> = e
        .stack
        .aws_env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_ENDPOINT_URL_DYNAMODB" => (k, faulty.dynamodb_proxy().endpoint()),
            _ => (k, v),
        })
        .collect();
    let mut f = start(
        &e,
        aws_env,
        &[("DYNABRIDGE_SYNC_BATCH_ROWS", "200")],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let responses = run_chain(&mut f, &ev).await.unwrap();
    let report = final_report(&responses, "inbound/Order/faulty.parquet").unwrap();
    assert_eq!(report["status"], "completed", "{report}");
    let c = &report["counts"];
    let stats = faulty.stats();
    assert!(
        stats.injected(
            Service::DynamoDb,
            "BatchWriteItem",
            dynabridge_devstack::faults::FaultKind::Throttle
        ) > 0
    );
    assert!(
        stats.injected(
            Service::DynamoDb,
            "BatchWriteItem",
            dynabridge_devstack::faults::FaultKind::PartialBatch
        ) > 0
    );
    let written = c["written"].as_u64().unwrap();
    let deleted = c["deleted"].as_u64().unwrap();
    let failed = c["failed"].as_u64().unwrap();
    assert_eq!(written + deleted + failed, rows as u64, "{c}");
    let present = count_items(&e, "ORDER#").await as u64;
    // Deletes of never-written keys leave nothing; every put either landed or was reported.
    assert_eq!(present, written, "{c}");
    if failed > 0 {
        let rejects = lake_files(&e, "quarantine/source=incremental-sync");
        assert!(!rejects.is_empty(), "failed rows must be in a rejects file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_rejected_and_never_a_panic() {
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let mut f = start(
        &e,
        e.stack.aws_env(),
        &[("DYNABRIDGE_SYNC_MAX_OBJECT_BYTES", "30000")],
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    let good: Vec<_> = (0..5).map(|i| order(i, 1_000, "1.00")).collect();
    let good_body = orders_file(&registry, &good, 100, &[]).unwrap();
    // Foreign bucket, traversal key: refused from the event alone.
    let mut foreign = upload(&e, "inbound/Order/ok.parquet", good_body.clone())
        .await
        .unwrap();
    foreign["detail"]["bucket"]["name"] = json!("someone-elses-bucket");
    let mut traversal = foreign.clone();
    traversal["detail"]["bucket"]["name"] = json!(e.resources.names.lake_bucket);
    traversal["detail"]["object"]["key"] = json!("inbound/../cdc/secret.parquet");
    // Oversize.
    let big: Vec<_> = (0..6000).map(|i| order(i, 1_000, "1.00")).collect();
    let oversize = upload(
        &e,
        "inbound/Order/big.parquet",
        orders_file(&registry, &big, 10_000, &[]).unwrap(),
    )
    .await
    .unwrap();
    assert!(oversize["detail"]["object"]["size"].as_u64().unwrap() > 30_000);
    for (ev, reason) in [
        (&foreign, "ForeignBucket"),
        (&traversal, "Traversal"),
        (&oversize, "Oversize"),
    ] {
        let r = run_chain(&mut f, ev).await.unwrap();
        let rep = &file_reports(&r)[0];
        assert_eq!(rep["status"], "refused", "{rep}");
        assert_eq!(rep["reason"], reason, "{rep}");
    }
    // Corrupt Parquet: a quarantine record with the reason.
    let corrupt = upload(
        &e,
        "inbound/Order/corrupt.parquet",
        Bytes::from_static(b"PAR1 this is not really parquet at all PAR1"),
    )
    .await
    .unwrap();
    let r = run_chain(&mut f, &corrupt).await.unwrap();
    let rep = &file_reports(&r)[0];
    assert_eq!(rep["status"], "rejected", "{rep}");
    assert!(
        rep["reason"]
            .as_str()
            .unwrap()
            .starts_with("CorruptParquet"),
        "{rep}"
    );
    // Wrong schema: Customer rows in the Order folder.
    let customers = {
        use dynabridge_shared::codec::{BatchEncoder, Op, RowMeta};
        let entity = registry.entity("Customer").unwrap();
        let mut enc = BatchEncoder::new(entity);
        let it = serde_dynamo::Item::from(HashMap::from([
            (
                "pk".to_string(),
                serde_dynamo::AttributeValue::S("CUSTOMER#9".into()),
            ),
            (
                "sk".to_string(),
                serde_dynamo::AttributeValue::S("PROFILE".into()),
            ),
            (
                "entity_type".to_string(),
                serde_dynamo::AttributeValue::S("Customer".into()),
            ),
            (
                "schema_version".to_string(),
                serde_dynamo::AttributeValue::N("2".into()),
            ),
            (
                "email".to_string(),
                serde_dynamo::AttributeValue::S("x@example.com".into()),
            ),
            (
                "created_at".to_string(),
                serde_dynamo::AttributeValue::S("2026-01-01T00:00:00Z".into()),
            ),
            (
                "tier".to_string(),
                serde_dynamo::AttributeValue::S("basic".into()),
            ),
        ]))
        .into_inner();
        enc.append(
            &it,
            &RowMeta {
                op: Op::Snapshot,
                seq: "1",
                event_time_micros: 0,
            },
        )
        .unwrap();
        let batch = enc.finish().unwrap();
        dynabridge_shared::lake::write_parquet(
            enc.schema(),
            &[batch],
            dynabridge_shared::lake::writer_properties(
                &Default::default(),
                &dynabridge_shared::lake::FileMeta::for_entity(&registry, entity),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let wrong = upload(&e, "inbound/Order/wrong-schema.parquet", customers)
        .await
        .unwrap();
    let r = run_chain(&mut f, &wrong).await.unwrap();
    let rep = &file_reports(&r)[0];
    assert_eq!(rep["status"], "rejected", "{rep}");
    assert!(
        rep["reason"].as_str().unwrap().starts_with("WrongSchema"),
        "{rep}"
    );
    // `_op = DELETE` rows need only their key.
    let ops_bad = {
        let items: Vec<_> = (20..30).map(|i| order(i, 1_000, "1.00")).collect();
        orders_file(&registry, &items, 100, &[2, 3]).unwrap()
    };
    let ev_ops = upload(&e, "inbound/Order/ops.parquet", ops_bad)
        .await
        .unwrap();
    let r = run_chain(&mut f, &ev_ops).await.unwrap();
    let rep = &file_reports(&r)[0];
    assert_eq!(rep["counts"]["deleted"], 2, "{rep}");
    // A row with a bad value (wrong `_entity`) is rejected into the lake with its reason.
    let bad_entity = {
        let items: Vec<_> = (40..45).map(|i| order(i, 1_000, "1.00")).collect();
        let body = orders_file(&registry, &items, 100, &[]).unwrap();
        let batches = dynabridge_shared::lake::read_parquet(body).unwrap();
        let batch = &batches[0];
        let idx = batch.schema().index_of("_entity").unwrap();
        let mut cols = batch.columns().to_vec();
        cols[idx] = std::sync::Arc::new(arrow::array::StringArray::from(vec![
            "Order", "Order", "Customer", "Order", "Order",
        ]));
        let batch = arrow::array::RecordBatch::try_new(batch.schema(), cols).unwrap();
        dynabridge_shared::lake::write_parquet(
            &batch.schema(),
            &[batch],
            parquet::file::properties::WriterProperties::builder().build(),
        )
        .unwrap()
    };
    let ev_bad = upload(&e, "inbound/Order/bad-entity.parquet", bad_entity)
        .await
        .unwrap();
    let r = run_chain(&mut f, &ev_bad).await.unwrap();
    let rep = &file_reports(&r)[0];
    assert_eq!(rep["status"], "completed", "{rep}");
    assert_eq!(rep["counts"]["written"], 4, "{rep}");
    assert_eq!(rep["counts"]["rejected"], 1, "{rep}");
    let rejects: Vec<_> = lake_files(&e, "quarantine/source=incremental-sync")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("bad-entity"))
        .collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let batches =
        dynabridge_shared::lake::read_parquet(Bytes::from(std::fs::read(&rejects[0]).unwrap()))
            .unwrap();
    let reason = batches[0]
        .column_by_name("_reject_reason")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .value(0)
        .to_string();
    assert!(reason.contains("_entity"), "{reason}");
    let quarantined = lake_files(&e, "quarantine/source=incremental-sync");
    assert!(
        quarantined
            .iter()
            .any(|p| p.to_string_lossy().contains("corrupt"))
    );
    assert!(
        quarantined
            .iter()
            .any(|p| p.to_string_lossy().contains("wrong-schema"))
    );

    // A malformed event is a typed error, not a crash.
    let out = f.invoke(&json!({"hello": "world"})).await.unwrap();
    match out.outcome {
        dynabridge_devstack::InvokeOutcome::Error { error_type, .. } => {
            assert_eq!(error_type, "InvalidEvent")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.cold_starts(), 1, "the process never crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_events_are_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/incremental-sync");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "catch-up-schedule.json",
            "continuation.json",
            "object-created.json"
        ]
    );
    let read = |n: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(n)).unwrap()).unwrap()
    };
    let e = env(true).await.unwrap();
    let registry = example_registry().unwrap();
    let mut f = start(&e, e.stack.aws_env(), &[], Duration::from_secs(60))
        .await
        .unwrap();
    // The sample S3 event names inbound/Order/part-00000.parquet; upload such a file and
    // send the sample with its real ETag and size.
    let items: Vec<_> = (0..3).map(|i| order(i, 1_000, "1.00")).collect();
    let real = upload(
        &e,
        "inbound/Order/part-00000.parquet",
        orders_file(&registry, &items, 100, &[]).unwrap(),
    )
    .await
    .unwrap();
    let mut sample = read("object-created.json");
    sample["detail"]["object"]["etag"] = real["detail"]["object"]["etag"].clone();
    sample["detail"]["object"]["size"] = real["detail"]["object"]["size"].clone();
    let r = run_chain(&mut f, &sample).await.unwrap();
    assert_eq!(file_reports(&r)[0]["status"], "completed", "{r:?}");
    let r = run_chain(&mut f, &read("catch-up-schedule.json"))
        .await
        .unwrap();
    assert_eq!(r[0]["trigger"], "catch_up");
    assert_eq!(r[0]["skipped"]["already_synced"], 1, "{r:?}");
    // The sample continuation carries a claim this stack never issued: it is refused as
    // lost, nothing is applied.
    let r = run_chain(&mut f, &read("continuation.json")).await.unwrap();
    assert_eq!(file_reports(&r)[0]["status"], "lease_lost", "{r:?}");
}
