//! The fault proxy over the wire: real AWS SDK clients → proxy → local stack, asserting what
//! the SDK sees and what actually reached the stack.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynabridge_devstack::faults::{
    Fault, FaultKind, FaultPlan, FaultProxy, FaultRule, FaultyEndpoints, Service,
};
use dynabridge_devstack::provision::{self, ResourceNames};
use dynabridge_devstack::{LocalStack, StackOptions};

const TABLE: &str = "faults-table";

fn stack_without_moto() -> LocalStack {
    LocalStack::start(StackOptions {
        eventbridge: false,
        ..StackOptions::default()
    })
    .expect("local stack")
}

async fn stack_with_table() -> LocalStack {
    let stack = stack_without_moto();
    provision::create_pk_sk_table(&stack.dynamodb(), TABLE, false, "ttl")
        .await
        .expect("table");
    stack
}

fn ddb(stack: &LocalStack, endpoint: String, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&stack.sdk_config())
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn s3(stack: &LocalStack, endpoint: String) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&stack.sdk_config())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn fast_standard_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(50))
}

fn key(pk: &str) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_string(), AttributeValue::S(pk.into())),
        ("sk".to_string(), AttributeValue::S("v".into())),
    ]
    .into()
}

async fn put(client: &aws_sdk_dynamodb::Client, pk: &str) -> Result<(), String> {
    client
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key(pk)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("no code").to_string())
}

