//! The batch writer under faults the local stack cannot produce — throttling,
//! `UnprocessedItems`, 5xx — injected with `aws-smithy-mocks`. The mock is a small stateful
//! fake table that applies writes, so the tests can check every item is written exactly once
//! or reported failed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemError, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest as SdkWrite};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use dynabridge_shared::clock::{Clock, ManualClock};
use dynabridge_shared::writer::{
    BatchWriter, FixedJitter, ItemOutcome, KeySchema, WriteRequest, WriterConfig,
};

const TABLE: &str = "items";

/// A DynamoDB JSON error response, as the service sends it.
fn error_response(status: u16, code: &str) -> HttpResponse {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected {code}"}}"#
    );
    HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body))
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Throttle,
    ServerError,
    Unavailable,
    /// Apply all but every third item, return those as unprocessed.
    Unprocessed,
    Validation,
    None,
}

/// What the fake table saw.
#[derive(Debug, Default)]
struct Fake {
    calls: usize,
    applied: HashMap<String, usize>,
    values: HashMap<String, String>,
    duplicate_calls: usize,
    oversized_calls: usize,
}

fn key_of(w: &SdkWrite) -> String {
    let item = w
        .put_request()
        .map(|p| p.item())
        .or_else(|| w.delete_request().map(|d| d.key()))
        .unwrap();
    match item.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("bad key {other:?}"),
    }
}

type Script = Arc<dyn Fn(usize, &[SdkWrite]) -> Fault + Send + Sync>;

fn faulty_client(fake: Arc<Mutex<Fake>>, script: Script) -> Client {
    let rule = mock!(Client::batch_write_item).then_compute_response(move |input| {
        let writes = input
            .request_items()
            .and_then(|m| m.get(TABLE))
            .cloned()
            .unwrap_or_default();
        let mut f = fake.lock().unwrap();
        f.calls += 1;
        let keys: Vec<String> = writes.iter().map(key_of).collect();
        let unique: HashSet<&String> = keys.iter().collect();
        if unique.len() != keys.len() {
            // What DynamoDB does with duplicate keys in one call.
            f.duplicate_calls += 1;
            return MockResponse::Http(error_response(400, "ValidationException"));
        }
        if writes.len() > 25 {
            f.oversized_calls += 1;
            return MockResponse::Http(error_response(400, "ValidationException"));
        }
        let fault = script(f.calls, &writes);
        let unprocessed: Vec<SdkWrite> = match fault {
            Fault::Throttle => {
                return MockResponse::Http(error_response(
                    400,
                    "ProvisionedThroughputExceededException",
                ));
            }
            Fault::ServerError => {
                return MockResponse::Http(error_response(500, "InternalServerError"));
            }
            Fault::Unavailable => {
                return MockResponse::Http(HttpResponse::new(
                    503.try_into().unwrap(),
                    SdkBody::from("Service Unavailable"),
                ));
            }
            Fault::Validation => {
                return MockResponse::Http(error_response(400, "ValidationException"));
            }
            Fault::Unprocessed => writes.iter().skip(1).step_by(3).cloned().collect(),
            Fault::None => Vec::new(),
        };
        let skipped: HashSet<String> = unprocessed.iter().map(key_of).collect();
        for w in &writes {
            let k = key_of(w);
            if skipped.contains(&k) {
                continue;
            }
            *f.applied.entry(k.clone()).or_insert(0) += 1;
            if let Some(AttributeValue::S(v)) = w.put_request().and_then(|p| p.item().get("v")) {
                f.values.insert(k, v.clone());
            }
        }
        let mut out = BatchWriteItemOutput::builder();
        if !unprocessed.is_empty() {
            out = out.unprocessed_items(TABLE, unprocessed);
        }
        MockResponse::<BatchWriteItemOutput, BatchWriteItemError>::Output(out.build())
    });
    mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(RetryConfig::disabled()))
}

fn writer(client: Client, clock: &ManualClock, max_attempts: u32) -> BatchWriter {
    let mut config = WriterConfig::new(TABLE, KeySchema::new("pk", None));
    config.max_attempts = max_attempts;
    BatchWriter::with_parts(
        client,
        config,
        Arc::new(clock.clone()),
        Arc::new(clock.clone()),
        Arc::new(FixedJitter(0.5)),
    )
}

fn put(pk: &str, v: &str) -> WriteRequest {
    WriteRequest::put(HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.into())),
        ("v".to_string(), AttributeValue::S(v.into())),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_unprocessed_items_and_5xx_every_item_written_exactly_once() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let script: Script = Arc::new(|call, _| match call % 10 {
        1 | 4 => Fault::Throttle,
        2 => Fault::ServerError,
        3 => Fault::Unavailable,
        5 | 7 | 9 => Fault::Unprocessed,
        _ => Fault::None,
    });
    let client = faulty_client(Arc::clone(&fake), script);
    let clock = ManualClock::new(0);
    let w = writer(client, &clock, 10);
    // 1,000 writes over 800 keys: 200 duplicates, some in the same 25-item window.
    let requests: Vec<WriteRequest> = (0..1000)
        .map(|i| put(&format!("k{}", i % 800), &format!("w{i}")))
        .collect();
    let report = w.write(requests).await;

    let f = fake.lock().unwrap();
    assert_eq!(f.duplicate_calls, 0, "no call ever held a duplicate key");
    assert_eq!(f.oversized_calls, 0);
    assert!(report.all_succeeded(), "{:?}", report.failures().next());
    assert_eq!(report.stats.written, 800);
    assert_eq!(report.stats.superseded, 200);
    assert_eq!(f.applied.len(), 800);
    assert!(
        f.applied.values().all(|n| *n == 1),
        "each key applied exactly once"
    );
    for i in 800..1000 {
        assert_eq!(
            f.values[&format!("k{}", i % 800)],
            format!("w{i}"),
            "last write wins"
        );
    }
    assert!(report.stats.throttled > 0 && report.stats.server_errors > 0);
    assert!(report.stats.unprocessed > 0);
    assert!(clock.slept() > Duration::ZERO, "backed off");
    println!("stats under faults: {:?}", report.stats);
}

