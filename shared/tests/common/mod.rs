//! Helpers shared by the integration tests: a local stack per test and table creation, the
//! example registry, item builders and an item comparison that treats equal numbers as equal
//! (`1.50` = `1.5`).

#![allow(dead_code)]

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use dynabridge_devstack::{LocalStack, StackOptions};

/// Name of the control table the tests create.
pub const CONTROL: &str = "dynabridge-control";

/// Starts an embedded DynamoDB (no EventBridge) and returns it with a client.
pub fn stack() -> (LocalStack, Client) {
    let stack = LocalStack::start(StackOptions {
        eventbridge: false,
        ..Default::default()
    })
    .expect("local stack starts");
    let client = stack.dynamodb();
    (stack, client)
}

/// Creates a table with a string partition key and an optional sort key.
pub async fn create_table(
    client: &Client,
    name: &str,
    pk: &str,
    sk: Option<(&str, ScalarAttributeType)>,
) {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(pk)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(pk)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    if let Some((sk, ty)) = sk {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(sk)
                    .attribute_type(ty)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
    }
    req.send().await.expect("create table");
}

/// Creates the control table (`pk` S + `sk` S).
pub async fn create_control_table(client: &Client) {
    create_table(client, CONTROL, "pk", Some(("sk", ScalarAttributeType::S))).await;
}

/// Counts the items of a table (paginated scan).
pub async fn count_items(client: &Client, table: &str) -> usize {
    let mut count = 0usize;
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        count += out.items().len();
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return count;
        }
    }
}

use std::collections::HashMap;

use dynabridge_shared::codec::numbers_equal;
use dynabridge_shared::schema::{Attributes, Registry};
use serde_dynamo::AttributeValue as V;

pub fn example_registry() -> Registry {
    Registry::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/example.json"
    ))
    .expect("example registry loads")
}

pub fn s(v: &str) -> V {
    V::S(v.to_string())
}

pub fn n(v: &str) -> V {
    V::N(v.to_string())
}

pub fn m(pairs: Vec<(&str, V)>) -> V {
    V::M(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub fn item(pairs: Vec<(&str, V)>) -> Attributes {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A map nested `depth` levels deep with unicode keys, ending in a number (one level more:
/// `deep_map(31)` is DynamoDB's deepest storable value, 32 levels).
pub fn deep_map(depth: usize) -> V {
    let mut v = n("-1.5E-130");
    for level in (0..depth).rev() {
        let mut map = HashMap::new();
        map.insert(format!("ключ-{level}-鍵"), v);
        map.insert("empty".to_string(), s(""));
        v = V::M(map);
    }
    v
}

/// Equality where numbers compare by value and sets by membership.
pub fn values_equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::N(x), V::N(y)) => x == y || numbers_equal(x, y),
        (V::Ns(x), V::Ns(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|a| y.iter().any(|b| a == b || numbers_equal(a, b)))
        }
        (V::Ss(x), V::Ss(y)) => x.len() == y.len() && x.iter().all(|a| y.contains(a)),
        (V::Bs(x), V::Bs(y)) => x.len() == y.len() && x.iter().all(|a| y.contains(a)),
        (V::M(x), V::M(y)) => maps_equal(x, y),
        (V::L(x), V::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        _ => a == b,
    }
}

pub fn maps_equal(a: &HashMap<String, V>, b: &HashMap<String, V>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
}

pub fn assert_items_equal(expected: &Attributes, actual: &Attributes) {
    let mut keys: Vec<_> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (expected.get(k), actual.get(k)) {
            (Some(a), Some(b)) => assert!(
                values_equal(a, b),
                "attribute {k}: expected {a:?}, got {b:?}"
            ),
            (a, b) => panic!("attribute {k}: expected {a:?}, got {b:?}"),
        }
    }
}

/// The venv python (`.venv/bin/python` above the crate, or `$DYNABRIDGE_VENV`).
pub fn venv_python() -> Option<std::path::PathBuf> {
    dynabridge_devstack::venv::venv_bin("python")
}
