//! Idempotency records over the wire, against the embedded DynamoDB.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use dynabridge_shared::clock::{Clock, ManualClock};
use dynabridge_shared::idempotency::{
    Claim, Idempotency, IdempotencyConfig, IdempotencyError, TransactionalClaim,
};
use serde_json::json;

use common::{CONTROL, create_control_table, create_table, stack};

const START_MS: u64 = 1_800_000_000_000;

fn store(client: &aws_sdk_dynamodb::Client, clock: &ManualClock) -> Idempotency {
    let mut config = IdempotencyConfig::new(CONTROL, "test-fn");
    config.in_progress_floor = Duration::from_secs(30);
    config.record_ttl = Duration::from_secs(3600);
    Idempotency::new(client.clone(), config).with_clock(Arc::new(clock.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_key_exactly_one_wins() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let payload = json!({"order": 42});

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let idem = idem.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            idem.claim("order-42", &payload, Some(START_MS + 60_000))
                .await
        }));
    }
    let mut winners = Vec::new();
    let mut in_progress = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Claim::Acquired(lease)) => winners.push(lease),
            Err(IdempotencyError::AlreadyInProgress {
                in_progress_expiry_ms,
                ..
            }) => {
                assert_eq!(in_progress_expiry_ms, START_MS + 60_000);
                in_progress += 1;
            }
            other => panic!("unexpected claim result {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(in_progress, 31);

    // The winner completes; every duplicate then gets the stored result.
    idem.complete(&winners[0], &json!({"charged": true}))
        .await
        .unwrap();
    for _ in 0..3 {
        let dup = idem.claim("order-42", &payload, None).await.unwrap();
        assert_eq!(dup, Claim::Completed(json!({"charged": true})));
    }
    let record = idem.get("order-42").await.unwrap().unwrap();
    assert_eq!(record.status, "COMPLETED");
    assert_eq!(record.in_progress_expiry_ms, None);
    assert_eq!(record.expires_at_ms, START_MS + 3_600_000);
    assert_eq!(record.ttl_epoch_s, (START_MS + 3_600_000) / 1000);
}

#[tokio::test]
async fn crash_between_claim_and_completion_recovers_after_in_progress_expiry_only() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let payload = json!({"window": "2026-11-21T00"});

    // The first invocation has 60 s left, claims, then "crashes" (never completes).
    let Claim::Acquired(crashed) = idem
        .claim("export-1", &payload, Some(START_MS + 60_000))
        .await
        .unwrap()
    else {
        panic!("first claim must win");
    };
    assert_eq!(crashed.in_progress_expiry_ms, START_MS + 60_000);

    // A retry before the in-progress expiry is refused, also right at the expiry.
    clock.set(START_MS + 59_999);
    let err = idem.claim("export-1", &payload, None).await.unwrap_err();
    assert!(
        matches!(err, IdempotencyError::AlreadyInProgress { .. }),
        "{err}"
    );
    clock.set(START_MS + 60_000);
    assert!(idem.claim("export-1", &payload, None).await.is_err());

    // After it, the retry takes over (deadline unknown: the 30 s floor applies).
    clock.set(START_MS + 60_001);
    let Claim::Acquired(retry) = idem.claim("export-1", &payload, None).await.unwrap() else {
        panic!("claim after the in-progress expiry must win");
    };
    assert_eq!(retry.in_progress_expiry_ms, START_MS + 60_001 + 30_000);

    // The crashed holder waking up late cannot complete or release the new holder's claim.
    let err = idem.complete(&crashed, &json!("late")).await.unwrap_err();
    assert!(matches!(err, IdempotencyError::LeaseLost { .. }), "{err}");
    assert!(matches!(
        idem.release(&crashed).await,
        Err(IdempotencyError::LeaseLost { .. })
    ));
    idem.complete(&retry, &json!({"rows": 10})).await.unwrap();
    assert_eq!(
        idem.claim("export-1", &payload, None).await.unwrap(),
        Claim::Completed(json!({"rows": 10}))
    );

    // Completed records expire by timestamp (the TTL sweep never ran here).
    clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        idem.claim("export-1", &payload, None).await.unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn deadline_shorter_than_floor_uses_the_floor_and_release_frees_the_key() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let payload = json!([1, 2, 3]);
    let Claim::Acquired(lease) = idem
        .claim("k", &payload, Some(START_MS + 1_000))
        .await
        .unwrap()
    else {
        panic!("claim must win");
    };
    assert_eq!(lease.in_progress_expiry_ms, START_MS + 30_000);
    idem.release(&lease).await.unwrap();
    assert!(idem.get("k").await.unwrap().is_none());
    assert!(matches!(
        idem.claim("k", &payload, None).await.unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn payload_mismatch_is_rejected() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let Claim::Acquired(lease) = idem
        .claim("k", &json!({"a": 1, "b": 2}), None)
        .await
        .unwrap()
    else {
        panic!("claim must win");
    };
    // In progress, other payload: mismatch (not "in progress").
    let err = idem
        .claim("k", &json!({"a": 1, "b": 3}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::PayloadMismatch { .. }),
        "{err}"
    );
    idem.complete(&lease, &json!("done")).await.unwrap();
    // Completed, other payload: mismatch, never the other payload's result.
    let err = idem.claim("k", &json!({"a": 2}), None).await.unwrap_err();
    assert!(
        matches!(err, IdempotencyError::PayloadMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.error_type(), "IdempotencyPayloadMismatch");
    // Same payload with another key order: the stored result.
    assert_eq!(
        idem.claim("k", &json!({"b": 2, "a": 1}), None)
            .await
            .unwrap(),
        Claim::Completed(json!("done"))
    );
}

fn put_side_effect(pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name("app")
                .item("pk", AttributeValue::S(pk.into()))
                .build()
                .unwrap(),
        )
        .build()
}

fn increment_side_effect() -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name("app")
                .key("pk", AttributeValue::S("counter".into()))
                .update_expression("ADD n :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .build()
                .unwrap(),
        )
        .build()
}

