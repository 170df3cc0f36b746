//! ttl-cleanup end to end: archive mode (TTL deletions from the stream) and sweep mode
//! (overdue expiries), through the real binary on the local stack.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dynabridge_devstack::sources::schedule::scheduled_event;
use dynabridge_devstack::sources::streams::{MappingConfig, StreamPoller};
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::{env, example_registry, lake_rows, stream_records, windowed_event};
use serde_json::{Value, json};

const BUCKET: &str = "dynabridge-lake";

fn session(id: &str, ttl: Av) -> HashMap<String, Av> {
    let mut item: HashMap<String, Av> = [
        ("pk", Av::S(format!("SESSION#{id}"))),
        ("sk", Av::S("SESSION".into())),
        ("customer_id", Av::S(format!("CUSTOMER#{id}"))),
        ("created_at", Av::S("2026-11-20T10:00:00Z".into())),
        ("token", Av::B(vec![1u8, 2, 3].into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    item.insert("ttl".into(), ttl);
    item
}

fn secs(offset: i64) -> Av {
    Av::N((chrono::Utc::now().timestamp() + offset).to_string())
}

async fn put(e: &dynabridge_e2e::Env, item: HashMap<String, Av>) {
    e.stack
        .dynamodb()
        .put_item()
        .table_name(&e.resources.names.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn cleanup(
    e: &dynabridge_e2e::Env,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> FunctionProcess {
    cleanup_with(e, e.stack.aws_env(), extra, timeout).await
}

/// [`cleanup`] with these AWS endpoints (e.g. a fault proxy's).
async fn cleanup_with(
    e: &dynabridge_e2e::Env,
    aws_env: Vec<(String, String)>,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> FunctionProcess {
    let spec = FunctionSpec::workspace("ttl-cleanup")
        .unwrap()
        .with_env(aws_env)
        .with_env(e.resources.function_env())
        .with_env(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .with_timeout(timeout);
    FunctionProcess::new(spec).await.unwrap()
}

async fn table_pks(e: &dynabridge_e2e::Env) -> Vec<String> {
    let out = e
        .stack
        .dynamodb()
        .scan()
        .table_name(&e.resources.names.table)
        .send()
        .await
        .unwrap();
    let mut pks: Vec<String> = out
        .items()
        .iter()
        .map(|i| i["pk"].as_s().unwrap().clone())
        .collect();
    pks.sort();
    pks
}

fn expired_rows(e: &dynabridge_e2e::Env) -> Vec<dynabridge_e2e::LakeRow> {
    lake_rows(&e.stack, BUCKET, "expired/", &example_registry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_deletions_are_archived_exactly_once_with_full_old_images_and_user_deletes_are_ignored()
{
    let e = env(false).await.unwrap();
    let mut f = cleanup(&e, &[], Duration::from_secs(60)).await;
    put(&e, session("1", secs(-3600))).await;
    put(&e, session("2", secs(-60))).await;
    put(&e, session("3", secs(3600))).await;
    put(&e, session("4", secs(3600))).await;
    // A user delete (not TTL).
    e.stack
        .dynamodb()
        .delete_item()
        .table_name(&e.resources.names.table)
        .key("pk", Av::S("SESSION#4".into()))
        .key("sk", Av::S("SESSION".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(e.stack.sweep_ttl().await.unwrap(), 2);

    let mapping = MappingConfig {
        tumbling_window: Some(Duration::from_secs(60)),
        filter_criteria: vec![json!({
            "eventName": ["REMOVE"],
            "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}
        })],
        ..Default::default()
    };
    let mut poller = StreamPoller::new(
        e.stack.dynamodb_streams(),
        None,
        &e.resources.stream_arn,
        mapping,
    )
    .await
    .unwrap();
    let deliveries = poller.drain(&mut f).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(
        matches!(&deliveries[0].outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([])),
        "{deliveries:?}"
    );

    // Redelivery of every record (TTL and user ones, unfiltered): still exactly once, and
    // the user delete is ignored by archive mode itself.
    let all = stream_records(&e.stack, &e.resources.stream_arn).await;
    for _ in 0..2 {
        let inv = f
            .invoke(&windowed_event(&all, "shardId-00000001-dynabridge-app"))
            .await
            .unwrap();
        assert!(
            matches!(&inv.outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([])),
            "{inv:?}"
        );
    }
    let rows = expired_rows(&e);
    let mut pks: Vec<String> = rows.iter().map(|r| r.pk()).collect();
    pks.sort();
    assert_eq!(
        pks,
        ["SESSION#1", "SESSION#2"],
        "exactly once, TTL deletions only"
    );
    assert!(rows.iter().all(|r| r.op() == "EXPIRE"));
    let s1 = rows.iter().find(|r| r.pk() == "SESSION#1").unwrap();
    assert_eq!(
        s1.row.item["customer_id"],
        serde_dynamo::AttributeValue::S("CUSTOMER#1".into())
    );
    assert_eq!(
        s1.row.item["token"],
        serde_dynamo::AttributeValue::B(vec![1, 2, 3])
    );
    assert!(
        s1.row.item.contains_key("ttl") && s1.row.item.contains_key("created_at"),
        "full old image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_archives_then_deletes_only_items_still_past_their_ttl() {
    let e = env(false).await.unwrap();
    let mut f = cleanup(
        &e,
        &[("DYNABRIDGE_SWEEP_SEGMENTS", "2")],
        Duration::from_secs(60),
    )
    .await;
    for i in 1..=5 {
        put(&e, session(&format!("P{i}"), secs(-7200))).await;
    }
    put(&e, session("F1", secs(86_400))).await;
    put(&e, session("F2", secs(86_400))).await;
    // Documented bad TTL values: a string, milliseconds, absent.
    put(&e, session("STR", Av::S("1700000000".into()))).await;
    put(
        &e,
        session(
            "MS",
            Av::N((chrono::Utc::now().timestamp_millis() - 60_000).to_string()),
        ),
    )
    .await;
    let mut no_ttl = session("NONE", secs(0));
    no_ttl.remove("ttl");
    put(&e, no_ttl).await;

    let inv = f
        .invoke(&scheduled_event(
            "dynabridge-ttl-sweep",
            chrono::Utc::now(),
            None,
        ))
        .await
        .unwrap();
    let resp = inv
        .outcome
        .response()
        .unwrap_or_else(|| panic!("{inv:?}\n{:#?}", f.logs()))
        .clone();
    assert_eq!(resp["deleted"], 5, "{resp}");
    assert_eq!(resp["archived"], 5);
    assert_eq!(resp["ttlInMillis"], 1);
    assert_eq!(resp["complete"], true);
    assert_eq!(
        table_pks(&e).await,
        [
            "SESSION#F1",
            "SESSION#F2",
            "SESSION#MS",
            "SESSION#NONE",
            "SESSION#STR"
        ]
    );
    let rows = expired_rows(&e);
    let mut pks: Vec<String> = rows.iter().map(|r| r.pk()).collect();
    pks.sort();
    assert_eq!(
        pks,
        (1..=5).map(|i| format!("SESSION#P{i}")).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r.op() == "EXPIRE"));

    // A second tick finds nothing more to do.
    let inv = f
        .invoke(&scheduled_event(
            "dynabridge-ttl-sweep",
            chrono::Utc::now(),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(inv.outcome.response().unwrap()["deleted"], 0);
    assert_eq!(expired_rows(&e).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_archive_and_delete_loses_nothing_duplicates_nothing_and_respects_an_extended_ttl()
 {
    let e = env(false).await.unwrap();
    for i in 1..=4 {
        put(&e, session(&format!("C{i}"), secs(-600))).await;
    }
    let timeout = Duration::from_secs(4);
    let mut crashing = cleanup(
        &e,
        &[
            ("DYNABRIDGE_SWEEP_SEGMENTS", "1"),
            ("DYNABRIDGE_CRASH_AT", "sweep-after-archive"),
            ("DYNABRIDGE_SWEEP_DEADLINE_MARGIN_MS", "500"),
        ],
        timeout,
    )
    .await;
    let started = Instant::now();
    let inv = crashing
        .invoke(&scheduled_event(
            "dynabridge-ttl-sweep",
            chrono::Utc::now(),
            None,
        ))
        .await
        .unwrap();
    assert!(
        matches!(inv.outcome, InvokeOutcome::Crashed { .. }),
        "{inv:?}"
    );
    // Archived, nothing deleted yet.
    assert_eq!(expired_rows(&e).len(), 4);
    assert_eq!(table_pks(&e).await.len(), 4);

    // Meanwhile the application extends one TTL.
    e.stack
        .dynamodb()
        .update_item()
        .table_name(&e.resources.names.table)
        .key("pk", Av::S("SESSION#C2".into()))
        .key("sk", Av::S("SESSION".into()))
        .update_expression("SET #t = :t")
        .expression_attribute_names("#t", "ttl")
        .expression_attribute_values(":t", secs(86_400))
        .send()
        .await
        .unwrap();

    // The crashed holder's lease lasts until its deadline; the next tick resumes after it.
    tokio::time::sleep((timeout + Duration::from_millis(500)).saturating_sub(started.elapsed()))
        .await;
    let mut f = cleanup(
        &e,
        &[("DYNABRIDGE_SWEEP_SEGMENTS", "1")],
        Duration::from_secs(60),
    )
    .await;
    let inv = f
        .invoke(&scheduled_event(
            "dynabridge-ttl-sweep",
            chrono::Utc::now(),
            None,
        ))
        .await
        .unwrap();
    let resp: Value = inv
        .outcome
        .response()
        .unwrap_or_else(|| panic!("{inv:?}\n{:#?}", f.logs()))
        .clone();
    assert_eq!(resp["deleted"], 3, "{resp}");
    assert_eq!(resp["keptChanged"], 1);
    assert_eq!(
        table_pks(&e).await,
        ["SESSION#C2"],
        "the extended TTL is respected"
    );
    let rows = expired_rows(&e);
    assert_eq!(rows.len(), 4, "the resume did not archive twice");
    // Every deleted item is in the lake.
    for i in [1, 3, 4] {
        assert!(rows.iter().any(|r| r.pk() == format!("SESSION#C{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_respects_a_deletes_per_second_ceiling() {
    let e = env(false).await.unwrap();
    for i in 0..10 {
        put(&e, session(&format!("R{i}"), secs(-600))).await;
    }
    let mut f = cleanup(
        &e,
        &[
            ("DYNABRIDGE_SWEEP_MAX_DELETES_PER_SECOND", "4"),
            ("DYNABRIDGE_SWEEP_SEGMENTS", "2"),
        ],
        Duration::from_secs(60),
    )
    .await;
    f.start().await.unwrap();
    let inv = f
        .invoke(&scheduled_event(
            "dynabridge-ttl-sweep",
            chrono::Utc::now(),
            None,
        ))
        .await
        .unwrap();
    let resp = inv.outcome.response().unwrap().clone();
    assert_eq!(resp["deleted"], 10, "{resp}");
    // 10 deletes at 4/s: the first is free, the other 9 take at least 9/4 s.
    assert!(
        inv.duration >= Duration::from_millis(2200),
        "took {:?}",
        inv.duration
    );
    assert!(table_pks(&e).await.is_empty());
}

fn child(pk: &str, sk: &str) -> HashMap<String, Av> {
    let mut item = session("x", secs(0));
    item.remove("ttl");
    item.insert("pk".into(), Av::S(pk.into()));
    item.insert("sk".into(), Av::S(sk.into()));
    item
}

fn keys_of(rows: &[dynabridge_e2e::LakeRow]) -> Vec<String> {
    let mut keys: Vec<String> = rows
        .iter()
        .map(|r| match &r.row.item["sk"] {
            serde_dynamo::AttributeValue::S(sk) => format!("{}/{sk}", r.pk()),
            _ => r.pk(),
        })
        .collect();
    keys.sort();
    keys
}

async fn table_keys(e: &dynabridge_e2e::Env) -> Vec<String> {
    let out = e
        .stack
        .dynamodb()
        .scan()
        .table_name(&e.resources.names.table)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out
        .items()
        .iter()
        .map(|i| format!("{}/{}", i["pk"].as_s().unwrap(), i["sk"].as_s().unwrap()))
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_cascades_to_children_archived_first_and_a_crash_mid_cascade_keeps_changed_children()
 {
    let e = env(false).await.unwrap();
    put(&e, session("1", secs(-600))).await;
    put(&e, child("SESSION#1", "EVENT#1")).await;
    put(&e, child("SESSION#1", "EVENT#2")).await;
    put(&e, child("SESSION#1", "OTHER")).await;
    put(&e, child("SESSION#2", "EVENT#1")).await;
    assert_eq!(e.stack.sweep_ttl().await.unwrap(), 1);
    let removes: Vec<Value> = stream_records(&e.stack, &e.resources.stream_arn)
        .await
        .into_iter()
        .filter(|r| r["eventName"] == "REMOVE")
        .collect();
    assert_eq!(removes.len(), 1);
    let event = windowed_event(&removes, "shardId-cascade");
    let cascade = [
        ("DYNABRIDGE_CASCADE_ENTITIES", "Session"),
        ("DYNABRIDGE_CASCADE_SK_PREFIX", "EVENT#"),
    ];

    // First attempt dies after archiving the children, before deleting any.
    let mut crash_env = cascade.to_vec();
    crash_env.push(("DYNABRIDGE_CRASH_AT", "cascade-after-archive"));
    let mut crashing = cleanup(&e, &crash_env, Duration::from_secs(30)).await;
    let inv = crashing.invoke(&event).await.unwrap();
    assert!(
        matches!(inv.outcome, InvokeOutcome::Crashed { .. }),
        "{inv:?}"
    );
    assert_eq!(table_keys(&e).await.len(), 4, "nothing deleted yet");

    // A child changes before the retry.
    e.stack
        .dynamodb()
        .update_item()
        .table_name(&e.resources.names.table)
        .key("pk", Av::S("SESSION#1".into()))
        .key("sk", Av::S("EVENT#2".into()))
        .update_expression("SET customer_id = :c")
        .expression_attribute_values(":c", Av::S("CUSTOMER#changed".into()))
        .send()
        .await
        .unwrap();

    let mut f = cleanup(&e, &cascade, Duration::from_secs(30)).await;
    let inv = f.invoke(&event).await.unwrap();
    assert!(
        matches!(&inv.outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([])),
        "{inv:?}\n{:#?}",
        f.logs()
    );
    assert_eq!(
        table_keys(&e).await,
        ["SESSION#1/EVENT#2", "SESSION#1/OTHER", "SESSION#2/EVENT#1"],
        "the unchanged child is gone, the changed one and non-children stay"
    );
    assert_eq!(
        keys_of(&expired_rows(&e)),
        [
            "SESSION#1/EVENT#1",
            "SESSION#1/EVENT#2",
            "SESSION#1/SESSION"
        ],
        "parent and children archived exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_events_run_through_the_handler() {
    let e = env(false).await.unwrap();
    let mut f = cleanup(&e, &[], Duration::from_secs(60)).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/ttl-cleanup");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };

    let batch = read("ttl-expire-batch.json");
    let n = batch["Records"].as_array().unwrap().len();
    let inv = f.invoke(&batch).await.unwrap();
    assert!(
        matches!(&inv.outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([])),
        "{inv:?}"
    );
    let rows = expired_rows(&e);
    assert_eq!(
        rows.len(),
        n,
        "every TTL deletion of the sample is archived"
    );
    assert!(rows.iter().all(|r| r.op() == "EXPIRE"));

    let inv = f.invoke(&read("sweep-schedule.json")).await.unwrap();
    let resp = inv.outcome.response().unwrap_or_else(|| panic!("{inv:?}"));
    assert_eq!(resp["mode"], "sweep");
    assert_eq!(resp["complete"], true);
}

/// Sweep ticks (each in a fresh process, like a new execution environment after a failure)
/// until one reports the sweep complete; crashed, failed and timed-out ticks are retried.
async fn sweep_until_complete(
    e: &dynabridge_e2e::Env,
    aws_env: &[(String, String)],
    limit: Duration,
) -> (Vec<Value>, usize) {
    let deadline = Instant::now() + limit;
    let mut responses = Vec::new();
    let mut failures = 0;
    let mut f = cleanup_with(
        e,
        aws_env.to_vec(),
        &[
            ("DYNABRIDGE_SWEEP_SEGMENTS", "2"),
            ("DYNABRIDGE_SWEEP_DEADLINE_MARGIN_MS", "1000"),
        ],
        Duration::from_secs(10),
    )
    .await;
    loop {
        assert!(
            Instant::now() < deadline,
            "no complete sweep: {responses:?}"
        );
        let inv = f
            .invoke(&scheduled_event(
                "dynabridge-ttl-sweep",
                chrono::Utc::now(),
                None,
            ))
            .await
            .unwrap();
        match inv.outcome {
            InvokeOutcome::Response(v) => {
                let done = v["complete"] == true;
                responses.push(v);
                if done {
                    return (responses, failures);
                }
            }
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_and_a_crash_every_deleted_item_is_archived_exactly_once() {
    use dynabridge_devstack::faults::{Fault, FaultPlan, FaultRule, FaultyEndpoints, Service};
    use dynabridge_e2e::invariants::archived_exactly_once;
    let e = env(false).await.unwrap();
    for i in 0..40 {
        put(&e, session(&format!("X{i:02}"), secs(-600 - i))).await;
    }
    for i in 0..8 {
        put(&e, session(&format!("F{i}"), secs(86_400))).await;
    }
    let ddb = e.stack.dynamodb();
    let before = dynabridge_e2e::table_items(&ddb, &e.resources.names.table)
        .await
        .unwrap();
    // ≥ 20 % of the calls fail: scans, the conditional deletes (some applied before the
    // connection drops), control-table leases, the archive writes.
    let plan = FaultPlan::new(5)
        .rule(FaultRule::on(
            Service::DynamoDb,
            "Scan",
            Fault::Throttle,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "Scan",
            Fault::InternalError,
            0.10,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "DeleteItem",
            Fault::Throttle,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "DeleteItem",
            Fault::InternalError,
            0.05,
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
            0.25,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "PutItem",
            Fault::InternalError,
            0.25,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "GetItem",
            Fault::Throttle,
            0.25,
        ))
        .rule(FaultRule::on(
            Service::S3,
            "PutObject",
            Fault::InternalError,
            0.15,
        ))
        .rule(FaultRule::on(
            Service::S3,
            "PutObject",
            Fault::Throttle,
            0.10,
        ))
        .rule(FaultRule::new(Fault::ConnectionReset, 0.05).service(Service::S3));
    let faulty = FaultyEndpoints::start(&e.stack, plan).unwrap();
    let aws_env = faulty.aws_env();

    // The first tick dies after an archive write, before its delete.
    let marker = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let marker_path = marker.to_string_lossy().to_string();
    std::fs::remove_file(&marker_path).ok();
    let timeout = Duration::from_secs(4);
    let mut crashing = cleanup_with(
        &e,
        aws_env.clone(),
        &[
            ("DYNABRIDGE_SWEEP_SEGMENTS", "2"),
            ("DYNABRIDGE_CRASH_AT", "sweep-after-archive"),
            ("DYNABRIDGE_CRASH_ONCE_FILE", &marker_path),
            ("DYNABRIDGE_SWEEP_DEADLINE_MARGIN_MS", "500"),
        ],
        timeout,
    )
    .await;
    let started = Instant::now();
    let mut crashes = 0;
    while !std::path::Path::new(&marker_path).exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no crash");
        let inv = crashing
            .invoke(&scheduled_event(
                "dynabridge-ttl-sweep",
                chrono::Utc::now(),
                None,
            ))
            .await
            .unwrap();
        if matches!(inv.outcome, InvokeOutcome::Crashed { .. }) {
            crashes += 1;
        }
    }
    assert_eq!(crashes, 1);
    // Meanwhile the application extends some TTLs: those items must stay.
    let mut changed = std::collections::BTreeSet::new();
    for i in (0..40).step_by(6) {
        let pk = format!("SESSION#X{i:02}");
        ddb.update_item()
            .table_name(&e.resources.names.table)
            .key("pk", Av::S(pk.clone()))
            .key("sk", Av::S("SESSION".into()))
            .update_expression("SET #t = :t")
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_values(":t", secs(86_400))
            .send()
            .await
            .unwrap();
        changed.insert(format!("{pk}|SESSION"));
    }
    // The crashed holder's leases last until its deadline; the next ticks resume.
    tokio::time::sleep((timeout + Duration::from_millis(500)).saturating_sub(started.elapsed()))
        .await;
    let (responses, failures) = sweep_until_complete(&e, &aws_env, Duration::from_secs(90)).await;
    let stats = faulty.stats();
    faulty.set_plan(FaultPlan::none()).unwrap();

    let after = dynabridge_e2e::table_items(&ddb, &e.resources.names.table)
        .await
        .unwrap();
    let archived: Vec<String> = expired_rows(&e)
        .iter()
        .map(|r| dynabridge_e2e::key_id(&r.row.item))
        .collect();
    let deleted: Vec<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| k.replacen('|', "/", 1))
        .collect();
    let unarchived =
        dynabridge_e2e::invariants::deleted_items_archived(&deleted, &expired_rows(&e));
    assert!(
        unarchived.is_empty(),
        "deleted but not archived: {unarchived:?}"
    );
    let v = archived_exactly_once(&before, &after, &archived, &changed);
    assert!(v.is_clean(), "{v:?}");
    // Exactly the overdue, unchanged items are gone.
    let mut kept: Vec<String> = after.keys().cloned().collect();
    kept.sort();
    let mut want: Vec<String> = (0..8)
        .map(|i| format!("SESSION#F{i}|SESSION"))
        .chain(changed.iter().cloned())
        .collect();
    want.sort();
    assert_eq!(kept, want, "{responses:?}");
    let deleted = before.len() - after.len();
    let requests = stats.total_requests();
    let injected = stats.total_injected();
    println!(
        "RELIABILITY ttl-cleanup faults: items={} deleted={deleted} kept_changed={} crashes={crashes} failed_ticks_retried={failures} requests={requests} faults_injected={injected} ({:.0}%) deleted_not_archived=0 archived_twice=0 changed_deleted=0",
        before.len(),
        changed.len(),
        100.0 * injected as f64 / requests.max(1) as f64
    );
    assert!(
        injected as f64 >= 0.2 * requests as f64,
        "at least 20 % of the requests must fail: {injected} of {requests}"
    );
}
