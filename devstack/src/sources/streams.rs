//! A DynamoDB Streams event source mapping (ESM), as Lambda runs one.
//!
//! The poller reads each shard in order with the real `aws-sdk-dynamodbstreams` client,
//! builds the exact event Lambda sends (`{"Records": [...]}` with `eventSourceARN`, and
//! `userIdentity` on TTL deletions) and invokes the function through the harness.
//!
//! Semantics reproduced (per shard):
//! - **BatchSize**: at most that many records per invocation.
//! - **FilterCriteria**: records matching no pattern are not delivered and count as processed.
//!   A batch whose records are all filtered out causes no invocation.
//! - **ReportBatchItemFailures**: a response `{"batchItemFailures":[{"itemIdentifier": seq}]}`
//!   checkpoints everything before the *lowest* reported sequence number and retries from it.
//!   An empty/null/unknown identifier fails the whole batch (as Lambda does).
//! - **BisectBatchOnFunctionError**: on a function error (error response, crash, timeout) the
//!   batch is split in two and the first half retried; a split does not count as a retry.
//! - **MaximumRetryAttempts** (`-1` = until the record expires): once a batch has failed more
//!   than that many times, its records are skipped and reported to the on-failure destination.
//! - **MaximumRecordAgeInSeconds**: older records are skipped and reported the same way.
//! - **TumblingWindowInSeconds**: the event carries `shardId`, `window` and `state`.
//! - **OnFailure destination**: an SQS queue receiving Lambda's invocation record
//!   (`requestContext`, `responseContext`, `DDBStreamBatchInfo`), never the records themselves.
//!
//! Normalisation: dynoxide writes `userIdentity` with the Lambda-event field names
//! (`type`/`principalId`), which the Streams SDK model (`Type`/`PrincipalId`) does not read, so
//! the SDK sees an identity with empty fields. dynoxide only ever attaches an identity to TTL
//! deletions, so an identity with empty fields is rewritten to
//! `{"type":"Service","principalId":"dynamodb.amazonaws.com"}`; a populated one (real AWS) is
//! passed through unchanged.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::harness::{FunctionProcess, InvokeOutcome};
use crate::sources::filter;

/// Where a new mapping starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record in the shard.
    TrimHorizon,
    /// Only records written after the mapping is created.
    Latest,
}

/// Event source mapping settings (names follow `AWS::Lambda::EventSourceMapping`).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Records per invocation (Lambda: 1–10,000; default 100).
    pub batch_size: usize,
    /// Honour `batchItemFailures` in the response.
    pub report_batch_item_failures: bool,
    /// Split a failing batch in two before retrying.
    pub bisect_batch_on_function_error: bool,
    /// Retries before a batch is skipped; `-1` retries until the record expires.
    pub maximum_retry_attempts: i64,
    /// Records older than this are skipped.
    pub maximum_record_age: Option<Duration>,
    /// Filter patterns (a record is delivered when it matches any).
    pub filter_criteria: Vec<Value>,
    /// SQS queue URL receiving discarded-batch records.
    pub on_failure_queue_url: Option<String>,
    /// Where to start reading.
    pub starting_position: StartingPosition,
    /// `TumblingWindowInSeconds`: when set, events use Lambda's tumbling-window envelope,
    /// which carries `shardId` (dynabridge's checkpoints need it). The state is always `{}`
    /// and the extra final invocation at the end of a window is not emulated.
    pub tumbling_window: Option<Duration>,
    /// Safety valve for tests: stop with an error after this many invocations in one
    /// [`StreamPoller::drain`] (an infinite retry loop would otherwise hang a test).
    pub max_invocations_per_drain: usize,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            batch_size: 100,
            report_batch_item_failures: true,
            bisect_batch_on_function_error: true,
            maximum_retry_attempts: 3,
            maximum_record_age: None,
            filter_criteria: Vec::new(),
            on_failure_queue_url: None,
            starting_position: StartingPosition::TrimHorizon,
            tumbling_window: None,
            max_invocations_per_drain: 1_000,
        }
    }
}