#[tokio::test]
async fn persistent_throttling_reports_every_item_failed_after_a_bounded_backoff() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let client = faulty_client(Arc::clone(&fake), Arc::new(|_, _| Fault::Throttle));
    let clock = ManualClock::new(0);
    let w = writer(client, &clock, 5);
    let requests: Vec<WriteRequest> = (0..60).map(|i| put(&format!("k{i}"), "x")).collect();
    let report = w.write(requests).await;
    assert_eq!(report.stats.failed, 60);
    assert!(report.outcomes.iter().all(|o| matches!(
        o,
        ItemOutcome::Failed { reason, .. } if reason.contains("attempts")
    )));
    // Three chunks, five attempts each; AIMD went down to one request at a time.
    assert_eq!(report.stats.batch_requests, 15);
    assert_eq!(report.stats.concurrency_limit, 1);
    assert!(fake.lock().unwrap().applied.is_empty());
    // Full jitter at 0.5 of 50, 100, 200, 400 ms per chunk: bounded, not endless.
    assert_eq!(
        clock.slept(),
        Duration::from_millis(3 * (25 + 50 + 100 + 200))
    );
}

#[tokio::test]
async fn a_refused_item_fails_alone() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let script: Script = Arc::new(|_, writes| {
        if writes.iter().any(|w| key_of(w) == "bad") {
            Fault::Validation
        } else {
            Fault::None
        }
    });
    let client = faulty_client(Arc::clone(&fake), script);
    let clock = ManualClock::new(0);
    let w = writer(client, &clock, 5);
    let mut requests: Vec<WriteRequest> = (0..24).map(|i| put(&format!("k{i}"), "x")).collect();
    requests.insert(10, put("bad", "x"));
    let report = w.write(requests).await;
    assert_eq!(report.stats.written, 24);
    assert_eq!(report.stats.failed, 1);
    assert!(matches!(
        &report.outcomes[10],
        ItemOutcome::Failed { code: Some(c), .. } if c == "ValidationException"
    ));
    assert!(fake.lock().unwrap().applied.values().all(|n| *n == 1));
}

#[tokio::test]
async fn the_rate_ceiling_spaces_requests() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let client = faulty_client(Arc::clone(&fake), Arc::new(|_, _| Fault::None));
    let clock = ManualClock::new(1_000_000);
    let mut config = WriterConfig::new(TABLE, KeySchema::new("pk", None));
    config.max_items_per_second = Some(50.0);
    let w = BatchWriter::with_parts(
        client,
        config,
        Arc::new(clock.clone()),
        Arc::new(clock.clone()),
        Arc::new(FixedJitter(0.5)),
    );
    let requests: Vec<WriteRequest> = (0..100).map(|i| put(&format!("k{i}"), "x")).collect();
    let report = w.write(requests).await;
    assert!(report.all_succeeded());
    // 100 items at 50/s: the last chunk may start 1.5 s after the first.
    assert!(
        clock.now_ms() - 1_000_000 >= 1_500,
        "elapsed {} ms",
        clock.now_ms() - 1_000_000
    );
}

#[tokio::test]
async fn a_throttled_conditional_write_is_retried_then_skipped_when_stale() {
    let rule = mock!(Client::put_item)
        .sequence()
        .http_response(|| error_response(400, "ThrottlingException"))
        .http_response(|| error_response(500, "InternalServerError"))
        .http_response(|| error_response(400, "ConditionalCheckFailedException"))
        .output(|| PutItemOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    let clock = ManualClock::new(0);
    let w = writer(client, &clock, 5);
    let mut item = HashMap::from([
        ("pk".to_string(), AttributeValue::S("k".into())),
        ("version".to_string(), AttributeValue::N("3".into())),
    ]);
    let report = w
        .write(vec![WriteRequest::put_if_newer(item.clone(), "version")])
        .await;
    assert_eq!(report.outcomes, vec![ItemOutcome::SkippedStale]);
    assert_eq!(report.stats.single_requests, 3);
    assert_eq!(report.stats.throttled, 1);
    assert_eq!(report.stats.server_errors, 1);
    item.insert("version".into(), AttributeValue::N("4".into()));
    let report = w
        .write(vec![WriteRequest::put_if_newer(item, "version")])
        .await;
    assert_eq!(report.outcomes, vec![ItemOutcome::Written]);
}