async fn app_item(
    client: &aws_sdk_dynamodb::Client,
    pk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name("app")
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn transactional_claim_applies_side_effects_with_the_claim_or_not_at_all() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    create_table(&client, "app", "pk", None).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let payload = json!({"sync": "file-1"});

    let first = idem
        .claim_with_side_effects(
            "sync-1",
            &payload,
            vec![put_side_effect("a")],
            &json!({"n": 1}),
        )
        .await
        .unwrap();
    assert_eq!(first, TransactionalClaim::Applied);
    assert!(app_item(&client, "a").await.is_some());

    // The duplicate loses the claim: its side effect is not applied.
    let dup = idem
        .claim_with_side_effects(
            "sync-1",
            &payload,
            vec![put_side_effect("b")],
            &json!({"n": 2}),
        )
        .await
        .unwrap();
    assert_eq!(dup, TransactionalClaim::AlreadyCompleted(json!({"n": 1})));
    assert!(app_item(&client, "b").await.is_none());

    // A key held in progress by an ordinary claim: refused, nothing applied.
    let Claim::Acquired(_held) = idem.claim("sync-2", &payload, None).await.unwrap() else {
        panic!("claim must win");
    };
    let err = idem
        .claim_with_side_effects("sync-2", &payload, vec![put_side_effect("c")], &json!(null))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::AlreadyInProgress { .. }),
        "{err}"
    );
    assert!(app_item(&client, "c").await.is_none());

    // A side effect whose own condition fails: nothing applied, the key stays free.
    let guarded = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name("app")
                .item("pk", AttributeValue::S("a".into()))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build();
    let err = idem
        .claim_with_side_effects(
            "sync-3",
            &payload,
            vec![put_side_effect("d"), guarded],
            &json!(1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::SideEffectRejected { index: 1, .. }),
        "{err}"
    );
    assert!(app_item(&client, "d").await.is_none());
    assert!(idem.get("sync-3").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactional_claims_apply_the_side_effect_once() {
    let (_stack, client) = stack();
    create_control_table(&client).await;
    create_table(&client, "app", "pk", None).await;
    let clock = ManualClock::new(START_MS);
    let idem = store(&client, &clock);
    let payload = json!({"event": "evt-1"});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let idem = idem.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            idem.claim_with_side_effects(
                "evt-1",
                &payload,
                vec![increment_side_effect()],
                &json!("ok"),
            )
            .await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(TransactionalClaim::Applied) => applied += 1,
            Ok(TransactionalClaim::AlreadyCompleted(r)) => assert_eq!(r, json!("ok")),
            // A concurrent transaction may also be cancelled as a conflict: nothing applied.
            Err(IdempotencyError::Aws { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(applied, 1);
    let counter = app_item(&client, "counter").await.unwrap();
    assert_eq!(counter.get("n"), Some(&AttributeValue::N("1".into())));
    assert!(clock.now_ms() >= START_MS);
}
