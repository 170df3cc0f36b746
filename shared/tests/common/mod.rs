//! Helpers for the over-the-wire tests: a local stack per test and table creation.

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
