//! The batch writer over the wire, against the embedded DynamoDB (strict like DynamoDB:
//! 25-item batches, duplicate keys in one call rejected).

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ScalarAttributeType, WriteRequest as SdkWrite,
};
use dynabridge_shared::writer::{BatchWriter, ItemOutcome, KeySchema, WriteRequest, WriterConfig};

use common::{count_items, create_table, stack};

fn item(pk: &str, sk: &str, v: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.into())),
        ("sk".to_string(), AttributeValue::N(sk.into())),
        ("v".to_string(), AttributeValue::S(v.into())),
    ])
}

fn writer(client: &aws_sdk_dynamodb::Client) -> BatchWriter {
    BatchWriter::new(
        client.clone(),
        WriterConfig::new("items", KeySchema::new("pk", Some("sk"))),
    )
}

async fn setup() -> (dynabridge_devstack::LocalStack, aws_sdk_dynamodb::Client) {
    let (stack, client) = stack();
    create_table(&client, "items", "pk", Some(("sk", ScalarAttributeType::N))).await;
    (stack, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_1000_items_in_40_requests() {
    let (_stack, client) = setup().await;
    let requests: Vec<WriteRequest> = (0..1000)
        .map(|i| WriteRequest::put(item(&format!("p{}", i % 37), &i.to_string(), "x")))
        .collect();
    let report = writer(&client).write(requests).await;
    println!(
        "DynamoDB requests per 1,000 items written: {} ({} BatchWriteItem)",
        report.stats.requests, report.stats.batch_requests
    );
    assert!(report.all_succeeded(), "{:?}", report.failures().next());
    assert_eq!(report.stats.written, 1000);
    assert_eq!(report.stats.batch_requests, 40);
    assert!(report.stats.requests <= 41);
    assert_eq!(count_items(&client, "items").await, 1000);
}

#[tokio::test]
async fn duplicate_keys_never_cause_a_validation_exception() {
    let (_stack, client) = setup().await;

    // The stack is strict: a raw call with a duplicate key is refused, as DynamoDB does.
    let dup = |v: &str| {
        SdkWrite::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item("a", "1", v)))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let err = client
        .batch_write_item()
        .request_items("items", vec![dup("1"), dup("2")])
        .send()
        .await
        .unwrap_err();
    let msg = format!("{:?}", err);
    assert!(msg.contains("ValidationException"), "{msg}");

    // The writer: duplicates (including numerically equal sort keys) in and across chunks.
    let mut requests = Vec::new();
    for round in 0..3 {
        for i in 0..30 {
            let sk = if round == 1 {
                format!("{i}.0")
            } else {
                i.to_string()
            };
            requests.push(WriteRequest::put(item("a", &sk, &format!("round{round}"))));
        }
    }
    requests.push(WriteRequest::delete(HashMap::from([
        ("pk".to_string(), AttributeValue::S("a".into())),
        ("sk".to_string(), AttributeValue::N("7".into())),
    ])));
    let report = writer(&client).write(requests).await;
    assert!(report.all_succeeded(), "{:?}", report.failures().next());
    // 60 earlier puts, plus the last put of key 7 superseded by the delete.
    assert_eq!(report.stats.superseded, 61);
    assert_eq!(report.stats.written, 30);
    assert_eq!(report.outcomes[5], ItemOutcome::Superseded { by: 65 });
    assert_eq!(report.outcomes[7], ItemOutcome::Superseded { by: 90 });
    assert_eq!(report.outcomes[67], ItemOutcome::Superseded { by: 90 });
    // Last write in source order wins.
    let got = client
        .get_item()
        .table_name("items")
        .key("pk", AttributeValue::S("a".into()))
        .key("sk", AttributeValue::N("3".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(got.item().unwrap()["v"], AttributeValue::S("round2".into()));
    assert_eq!(count_items(&client, "items").await, 29);
}

#[tokio::test]
async fn guarded_writes_never_overwrite_newer_data() {
    let (_stack, client) = setup().await;
    let w = writer(&client);
    let versioned = |v: u64| {
        let mut it = item("k", "1", &format!("v{v}"));
        it.insert("version".into(), AttributeValue::N(v.to_string()));
        it
    };
    let r = w
        .write(vec![WriteRequest::put_if_newer(versioned(5), "version")])
        .await;
    assert_eq!(r.outcomes, vec![ItemOutcome::Written]);
    let r = w
        .write(vec![
            WriteRequest::put_if_newer(versioned(3), "version"),
            WriteRequest::put_if_absent(item("k", "2", "new")),
        ])
        .await;
    assert_eq!(
        r.outcomes,
        vec![ItemOutcome::SkippedStale, ItemOutcome::Written]
    );
    let r = w
        .write(vec![
            WriteRequest::put_if_newer(versioned(4), "version"),
            WriteRequest::put_if_absent(item("k", "1", "again")),
        ])
        .await;
    // Same key twice: the later request carries it, and the item exists.
    assert_eq!(
        r.outcomes,
        vec![ItemOutcome::Superseded { by: 1 }, ItemOutcome::SkippedStale]
    );
    assert_eq!(r.stats.skipped_stale, 1);
    let key = HashMap::from([
        ("pk".to_string(), AttributeValue::S("k".into())),
        ("sk".to_string(), AttributeValue::N("1".into())),
    ]);
    let r = w
        .write(vec![WriteRequest::delete_if_newer(
            key.clone(),
            "version",
            AttributeValue::N("4".into()),
        )])
        .await;
    assert_eq!(r.outcomes, vec![ItemOutcome::SkippedStale]);
    let r = w
        .write(vec![
            WriteRequest::put_if_newer(versioned(9), "version"),
            WriteRequest::put(HashMap::from([(
                "pk".to_string(),
                AttributeValue::S("no sk".into()),
            )])),
        ])
        .await;
    assert_eq!(r.outcomes[0], ItemOutcome::Written);
    assert!(matches!(r.outcomes[1], ItemOutcome::Failed { .. }));
    let r = w
        .write(vec![WriteRequest::delete_if_newer(
            key,
            "version",
            AttributeValue::N("10".into()),
        )])
        .await;
    assert_eq!(r.outcomes, vec![ItemOutcome::Written]);
    assert_eq!(count_items(&client, "items").await, 1);
}