async fn keys_in_table(stack: &LocalStack) -> BTreeSet<String> {
    let out = stack
        .dynamodb()
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    out.items()
        .iter()
        .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_throttling_is_recognised_and_standard_retries_get_through() {
    let stack = stack_with_table().await;
    let proxy = FaultProxy::start(
        stack.dynamodb_endpoint(),
        Service::DynamoDb,
        FaultPlan::new(1).on(Service::DynamoDb, "PutItem", Fault::Throttle, 1.0),
    )
    .unwrap();

    let no_retry = ddb(&stack, proxy.endpoint(), RetryConfig::disabled());
    let err = no_retry
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("throttled")))
        .send()
        .await
        .expect_err("throttled");
    let service_err = err.as_service_error().expect("a service error");
    assert!(
        service_err.is_provisioned_throughput_exceeded_exception(),
        "{service_err:?}"
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    proxy
        .set_plan(FaultPlan::new(1).on(
            Service::DynamoDb,
            "PutItem",
            Fault::ThrottlingException,
            1.0,
        ))
        .unwrap();
    assert_eq!(
        put(&no_retry, "throttled").await,
        Err("ThrottlingException".to_string())
    );
    let stats = proxy.stats();
    assert_eq!(
        stats.injected(Service::DynamoDb, "PutItem", FaultKind::Throttle),
        1
    );
    assert_eq!(
        stats.injected(Service::DynamoDb, "PutItem", FaultKind::ThrottlingException),
        1
    );
    assert_eq!(stats.forwarded(Service::DynamoDb, "PutItem"), 0);
    assert!(keys_in_table(&stack).await.is_empty());

    // Half the attempts throttled: the SDK's standard retries get every call through.
    proxy.reset_stats();
    proxy
        .set_plan(FaultPlan::new(5).on(Service::DynamoDb, "PutItem", Fault::Throttle, 0.5))
        .unwrap();
    let retrying = ddb(&stack, proxy.endpoint(), fast_standard_retries());
    let expected: BTreeSet<String> = (0..20).map(|i| format!("item-{i:02}")).collect();
    for pk in &expected {
        put(&retrying, pk).await.expect("retried to success");
    }
    assert_eq!(keys_in_table(&stack).await, expected);
    let stats = proxy.stats();
    let throttled = stats.injected(Service::DynamoDb, "PutItem", FaultKind::Throttle);
    assert!(throttled >= 5, "only {throttled} throttles at rate 0.5");
    assert_eq!(stats.forwarded(Service::DynamoDb, "PutItem"), 20);
    assert_eq!(stats.requests(Service::DynamoDb, "PutItem"), 20 + throttled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_write_unprocessed_items_are_exactly_the_items_not_written() {
    let stack = stack_with_table().await;
    let proxy = FaultProxy::start(
        stack.dynamodb_endpoint(),
        Service::DynamoDb,
        FaultPlan::new(3).on(
            Service::DynamoDb,
            "BatchWriteItem",
            Fault::PartialBatch,
            1.0,
        ),
    )
    .unwrap();
    let client = ddb(&stack, proxy.endpoint(), RetryConfig::disabled());
    let all: BTreeSet<String> = (0..25).map(|i| format!("batch-{i:02}")).collect();
    let writes: Vec<WriteRequest> = all
        .iter()
        .map(|pk| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(key(pk)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let out = client
        .batch_write_item()
        .request_items(TABLE, writes)
        .send()
        .await
        .expect("a partial result is a success");
    let unprocessed = out.unprocessed_items().cloned().unwrap_or_default();
    let held: BTreeSet<String> = unprocessed
        .get(TABLE)
        .map(|ws| {
            ws.iter()
                .filter_map(|w| w.put_request())
                .filter_map(|p| p.item().get("pk"))
                .filter_map(|v| v.as_s().ok().cloned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !held.is_empty() && held.len() < 25,
        "held back {}",
        held.len()
    );
    let written = keys_in_table(&stack).await;
    assert_eq!(
        written,
        all.difference(&held).cloned().collect::<BTreeSet<_>>()
    );

    proxy.set_plan(FaultPlan::none()).unwrap();
    let again = client
        .batch_write_item()
        .set_request_items(Some(unprocessed))
        .send()
        .await
        .expect("re-send");
    assert!(again.unprocessed_items().is_none_or(|u| u.is_empty()));
    assert_eq!(keys_in_table(&stack).await, all);
    let stats = proxy.stats();
    assert_eq!(
        stats.injected(Service::DynamoDb, "BatchWriteItem", FaultKind::PartialBatch),
        1
    );
    assert_eq!(stats.forwarded(Service::DynamoDb, "BatchWriteItem"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_partial_failure_delivers_only_the_successful_entries() {
    let stack = LocalStack::start(StackOptions::default()).expect("stack with moto");
    let res = provision::provision(&stack, ResourceNames::default())
        .await
        .expect("provision");
    let queue = res.events_queue_url.clone().expect("events queue");
    let faulty = FaultyEndpoints::start(
        &stack,
        FaultPlan::new(8).on(Service::EventBridge, "PutEvents", Fault::PartialBatch, 1.0),
    )
    .unwrap();
    let env = faulty.aws_env();
    let eb_proxy = faulty.eventbridge_proxy().unwrap().endpoint();
    assert!(env.contains(&("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), eb_proxy.clone())));
    assert!(env.contains(&("AWS_ENDPOINT_URL_SQS".into(), eb_proxy)));
    assert!(env.contains(&(
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS".into(),
        faulty.dynamodb_proxy().endpoint()
    )));

    let entries: Vec<_> = (0..10)
        .map(|n| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(&res.names.event_bus)
                .source("dynabridge.faults")
                .detail_type("Item Inserted")
                .detail(format!(r#"{{"n":{n}}}"#))
                .build()
        })
        .collect();
    let out = faulty
        .eventbridge()
        .unwrap()
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
        .expect("PutEvents");
    let results = out.entries();
    assert_eq!(results.len(), 10);
    let failed: BTreeSet<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, e)| e.error_code().is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(out.failed_entry_count(), failed.len() as i32);
    assert!(!failed.is_empty() && failed.len() < 10);
    for i in &failed {
        assert_eq!(results[*i].error_code(), Some("InternalFailure"));
        assert_eq!(results[*i].error_message(), Some("injected"));
        assert!(results[*i].event_id().is_none());
    }
    for (i, e) in results.iter().enumerate() {
        if !failed.contains(&i) {
            assert!(e.event_id().is_some(), "entry {i} has no event id");
        }
    }

    // Read the queue directly (not through the proxy) to see what was delivered.
    let bodies = provision::drain_queue(&stack.sqs().unwrap(), &queue, Duration::from_secs(3))
        .await
        .unwrap();
    let delivered: BTreeSet<usize> = bodies
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            v["detail"]["n"].as_u64().unwrap() as usize
        })
        .collect();
    let expected: BTreeSet<usize> = (0..10).filter(|i| !failed.contains(i)).collect();
    assert_eq!(delivered, expected);
    assert_eq!(bodies.len(), expected.len());
    let stats = faulty.stats();
    assert_eq!(
        stats.injected(Service::EventBridge, "PutEvents", FaultKind::PartialBatch),
        1
    );
    assert_eq!(stats.total_injected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_shapes_of_eventbridge_sqs_and_streams_are_recognised() {
    let stack = LocalStack::start(StackOptions::default()).expect("stack with moto");
    let res = provision::provision(&stack, ResourceNames::default())
        .await
        .expect("provision");
    let plan = FaultPlan::new(9)
        .on(Service::EventBridge, "PutEvents", Fault::Throttle, 1.0)
        .on(Service::Sqs, "SendMessage", Fault::Throttle, 1.0)
        .on(
            Service::DynamoDbStreams,
            "DescribeStream",
            Fault::Throttle,
            1.0,
        )
        .on(Service::EventBridge, "ListRules", Fault::InternalError, 1.0);
    let faulty = FaultyEndpoints::start(&stack, plan)
        .unwrap()
        .with_retry_config(RetryConfig::disabled());

    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(&res.names.event_bus)
        .source("dynabridge.faults")
        .detail_type("Item Inserted")
        .detail("{}")
        .build();
    let eb = faulty.eventbridge().unwrap();
    let err = eb.put_events().entries(entry).send().await.unwrap_err();
    assert_eq!(
        aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&err),
        Some("ThrottlingException")
    );
    let err = eb.list_rules().send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_internal_exception()),
        "{err:?}"
    );
    // Other operations of the same service pass.
    eb.list_event_buses().send().await.expect("ListEventBuses");

    let sqs = faulty.sqs().unwrap();
    let queue = res.events_queue_url.clone().unwrap();
    let err = sqs
        .send_message()
        .queue_url(&queue)
        .message_body("x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_request_throttled()),
        "{err:?}"
    );
    sqs.get_queue_attributes()
        .queue_url(&queue)
        .send()
        .await
        .expect("GetQueueAttributes passes");

    let err = faulty
        .dynamodb_streams()
        .describe_stream()
        .stream_arn(&res.stream_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_dynamodbstreams::error::ProvideErrorMetadata::code(&err),
        Some("ThrottlingException")
    );
    // The DynamoDB API on the same endpoint is not affected by a Streams rule.
    faulty
        .dynamodb()
        .describe_table()
        .table_name(&res.names.table)
        .send()
        .await
        .expect("DescribeTable");

    let stats = faulty.stats();
    for (service, op, kind) in [
        (Service::EventBridge, "PutEvents", FaultKind::Throttle),
        (Service::EventBridge, "ListRules", FaultKind::InternalError),
        (Service::Sqs, "SendMessage", FaultKind::Throttle),
        (
            Service::DynamoDbStreams,
            "DescribeStream",
            FaultKind::Throttle,
        ),
    ] {
        assert_eq!(stats.injected(service, op, kind), 1, "{service}/{op}");
        assert_eq!(stats.forwarded(service, op), 0, "{service}/{op}");
    }
    assert_eq!(stats.total_injected(), 4);
    assert_eq!(faulty.journal().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_are_recognised_and_clean_traffic_passes_signed() {
    use aws_sdk_s3::primitives::ByteStream;
    let stack = stack_without_moto();
    stack
        .s3()
        .create_bucket()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(
        stack.s3_endpoint(),
        Service::S3,
        FaultPlan::new(2).on(Service::S3, "PutObject", Fault::Throttle, 1.0),
    )
    .unwrap();
    let client = s3(&stack, proxy.endpoint());
    let put = |key: &'static str| {
        client
            .put_object()
            .bucket("lake")
            .key(key)
            .body(ByteStream::from_static(b"hello"))
            .send()
    };
    let status_and_code = |e: &aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::put_object::PutObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >| {
        (
            e.raw_response().map(|r| r.status().as_u16()),
            aws_sdk_s3::error::ProvideErrorMetadata::code(e).map(str::to_string),
        )
    };
    let err = put("a.txt").await.expect_err("SlowDown");
    assert_eq!(status_and_code(&err), (Some(503), Some("SlowDown".into())));

    for (fault, status, code) in [
        (Fault::InternalError, 500, "InternalError"),
        (Fault::ServiceUnavailable, 503, "ServiceUnavailable"),
    ] {
        proxy
            .set_plan(FaultPlan::new(2).on(Service::S3, "PutObject", fault, 1.0))
            .unwrap();
        let err = put("a.txt").await.expect_err("5xx");
        assert_eq!(status_and_code(&err), (Some(status), Some(code.into())));
    }
    assert!(!stack.lake_root().join("lake/a.txt").exists());

    // No faults: signed requests pass (s3s verifies SigV4 against the unchanged Host).
    proxy.set_plan(FaultPlan::none()).unwrap();
    put("a.txt").await.expect("PutObject through the proxy");
    let got = client
        .get_object()
        .bucket("lake")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello"
    );
    let head = client
        .head_object()
        .bucket("lake")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(5));

    let part1 = vec![7u8; 5 * 1024 * 1024];
    let mpu = client
        .create_multipart_upload()
        .bucket("lake")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    let upload_id = mpu.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, data) in [(1, part1.clone()), (2, b"tail".to_vec())] {
        let out = client
            .upload_part()
            .bucket("lake")
            .key("big.bin")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket("lake")
        .key("big.bin")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let listed = client
        .list_objects_v2()
        .bucket("lake")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 2);
    let on_disk = std::fs::metadata(stack.lake_root().join("lake/big.bin")).unwrap();
    assert_eq!(on_disk.len(), part1.len() as u64 + 4);

    let stats = proxy.stats();
    assert_eq!(
        stats.injected(Service::S3, "PutObject", FaultKind::Throttle),
        1
    );
    assert_eq!(
        stats.injected(Service::S3, "PutObject", FaultKind::InternalError),
        1
    );
    assert_eq!(
        stats.injected(Service::S3, "PutObject", FaultKind::ServiceUnavailable),
        1
    );
    assert_eq!(stats.forwarded(Service::S3, "PutObject"), 1);
    for op in [
        "GetObject",
        "HeadObject",
        "CreateMultipartUpload",
        "CompleteMultipartUpload",
        "ListObjectsV2",
    ] {
        assert_eq!(stats.forwarded(Service::S3, op), 1, "{op}: {stats:?}");
    }
    assert_eq!(stats.forwarded(Service::S3, "UploadPart"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_io_errors_and_reset_after_forward_still_writes() {
    let stack = stack_with_table().await;
    let proxy = FaultProxy::start(
        stack.dynamodb_endpoint(),
        Service::DynamoDb,
        FaultPlan::new(4).on(Service::DynamoDb, "PutItem", Fault::ConnectionReset, 1.0),
    )
    .unwrap();
    let client = ddb(&stack, proxy.endpoint(), RetryConfig::disabled());
    let err = client
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("reset")))
        .send()
        .await
        .expect_err("reset");
    match &err {
        SdkError::DispatchFailure(d) => assert!(d.is_io(), "{d:?}"),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    assert!(keys_in_table(&stack).await.is_empty());

    proxy
        .set_plan(FaultPlan::new(4).on(Service::DynamoDb, "PutItem", Fault::ResetAfterForward, 1.0))
        .unwrap();
    let err = put(&client, "ambiguous").await;
    assert!(err.is_err());
    assert_eq!(
        keys_in_table(&stack).await,
        BTreeSet::from(["ambiguous".to_string()])
    );

    // The client recovers on a new connection once the faults stop.
    proxy.set_plan(FaultPlan::none()).unwrap();
    put(&client, "after").await.expect("clean put");
    let stats = proxy.stats();
    assert_eq!(
        stats.injected(Service::DynamoDb, "PutItem", FaultKind::ConnectionReset),
        1
    );
    assert_eq!(
        stats.injected(Service::DynamoDb, "PutItem", FaultKind::ResetAfterForward),
        1
    );
    assert_eq!(stats.forwarded(Service::DynamoDb, "PutItem"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_added_to_matching_requests_only() {
    let stack = stack_with_table().await;
    let proxy = FaultProxy::start(
        stack.dynamodb_endpoint(),
        Service::DynamoDb,
        FaultPlan::new(0)
            .on(
                Service::DynamoDb,
                "GetItem",
                Fault::Latency(Duration::from_millis(200)),
                1.0,
            )
            .on(
                Service::DynamoDb,
                "GetItem",
                Fault::Latency(Duration::from_millis(150)),
                1.0,
            ),
    )
    .unwrap();
    let client = ddb(&stack, proxy.endpoint(), RetryConfig::disabled());
    put(&client, "x").await.unwrap();
    let started = Instant::now();
    client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("x")))
        .send()
        .await
        .unwrap();
    let slow = started.elapsed();
    assert!(slow >= Duration::from_millis(350), "{slow:?}");
    let started = Instant::now();
    put(&client, "y").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(
        proxy
            .stats()
            .injected(Service::DynamoDb, "GetItem", FaultKind::Latency),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_faults_and_stats_count_exactly_what_was_injected() {
    let stack = stack_with_table().await;
    let plan = |seed| {
        FaultPlan::new(seed)
            .rule(FaultRule::new(Fault::Throttle, 0.3).service(Service::DynamoDb))
            .on(Service::DynamoDb, "GetItem", Fault::InternalError, 0.2)
    };
    let run = |seed: u64| {
        let stack = &stack;
        let plan = plan(seed);
        async move {
            let proxy =
                FaultProxy::start(stack.dynamodb_endpoint(), Service::DynamoDb, plan).unwrap();
            let client = ddb(stack, proxy.endpoint(), RetryConfig::disabled());
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let r = if i % 2 == 0 {
                    put(&client, &format!("d{i}")).await
                } else {
                    client
                        .get_item()
                        .table_name(TABLE)
                        .set_key(Some(key("d0")))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.code().unwrap_or("no code").to_string())
                };
                outcomes.push(r);
            }
            (outcomes, proxy.stats(), proxy.journal())
        }
    };
    let (a, stats_a, journal_a) = run(77).await;
    let (b, stats_b, journal_b) = run(77).await;
    let (c, _, _) = run(78).await;
    assert_eq!(a, b);
    assert_eq!(journal_a, journal_b);
    assert_eq!(stats_a, stats_b);
    assert_ne!(a, c, "a different seed should give a different sequence");

    let count = |code: &str| {
        a.iter()
            .filter(|r| matches!(r, Err(c) if c == code))
            .count() as u64
    };
    let throttles = count("ProvisionedThroughputExceededException");
    let internal = count("InternalServerError");
    assert!(throttles > 0 && internal > 0, "{a:?}");
    assert_eq!(stats_a.injected_kind(FaultKind::Throttle), throttles);
    assert_eq!(stats_a.injected_kind(FaultKind::InternalError), internal);
    assert_eq!(stats_a.total_injected(), throttles + internal);
    assert_eq!(journal_a.len() as u64, throttles + internal);
    assert_eq!(stats_a.total_requests(), 40);
    assert_eq!(stats_a.total_forwarded(), 40 - throttles - internal);
    // Journal positions are per operation: each PutItem/GetItem index below 20.
    assert!(journal_a.iter().all(|f| f.request < 20));
}
