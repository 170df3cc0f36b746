//! End-to-end tests of the foundation: the local stack, the Runtime API harness and the
//! DynamoDB Streams event source mapping, with a real Lambda binary (`probe-function`).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_devstack::sources::streams::{MappingConfig, StreamPoller};
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::{env, item, probe_binary, read_json_lines};
use serde_json::{Value, json};

struct Probe {
    function: FunctionProcess,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn probe(e: &dynabridge_e2e::Env, timeout: Duration) -> Probe {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("records.jsonl");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let spec = FunctionSpec {
        name: "probe-function".into(),
        binary: probe_binary(env!("CARGO_BIN_EXE_probe-function")),
        env: Vec::new(),
        memory_mb: 128,
        timeout,
        log_file: None,
    }
    .with_env(e.stack.aws_env())
    .with_env([
        ("PROBE_LOG", log.to_string_lossy().to_string()),
        ("PROBE_STATE", state.to_string_lossy().to_string()),
        ("PROBE_SLEEP_MS", "5000".to_string()),
        ("RUST_LOG", "info".to_string()),
    ]);
    Probe {
        function: FunctionProcess::new(spec).await.unwrap(),
        log,
        _dir: dir,
    }
}

async fn put(e: &dynabridge_e2e::Env, pairs: &[(&str, &str)]) {
    e.stack
        .dynamodb()
        .put_item()
        .table_name(&e.resources.names.table)
        .set_item(Some(item(pairs)))
        .send()
        .await
        .unwrap();
}

async fn poller(e: &dynabridge_e2e::Env, config: MappingConfig) -> StreamPoller {
    let sqs = e.stack.sqs().ok();
    StreamPoller::new(
        e.stack.dynamodb_streams(),
        sqs,
        &e.resources.stream_arn,
        config,
    )
    .await
    .unwrap()
}

fn keys_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["keys"]["pk"]["S"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_the_binary_as_a_lambda_stream_event() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(30)).await;
    put(&e, &[("pk", "A#1"), ("sk", "x"), ("name", "first")]).await;
    put(&e, &[("pk", "A#2"), ("sk", "x")]).await;
    e.stack
        .dynamodb()
        .update_item()
        .table_name(&e.resources.names.table)
        .key("pk", AttributeValue::S("A#1".into()))
        .key("sk", AttributeValue::S("x".into()))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":v", AttributeValue::S("second".into()))
        .send()
        .await
        .unwrap();

    let mut poller = poller(&e, MappingConfig::default()).await;
    let deliveries = poller.drain(&mut p.function).await.unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].sequence_numbers.len(), 3);
    assert_eq!(
        deliveries[0].outcome,
        InvokeOutcome::Response(json!({"batchItemFailures": []}))
    );

    let lines = read_json_lines(&p.log);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "INSERT", "MODIFY"]);
    assert_eq!(keys_of(&lines), ["A#1", "A#2", "A#1"]);
    assert_eq!(lines[0]["eventSourceARN"], json!(e.resources.stream_arn));
    assert!(lines.iter().all(|l| l["userIdentity"].is_null()));

    // Each log line the function wrote during the invocation carries the request id.
    let request_id = lines[0]["requestId"].as_str().unwrap();
    let logs = p.function.logs();
    let invocation_lines: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "probe received batch")
        .collect();
    assert_eq!(invocation_lines.len(), 1, "{logs:?}");
    assert_eq!(invocation_lines[0]["span"]["requestId"], request_id);
    assert_eq!(invocation_lines[0]["records"], 3);

    // Nothing new: no further invocation.
    assert!(poller.drain(&mut p.function).await.unwrap().is_empty());
    assert_eq!(p.function.cold_starts(), 1, "the process is reused (warm)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_item_failure_is_redelivered_from_that_record() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(30)).await;
    for i in 1..=5 {
        let probe = if i == 3 { "fail-once" } else { "ok" };
        put(
            &e,
            &[("pk", &format!("B#{i}")), ("sk", "x"), ("probe", probe)],
        )
        .await;
    }
    let mut poller = poller(&e, MappingConfig::default()).await;
    let deliveries = poller.drain(&mut p.function).await.unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    let first = &deliveries[0].sequence_numbers;
    let second = &deliveries[1].sequence_numbers;
    assert_eq!(first.len(), 5);
    assert_eq!(
        deliveries[0].outcome,
        InvokeOutcome::Response(json!({"batchItemFailures": [{"itemIdentifier": first[2]}]}))
    );
    // Redelivery starts exactly at the failed record and holds only it and what follows.
    assert_eq!(second, &first[2..].to_vec());
    assert_eq!(deliveries[1].attempt, 1);
    let lines = read_json_lines(&p.log);
    assert_eq!(
        keys_of(&lines),
        ["B#1", "B#2", "B#3", "B#4", "B#5", "B#3", "B#4", "B#5"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_reported_at_once_and_bisection_recovers() {
    let e = env(false).await.unwrap();
    // A long timeout: the crash must be noticed long before it.
    let mut p = probe(&e, Duration::from_secs(60)).await;
    for i in 1..=4 {
        let probe = if i == 2 { "crash-once" } else { "ok" };
        put(
            &e,
            &[("pk", &format!("C#{i}")), ("sk", "x"), ("probe", probe)],
        )
        .await;
    }
    // Warm the process up first so the crash timing excludes the cold start.
    p.function.start().await.unwrap();
    let mut poller = poller(&e, MappingConfig::default()).await;
    let started = Instant::now();
    let deliveries = poller.drain(&mut p.function).await.unwrap();
    assert!(
        matches!(deliveries[0].outcome, InvokeOutcome::Crashed { .. }),
        "{deliveries:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // Bisection: [1..4] crashed, then [1,2] (crash marker set, succeeds), then [3,4].
    let batches: Vec<usize> = deliveries
        .iter()
        .map(|d| d.sequence_numbers.len())
        .collect();
    assert_eq!(batches, [4, 2, 2], "{deliveries:?}");
    assert!(
        deliveries[1..]
            .iter()
            .all(|d| !d.outcome.is_function_error())
    );
    assert_eq!(p.function.cold_starts(), 2, "a crash starts a new process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detection_takes_under_a_second() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(60)).await;
    p.function.start().await.unwrap();
    let event = json!({"Records": [{"eventName": "INSERT", "dynamodb": {
        "SequenceNumber": "1", "Keys": {"pk": {"S": "X"}}, "NewImage": {"probe": {"S": "crash-once"}}}}]});
    let inv = p.function.invoke(&event).await.unwrap();
    assert!(
        matches!(
            inv.outcome,
            InvokeOutcome::Crashed {
                signal: Some(6),
                ..
            }
        ),
        "{inv:?}"
    );
    assert!(
        inv.duration < Duration::from_secs(1),
        "took {:?}",
        inv.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_timeouts_are_reported() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_millis(1500)).await;
    let rec = |probe: &str, seq: &str| {
        json!({"Records": [{"eventName": "INSERT", "dynamodb": {
        "SequenceNumber": seq, "Keys": {"pk": {"S": "X"}}, "NewImage": {"probe": {"S": probe}}}}]})
    };
    let inv = p.function.invoke(&rec("error-once", "1")).await.unwrap();
    match &inv.outcome {
        InvokeOutcome::Error { error_message, .. } => {
            assert!(error_message.contains("probe error at 1"))
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // Same process, next invocation succeeds (the error did not kill it).
    let inv = p.function.invoke(&rec("error-once", "1")).await.unwrap();
    assert!(matches!(inv.outcome, InvokeOutcome::Response(_)));
    assert_eq!(p.function.cold_starts(), 1);

    let inv = p.function.invoke(&rec("sleep", "2")).await.unwrap();
    assert_eq!(inv.outcome, InvokeOutcome::TimedOut);
    assert!(inv.duration >= Duration::from_millis(1500) && inv.duration < Duration::from_secs(4));
    // After a timeout the environment is replaced.
    let inv = p.function.invoke(&rec("ok", "3")).await.unwrap();
    assert!(inv.cold);
    assert_eq!(p.function.cold_starts(), 2);

    // A payload the function cannot deserialize is an error, not a crash.
    let inv = p.function.invoke_raw(b"not json".to_vec()).await.unwrap();
    assert!(
        matches!(inv.outcome, InvokeOutcome::Error { .. }),
        "{inv:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_sweep_delivers_a_service_remove() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(30)).await;
    let past = (chrono::Utc::now().timestamp() - 3600).to_string();
    let future = (chrono::Utc::now().timestamp() + 3600).to_string();
    let ddb = e.stack.dynamodb();
    for (pk, ttl) in [("T#old", &past), ("T#new", &future)] {
        let mut it = item(&[("pk", pk), ("sk", "x")]);
        it.insert("ttl".into(), AttributeValue::N(ttl.clone()));
        ddb.put_item()
            .table_name(&e.resources.names.table)
            .set_item(Some(it))
            .send()
            .await
            .unwrap();
    }
    // A user delete, for contrast.
    put(&e, &[("pk", "T#user"), ("sk", "x")]).await;
    ddb.delete_item()
        .table_name(&e.resources.names.table)
        .key("pk", AttributeValue::S("T#user".into()))
        .key("sk", AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();

    assert_eq!(e.stack.sweep_ttl().await.unwrap(), 1);
    let mut poller = poller(&e, MappingConfig::default()).await;
    poller.drain(&mut p.function).await.unwrap();
    let lines = read_json_lines(&p.log);
    let removes: Vec<&Value> = lines
        .iter()
        .filter(|l| l["eventName"] == "REMOVE")
        .collect();
    assert_eq!(removes.len(), 2, "{lines:?}");
    let ttl_remove = removes
        .iter()
        .find(|l| l["keys"]["pk"]["S"] == "T#old")
        .unwrap();
    assert_eq!(
        ttl_remove["userIdentity"],
        json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"})
    );
    let user_remove = removes
        .iter()
        .find(|l| l["keys"]["pk"]["S"] == "T#user")
        .unwrap();
    assert!(user_remove["userIdentity"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_criteria_deliver_only_ttl_removes() {
    let e = env(false).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(30)).await;
    let ddb = e.stack.dynamodb();
    let mut it = item(&[("pk", "F#old"), ("sk", "x")]);
    it.insert(
        "ttl".into(),
        AttributeValue::N((chrono::Utc::now().timestamp() - 60).to_string()),
    );
    ddb.put_item()
        .table_name(&e.resources.names.table)
        .set_item(Some(it))
        .send()
        .await
        .unwrap();
    put(&e, &[("pk", "F#user"), ("sk", "x")]).await;
    ddb.delete_item()
        .table_name(&e.resources.names.table)
        .key("pk", AttributeValue::S("F#user".into()))
        .key("sk", AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();
    e.stack.sweep_ttl().await.unwrap();
    let config = MappingConfig {
        filter_criteria: vec![json!({
            "eventName": ["REMOVE"],
            "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}
        })],
        ..Default::default()
    };
    let mut poller = poller(&e, config).await;
    let deliveries = poller.drain(&mut p.function).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let lines = read_json_lines(&p.log);
    assert_eq!(keys_of(&lines), ["F#old"]);
    assert_eq!(lines[0]["eventName"], "REMOVE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_go_to_the_on_failure_destination() {
    let e = env(true).await.unwrap();
    let mut p = probe(&e, Duration::from_secs(30)).await;
    put(&e, &[("pk", "D#1"), ("sk", "x")]).await;
    put(&e, &[("pk", "D#2"), ("sk", "x"), ("probe", "fail-always")]).await;
    put(&e, &[("pk", "D#3"), ("sk", "x")]).await;
    let queue = e.resources.stream_failure_queue_url.clone().unwrap();
    let config = MappingConfig {
        maximum_retry_attempts: 2,
        on_failure_queue_url: Some(queue.clone()),
        ..Default::default()
    };
    let mut poller = poller(&e, config).await;
    let deliveries = poller.drain(&mut p.function).await.unwrap();
    // 1 first try + 2 retries of [D#2, D#3]; then skipped.
    let sizes: Vec<usize> = deliveries
        .iter()
        .map(|d| d.sequence_numbers.len())
        .collect();
    assert_eq!(sizes, [3, 2, 2], "{deliveries:?}");
    assert_eq!(poller.discarded().len(), 1);
    let d = &poller.discarded()[0];
    assert_eq!(d.condition, "RetryAttemptsExhausted");
    assert_eq!(d.batch_size, 2);

    let sqs = e.stack.sqs().unwrap();
    let bodies = dynabridge_devstack::provision::drain_queue(&sqs, &queue, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(bodies.len(), 1);
    let msg: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(msg["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(msg["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(
        msg["DDBStreamBatchInfo"]["startSequenceNumber"],
        json!(d.start_sequence_number)
    );
    assert_eq!(
        msg["DDBStreamBatchInfo"]["streamArn"],
        json!(e.resources.stream_arn)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_binary_reports_bad_input_as_a_typed_error() {
    let e = env(false).await.unwrap();
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env(e.resources.function_env())
        .with_timeout(Duration::from_secs(30));
    let mut f = FunctionProcess::new(spec).await.unwrap();
    let inv = f.invoke(&json!({"not": "a stream event"})).await.unwrap();
    match &inv.outcome {
        InvokeOutcome::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "InvalidEvent");
            assert!(error_message.contains("Records"), "{error_message}");
        }
        other => panic!("expected a typed error, got {other:?}"),
    }
    // A record without a sequence number cannot be checkpointed: typed error, no crash.
    let inv = f
        .invoke(&json!({"Records": [{"eventName": "INSERT", "dynamodb": {"Keys": {}}}]}))
        .await
        .unwrap();
    assert!(
        matches!(&inv.outcome, InvokeOutcome::Error { error_type, .. } if error_type == "InvalidEvent"),
        "{inv:?}"
    );
    assert_eq!(f.cold_starts(), 1, "no crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_setting_fails_the_cold_start_naming_the_variable() {
    let e = env(false).await.unwrap();
    let spec = FunctionSpec::workspace("aged-export")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env([("DYNABRIDGE_TABLE_NAME", "dynabridge-app")]);
    let mut f = FunctionProcess::new(spec).await.unwrap();
    let err = f.start().await.unwrap_err().to_string();
    assert!(err.contains("exited during init"), "{err}");
    let logs = f.logs().join("\n");
    assert!(logs.contains("DYNABRIDGE_CONTROL_TABLE"), "{logs}");
    let line: Value = serde_json::from_str(
        f.logs()
            .iter()
            .find(|l| l.contains("cold start failed"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "ERROR");
}
