//! End-to-end tests of `aged-export`: the real binary through the Lambda harness on the local
//! stack, with its segments fanned out through the async-invocation driver.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as SdkValue;
use chrono::{DateTime, SubsecRound, Utc};
use dynabridge_devstack::provision::{self, ResourceNames, Resources};
use dynabridge_devstack::sample::{self, Item, Rng, SampleSpec};
use dynabridge_devstack::sources::async_invoke::{AsyncInvoker, Delivery};
use dynabridge_devstack::sources::schedule::scheduled_event;
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome, LocalStack};
use dynabridge_shared::codec::{BatchDecoder, BatchEncoder, Op, RowMeta, from_sdk_item};
use dynabridge_shared::lake::read_parquet;
use dynabridge_shared::schema::{Attributes, Registry};
use serde_dynamo::AttributeValue;
use serde_json::{Value, json};

const AGE_DAYS: i64 = 365;
const RULE: &str = "dynabridge-aged-export";

fn registry() -> Registry {
    Registry::from_path(provision::example_registry_path()).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// The sample data plus two items the schema refuses (both aged): an Order whose `total` is a
/// string, and an item no entity matches.
fn dataset(customers: usize, now: DateTime<Utc>) -> Vec<Item> {
    let mut items = sample::generate(&SampleSpec {
        customers,
        sessions: 10,
        seed: 7,
        now,
    });
    let old = (now - chrono::Duration::days(800)).timestamp_millis();
    let s = |v: &str| SdkValue::S(v.into());
    items.push(HashMap::from([
        ("pk".into(), s("ORDER#BAD")),
        ("sk".into(), s("ORDER")),
        ("customer_id".into(), s("CUSTOMER#00001")),
        ("total".into(), s("not a number")),
        ("placed_at".into(), SdkValue::N(old.to_string())),
    ]));
    items.push(HashMap::from([
        ("pk".into(), s("MISC#1")),
        ("sk".into(), s("X")),
        (
            "created_at".into(),
            s(&(now - chrono::Duration::days(900)).to_rfc3339()),
        ),
    ]));
    items
}

fn key_text(item: &Attributes) -> String {
    let get = |k: &str| match item.get(k) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => format!("{other:?}"),
    };
    format!("{}|{}", get("pk"), get("sk"))
}

/// Whether the sample item is aged (the test's own reading of the age rules).
fn is_aged(item: &Attributes, now: DateTime<Utc>) -> bool {
    let cutoff = now - chrono::Duration::days(AGE_DAYS);
    let pk = key_text(item);
    if pk.starts_with("ORDER#") {
        return matches!(item.get("placed_at"), Some(AttributeValue::N(ms))
            if ms.parse::<i64>().unwrap() < cutoff.timestamp_millis());
    }
    matches!(item.get("created_at"), Some(AttributeValue::S(t))
        if DateTime::parse_from_rfc3339(t).unwrap() < cutoff)
}

fn is_valid(item: &Attributes) -> bool {
    let k = key_text(item);
    !(k.starts_with("ORDER#BAD") || k.starts_with("MISC#"))
}

