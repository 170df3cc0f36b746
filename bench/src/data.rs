//! The benchmark data, from the one generator the project has (`devstack::sample`).
//!
//! - **Item files**: DynamoDB-JSON lines in the shape of DynamoDB's export to S3
//!   (`{"Item": {"pk": {"S": "..."}, ...}}`, binaries base64), read by the Rust converter and
//!   by every Python peer.
//! - **Stream batches**: Lambda DynamoDB Streams events (tumbling-window envelope, as the
//!   template configures the mapping) built from the same items: 70 % INSERT, 20 % MODIFY
//!   (new and old image), 10 % REMOVE, with strictly increasing sequence numbers so every
//!   batch is new work for the checkpoints.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use dynabridge_devstack::sample::{Item, SampleStream};
use serde_json::{Value, json};

/// Default seed of every benchmark.
pub const SEED: u64 = 20_261_121;

/// The fixed "now" of the generated data (so the same seed gives the same bytes any day).
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The items of `seed`.
pub fn items(seed: u64) -> SampleStream {
    SampleStream::new(seed, now())
}

/// DynamoDB-JSON of an item (`{"pk": {"S": ...}, ...}`).
pub fn item_json(item: &Item) -> Value {
    // Keys sorted by the codec's own code: serde_json's map order depends on its
    // `preserve_order` feature, which feature unification may switch on.
    let attrs = dynabridge_shared::codec::from_sdk_item(item.clone());
    dynabridge_shared::codec::dynamodb_json_map(attrs.iter())
}

/// Writes `n` items of `seed` as DynamoDB-JSON lines; returns the bytes written.
pub fn write_items(path: &Path, n: usize, seed: u64) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0u64;
    for item in items(seed).take(n) {
        let line = serde_json::to_vec(&json!({ "Item": item_json(&item) }))?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        bytes += line.len() as u64 + 1;
    }
    out.flush()?;
    Ok(bytes)
}

/// Builds Lambda stream batches from one item stream, continuing where the last one ended.
#[derive(Debug)]
pub struct StreamBatches {
    items: SampleStream,
    next_seq: u128,
    stream_arn: String,
    shard: String,
}

impl StreamBatches {
    /// Batches for `shard` (each benchmarked function gets its own, so checkpoints differ).
    pub fn new(seed: u64, stream_arn: &str, shard: &str) -> Self {
        StreamBatches {
            items: items(seed),
            next_seq: 100_000_000_000_000_000_000,
            stream_arn: stream_arn.to_string(),
            shard: shard.to_string(),
        }
    }

    /// The next batch of `n` records, as the tumbling-window event Lambda sends.
    pub fn next_batch(&mut self, n: usize) -> Value {
        let created = now().timestamp() as f64;
        let records: Vec<Value> = (0..n)
            .map(|i| {
                let item = self.items.next().unwrap_or_default();
                let seq = self.next_seq;
                self.next_seq += 1 + (i as u128 % 7);
                let keys: Item = item
                    .iter()
                    .filter(|(k, _)| *k == "pk" || *k == "sk")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let (name, new, old) = match seq % 10 {
                    0 => ("REMOVE", None, Some(item_json(&item))),
                    1 | 2 => {
                        let mut before = item.clone();
                        before.insert(
                            "status".into(),
                            aws_sdk_dynamodb::types::AttributeValue::S("PLACED".into()),
                        );
                        ("MODIFY", Some(item_json(&item)), Some(item_json(&before)))
                    }
                    _ => ("INSERT", Some(item_json(&item)), None),
                };
                let mut ddb = json!({
                    "ApproximateCreationDateTime": created + i as f64 / 1000.0,
                    "Keys": item_json(&keys),
                    "SequenceNumber": seq.to_string(),
                    "SizeBytes": 512,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                });
                if let Some(n) = new {
                    ddb["NewImage"] = n;
                }
                if let Some(o) = old {
                    ddb["OldImage"] = o;
                }
                json!({
                    "eventID": format!("{:032x}", seq),
                    "eventName": name,
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": dynabridge_devstack::stack::REGION,
                    "dynamodb": ddb,
                    "eventSourceARN": self.stream_arn,
                })
            })
            .collect();
        json!({
            "Records": records,
            "window": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T00:01:00Z"},
            "state": {},
            "shardId": self.shard,
            "eventSourceARN": self.stream_arn,
            "isFinalInvokeForWindow": false,
            "isWindowTerminatedEarly": false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_continue_and_sequence_numbers_increase() {
        let mut b = StreamBatches::new(1, "arn:stream", "shard-1");
        let first = b.next_batch(50);
        let second = b.next_batch(50);
        let seqs: Vec<u128> = [first, second]
            .iter()
            .flat_map(|e| e["Records"].as_array().cloned().unwrap_or_default())
            .map(|r| {
                r["dynamodb"]["SequenceNumber"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        assert_eq!(seqs.len(), 100);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        let text = b.next_batch(20).to_string();
        let batch = dynabridge_shared::stream::StreamBatch::parse(&text).unwrap();
        assert!(batch.records.iter().all(|r| r.change.is_ok()));
        assert_eq!(batch.checkpoint_shard(), "shard-1");
    }

    #[test]
    fn item_files_are_deterministic_dynamodb_json() {
        let dir = std::env::temp_dir().join(format!("dynabridge-bench-{}", std::process::id()));
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl");
        write_items(&a, 300, 5).unwrap();
        write_items(&b, 300, 5).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 300);
        let sizes: Vec<usize> = items(5)
            .take(300)
            .map(|i| dynabridge_shared::codec::sdk_item_size(&i))
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((250..=1024).contains(&mean), "mean item size {mean}");
        let first: serde_dynamo::Item = serde_json::from_value(
            serde_json::from_str::<Value>(lines[0]).unwrap()["Item"].clone(),
        )
        .unwrap();
        assert!(first.inner().contains_key("pk"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
