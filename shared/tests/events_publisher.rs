//! The EventBridge publisher: real deliveries through moto (rule → SQS), and per-entry
//! failures injected with aws-smithy-mocks (moto cannot fail single entries on demand).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use dynabridge_devstack::provision::{self, ResourceNames};
use dynabridge_devstack::{LocalStack, StackOptions};
use dynabridge_shared::events::{DomainEvent, EventPublisher, RetryPolicy};
use dynabridge_shared::retry::FixedJitter;
use serde_json::{Value, json};

fn event(i: usize) -> DomainEvent {
    DomainEvent {
        detail_type: "Order Inserted".into(),
        detail: json!({"eventId": format!("e{i}"), "keys": {"pk": format!("ORDER#{i}")}})
            .to_string(),
        claim_check: None,
        resources: vec![],
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_through_a_rule_to_a_queue() {
    let stack = LocalStack::start(StackOptions::default()).unwrap();
    let res = provision::provision(&stack, ResourceNames::default())
        .await
        .unwrap();
    let publisher = EventPublisher::new(
        stack.eventbridge().unwrap(),
        &res.names.event_bus,
        "dynabridge.dynabridge-app",
    );
    let mut events: Vec<DomainEvent> = (0..23).map(event).collect();
    // One oversized event with a claim check, one without.
    let huge = "x".repeat(300 * 1024);
    events.push(DomainEvent {
        detail: json!({"eventId": "big", "newImage": {"blob": huge}}).to_string(),
        claim_check: Some(
            json!({"eventId": "big", "claimCheck": {"bucket": "lake", "key": "cdc/x.parquet"}})
                .to_string(),
        ),
        ..event(23)
    });
    events.push(DomainEvent {
        detail: json!({"eventId": "too-big", "newImage": {"blob": huge}}).to_string(),
        ..event(24)
    });
    let report = publisher.publish(&events).await;
    assert_eq!(report.published, 24, "{report:?}");
    assert_eq!(report.claim_checks, 1);
    assert_eq!(report.calls, 3, "10 + 10 + 4 entries");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].index, 24);
    assert_eq!(report.failed[0].code, "EntryTooLarge");

    let sqs = stack.sqs().unwrap();
    let url = res.events_queue_url.unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        for body in provision::drain_queue(&sqs, &url, Duration::from_millis(100))
            .await
            .unwrap()
        {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["source"], "dynabridge.dynabridge-app");
            assert_eq!(v["detail-type"], "Order Inserted");
            ids.push(v["detail"]["eventId"].as_str().unwrap().to_string());
            if v["detail"]["eventId"] == "big" {
                assert_eq!(v["detail"]["claimCheck"]["key"], "cdc/x.parquet");
            }
        }
        if ids.len() >= 24 {
            break;
        }
    }
    ids.sort();
    let mut want: Vec<String> = (0..23).map(|i| format!("e{i}")).collect();
    want.push("big".into());
    want.sort();
    assert_eq!(ids, want);
}

fn ok_entry(id: &str) -> PutEventsResultEntry {
    PutEventsResultEntry::builder().event_id(id).build()
}

fn failed_entry() -> PutEventsResultEntry {
    PutEventsResultEntry::builder()
        .error_code("ThrottlingException")
        .error_message("Rate exceeded")
        .build()
}

#[tokio::test]
async fn failed_entries_are_retried_on_their_own_until_they_succeed() {
    // Call 1 (3 entries): entry 1 fails. Retry of entry 1 alone: fails again, then succeeds.
    let first = mock!(Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(ok_entry("a"))
            .entries(failed_entry())
            .entries(ok_entry("c"))
            .build()
    });
    let retry_fail = mock!(Client::put_events)
        .match_requests(|r| r.entries().len() == 1)
        .then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(failed_entry())
                .build()
        });
    let retry_ok = mock!(Client::put_events)
        .match_requests(|r| r.entries().len() == 1)
        .then_output(|| PutEventsOutput::builder().entries(ok_entry("b")).build());
    let client = mock_client!(
        aws_sdk_eventbridge,
        RuleMode::Sequential,
        [&first, &retry_fail, &retry_ok]
    );
    let publisher = EventPublisher::new(client, "bus", "dynabridge.t")
        .with_retry(fast_retry())
        .with_jitter(Arc::new(FixedJitter(0.5)));
    let report = publisher.publish(&[event(0), event(1), event(2)]).await;
    assert_eq!(report.published, 3, "{report:?}");
    assert_eq!(report.retries, 2);
    assert_eq!(report.calls, 3);
    assert!(report.failed.is_empty());
    assert_eq!(first.num_calls(), 1);
    assert_eq!(retry_fail.num_calls(), 1);
    assert_eq!(retry_ok.num_calls(), 1);
}

#[tokio::test]
async fn a_persistently_failing_entry_is_reported_by_index() {
    let first = mock!(Client::put_events)
        .match_requests(|r| r.entries().len() == 4)
        .then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(ok_entry("a"))
                .entries(ok_entry("b"))
                .entries(failed_entry())
                .entries(ok_entry("d"))
                .build()
        });
    let always_fail = mock!(Client::put_events)
        .match_requests(|r| r.entries().len() == 1)
        .then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(failed_entry())
                .build()
        });
    let client = mock_client!(
        aws_sdk_eventbridge,
        RuleMode::MatchAny,
        [&first, &always_fail]
    );
    let publisher = EventPublisher::new(client, "bus", "dynabridge.t")
        .with_retry(fast_retry())
        .with_jitter(Arc::new(FixedJitter(0.0)));
    let report = publisher
        .publish(&[event(0), event(1), event(2), event(3)])
        .await;
    assert_eq!(report.published, 3);
    assert_eq!(report.first_failed(), Some(2));
    assert_eq!(report.failed[0].code, "ThrottlingException");
    assert_eq!(report.retries, 3, "max_attempts 4 = 1 try + 3 retries");
}