fn function_env(
    stack: &LocalStack,
    resources: &Resources,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = stack.aws_env();
    env.extend(resources.function_env());
    env.extend(
        [
            ("DYNABRIDGE_EXPORT_DISPATCH", "response"),
            ("DYNABRIDGE_EXPORT_AGE_DAYS", "365"),
            ("DYNABRIDGE_EXPORT_AGE_ATTRIBUTES", "Order=placed_at"),
            ("DYNABRIDGE_EXPORT_SEGMENTS", "2"),
            ("DYNABRIDGE_EXPORT_PAGE_LIMIT", "7"),
            ("DYNABRIDGE_EXPORT_PART_MAX_ITEMS", "10"),
            ("DYNABRIDGE_EXPORT_DEADLINE_RESERVE_MS", "500"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn functions(env: &[(String, String)], n: usize, timeout: Duration) -> Vec<FunctionProcess> {
    let mut out = Vec::new();
    for _ in 0..n {
        let spec = FunctionSpec::workspace("aged-export")
            .unwrap()
            .with_env(env.iter().cloned())
            .with_timeout(timeout);
        out.push(FunctionProcess::new(spec).await.unwrap());
    }
    out
}

/// Every file under `dir` (recursively) whose path contains `needle`.
fn files_under(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(needle) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One archive row: the item, and its `_op`, `_seq`, `_event_time`.
struct Row {
    entity: String,
    item: Attributes,
    op: Option<Op>,
    seq: Option<String>,
    event_time: Option<i64>,
}

/// Reads every archive Parquet file back with the shared reader and decoder.
fn archive_rows(lake: &Path, registry: &Registry) -> Vec<Row> {
    let mut rows = Vec::new();
    for path in files_under(&lake.join("archive"), ".parquet") {
        let entity = path
            .components()
            .find_map(|c| {
                c.as_os_str()
                    .to_str()?
                    .strip_prefix("entity=")
                    .map(str::to_string)
            })
            .unwrap();
        let decoder = BatchDecoder::new(registry.entity(&entity).unwrap());
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        for batch in read_parquet(bytes).unwrap() {
            for row in decoder.decode(&batch) {
                let row = row.unwrap();
                rows.push(Row {
                    entity: entity.clone(),
                    item: row.item,
                    op: row.op,
                    seq: row.seq,
                    event_time: row.event_time_micros,
                });
            }
        }
    }
    rows
}

/// Canonical (lake) form of an item: one encoded row, so values compare exactly by meaning.
fn canonical(registry: &Registry, entity: &str, item: &Attributes) -> arrow::array::RecordBatch {
    let mut enc = BatchEncoder::new(registry.entity(entity).unwrap());
    enc.append(
        item,
        &RowMeta {
            op: Op::Snapshot,
            seq: "0",
            event_time_micros: 0,
        },
    )
    .unwrap();
    enc.finish().unwrap()
}

async fn scan_all(ddb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<String, Attributes> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let item = from_sdk_item(item.clone());
            out.insert(key_text(&item), item);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

fn responses(deliveries: &[Delivery]) -> Vec<&Value> {
    deliveries
        .iter()
        .filter_map(|d| d.outcome.response())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_exactly_the_aged_items_then_sets_their_ttl_once_per_tick() {
    let e = dynabridge_e2e::env(true).await.unwrap();
    let registry = registry();
    let now = now();
    let items = dataset(40, now);
    sample::load(&e.stack.dynamodb(), &e.resources.names.table, &items)
        .await
        .unwrap();
    let env = function_env(
        &e.stack,
        &e.resources,
        &[
            ("DYNABRIDGE_EXPORT_ACTION", "ttl"),
            ("DYNABRIDGE_EXPORT_GRACE_DAYS", "7"),
        ],
    );
    let mut fns = functions(&env, 2, Duration::from_secs(30)).await;
    // As stored (DynamoDB normalises numbers, e.g. `15.60` → `15.6`).
    let originals = scan_all(&e.stack.dynamodb(), &e.resources.names.table).await;
    let tick = scheduled_event(RULE, now, None);
    let deliveries = AsyncInvoker::default()
        .drain(&mut fns, vec![tick.clone()])
        .await
        .unwrap();
    assert!(
        deliveries.iter().all(|d| !d.outcome.is_function_error()),
        "{deliveries:#?}"
    );
    let rs = responses(&deliveries);
    assert_eq!(rs[0]["status"], "started", "{rs:?}");
    assert!(rs.iter().any(|r| r["status"] == "completed"), "{rs:?}");
    let run_id = rs[0]["run_id"].as_str().unwrap().to_string();

    // Rows in archive/ equal the aged, valid items exactly.
    let lake = e.stack.lake_root().join(&e.resources.names.lake_bucket);
    let rows = archive_rows(&lake, &registry);
    let expected: BTreeMap<&String, &Attributes> = originals
        .iter()
        .filter(|(_, i)| is_aged(i, now) && is_valid(i))
        .collect();
    assert!(expected.len() > 20, "dataset has aged items");
    let mut got: BTreeMap<String, &Row> = BTreeMap::new();
    for row in &rows {
        assert!(
            got.insert(key_text(&row.item), row).is_none(),
            "duplicate row {}",
            key_text(&row.item)
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().copied().collect::<Vec<_>>()
    );
    let snapshot = now.timestamp_micros();
    for (key, original) in &expected {
        let row = got[*key];
        let (a, b) = (
            canonical(&registry, &row.entity, &row.item),
            canonical(&registry, &row.entity, original),
        );
        for (i, f) in a.schema().fields().iter().enumerate() {
            assert_eq!(a.column(i), b.column(i), "{key}: column {}", f.name());
        }
        assert_eq!(row.op, Some(Op::Snapshot));
        assert_eq!(
            row.seq.as_deref(),
            Some(format!("{snapshot:0>40}").as_str())
        );
        assert_eq!(row.event_time, Some(snapshot));
    }

    // Invalid aged items are quarantined with their reason, and never expired.
    let quarantine: Vec<Value> = files_under(&lake.join("quarantine"), ".jsonl")
        .iter()
        .flat_map(|p| dynabridge_e2e::read_json_lines(p))
        .collect();
    assert_eq!(quarantine.len(), 2, "{quarantine:?}");
    assert!(quarantine.iter().all(|q| q["reason"].as_str().is_some()));

    // The post-export action: TTL = tick + 7 days on exported items, nothing else touched.
    let table = scan_all(&e.stack.dynamodb(), &e.resources.names.table).await;
    assert_eq!(table.len(), originals.len());
    let ttl = (now.timestamp() + 7 * 86_400).to_string();
    for (key, item) in &table {
        let original = &originals[key];
        if expected.contains_key(key) {
            assert_eq!(
                item.get("ttl"),
                Some(&AttributeValue::N(ttl.clone())),
                "{key}"
            );
        } else {
            assert_eq!(item, original, "{key} must be untouched");
        }
    }

    // Manifest, completion marker, event.
    let run_dir = lake.join(format!("archive/_runs/run={run_id}"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"], json!(expected.len()));
    assert_eq!(manifest["stats"]["quarantined"], 2);
    assert_eq!(
        manifest["stats"]["expired"],
        json!(expected.len()),
        "{}",
        manifest["stats"]
    );
    assert_eq!(
        manifest["registry_fingerprint"].as_str(),
        Some(registry.fingerprint())
    );
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| { f["min_key"]["pk"].is_string() && f["max_key"]["pk"].is_string() })
    );
    assert!(run_dir.join("_SUCCESS").is_file());
    assert!(
        files_under(&run_dir, "actions/").is_empty(),
        "work files are removed"
    );
    let sqs = e.stack.sqs().unwrap();
    let url = e.resources.events_queue_url.clone().unwrap();
    let events = provision::drain_queue(&sqs, &url, Duration::from_secs(2))
        .await
        .unwrap();
    let completed: Vec<Value> = events
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|v| v["detail-type"] == "Export Completed")
        .collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    assert_eq!(completed[0]["detail"]["run_id"], json!(run_id));

    // A duplicate schedule tick starts no second run.
    let before = files_under(&lake, "");
    let dup = fns[0].invoke(&tick).await.unwrap().outcome;
    let dup = dup.response().unwrap();
    assert_eq!(dup["status"], "duplicate", "{dup}");
    assert_eq!(dup["run_id"], json!(run_id));
    assert!(dup.get("dispatch").is_none(), "{dup}");
    assert_eq!(files_under(&lake, ""), before);
}

/// An attribute the item already has (the full-item guard compares the attributes read; a
/// write that only adds one needs `DYNABRIDGE_EXPORT_VERSION_ATTRIBUTE`, see the docs).
fn changed_attribute(key: &str) -> &'static str {
    if key.starts_with("ORDER#") {
        "status"
    } else {
        "email"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_changed_during_the_export_are_not_deleted() {
    let e = dynabridge_e2e::env(true).await.unwrap();
    let registry = registry();
    let now = now();
    let items = dataset(30, now);
    let ddb = e.stack.dynamodb();
    let table = e.resources.names.table.clone();
    sample::load(&ddb, &table, &items).await.unwrap();
    let env = function_env(
        &e.stack,
        &e.resources,
        &[
            ("DYNABRIDGE_EXPORT_ACTION", "delete"),
            ("DYNABRIDGE_EXPORT_SEGMENTS", "1"),
            ("DYNABRIDGE_EXPORT_PART_MAX_ITEMS", "100000"),
            ("DYNABRIDGE_EXPORT_PAUSE_BEFORE_ACTIONS_MS", "1500"),
        ],
    );
    let mut fns = functions(&env, 1, Duration::from_secs(30)).await;
    let originals = scan_all(&ddb, &table).await;
    let aged: Vec<String> = originals
        .iter()
        .filter(|(_, i)| is_aged(i, now) && is_valid(i))
        .map(|(k, _)| k.clone())
        .collect();
    let changed: Vec<String> = aged.iter().step_by(4).cloned().collect();
    assert!(changed.len() >= 3);

    let tick = scheduled_event(RULE, now, None);
    let driver = tokio::spawn(async move {
        let d = AsyncInvoker::default().drain(&mut fns, vec![tick]).await;
        (d, fns)
    });
    // Wait until the part is durable and its actions are pending, then change some items.
    let control = e.resources.names.control_table.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = ddb
            .scan()
            .table_name(&control)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if out
            .items()
            .iter()
            .any(|i| i.contains_key("pending_actions"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending actions seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for key in &changed {
        let (pk, sk) = key.split_once('|').unwrap();
        ddb.update_item()
            .table_name(&table)
            .key("pk", SdkValue::S(pk.into()))
            .key("sk", SdkValue::S(sk.into()))
            .update_expression("SET #s = :s")
            .expression_attribute_names("#s", changed_attribute(key))
            .expression_attribute_values(":s", SdkValue::S("CHANGED".into()))
            .send()
            .await
            .unwrap();
    }
    let (deliveries, _fns) = driver.await.unwrap();
    let deliveries = deliveries.unwrap();
    assert!(
        deliveries.iter().all(|d| !d.outcome.is_function_error()),
        "{deliveries:#?}"
    );

    let after = scan_all(&ddb, &table).await;
    for key in &aged {
        if changed.contains(key) {
            let item = after
                .get(key)
                .unwrap_or_else(|| panic!("{key} was deleted"));
            assert_eq!(
                item.get(changed_attribute(key)),
                Some(&AttributeValue::S("CHANGED".into()))
            );
        } else {
            assert!(!after.contains_key(key), "{key} should be deleted");
        }
    }
    // Every deleted item is in the lake; the changed ones too (as read), for the next run.
    let lake = e.stack.lake_root().join(&e.resources.names.lake_bucket);
    let exported: Vec<String> = archive_rows(&lake, &registry)
        .iter()
        .map(|r| key_text(&r.item))
        .collect();
    for key in &aged {
        assert!(exported.contains(key), "{key} missing from archive/");
    }
    let completed = responses(&deliveries)
        .into_iter()
        .find(|r| r["status"] == "completed")
        .cloned()
        .unwrap();
    assert_eq!(completed["stats"]["kept_changed"], json!(changed.len()));
    assert_eq!(
        completed["stats"]["deleted"],
        json!(aged.len() - changed.len())
    );
}

/// The function timeout of the seeded runs.
const CRASH_TIMEOUT: Duration = Duration::from_millis(1500);

/// No duplicate archive row, and every item deleted or expired (its `ttl` set) is in the
/// lake as it was.
fn removed_items_are_in_the_lake(
    run: &str,
    originals: &BTreeMap<String, Attributes>,
    table: &BTreeMap<String, Attributes>,
    rows: &[String],
) -> usize {
    let mut seen = rows.to_vec();
    seen.dedup();
    assert_eq!(seen.len(), rows.len(), "{run}: duplicate rows");
    let mut removed = 0;
    for (key, original) in originals {
        let gone = !table.contains_key(key);
        let expired = table
            .get(key)
            .is_some_and(|i| i.get("ttl") != original.get("ttl"));
        if gone || expired {
            removed += 1;
            let entity = if key.starts_with("ORDER#") {
                "Order"
            } else {
                "Customer"
            };
            let row = format!("{:?}", canonical(&registry(), entity, original).columns());
            assert!(
                rows.contains(&row),
                "{run}: {key} removed but not in the lake"
            );
        }
    }
    removed
}

/// What disturbs a run: seeded kills, fault-proxy endpoints, the function timeout.
struct Chaos {
    seed: Option<u64>,
    aws_env: Option<Vec<(String, String)>>,
    timeout: Duration,
}

impl Chaos {
    fn none() -> Self {
        Chaos {
            seed: None,
            aws_env: None,
            timeout: CRASH_TIMEOUT,
        }
    }
}

/// A run of the binary with its environment pointing at per-run tables and bucket.
async fn crash_run(
    stack: &LocalStack,
    base: &Resources,
    suffix: &str,
    items: &[Item],
    action: &str,
    now: DateTime<Utc>,
    chaos: Chaos,
) -> (
    BTreeMap<String, Attributes>,
    Vec<String>,
    Vec<Delivery>,
    BTreeMap<String, Attributes>,
) {
    let names = ResourceNames {
        table: format!("app-{suffix}"),
        control_table: format!("control-{suffix}"),
        lake_bucket: format!("lake-{suffix}"),
        ..base.names.clone()
    };
    let ddb = stack.dynamodb();
    provision::create_pk_sk_table(&ddb, &names.table, false, "ttl")
        .await
        .unwrap();
    provision::create_pk_sk_table(&ddb, &names.control_table, false, "expires_at")
        .await
        .unwrap();
    stack
        .s3()
        .create_bucket()
        .bucket(&names.lake_bucket)
        .send()
        .await
        .unwrap();
    sample::load(&ddb, &names.table, items).await.unwrap();
    let before = scan_all(&ddb, &names.table).await;
    let resources = Resources {
        names: names.clone(),
        ..base.clone()
    };
    let mut env = function_env(
        stack,
        &resources,
        &[
            ("DYNABRIDGE_EXPORT_ACTION", action),
            ("DYNABRIDGE_EXPORT_PAGE_LIMIT", "5"),
            ("DYNABRIDGE_EXPORT_PART_MAX_ITEMS", "6"),
            ("DYNABRIDGE_EXPORT_DEADLINE_RESERVE_MS", "300"),
        ],
    );
    let Chaos {
        seed: chaos_seed,
        aws_env,
        timeout,
    } = chaos;
    if let Some(aws) = aws_env {
        // The fault proxies' endpoints instead of the stack's.
        for (k, v) in aws {
            env.retain(|(name, _)| *name != k);
            env.push((k, v));
        }
    }
    let mut fns = functions(&env, 1, timeout).await;
    // A killed invocation holds its segment lease until its deadline (1.5 s): retries must
    // outlast it even on a loaded machine (200 × 100 ms).
    let mut invoker = AsyncInvoker {
        max_retries: 200,
        retry_delay: Duration::from_millis(100),
        ..Default::default()
    };
    if let Some(seed) = chaos_seed {
        let mut rng = Rng::new(seed);
        let mut kills = 0;
        invoker.chaos = Some(Box::new(move |_event| {
            if kills < 3 && rng.below(2) == 0 {
                kills += 1;
                Some(Duration::from_millis(5 + rng.below(120)))
            } else {
                None
            }
        }));
    }
    let deliveries = invoker
        .drain(&mut fns, vec![scheduled_event(RULE, now, None)])
        .await
        .unwrap();
    let table = scan_all(&ddb, &names.table).await;
    let lake = stack.lake_root().join(&names.lake_bucket);
    let registry = registry();
    let mut rows: Vec<String> = archive_rows(&lake, &registry)
        .iter()
        .map(|r| format!("{:?}", canonical(&registry, &r.entity, &r.item).columns()))
        .collect();
    rows.sort();
    (table, rows, deliveries, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_resumes_to_the_same_output() {
    let stack = LocalStack::start(dynabridge_devstack::StackOptions::default()).unwrap();
    let base = provision::provision(&stack, ResourceNames::default())
        .await
        .unwrap();
    let now = now();
    let items = dataset(15, now);
    let mut references = HashMap::new();
    let mut originals = BTreeMap::new();
    for action in ["delete", "ttl"] {
        let (table, rows, _, before) = crash_run(
            &stack,
            &base,
            &format!("ref-{action}"),
            &items,
            action,
            now,
            Chaos::none(),
        )
        .await;
        references.insert(action, (table, rows));
        originals = before;
    }
    let mut killed = 0;
    for seed in 0..20u64 {
        let action = if seed % 2 == 0 { "delete" } else { "ttl" };
        let (table, rows, deliveries, _) = crash_run(
            &stack,
            &base,
            &format!("seed{seed}"),
            &items,
            action,
            now,
            Chaos {
                seed: Some(seed),
                ..Chaos::none()
            },
        )
        .await;
        killed += deliveries.iter().filter(|d| d.killed).count();
        let last = deliveries.iter().rev().find_map(|d| d.outcome.response());
        assert!(
            deliveries.iter().any(|d| d
                .outcome
                .response()
                .is_some_and(|r| r["status"] == "completed")),
            "seed {seed}: run did not complete: {last:?}"
        );
        let (ref_table, ref_rows) = &references[action];
        assert_eq!(&rows, ref_rows, "seed {seed}: archive rows differ");
        assert_eq!(&table, ref_table, "seed {seed}: table differs");
        removed_items_are_in_the_lake(&format!("seed {seed}"), &originals, &table, &rows);
        assert!(
            deliveries.iter().all(|d| d.killed
                || !matches!(
                    d.outcome,
                    InvokeOutcome::Crashed { .. } | InvokeOutcome::TimedOut
                )),
            "seed {seed}: unexpected crash"
        );
    }
    eprintln!("{killed} invocations killed over 20 seeds");
    assert!(killed >= 20, "only {killed} kills over 20 seeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_the_output_is_that_of_a_fault_free_run() {
    use dynabridge_devstack::faults::{Fault, FaultPlan, FaultRule, FaultyEndpoints, Service};
    let stack = LocalStack::start(dynabridge_devstack::StackOptions {
        eventbridge: true,
        ..Default::default()
    })
    .unwrap();
    let base = provision::provision(&stack, ResourceNames::default())
        .await
        .unwrap();
    let now = now();
    let items = dataset(15, now);
    let (mut requests, mut injected, mut removed) = (0, 0, 0);
    for (seed, action) in [(31u64, "delete"), (32, "ttl")] {
        let (ref_table, ref_rows, _, originals) = crash_run(
            &stack,
            &base,
            &format!("fref-{action}"),
            &items,
            action,
            now,
            Chaos::none(),
        )
        .await;
        // ≥ 20 % of the calls fail: scans, conditional deletes and TTL updates (some applied
        // before the connection drops), control-table claims, lake writes, PutEvents.
        let plan = FaultPlan::new(seed)
            .rule(FaultRule::on(
                Service::DynamoDb,
                "Scan",
                Fault::Throttle,
                0.15,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "Scan",
                Fault::InternalError,
                0.10,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "Scan",
                Fault::ConnectionReset,
                0.05,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "DeleteItem",
                Fault::Throttle,
                0.15,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "DeleteItem",
                Fault::ResetAfterForward,
                0.05,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "UpdateItem",
                Fault::Throttle,
                0.15,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "UpdateItem",
                Fault::InternalError,
                0.05,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "UpdateItem",
                Fault::ResetAfterForward,
                0.05,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "PutItem",
                Fault::InternalError,
                0.15,
            ))
            .rule(FaultRule::on(
                Service::DynamoDb,
                "GetItem",
                Fault::Throttle,
                0.15,
            ))
            .rule(FaultRule::on(
                Service::S3,
                "PutObject",
                Fault::InternalError,
                0.10,
            ))
            .rule(FaultRule::on(
                Service::S3,
                "PutObject",
                Fault::Throttle,
                0.10,
            ))
            .rule(FaultRule::new(Fault::ConnectionReset, 0.05).service(Service::S3))
            .rule(
                FaultRule::new(Fault::InternalError, 0.2)
                    .service(Service::S3)
                    .operation("UploadPart"),
            )
            .rule(FaultRule::on(
                Service::EventBridge,
                "PutEvents",
                Fault::ThrottlingException,
                0.20,
            ))
            .rule(FaultRule::on(
                Service::EventBridge,
                "PutEvents",
                Fault::PartialBatch,
                0.20,
            ));
        let faulty = FaultyEndpoints::start(&stack, plan).unwrap();
        let (table, rows, deliveries, _) = crash_run(
            &stack,
            &base,
            &format!("faults-{action}"),
            &items,
            action,
            now,
            Chaos {
                seed: None,
                aws_env: Some(faulty.aws_env()),
                timeout: Duration::from_secs(5),
            },
        )
        .await;
        let stats = faulty.stats();
        faulty.set_plan(FaultPlan::none()).unwrap();
        requests += stats.total_requests();
        injected += stats.total_injected();
        let last = deliveries.iter().rev().find_map(|d| d.outcome.response());
        assert!(
            deliveries.iter().any(|d| d
                .outcome
                .response()
                .is_some_and(|r| r["status"] == "completed")),
            "{action}: run did not complete: {last:?}"
        );
        assert_eq!(rows, ref_rows, "{action}: archive rows differ");
        let keys: std::collections::BTreeSet<&String> =
            table.keys().chain(ref_table.keys()).collect();
        let differing: Vec<(&String, Option<&Attributes>, Option<&Attributes>)> = keys
            .into_iter()
            .filter(|k| table.get(*k) != ref_table.get(*k))
            .map(|k| (k, table.get(k), ref_table.get(k)))
            .collect();
        assert!(
            differing.is_empty(),
            "{action}: table differs from the fault-free run (key, faulty, reference): {differing:?}"
        );
        removed +=
            removed_items_are_in_the_lake(&format!("faults {action}"), &originals, &table, &rows);
        assert!(
            !deliveries
                .iter()
                .any(|d| matches!(d.outcome, InvokeOutcome::Crashed { .. })),
            "{action}: a fault crashed the function"
        );
    }
    println!(
        "RELIABILITY aged-export faults: runs=2 requests={requests} faults_injected={injected} ({:.0}%) removed_items={removed} removed_not_in_lake=0 output_identical=true",
        100.0 * injected as f64 / requests.max(1) as f64
    );
    assert!(
        injected as f64 >= 0.2 * requests as f64,
        "at least 20 % of the requests must fail: {injected} of {requests}"
    );
}
