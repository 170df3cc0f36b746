//! DynamoDB Streams batches as Lambda delivers them, decoded into [`ChangeRecord`]s, and the
//! batch response that keeps a shard in order.
//!
//! ## Envelopes
//! Lambda sends either the plain stream event (`{"Records": [...]}`) or, when the event
//! source mapping has a tumbling window, the same records plus `shardId`, `window` and
//! `state`. DynamoDB stream records do not say which shard they came from, and checkpoints
//! are per shard, so dynabridge's template enables a tumbling window to get `shardId`
//! (see `docs/decisions.md`). Without it the stream ARN stands in for the shard, which is
//! only safe for a stream read by one concurrent batch at a time.
//!
//! ## Records
//! Each record becomes a [`ChangeRecord`] with its operation — `REMOVE` made by DynamoDB's
//! TTL process (`userIdentity` = `Service` / `dynamodb.amazonaws.com`) is [`Op::Expire`] —,
//! sequence number, event time (µs), keys and images. A record that cannot be decoded but
//! has a sequence number is kept as a [`Poison`] with the reason, so the caller quarantines
//! it instead of blocking the shard. A record without a sequence number cannot be
//! checkpointed or reported: the whole batch is refused with a typed error.
//!
//! ## Response
//! [`batch_response`] reports the first failed record *and every record after it*, so
//! Lambda retries from there and nothing after it is processed out of order.

pub mod publish;
pub mod sink;

use serde_json::{Value, json};

use crate::codec::Op;
use crate::error::DynabridgeError;
use crate::schema::Attributes;

/// The DynamoDB item size limit; an image larger than this cannot come from DynamoDB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One decodable change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    /// `eventID`.
    pub event_id: String,
    /// `dynamodb.SequenceNumber` as received.
    pub sequence_number: String,
    /// INSERT, MODIFY, REMOVE or EXPIRE.
    pub op: Op,
    /// `dynamodb.Keys`.
    pub keys: Attributes,
    /// `dynamodb.NewImage` (empty when absent).
    pub new_image: Option<Attributes>,
    /// `dynamodb.OldImage` (empty when absent).
    pub old_image: Option<Attributes>,
    /// `ApproximateCreationDateTime` in µs since the epoch.
    pub event_time_micros: i64,
}

impl ChangeRecord {
    /// The image that describes the item after the change: the new image for INSERT/MODIFY,
    /// the old (last) image for REMOVE/EXPIRE. `None` when the stream view type omits it.
    pub fn image(&self) -> Option<&Attributes> {
        match self.op {
            Op::Insert | Op::Modify | Op::Snapshot => self.new_image.as_ref(),
            Op::Remove | Op::Expire => self.old_image.as_ref(),
        }
    }
}

/// A record that could not be decoded, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    /// `dynamodb.SequenceNumber`.
    pub sequence_number: String,
    /// Short reason class, e.g. `MalformedRecord`, `ImageTooLarge`.
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
}

/// One record of the batch, decoded or not, with the raw JSON kept for quarantine.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    /// The decoded change, or why it could not be decoded.
    pub change: Result<ChangeRecord, Poison>,
    /// The record exactly as received.
    pub raw: Value,
}

impl BatchRecord {
    /// The record's sequence number (present for every record of a parsed batch).
    pub fn sequence_number(&self) -> &str {
        match &self.change {
            Ok(c) => &c.sequence_number,
            Err(p) => &p.sequence_number,
        }
    }
}

/// A stream batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamBatch {
    /// The records in stream order.
    pub records: Vec<BatchRecord>,
    /// `shardId` (tumbling-window envelope only).
    pub shard_id: Option<String>,
    /// The stream ARN (`eventSourceARN` of the envelope or of the records).
    pub event_source_arn: Option<String>,
    /// Whether the payload used the tumbling-window envelope (the response must then carry
    /// `state`).
    pub windowed: bool,
}

impl StreamBatch {
    /// Parses a Lambda payload (plain or tumbling-window envelope).
    pub fn parse(payload: &Value) -> Result<Self, DynabridgeError> {
        Self::from_payload(payload.clone())
    }