/// What one invocation delivered and how it ended.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Shard the batch came from.
    pub shard_id: String,
    /// Sequence numbers delivered, in order.
    pub sequence_numbers: Vec<String>,
    /// The invocation's outcome.
    pub outcome: InvokeOutcome,
    /// Retry attempt of this batch (0 = first try).
    pub attempt: u32,
}

/// Records skipped after retries or because of their age.
#[derive(Debug, Clone)]
pub struct Discarded {
    /// Shard.
    pub shard_id: String,
    /// First sequence number skipped.
    pub start_sequence_number: String,
    /// Last sequence number skipped.
    pub end_sequence_number: String,
    /// Number of records.
    pub batch_size: usize,
    /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    pub condition: String,
}

#[derive(Debug, Default)]
struct ShardState {
    iterator: Option<String>,
    buffer: VecDeque<Value>,
    /// Failures of the batch currently at the front of the buffer.
    attempts: u32,
    /// Current batch window (shrinks on bisection).
    window: Option<usize>,
    closed: bool,
}

/// A DynamoDB Streams event source mapping bound to one table's stream.
#[derive(Debug)]
pub struct StreamPoller {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: Option<aws_sdk_sqs::Client>,
    stream_arn: String,
    config: MappingConfig,
    shards: BTreeMap<String, ShardState>,
    deliveries: Vec<Delivery>,
    discarded: Vec<Discarded>,
}

impl StreamPoller {
    /// Creates a mapping on `stream_arn`. `sqs` is needed only with an on-failure queue.
    pub async fn new(
        streams: aws_sdk_dynamodbstreams::Client,
        sqs: Option<aws_sdk_sqs::Client>,
        stream_arn: &str,
        config: MappingConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 || config.batch_size > 10_000 {
            bail!("BatchSize must be 1..=10000, got {}", config.batch_size);
        }
        if config.on_failure_queue_url.is_some() && sqs.is_none() {
            bail!("an on-failure queue needs an SQS client");
        }
        let mut poller = StreamPoller {
            streams,
            sqs,
            stream_arn: stream_arn.to_string(),
            config,
            shards: BTreeMap::new(),
            deliveries: Vec::new(),
            discarded: Vec::new(),
        };
        poller.refresh_shards().await?;
        Ok(poller)
    }

    /// Every invocation made so far, in order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Every batch skipped so far (after retries or by age).
    pub fn discarded(&self) -> &[Discarded] {
        &self.discarded
    }

