//! Helpers shared by the end-to-end tests (`tests/tests/*.rs`).
//!
//! Each test starts its own [`LocalStack`] (ephemeral ports, temp folders), provisions the
//! template's resources and runs real binaries through the harness. Nothing outlives a test:
//! dropping the stack stops the servers and kills `moto_server`.

pub mod invariants;

use std::collections::HashMap;
use std::path::PathBuf;

pub mod sync;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_devstack::provision::{self, ResourceNames, Resources};
use dynabridge_devstack::{LocalStack, StackOptions};

/// A started stack with the template's resources.
pub struct Env {
    /// The stack (drop to stop).
    pub stack: LocalStack,
    /// What was provisioned.
    pub resources: Resources,
}

/// Starts a stack and provisions it.
pub async fn env(eventbridge: bool) -> Result<Env> {
    let stack = LocalStack::start(StackOptions {
        eventbridge,
        ..Default::default()
    })?;
    let resources = provision::provision(&stack, ResourceNames::default()).await?;
    Ok(Env { stack, resources })
}

/// The path of the probe binary built with this package (integration tests pass
/// `env!("CARGO_BIN_EXE_probe-function")`, which cargo builds before running them).
pub fn probe_binary(from_test: &str) -> PathBuf {
    PathBuf::from(from_test)
}

/// Builds a string-attribute item.
pub fn item(pairs: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
        .collect()
}

/// Reads a JSON-lines file (missing file: no lines).
pub fn read_json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One row read back from the lake.
#[derive(Debug, Clone)]
pub struct LakeRow {
    /// The object key (relative to the bucket).
    pub key: String,
    /// `_entity` (from the `entity=` partition).
    pub entity: String,
    /// The decoded row.
    pub row: dynabridge_shared::codec::DecodedRow,
}

impl LakeRow {
    /// The `pk` of the row, as a string.
    pub fn pk(&self) -> String {
        match self.row.item.get("pk") {
            Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// `_op` as text.
    pub fn op(&self) -> String {
        self.row
            .op
            .map(|o| o.as_str().to_string())
            .unwrap_or_default()
    }
}

/// Every object key under `s3://bucket/prefix` in the file-backed lake, sorted.
pub fn lake_keys(stack: &LocalStack, bucket: &str, prefix: &str) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let root = stack.lake_root().join(bucket);
    let mut files = Vec::new();
    walk(&root.join(prefix), &mut files);
    let mut keys: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix(&root).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|k| !k.contains(".s3s") && !k.ends_with(".tmp"))
        .collect();
    keys.sort();
    keys
}

/// Reads and decodes every Parquet row under `prefix` with the registry.
pub fn lake_rows(
    stack: &LocalStack,
    bucket: &str,
    prefix: &str,
    registry: &dynabridge_shared::schema::Registry,
) -> Vec<LakeRow> {
    let mut rows = Vec::new();
    for key in lake_keys(stack, bucket, prefix) {
        if !key.ends_with(".parquet") {
            continue;
        }
        let entity_name = key
            .split('/')
            .find_map(|seg| seg.strip_prefix("entity="))
            .unwrap_or_default()
            .to_string();
        let entity = registry
            .entity(&entity_name)
            .expect("entity partition names a registry entity");
        let bytes = std::fs::read(stack.lake_root().join(bucket).join(&key)).expect("lake file");
        let batches = dynabridge_shared::lake::reader::read_parquet(bytes::Bytes::from(bytes))
            .expect("parquet");
        let decoder = dynabridge_shared::codec::BatchDecoder::new(entity);
        for batch in batches {
            for row in decoder.decode(&batch) {
                rows.push(LakeRow {
                    key: key.clone(),
                    entity: entity_name.clone(),
                    row: row.expect("row decodes"),
                });
            }
        }
    }
    rows
}

/// The example registry the sample data and the runner use.
pub fn example_registry() -> dynabridge_shared::schema::Registry {
    dynabridge_shared::schema::Registry::from_path(provision::example_registry_path())
        .expect("example registry")
}

/// Reads the stream from the start and returns the Lambda records (as the poller builds them).
pub async fn stream_records(stack: &LocalStack, stream_arn: &str) -> Vec<serde_json::Value> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let streams = stack.dynamodb_streams();
    let desc = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("DescribeStream");
    let mut out = Vec::new();
    for shard in desc
        .stream_description()
        .map(|d| d.shards().to_vec())
        .unwrap_or_default()
    {
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id().unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let page = streams
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .expect("GetRecords");
            if page.records().is_empty() {
                break;
            }
            out.extend(
                page.records()
                    .iter()
                    .map(|r| dynabridge_devstack::sources::streams::lambda_record(r, stream_arn)),
            );
            it = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// A tumbling-window stream event (with `shardId`) holding `records`.
pub fn windowed_event(records: &[serde_json::Value], shard: &str) -> serde_json::Value {
    serde_json::json!({
        "Records": records,
        "window": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T00:01:00Z"},
        "state": {},
        "shardId": shard,
        "isFinalInvokeForWindow": false,
        "isWindowTerminatedEarly": false,
    })
}

/// Receives messages from a queue until `n` arrived or `timeout` passed.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    n: usize,
    timeout: std::time::Duration,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        let bodies = provision::drain_queue(sqs, url, std::time::Duration::from_millis(200))
            .await
            .expect("queue");
        out.extend(bodies.iter().filter_map(|b| serde_json::from_str(b).ok()));
    }
    // Anything late (a duplicate) shows up in a short extra wait.
    let extra = provision::drain_queue(sqs, url, std::time::Duration::from_millis(300))
        .await
        .expect("queue");
    out.extend(extra.iter().filter_map(|b| serde_json::from_str(b).ok()));
    out
}

/// The key id of an item: `pk|sk` (string keys).
pub fn key_id(item: &dynabridge_shared::schema::Attributes) -> String {
    let s = |k: &str| match item.get(k) {
        Some(serde_dynamo::AttributeValue::S(v)) => v.clone(),
        other => format!("{other:?}"),
    };
    format!("{}|{}", s("pk"), s("sk"))
}

/// Every item of `table` (consistent scan), by [`key_id`].
pub async fn table_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<std::collections::BTreeMap<String, dynabridge_shared::schema::Attributes>> {
    let mut out = std::collections::BTreeMap::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            let item = dynabridge_shared::codec::from_sdk_item(item.clone());
            out.insert(key_id(&item), item);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// The events of `detail_type` received on a queue within `wait` (bodies parsed).
pub async fn events_of(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    detail_type: &str,
    wait: std::time::Duration,
) -> Vec<serde_json::Value> {
    provision::drain_queue(sqs, url, wait)
        .await
        .expect("queue")
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter(|v| v["detail-type"] == detail_type)
        .collect()
}
