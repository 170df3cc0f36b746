//! The stream-fanout sample events (`events/stream-fanout/*.json`, what `sam local invoke -e`
//! would send) run through the real binary on the local stack, in stream order: each batch is
//! acknowledged in full, and the lake ends up with exactly the rows the samples describe.

use std::collections::BTreeSet;
use std::time::Duration;

use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_e2e::{env, example_registry, lake_rows};
use serde_json::{Value, json};

fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/stream-fanout")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fanout_samples_run_through_the_handler() {
    let e = env(true).await.unwrap();
    let spec = FunctionSpec::workspace("stream-fanout")
        .unwrap()
        .with_env(e.stack.aws_env())
        .with_env(e.resources.function_env())
        .with_timeout(Duration::from_secs(60));
    let mut f = FunctionProcess::new(spec).await.unwrap();

    for name in [
        "insert.json",
        "modify.json",
        "remove.json",
        "ttl-expire.json",
    ] {
        let event = sample(name);
        let inv = f.invoke(&event).await.unwrap();
        match &inv.outcome {
            InvokeOutcome::Response(v) => {
                assert_eq!(v["batchItemFailures"], json!([]), "{name}: {v}");
                // Tumbling-window envelope in, window state out.
                assert!(v.get("state").is_some(), "{name}: {v}");
            }
            other => panic!("{name}: {other:?}\n{:#?}", f.logs()),
        }
        // Sending the same sample again (a redelivery) writes nothing new.
        let again = f.invoke(&event).await.unwrap();
        assert!(
            matches!(&again.outcome, InvokeOutcome::Response(v) if v["batchItemFailures"] == json!([])),
            "{name} redelivered: {:?}",
            again.outcome
        );
    }

    let rows = lake_rows(
        &e.stack,
        &e.resources.names.lake_bucket,
        "cdc/",
        &example_registry(),
    );
    let got: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| (r.entity.clone(), r.pk(), r.op()))
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("Order", "ORDER#9001", "INSERT"),
        ("Customer", "CUSTOMER#9001", "INSERT"),
        ("Session", "SESSION#9001", "INSERT"),
        ("Order", "ORDER#9001", "MODIFY"),
        ("Customer", "CUSTOMER#9001", "REMOVE"),
        ("Session", "SESSION#9001", "EXPIRE"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(rows.len(), 6, "exactly once despite redeliveries: {got:?}");
    assert_eq!(got, want);
    let modify = rows.iter().find(|r| r.op() == "MODIFY").unwrap();
    assert_eq!(
        modify.row.item["total"],
        serde_dynamo::AttributeValue::N("99.95".into())
    );
    // An attribute the schema does not name is kept (`_extra`).
    assert_eq!(
        modify.row.item["coupon"],
        serde_dynamo::AttributeValue::S("WELCOME10".into())
    );
    // Sequence numbers of the samples, padded to 40 digits.
    let seqs: BTreeSet<String> = rows.iter().map(|r| r.row.seq.clone().unwrap()).collect();
    assert!(seqs.iter().all(|s| s.len() == 40), "{seqs:?}");
}