    /// The stream's ARN.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    async fn refresh_shards(&mut self) -> Result<()> {
        let desc = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .context("DescribeStream")?;
        let shards = desc
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.shards.contains_key(id) {
                continue;
            }
            let kind = match self.config.starting_position {
                StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
                StartingPosition::Latest => ShardIteratorType::Latest,
            };
            let it = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(id)
                .shard_iterator_type(kind)
                .send()
                .await
                .context("GetShardIterator")?;
            self.shards.insert(
                id.to_string(),
                ShardState {
                    iterator: it.shard_iterator().map(str::to_string),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    /// Reads more records into a shard's buffer; returns how many arrived.
    async fn fill(&mut self, shard_id: &str) -> Result<usize> {
        let want = self.config.batch_size;
        let Some(state) = self.shards.get_mut(shard_id) else {
            return Ok(0);
        };
        if state.closed || state.buffer.len() >= want {
            return Ok(0);
        }
        let Some(iterator) = state.iterator.clone() else {
            state.closed = true;
            return Ok(0);
        };
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit((want - state.buffer.len()).min(1000) as i32)
            .send()
            .await
            .context("GetRecords")?;
        let n = out.records().len();
        for record in out.records() {
            state
                .buffer
                .push_back(lambda_record(record, &self.stream_arn));
        }
        state.iterator = out.next_shard_iterator().map(str::to_string);
        if state.iterator.is_none() {
            state.closed = true;
        }
        Ok(n)
    }

    /// Delivers everything currently in the stream, with retries, until no shard has records
    /// left. Returns the deliveries made by this call.
    pub async fn drain(&mut self, function: &mut FunctionProcess) -> Result<Vec<Delivery>> {
        let first_new = self.deliveries.len();
        self.refresh_shards().await?;
        let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
        for shard_id in shard_ids {
            loop {
                // Top up until a batch is full or the shard has nothing more right now.
                while self.fill(&shard_id).await? > 0 {}
                let buffered = self.shards.get(&shard_id).map_or(0, |s| s.buffer.len());
                if buffered == 0 {
                    break;
                }
                if self.deliveries.len() - first_new >= self.config.max_invocations_per_drain {
                    bail!(
                        "more than {} invocations in one drain: the function keeps failing",
                        self.config.max_invocations_per_drain
                    );
                }
                self.process_front(&shard_id, function).await?;
            }
        }
        Ok(self.deliveries[first_new..].to_vec())
    }

    async fn process_front(
        &mut self,
        shard_id: &str,
        function: &mut FunctionProcess,
    ) -> Result<()> {
        self.expire_old_records(shard_id).await?;
        let batch_size = self.config.batch_size;
        let state = self
            .shards
            .get_mut(shard_id)
            .ok_or_else(|| anyhow!("unknown shard {shard_id}"))?;
        if state.buffer.is_empty() {
            return Ok(());
        }
        let n = state
            .window
            .unwrap_or(batch_size)
            .min(state.buffer.len())
            .max(1);
        let batch: Vec<Value> = state.buffer.iter().take(n).cloned().collect();
        let delivered: Vec<Value> = batch
            .iter()
            .filter(|r| filter::matches_any(&self.config.filter_criteria, r))
            .cloned()
            .collect();
        if delivered.is_empty() {
            state.buffer.drain(..n);
            state.window = None;
            return Ok(());
        }
        let attempt = state.attempts;
        let seqs: Vec<String> = delivered.iter().map(seq_of).collect();
        let event = match self.config.tumbling_window {
            None => json!({ "Records": delivered }),
            Some(window) => {
                let secs = window.as_secs().max(1) as i64;
                let now = Utc::now().timestamp();
                let start = now - now.rem_euclid(secs);
                let at = |t: i64| {
                    chrono::DateTime::from_timestamp(t, 0)
                        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
                };
                json!({
                    "Records": delivered,
                    "window": { "start": at(start), "end": at(start + secs) },
                    "state": {},
                    "shardId": shard_id,
                    "eventSourceARN": self.stream_arn,
                    "isFinalInvokeForWindow": false,
                    "isWindowTerminatedEarly": false,
                })
            }
        };
        let invocation = function.invoke(&event).await?;
        self.deliveries.push(Delivery {
            shard_id: shard_id.to_string(),
            sequence_numbers: seqs.clone(),
            outcome: invocation.outcome.clone(),
            attempt,
        });

        let failed_from = match &invocation.outcome {
            InvokeOutcome::Response(resp) if self.config.report_batch_item_failures => {
                match lowest_failure(resp, &seqs) {
                    FailureReport::None => None,
                    FailureReport::From(seq) => Some(Some(seq)),
                    FailureReport::Invalid => Some(None),
                }
            }
            InvokeOutcome::Response(_) => None,
            _ => Some(None),
        };

        let state = self
            .shards
            .get_mut(shard_id)
            .ok_or_else(|| anyhow!("unknown shard {shard_id}"))?;
        match failed_from {
            None => {
                state.buffer.drain(..n);
                state.attempts = 0;
                state.window = None;
                Ok(())
            }
            Some(Some(seq)) => {
                // Checkpoint everything before the failed record; retry from it.
                let keep_from = batch.iter().position(|r| seq_of(r) == seq).unwrap_or(0);
                if keep_from > 0 {
                    state.buffer.drain(..keep_from);
                    state.attempts = 0;
                }
                state.window = Some(n - keep_from);
                self.count_failure(shard_id, n - keep_from, &invocation.request_id)
                    .await
            }
            Some(None) => {
                let is_function_error = invocation.outcome.is_function_error();
                if self.config.bisect_batch_on_function_error && is_function_error && n > 1 {
                    state.window = Some(n.div_ceil(2));
                    return Ok(());
                }
                self.count_failure(shard_id, n, &invocation.request_id)
                    .await
            }
        }
    }

    /// Counts a failed attempt of the first `n` buffered records; skips them once retries are
    /// exhausted.
    async fn count_failure(&mut self, shard_id: &str, n: usize, request_id: &str) -> Result<()> {
        let max = self.config.maximum_retry_attempts;
        let state = self
            .shards
            .get_mut(shard_id)
            .ok_or_else(|| anyhow!("unknown shard {shard_id}"))?;
        state.attempts += 1;
        if max >= 0 && i64::from(state.attempts) > max {
            let skipped: Vec<Value> = state.buffer.drain(..n.min(state.buffer.len())).collect();
            state.attempts = 0;
            state.window = None;
            let attempts = max + 1;
            self.discard(
                shard_id,
                &skipped,
                "RetryAttemptsExhausted",
                request_id,
                attempts,
            )
            .await?;
        }
        Ok(())
    }

    async fn expire_old_records(&mut self, shard_id: &str) -> Result<()> {
        let Some(max_age) = self.config.maximum_record_age else {
            return Ok(());
        };
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        let Some(state) = self.shards.get_mut(shard_id) else {
            return Ok(());
        };
        let mut expired = Vec::new();
        while let Some(front) = state.buffer.front() {
            let created = front["dynamodb"]["ApproximateCreationDateTime"]
                .as_f64()
                .unwrap_or(now);
            if now - created > max_age.as_secs_f64() {
                if let Some(r) = state.buffer.pop_front() {
                    expired.push(r);
                }
            } else {
                break;
            }
        }
        if !expired.is_empty() {
            state.attempts = 0;
            state.window = None;
            self.discard(shard_id, &expired, "RecordAgeExceeded", "", 0)
                .await?;
        }
        Ok(())
    }

    async fn discard(
        &mut self,
        shard_id: &str,
        records: &[Value],
        condition: &str,
        request_id: &str,
        invoke_count: i64,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let info = Discarded {
            shard_id: shard_id.to_string(),
            start_sequence_number: seq_of(first),
            end_sequence_number: seq_of(last),
            batch_size: records.len(),
            condition: condition.to_string(),
        };
        if let (Some(url), Some(sqs)) = (&self.config.on_failure_queue_url, &self.sqs) {
            let arrival = |r: &Value| {
                r["dynamodb"]["ApproximateCreationDateTime"]
                    .as_f64()
                    .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            };
            let body = json!({
                "requestContext": {
                    "requestId": request_id,
                    "functionArn": "",
                    "condition": condition,
                    "approximateInvokeCount": invoke_count,
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "version": "1.0",
                "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                "DDBStreamBatchInfo": {
                    "shardId": info.shard_id,
                    "startSequenceNumber": info.start_sequence_number,
                    "endSequenceNumber": info.end_sequence_number,
                    "approximateArrivalOfFirstRecord": arrival(first),
                    "approximateArrivalOfLastRecord": arrival(last),
                    "batchSize": info.batch_size,
                    "streamArn": self.stream_arn,
                }
            });
            sqs.send_message()
                .queue_url(url)
                .message_body(body.to_string())
                .send()
                .await
                .context("SendMessage to the on-failure destination")?;
        }
        self.discarded.push(info);
        Ok(())
    }
}

enum FailureReport {
    None,
    From(String),
    Invalid,
}

fn lowest_failure(resp: &Value, delivered: &[String]) -> FailureReport {
    let Some(failures) = resp.get("batchItemFailures").and_then(Value::as_array) else {
        return FailureReport::None;
    };
    if failures.is_empty() {
        return FailureReport::None;
    }
    let mut lowest: Option<&String> = None;
    for f in failures {
        let id = f
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(found) = delivered.iter().find(|s| s.as_str() == id) else {
            return FailureReport::Invalid;
        };
        if lowest.is_none_or(|l| seq_cmp(found, l).is_lt()) {
            lowest = Some(found);
        }
    }
    lowest.map_or(FailureReport::Invalid, |s| FailureReport::From(s.clone()))
}

/// Orders sequence numbers numerically (decimal strings of varying length).
pub fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn seq_of(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Builds the Lambda event record for one Streams record.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let mut out = Map::new();
    out.insert(
        "eventID".into(),
        json!(record.event_id().unwrap_or_default()),
    );
    out.insert(
        "eventName".into(),
        json!(record.event_name().map(|e| e.as_str()).unwrap_or_default()),
    );
    out.insert(
        "eventVersion".into(),
        json!(record.event_version().unwrap_or("1.1")),
    );
    out.insert(
        "eventSource".into(),
        json!(record.event_source().unwrap_or("aws:dynamodb")),
    );
    out.insert(
        "awsRegion".into(),
        json!(record.aws_region().unwrap_or_default()),
    );
    let mut ddb = Map::new();
    if let Some(sr) = record.dynamodb() {
        if let Some(t) = sr.approximate_creation_date_time() {
            let secs = t.secs() as f64 + f64::from(t.subsec_nanos()) / 1e9;
            ddb.insert("ApproximateCreationDateTime".into(), json!(secs));
        }
        let image = |m: Option<
            &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| {
            m.map(|m| {
                let item: serde_dynamo::Item = m.clone().into();
                serde_json::to_value(item).unwrap_or(Value::Null)
            })
        };
        if let Some(k) = image(sr.keys()) {
            ddb.insert("Keys".into(), k);
        }
        if let Some(n) = image(sr.new_image()) {
            ddb.insert("NewImage".into(), n);
        }
        if let Some(o) = image(sr.old_image()) {
            ddb.insert("OldImage".into(), o);
        }
        if let Some(s) = sr.sequence_number() {
            ddb.insert("SequenceNumber".into(), json!(s));
        }
        if let Some(s) = sr.size_bytes() {
            ddb.insert("SizeBytes".into(), json!(s));
        }
        if let Some(v) = sr.stream_view_type() {
            ddb.insert("StreamViewType".into(), json!(v.as_str()));
        }
    }
    out.insert("dynamodb".into(), Value::Object(ddb));
    if let Some(identity) = record.user_identity() {
        let kind = identity
            .r#type()
            .filter(|s| !s.is_empty())
            .unwrap_or("Service");
        let principal = identity
            .principal_id()
            .filter(|s| !s.is_empty())
            .unwrap_or("dynamodb.amazonaws.com");
        out.insert(
            "userIdentity".into(),
            json!({ "type": kind, "principalId": principal }),
        );
    }
    out.insert("eventSourceARN".into(), json!(stream_arn));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert!(seq_cmp("900", "1000").is_lt());
        assert!(seq_cmp("000123", "123").is_eq());
        assert!(seq_cmp("2", "10").is_lt());
    }

    #[test]
    fn lowest_reported_failure_wins_and_unknown_ids_fail_the_batch() {
        let delivered = vec!["100".to_string(), "200".to_string(), "300".to_string()];
        let resp =
            json!({"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "200"}]});
        assert!(matches!(lowest_failure(&resp, &delivered), FailureReport::From(s) if s == "200"));
        let resp = json!({"batchItemFailures": [{"itemIdentifier": ""}]});
        assert!(matches!(
            lowest_failure(&resp, &delivered),
            FailureReport::Invalid
        ));
        let resp = json!({"batchItemFailures": [{"itemIdentifier": "999"}]});
        assert!(matches!(
            lowest_failure(&resp, &delivered),
            FailureReport::Invalid
        ));
        assert!(matches!(
            lowest_failure(&json!({"batchItemFailures": []}), &delivered),
            FailureReport::None
        ));
        assert!(matches!(
            lowest_failure(&json!(null), &delivered),
            FailureReport::None
        ));
    }
}
