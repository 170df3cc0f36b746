//! The Databricks side (docs/databricks/): changes made on the local stack's table flow through
//! the real stream-fanout binary into the file-backed lake, and local pyspark (the project
//! venv) reads the lake as the pipeline does - types, `_op`/`_seq`, AUTO CDC reproduced as
//! MERGE micro-batches ordered by `_seq` - and must end with exactly the table's items
//! (`tests/python/databricks_lake.py`).

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use dynabridge_devstack::sources::streams::{MappingConfig, StreamPoller};
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::{env, lake_keys};
use serde_json::{Value, json};

fn s(v: &str) -> Av {
    Av::S(v.into())
}

fn n(v: &str) -> Av {
    Av::N(v.into())
}

fn item(pairs: &[(&str, Av)]) -> HashMap<String, Av> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// DynamoDB JSON of the attribute types the checks compare (others become NULL).
fn ddb_json(av: &Av) -> Value {
    match av {
        Av::S(v) => json!({ "S": v }),
        Av::N(v) => json!({ "N": v }),
        Av::Bool(v) => json!({ "BOOL": v }),
        _ => json!({ "NULL": true }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyspark_reads_the_lake_back_as_the_table() {
    let python = dynabridge_devstack::venv::venv_bin("python").expect(
        "no project venv: run scripts/bootstrap (pyspark is pinned in requirements-codec.txt)",
    );
    let e = env(false).await.unwrap();
    let ddb = e.stack.dynamodb();
    let table = e.resources.names.table.clone();
    let put = |it: HashMap<String, Av>| {
        let ddb = ddb.clone();
        let table = table.clone();
        async move {
            ddb.put_item()
                .table_name(table)
                .set_item(Some(it))
                .send()
                .await
                .unwrap();
        }
    };
    let order = |id: &str, total: &str, status: &str| {
        item(&[
            ("pk", s(&format!("ORDER#{id}"))),
            ("sk", s("ORDER")),
            ("schema_version", n("2")),
            ("customer_id", s("CUSTOMER#1")),
            ("total", n(total)),
            ("placed_at", n("1795316400123")),
            ("currency", s("EUR")),
            ("status", s(status)),
        ])
    };
    let customer = |id: &str, created_at: &str, tier: &str| {
        item(&[
            ("pk", s(&format!("CUSTOMER#{id}"))),
            ("sk", s("PROFILE")),
            ("entity_type", s("Customer")),
            ("schema_version", n("2")),
            ("email", s(&format!("c{id}@example.com"))),
            ("tier", s(tier)),
            ("created_at", s(created_at)),
            ("loyalty_points", n("12345678901234567890")),
        ])
    };

    // Several changes per key, so the final state depends on ordering by _seq.
    put(order("1", "129.90", "PLACED")).await;
    put(order("2", "0.01", "PLACED")).await;
    put(order("3", "9999999999999999.99", "PLACED")).await;
    put(customer("1", "2026-01-02T03:04:05.123456Z", "basic")).await;
    put(customer("2", "2026-06-30T23:30:00.5+02:00", "gold")).await;
    put(order("1", "119.90", "PAID")).await;
    put(order("1", "99.95", "SHIPPED")).await;
    put(customer("1", "2026-01-02T03:04:05.123456Z", "silver")).await;
    ddb.delete_item()
        .table_name(&table)
        .key("pk", s("ORDER#2"))
        .key("sk", s("ORDER"))
        .send()
        .await
        .unwrap();
    put(order("2", "5.00", "REORDERED")).await; // re-created after its delete
    ddb.delete_item()
        .table_name(&table)
        .key("pk", s("ORDER#3"))
        .key("sk", s("ORDER"))
        .send()
        .await
        .unwrap();
    let past = (chrono::Utc::now().timestamp() - 60).to_string();
    for id in ["1", "2"] {
        put(item(&[
            ("pk", s(&format!("SESSION#{id}"))),
            ("sk", s("SESSION")),
            ("customer_id", s("CUSTOMER#1")),
            ("created_at", s("2026-11-20T10:00:00Z")),
            ("ttl", n(if id == "1" { &past } else { "4102444800" })),
        ]))
        .await;
    }
    assert_eq!(e.stack.sweep_ttl().await.unwrap(), 1);

    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env(e.resources.function_env())
        .with_env([("DYNABRIDGE_PUBLISH_ENTITIES", "none")])
        .with_timeout(Duration::from_secs(60));
    let mut f = FunctionProcess::new(spec).await.unwrap();
    // Small batches: a key's changes land in several files.
    let mut poller = StreamPoller::new(
        e.stack.dynamodb_streams(),
        None,
        &e.resources.stream_arn,
        MappingConfig {
            batch_size: 3,
            tumbling_window: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let deliveries = poller.drain(&mut f).await.unwrap();
    assert!(
        deliveries.iter().all(|d| matches!(&d.outcome,
            InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([]))),
        "{deliveries:?}\n{:#?}",
        f.logs()
    );
    let bucket = &e.resources.names.lake_bucket;
    assert!(lake_keys(&e.stack, bucket, "cdc/entity=Order/").len() >= 2);

    // What the table holds now.
    let scan = ddb.scan().table_name(&table).send().await.unwrap();
    let items: Vec<Value> = scan
        .items()
        .iter()
        .map(|it| Value::Object(it.iter().map(|(k, v)| (k.clone(), ddb_json(v))).collect()))
        .collect();
    assert_eq!(items.len(), 5, "{items:?}");
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected.json");
    std::fs::write(
        &expected,
        serde_json::to_vec(&json!({ "items": items })).unwrap(),
    )
    .unwrap();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/databricks_lake.py");
    let out = Command::new(python)
        .arg(script)
        .arg(e.stack.lake_root().join(bucket))
        .arg(&expected)
        .arg(dynabridge_devstack::provision::example_registry_path())
        .output()
        .expect("run databricks_lake.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(3) => panic!("pyspark or Java is missing: run scripts/bootstrap\n{stderr}"),
        _ => panic!("the lake does not read back as the table:\n{stdout}\n{stderr}"),
    }
}
