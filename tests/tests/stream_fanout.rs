//! stream-fanout end to end: the real binary through the Lambda harness on the local stack.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dynabridge_devstack::faults::{Fault, FaultPlan, FaultRule, FaultyEndpoints, Service};
use dynabridge_devstack::sources::streams::{MappingConfig, StreamPoller};
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::{
    env, example_registry, lake_keys, lake_rows, receive, stream_records, windowed_event,
};
use serde_json::{Value, json};

const BUCKET: &str = "dynabridge-lake";

async fn fanout(e: &dynabridge_e2e::Env, aws_env: Vec<(String, String)>) -> FunctionProcess {
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(aws_env)
        .with_env(e.resources.function_env())
        .with_timeout(Duration::from_secs(60));
    FunctionProcess::new(spec).await.unwrap()
}

fn s(v: &str) -> Av {
    Av::S(v.into())
}

fn n(v: &str) -> Av {
    Av::N(v.into())
}

fn customer(id: &str, extra: &[(&str, Av)]) -> std::collections::HashMap<String, Av> {
    let mut item: std::collections::HashMap<String, Av> = [
        ("pk", s(&format!("CUSTOMER#{id}"))),
        ("sk", s("PROFILE")),
        ("entity_type", s("Customer")),
        ("schema_version", n("2")),
        ("email", s(&format!("c{id}@example.com"))),
        ("full_name", s("Ada Lovelace")),
        ("tier", s("gold")),
        ("created_at", s("2026-01-02T03:04:05.123456Z")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        item.insert(k.to_string(), v.clone());
    }
    item
}

fn order(id: &str, total: &str) -> std::collections::HashMap<String, Av> {
    [
        ("pk", s(&format!("ORDER#{id}"))),
        ("sk", s("ORDER")),
        ("schema_version", n("2")),
        ("customer_id", s("CUSTOMER#1")),
        ("total", n(total)),
        ("placed_at", n("1795316400123")),
        ("currency", s("EUR")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn put(e: &dynabridge_e2e::Env, item: std::collections::HashMap<String, Av>) {
    e.stack
        .dynamodb()
        .put_item()
        .table_name(&e.resources.names.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn mapping() -> MappingConfig {
    MappingConfig {
        tumbling_window: Some(Duration::from_secs(60)),
        ..Default::default()
    }
}

fn no_failures(outcome: &InvokeOutcome) -> bool {
    matches!(outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_updates_deletes_and_expiries_reach_cdc_and_the_event_bus() {
    let e = env(true).await.unwrap();
    let mut f = fanout(&e, e.stack.aws_env()).await;
    let ddb = e.stack.dynamodb();
    let table = &e.resources.names.table;
    put(&e, customer("1", &[("nickname", s("adi"))])).await;
    put(&e, order("1", "129.90")).await;
    ddb.update_item()
        .table_name(table)
        .key("pk", s("ORDER#1"))
        .key("sk", s("ORDER"))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", s("SHIPPED"))
        .send()
        .await
        .unwrap();
    ddb.delete_item()
        .table_name(table)
        .key("pk", s("CUSTOMER#1"))
        .key("sk", s("PROFILE"))
        .send()
        .await
        .unwrap();
    let mut session: std::collections::HashMap<String, Av> = [
        ("pk", s("SESSION#1")),
        ("sk", s("SESSION")),
        ("customer_id", s("CUSTOMER#1")),
        ("created_at", s("2026-11-20T10:00:00Z")),
        ("ttl", n(&(chrono::Utc::now().timestamp() - 60).to_string())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    session.insert("token".into(), Av::B(vec![0u8, 1, 2].into()));
    put(&e, session).await;
    assert_eq!(e.stack.sweep_ttl().await.unwrap(), 1);

    let mut poller = StreamPoller::new(
        e.stack.dynamodb_streams(),
        None,
        &e.resources.stream_arn,
        mapping(),
    )
    .await
    .unwrap();
    let deliveries = poller.drain(&mut f).await.unwrap();
    assert!(
        deliveries.iter().all(|d| no_failures(&d.outcome)),
        "{deliveries:?}\n{:#?}",
        f.logs()
    );

    let registry = example_registry();
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &registry);
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.pk(), r.op())).collect();
    let want: BTreeSet<(String, String)> = [
        ("CUSTOMER#1", "INSERT"),
        ("ORDER#1", "INSERT"),
        ("ORDER#1", "MODIFY"),
        ("CUSTOMER#1", "REMOVE"),
        ("SESSION#1", "INSERT"),
        ("SESSION#1", "EXPIRE"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    // _seq: 40 digits, increasing per key in stream order.
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        let seq = r.row.seq.clone().unwrap();
        assert_eq!(seq.len(), 40);
        assert!(seq.bytes().all(|b| b.is_ascii_digit()));
        per_key.entry(r.pk()).or_default().push(seq);
    }
    for seqs in per_key.values() {
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seqs.len());
    }
    // Typed, exact values; unknown attributes kept (via `_extra`).
    let order_insert = rows
        .iter()
        .find(|r| r.pk() == "ORDER#1" && r.op() == "INSERT")
        .unwrap();
    assert_eq!(
        order_insert.row.item["total"],
        serde_dynamo::AttributeValue::N("129.9".into())
    );
    let modify = rows.iter().find(|r| r.op() == "MODIFY").unwrap();
    assert_eq!(
        modify.row.item["status"],
        serde_dynamo::AttributeValue::S("SHIPPED".into())
    );
    let cust = rows
        .iter()
        .find(|r| r.pk() == "CUSTOMER#1" && r.op() == "INSERT")
        .unwrap();
    assert_eq!(
        cust.row.item["nickname"],
        serde_dynamo::AttributeValue::S("adi".into())
    );
    let removed = rows.iter().find(|r| r.op() == "REMOVE").unwrap();
    assert_eq!(
        removed.row.item["email"],
        serde_dynamo::AttributeValue::S("c1@example.com".into()),
        "full old image"
    );
    // The Parquet schema carries the declared decimal type.
    let order_file = lake_keys(&e.stack, BUCKET, "cdc/entity=Order/")
        .pop()
        .unwrap();
    let bytes = std::fs::read(e.stack.lake_root().join(BUCKET).join(&order_file)).unwrap();
    let batches = dynabridge_shared::lake::reader::read_parquet(bytes.into()).unwrap();
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("total").unwrap().data_type(),
        &arrow::datatypes::DataType::Decimal128(18, 2)
    );
    assert!(schema.field_with_name("_extra").is_ok());

    // Domain events through the rule to the queue.
    let sqs = e.stack.sqs().unwrap();
    let events = receive(
        &sqs,
        e.resources.events_queue_url.as_ref().unwrap(),
        6,
        Duration::from_secs(10),
    )
    .await;
    let types: BTreeSet<String> = events
        .iter()
        .map(|v| v["detail-type"].as_str().unwrap().to_string())
        .collect();
    let want_types: BTreeSet<String> = [
        "Customer Inserted",
        "Order Inserted",
        "Order Modified",
        "Customer Removed",
        "Session Inserted",
        "Session Expired",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(events.len(), 6, "{events:#?}");
    assert_eq!(types, want_types);
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|v| v["detail"]["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    let order_event = events
        .iter()
        .find(|v| v["detail-type"] == "Order Inserted")
        .unwrap();
    assert_eq!(order_event["source"], "dynabridge.dynabridge-app");
    assert_eq!(order_event["detail"]["newImage"]["total"], json!(129.9));
    assert_eq!(order_event["detail"]["schemaVersion"], 2);
    let expired = events
        .iter()
        .find(|v| v["detail-type"] == "Session Expired")
        .unwrap();
    assert_eq!(expired["detail"]["oldImage"]["customer_id"], "CUSTOMER#1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_bisected_batches_write_every_record_once() {
    let e = env(true).await.unwrap();
    let mut f = fanout(&e, e.stack.aws_env()).await;
    for i in 0..12 {
        put(&e, order(&format!("{i:03}"), &format!("{i}.50"))).await;
    }
    let records = stream_records(&e.stack, &e.resources.stream_arn).await;
    assert_eq!(records.len(), 12);
    let shard = "shardId-test-0001";
    // What Lambda may do: redeliver the whole batch, bisect it, retry a shifted start.
    let deliveries: Vec<&[Value]> = vec![
        &records[..],
        &records[..],
        &records[..6],
        &records[6..],
        &records[3..],
        &records[..],
        &records[..6],
    ];
    for batch in deliveries {
        let inv = f.invoke(&windowed_event(batch, shard)).await.unwrap();
        assert!(no_failures(&inv.outcome), "{inv:?}");
        assert_eq!(inv.outcome.response().unwrap()["state"], json!({}));
    }
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    let seqs: Vec<String> = rows.iter().map(|r| r.row.seq.clone().unwrap()).collect();
    let unique: BTreeSet<&String> = seqs.iter().collect();
    assert_eq!(seqs.len(), 12, "every record exactly once: {seqs:?}");
    assert_eq!(unique.len(), 12);
    let events = receive(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        12,
        Duration::from_secs(10),
    )
    .await;
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|v| v["detail"]["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 12, "no duplicate events without a crash");
    assert_eq!(ids.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_event_failure_at_record_k_is_returned_from_k_and_retried_there() {
    let e = env(true).await.unwrap();
    let faulty = FaultyEndpoints::start(
        &e.stack,
        FaultPlan::new(1).rule(FaultRule::on(
            Service::EventBridge,
            "PutEvents",
            Fault::FailEntriesContaining("poison-marker".into()),
            1.0,
        )),
    )
    .unwrap();
    let mut f = fanout(&e, faulty.aws_env()).await;
    for i in 1..=6 {
        let extra = if i == 4 {
            vec![("nickname", s("poison-marker"))]
        } else {
            vec![]
        };
        put(&e, customer(&i.to_string(), &extra)).await;
    }
    let records = stream_records(&e.stack, &e.resources.stream_arn).await;
    let seq = |i: usize| {
        records[i]["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let shard = "shardId-test-0002";
    let inv = f.invoke(&windowed_event(&records, shard)).await.unwrap();
    let failures: Vec<String> = inv.outcome.response().unwrap()["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    // Record k (index 3) is the first failure; nothing before it; it and what follows.
    assert_eq!(failures, vec![seq(3), seq(4), seq(5)]);

    // Lambda retries from k; the fault is gone now.
    faulty.set_plan(FaultPlan::none()).unwrap();
    let inv = f
        .invoke(&windowed_event(&records[3..], shard))
        .await
        .unwrap();
    assert!(no_failures(&inv.outcome), "{inv:?}");

    let events = receive(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        6,
        Duration::from_secs(10),
    )
    .await;
    let mut pks: Vec<String> = events
        .iter()
        .map(|v| v["detail"]["keys"]["pk"].as_str().unwrap().to_string())
        .collect();
    pks.sort();
    let want: Vec<String> = (1..=6).map(|i| format!("CUSTOMER#{i}")).collect();
    assert_eq!(
        pks, want,
        "records before k were not re-emitted, k and after once"
    );
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    assert_eq!(rows.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_quarantined_and_the_rest_of_the_batch_succeeds() {
    let e = env(false).await.unwrap();
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env(e.resources.function_env())
        .with_env([("DYNABRIDGE_PUBLISH_ENTITIES", "none")]);
    let mut f = FunctionProcess::new(spec).await.unwrap();
    let record = |seq: u64, image: Value| {
        json!({
            "eventID": format!("ev{seq}"),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": e.resources.stream_arn,
            "dynamodb": {
                "ApproximateCreationDateTime": 1795222800.0,
                "Keys": {"pk": image["pk"].clone(), "sk": image["sk"].clone()},
                "NewImage": image,
                "SequenceNumber": format!("{seq:021}"),
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        })
    };
    let good_order = json!({"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}, "schema_version": {"N": "2"}, "customer_id": {"S": "C"},
        "total": {"N": "10.00"}, "placed_at": {"N": "1795316400000"}, "currency": {"S": "EUR"}});
    let mut wrong_type = good_order.clone();
    wrong_type["pk"] = json!({"S": "ORDER#2"});
    wrong_type["total"] = json!({"S": "ten"});
    let unknown_version = json!({"pk": {"S": "CUSTOMER#9"}, "sk": {"S": "PROFILE"}, "entity_type": {"S": "Customer"},
        "schema_version": {"N": "9"}, "email": {"S": "x@example.com"}, "created_at": {"S": "2026-01-01T00:00:00Z"}});
    let mut huge = good_order.clone();
    huge["pk"] = json!({"S": "ORDER#3"});
    huge["blob"] = json!({"S": "x".repeat(420 * 1024)});
    let no_entity = json!({"pk": {"S": "WIDGET#1"}, "sk": {"S": "W"}});
    let mut good_order2 = good_order.clone();
    good_order2["pk"] = json!({"S": "ORDER#4"});
    let records = vec![
        record(1, good_order),
        record(2, wrong_type),
        record(3, unknown_version),
        record(4, huge),
        record(5, no_entity),
        record(6, good_order2),
    ];
    let inv = f
        .invoke(&windowed_event(&records, "shardId-poison"))
        .await
        .unwrap();
    assert!(no_failures(&inv.outcome), "{inv:?}");
    let rows = lake_rows(&e.stack, BUCKET, "cdc/", &example_registry());
    let mut pks: Vec<String> = rows.iter().map(|r| r.pk()).collect();
    pks.sort();
    assert_eq!(pks, ["ORDER#1", "ORDER#4"]);
    let q = lake_keys(&e.stack, BUCKET, "quarantine/");
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0].starts_with("quarantine/source=stream-fanout/dt=2026-11-21/"),
        "{q:?}"
    );
    let text = std::fs::read_to_string(e.stack.lake_root().join(BUCKET).join(&q[0])).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["WrongType", "UnknownVersion", "ImageTooLarge", "NoEntity"]
    );
    assert_eq!(lines[0]["attribute"], "total");
    assert_eq!(
        lines[0]["record"]["eventID"], "ev2",
        "the raw record is kept"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l["reason"].as_str().unwrap().is_empty())
    );
}