    /// Parses a Lambda payload it owns: each record's JSON moves into its [`BatchRecord`]
    /// instead of being copied (the handlers' path).
    pub fn from_payload(mut payload: Value) -> Result<Self, DynabridgeError> {
        let Some(Value::Array(records)) = payload.get_mut("Records").map(Value::take) else {
            return Err(DynabridgeError::InvalidEvent(
                "stream event without a Records array".into(),
            ));
        };
        let windowed = payload.get("window").is_some() || payload.get("shardId").is_some();
        let shard_id = payload
            .get("shardId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut event_source_arn = payload
            .get("eventSourceARN")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut parsed = Vec::with_capacity(records.len());
        for (i, raw) in records.into_iter().enumerate() {
            let Some(seq) = raw
                .pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            else {
                return Err(DynabridgeError::InvalidEvent(format!(
                    "record {i} has no numeric dynamodb.SequenceNumber; the batch cannot be checkpointed"
                )));
            };
            if event_source_arn.is_none() {
                event_source_arn = raw
                    .get("eventSourceARN")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            let change = decode_record(&raw, seq);
            parsed.push(BatchRecord { change, raw });
        }
        // Lambda delivers a shard's records in order; anything else would break the
        // checkpoint's contiguity, so refuse it loudly.
        for pair in parsed.windows(2) {
            if crate::checkpoint::pad_sequence(pair[0].sequence_number()).ok()
                >= crate::checkpoint::pad_sequence(pair[1].sequence_number()).ok()
            {
                return Err(DynabridgeError::InvalidEvent(format!(
                    "records are not in sequence order ({} then {})",
                    pair[0].sequence_number(),
                    pair[1].sequence_number()
                )));
            }
        }
        Ok(StreamBatch {
            records: parsed,
            shard_id,
            event_source_arn,
            windowed,
        })
    }

    /// The shard id checkpoints are kept under: `shardId` when the envelope has it, else the
    /// stream ARN (one scope for the whole stream).
    pub fn checkpoint_shard(&self) -> String {
        self.shard_id
            .clone()
            .or_else(|| self.event_source_arn.clone())
            .unwrap_or_else(|| "stream".to_string())
    }

    /// Sequence numbers in order.
    pub fn sequence_numbers(&self) -> Vec<&str> {
        self.records
            .iter()
            .map(BatchRecord::sequence_number)
            .collect()
    }
}

fn poison(seq: &str, kind: &str, reason: impl Into<String>) -> Poison {
    Poison {
        sequence_number: seq.to_string(),
        kind: kind.to_string(),
        reason: reason.into(),
    }
}

fn decode_record(raw: &Value, seq: &str) -> Result<ChangeRecord, Poison> {
    let image = |name: &str| -> Result<Option<Attributes>, Poison> {
        match raw.pointer(&format!("/dynamodb/{name}")) {
            None | Some(Value::Null) => Ok(None),
            // Deserialized straight from the parsed tree, without copying it first.
            Some(v) => <serde_dynamo::Item as serde::Deserialize>::deserialize(v)
                .map(|i| Some(i.into_inner()))
                .map_err(|e| poison(seq, "MalformedRecord", format!("dynamodb.{name}: {e}"))),
        }
    };
    let keys = image("Keys")?.unwrap_or_default();
    let new_image = image("NewImage")?;
    let old_image = image("OldImage")?;
    let event_name = raw.get("eventName").and_then(Value::as_str).unwrap_or("");
    let is_ttl = raw
        .pointer("/userIdentity/type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "Service")
        && raw
            .pointer("/userIdentity/principalId")
            .and_then(Value::as_str)
            .is_some_and(|p| p == "dynamodb.amazonaws.com");
    let op = match event_name {
        "INSERT" => Op::Insert,
        "MODIFY" => Op::Modify,
        "REMOVE" if is_ttl => Op::Expire,
        "REMOVE" => Op::Remove,
        other => {
            return Err(poison(
                seq,
                "MalformedRecord",
                format!("unknown eventName {other:?}"),
            ));
        }
    };
    if keys.is_empty() {
        return Err(poison(
            seq,
            "MalformedRecord",
            "dynamodb.Keys is missing or empty",
        ));
    }
    for (name, img) in [("NewImage", &new_image), ("OldImage", &old_image)] {
        if let Some(img) = img {
            let size = crate::codec::item_size(img);
            if size > MAX_ITEM_BYTES {
                return Err(poison(
                    seq,
                    "ImageTooLarge",
                    format!(
                        "dynamodb.{name} is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
                    ),
                ));
            }
        }
    }
    let event_time_micros = raw
        .pointer("/dynamodb/ApproximateCreationDateTime")
        .and_then(Value::as_f64)
        .map(|secs| (secs * 1_000_000.0).round() as i64)
        .unwrap_or(0);
    Ok(ChangeRecord {
        event_id: raw
            .get("eventID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        sequence_number: seq.to_string(),
        op,
        keys,
        new_image,
        old_image,
        event_time_micros,
    })
}

/// The response for a batch: `batchItemFailures` lists the record at `failed_from` and every
/// record after it (none when `failed_from` is `None`). A windowed batch also returns an
/// empty `state`.
pub fn batch_response(batch: &StreamBatch, failed_from: Option<usize>) -> Value {
    let failures: Vec<Value> = match failed_from {
        Some(i) => batch.records[i.min(batch.records.len())..]
            .iter()
            .map(|r| json!({ "itemIdentifier": r.sequence_number() }))
            .collect(),
        None => Vec::new(),
    };
    if batch.windowed {
        json!({ "state": {}, "batchItemFailures": failures })
    } else {
        json!({ "batchItemFailures": failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str, name: &str, extra: Value) -> Value {
        let mut r = json!({
            "eventID": format!("e{seq}"),
            "eventName": name,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "dynamodb": {
                "ApproximateCreationDateTime": 1795316400.5,
                "Keys": {"pk": {"S": "A"}},
                "SequenceNumber": seq,
            }
        });
        if let (Some(obj), Value::Object(extra)) = (r.as_object_mut(), extra) {
            for (k, v) in extra {
                if k == "dynamodb" {
                    if let (Some(d), Value::Object(dv)) =
                        (obj.get_mut("dynamodb").and_then(Value::as_object_mut), v)
                    {
                        d.extend(dv);
                    }
                } else {
                    obj.insert(k, v);
                }
            }
        }
        r
    }

    #[test]
    fn classifies_ops_and_ttl_expiry() {
        let ttl =
            json!({"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}});
        let payload = json!({"Records": [
            record("100", "INSERT", json!({"dynamodb": {"NewImage": {"pk": {"S": "A"}}}})),
            record("101", "MODIFY", json!({})),
            record("102", "REMOVE", json!({})),
            record("103", "REMOVE", ttl),
        ]});
        let b = StreamBatch::parse(&payload).unwrap();
        let ops: Vec<Op> = b
            .records
            .iter()
            .map(|r| r.change.as_ref().unwrap().op)
            .collect();
        assert_eq!(ops, [Op::Insert, Op::Modify, Op::Remove, Op::Expire]);
        let first = b.records[0].change.as_ref().unwrap();
        assert_eq!(first.event_time_micros, 1_795_316_400_500_000);
        assert!(first.image().is_some());
        assert!(!b.windowed);
        assert_eq!(
            b.checkpoint_shard(),
            "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
        );
        assert_eq!(
            batch_response(&b, Some(2)),
            json!({"batchItemFailures": [{"itemIdentifier": "102"}, {"itemIdentifier": "103"}]})
        );
    }

    #[test]
    fn windowed_envelope_gives_the_shard_and_state() {
        let payload = json!({"Records": [record("5", "INSERT", json!({}))], "shardId": "shardId-0001",
            "window": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-21T00:01:00Z"}, "state": {}});
        let b = StreamBatch::parse(&payload).unwrap();
        assert_eq!(b.checkpoint_shard(), "shardId-0001");
        assert_eq!(
            batch_response(&b, None),
            json!({"state": {}, "batchItemFailures": []})
        );
    }

    #[test]
    fn bad_records_are_poison_or_refuse_the_batch() {
        let payload = json!({"Records": [
            record("1", "UPSERT", json!({})),
            record("2", "INSERT", json!({"dynamodb": {"NewImage": {"pk": {"X": "?"}}}})),
            record("3", "INSERT", json!({"dynamodb": {"NewImage": {"blob": {"S": "x".repeat(410_000)}}}})),
        ]});
        let b = StreamBatch::parse(&payload).unwrap();
        let kinds: Vec<String> = b
            .records
            .iter()
            .map(|r| r.change.as_ref().unwrap_err().kind.clone())
            .collect();
        assert_eq!(
            kinds,
            ["MalformedRecord", "MalformedRecord", "ImageTooLarge"]
        );

        let no_seq = json!({"Records": [{"eventName": "INSERT", "dynamodb": {}}]});
        assert!(matches!(
            StreamBatch::parse(&no_seq),
            Err(DynabridgeError::InvalidEvent(_))
        ));
        assert!(StreamBatch::parse(&json!({})).is_err());
        let out_of_order = json!({"Records": [record("20", "INSERT", json!({})), record("3", "INSERT", json!({}))]});
        assert!(StreamBatch::parse(&out_of_order).is_err());
    }
}
