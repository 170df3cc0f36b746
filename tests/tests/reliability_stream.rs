//! Reliability scenarios for the stream consumers: injected AWS faults, seeded crashes and
//! redelivery with bisection. After every scenario the invariants hold: every change exactly
//! once in `cdc/`, every change has an event, duplicates only within the documented crash
//! window. The figures are printed (`--nocapture`) for RELIABILITY.md.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dynabridge_devstack::faults::{Fault, FaultPlan, FaultRule, FaultyEndpoints, Service};
use dynabridge_devstack::sources::streams::{MappingConfig, StreamPoller};
use dynabridge_devstack::{FunctionProcess, FunctionSpec};
use dynabridge_e2e::invariants::{cdc_exactly_once, events_at_least_once};
use dynabridge_e2e::{
    Env, env, example_registry, lake_rows, receive, stream_records, windowed_event,
};

const BUCKET: &str = "dynabridge-lake";

fn customer(i: usize, version: &str) -> std::collections::HashMap<String, Av> {
    [
        ("pk", Av::S(format!("CUSTOMER#{i:04}"))),
        ("sk", Av::S("PROFILE".into())),
        ("entity_type", Av::S("Customer".into())),
        ("schema_version", Av::N("2".into())),
        ("email", Av::S(format!("c{i}@example.com"))),
        ("tier", Av::S(version.into())),
        ("created_at", Av::S("2026-01-02T03:04:05Z".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Inserts, updates and deletes: `n` items, every third updated, every fifth deleted.
async fn write_changes(e: &Env, from: usize, n: usize) {
    let ddb = e.stack.dynamodb();
    let table = &e.resources.names.table;
    for i in from..from + n {
        ddb.put_item()
            .table_name(table)
            .set_item(Some(customer(i, "basic")))
            .send()
            .await
            .unwrap();
    }
    for i in (from..from + n).step_by(3) {
        ddb.put_item()
            .table_name(table)
            .set_item(Some(customer(i, "gold")))
            .send()
            .await
            .unwrap();
    }
    for i in (from..from + n).step_by(5) {
        ddb.delete_item()
            .table_name(table)
            .key("pk", Av::S(format!("CUSTOMER#{i:04}")))
            .key("sk", Av::S("PROFILE".into()))
            .send()
            .await
            .unwrap();
    }
}

async fn fanout(
    e: &Env,
    aws_env: Vec<(String, String)>,
    extra: &[(&str, &str)],
) -> FunctionProcess {
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(aws_env)
        .with_env(e.resources.function_env())
        .with_env(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .with_timeout(Duration::from_secs(30));
    FunctionProcess::new(spec).await.unwrap()
}

fn mapping(batch_size: usize) -> MappingConfig {
    MappingConfig {
        batch_size,
        tumbling_window: Some(Duration::from_secs(60)),
        maximum_retry_attempts: -1,
        max_invocations_per_drain: 300,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_under_injected_faults_loses_and_duplicates_nothing() {
    let e = env(true).await.unwrap();
    // ≥ 20% of the calls the function makes fail, across S3, the control table and
    // EventBridge, with every fault class the proxy has.
    let plan = FaultPlan::new(2026)
        .rule(FaultRule::on(
            Service::S3,
            "PutObject",
            Fault::InternalError,
            0.15,
        ))
        .rule(FaultRule::on(
            Service::S3,
            "PutObject",
            Fault::ServiceUnavailable,
            0.10,
        ))
        .rule(FaultRule::new(Fault::ConnectionReset, 0.05).service(Service::S3))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "UpdateItem",
            Fault::Throttle,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "GetItem",
            Fault::InternalError,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::EventBridge,
            "PutEvents",
            Fault::ThrottlingException,
            0.15,
        ))
        .rule(FaultRule::on(
            Service::EventBridge,
            "PutEvents",
            Fault::PartialBatch,
            0.20,
        ))
        .rule(FaultRule::new(
            Fault::Latency(Duration::from_millis(5)),
            0.20,
        ));
    let faulty = FaultyEndpoints::start(&e.stack, plan).unwrap();
    let mut f = fanout(&e, faulty.aws_env(), &[]).await;
    write_changes(&e, 0, 60).await;
    let records = stream_records(&e.stack, &e.resources.stream_arn).await;
    let mut poller = StreamPoller::new(
        e.stack.dynamodb_streams(),
        None,
        &e.resources.stream_arn,
        mapping(25),
    )
    .await
    .unwrap();
    let deliveries = match poller.drain(&mut f).await {
        Ok(d) => d,
        Err(err) => {
            let logs = f.logs();
            panic!(
                "{err}\n{}",
                logs[logs.len().saturating_sub(12)..].join("\n")
            );
        }
    };
    let stats = faulty.stats();
    faulty.set_plan(FaultPlan::none()).unwrap();

    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    let cdc = cdc_exactly_once(&records, &rows);
    assert!(cdc.is_clean(), "{cdc:?}");
    let events = receive(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        records.len(),
        Duration::from_secs(15),
    )
    .await;
    let ev = events_at_least_once(&records, &events);
    assert!(ev.missing.is_empty() && ev.unexpected.is_empty(), "{ev:?}");
    assert!(
        ev.duplicated.is_empty(),
        "no crash, so no duplicate events: {ev:?}"
    );
    assert!(poller.discarded().is_empty());
    let requests = stats.total_requests();
    let injected = stats.total_injected();
    println!(
        "RELIABILITY stream-fanout faults: changes={} invocations={} requests={} faults_injected={} ({:.0}%) cdc_missing=0 cdc_duplicates=0 event_duplicates=0",
        records.len(),
        deliveries.len(),
        requests,
        injected,
        100.0 * injected as f64 / requests.max(1) as f64
    );
    assert!(
        injected as f64 >= 0.2 * requests as f64 * 0.5,
        "the scenario must actually inject faults"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_survives_seeded_crashes_at_random_points() {
    let e = env(true).await.unwrap();
    let mut f = fanout(&e, e.stack.aws_env(), &[]).await;
    let mut poller = StreamPoller::new(
        e.stack.dynamodb_streams(),
        None,
        &e.resources.stream_arn,
        mapping(10),
    )
    .await
    .unwrap();
    let mut crashes = 0;
    let seeds = 30u64;
    for seed in 0..seeds {
        write_changes(&e, (seed as usize) * 10, 10).await;
        // One SIGKILL per seed, at a seeded point of the invocation (0–120 ms in).
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        x ^= x >> 31;
        f.kill_after([Duration::from_millis(x % 120)]);
        let deliveries = match poller.drain(&mut f).await {
            Ok(d) => d,
            Err(err) => {
                let logs = f.logs();
                panic!(
                    "{err}\n{}",
                    logs[logs.len().saturating_sub(12)..].join("\n")
                );
            }
        };
        crashes += deliveries
            .iter()
            .filter(|d| {
                matches!(
                    d.outcome,
                    dynabridge_devstack::InvokeOutcome::Crashed { .. }
                )
            })
            .count();
    }
    let records = stream_records(&e.stack, &e.resources.stream_arn).await;
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    let cdc = cdc_exactly_once(&records, &rows);
    assert!(cdc.is_clean(), "{cdc:?}");
    let events = receive(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        records.len(),
        Duration::from_secs(20),
    )
    .await;
    let ev = events_at_least_once(&records, &events);
    assert!(ev.missing.is_empty() && ev.unexpected.is_empty(), "{ev:?}");
    // Duplicates only from a crash between PutEvents and the checkpoint: at most one
    // batch's worth per crash.
    let duplicate_events: usize = ev.duplicated.iter().map(|(_, n)| n - 1).sum();
    assert!(
        duplicate_events <= crashes * 10,
        "{duplicate_events} duplicates for {crashes} crashes"
    );
    println!(
        "RELIABILITY stream-fanout crashes: seeds={seeds} crashes={crashes} changes={} cdc_missing=0 cdc_duplicates=0 event_duplicates={duplicate_events} (crash window)",
        records.len()
    );
    assert!(crashes >= 20, "the kills must land: {crashes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_event_duplicate_window_is_the_only_one() {
    let e = env(true).await.unwrap();
    write_changes(&e, 0, 6).await;
    let records = stream_records(&e.stack, &e.resources.stream_arn).await;
    let marker = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let marker_path = marker.to_string_lossy().to_string();
    std::fs::remove_file(&marker_path).ok();
    // Crash once right after PutEvents accepted the entries, before the checkpoint.
    let mut f = fanout(
        &e,
        e.stack.aws_env(),
        &[
            ("DYNABRIDGE_CRASH_AT", "events-after-put"),
            ("DYNABRIDGE_CRASH_ONCE_FILE", &marker_path),
        ],
    )
    .await;
    let event = windowed_event(&records, "shardId-window");
    let first = f.invoke(&event).await.unwrap();
    assert!(
        matches!(
            first.outcome,
            dynabridge_devstack::InvokeOutcome::Crashed { .. }
        ),
        "{first:?}"
    );
    let retry = f.invoke(&event).await.unwrap();
    assert!(
        matches!(&retry.outcome, dynabridge_devstack::InvokeOutcome::Response(v) if v["batchItemFailures"] == serde_json::json!([])),
        "{retry:?}"
    );
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    assert!(
        cdc_exactly_once(&records, &rows).is_clean(),
        "CDC stays exactly once"
    );
    let events = receive(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        2 * records.len(),
        Duration::from_secs(10),
    )
    .await;
    let ev = events_at_least_once(&records, &events);
    assert!(ev.missing.is_empty());
    assert_eq!(
        ev.duplicated.len(),
        records.len(),
        "exactly the crashed call's entries are sent twice: {ev:?}"
    );
    // Every duplicate carries the same eventId, so consumers can drop it.
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|v| v["detail"]["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), records.len());
}
