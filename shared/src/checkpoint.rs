//! Ordered checkpoints for stream consumers: which records of a shard a sink has made
//! durable, and which output objects an unfinished batch is writing.
//!
//! A DynamoDB Streams event source mapping delivers each shard's records in order, at least
//! once: a failed, timed-out or crashed invocation is retried with the same batch, with half
//! of it (bisection), or from the middle (`ReportBatchItemFailures`), and a later batch may
//! start before the end of one already handled. Writing a new lake object per delivery would
//! duplicate rows; recording every record would cost two control-table writes per record.
//!
//! Instead each **(consumer, shard, sink)** has one control-table item holding
//!
//! - the **high-water mark**: the last sequence number whose effects in that sink are
//!   durable. Records at or below it are skipped.
//! - at most one **pending range**: the first..last sequence numbers of the batch being
//!   written and the deterministic **output object keys** it writes. It is recorded before
//!   the sink is written and cleared by the commit that advances the high-water mark.
//!
//! A retry after a crash finds the pending range and is told to write exactly the same keys
//! (overwriting whatever the crashed attempt left), then commits and goes on. Cost per batch
//! per sink: one strongly consistent read and at most two conditional writes (open, commit),
//! whatever the batch size; a fully replayed batch costs the read only.
//!
//! ## Protocol (what stream-fanout does per batch and sink)
//! 1. [`Checkpoints::begin`] with the batch's sequence numbers, in order. Records
//!    `0..batch.durable` are already durable: skip them. If [`Batch::range`] is `Some`, it
//!    lists the records to process and the [`OpenRange::outputs`] to write.
//! 2. Write every key of `outputs` with exactly the range's records (deterministic content,
//!    so a rewrite is an overwrite, not a duplicate); delete every key of
//!    [`OpenRange::obsolete_outputs`].
//! 3. [`Checkpoints::commit`] once the sink is durable (or [`Checkpoints::commit_through`]
//!    when only a prefix is).
//!
//! ## Guarantees
//! - With deterministic output content, every record lands in exactly one output object,
//!   however often a batch is replayed, shifted, halved or extended, as long as a retry
//!   starts where the crashed attempt started (which is what Lambda's retries and bisection
//!   do). A pending range that a later batch cannot rewrite (its first records were dropped
//!   by the event source, e.g. after retries ran out) is reported as [`Batch::orphaned`] and
//!   left as is: its objects are kept (at least once for records in both, never lost).
//! - Writes are conditional on the item's `version`, so two consumers racing on one shard
//!   (a misconfigured `ParallelizationFactor` > 1) fail with [`CheckpointError::Conflict`]
//!   instead of corrupting the mark. Use `ParallelizationFactor = 1` for checkpointed sinks.
//! - Sequence numbers are compared numerically: they are decimal strings of varying length,
//!   stored left-padded to 40 digits ([`pad_sequence`]), the same padding the lake's `_seq`
//!   column uses.
//!
//! ## Record layout (control table, `pk` (S) hash + `sk` (S) range)
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `ckpt#<consumer>#<shard id>` |
//! | `sk` | S | `sink#<sink>` |
//! | `hwm_seq` | S | high-water mark, 40-digit padded sequence number (absent: nothing durable yet) |
//! | `pending_first_seq` | S | pending range start, padded (absent: no pending range) |
//! | `pending_last_seq` | S | pending range end, padded |
//! | `pending_outputs` | L of S | object keys the pending range may have written |
//! | `pending_opened_at_ms` | N | when the pending range was opened |
//! | `updated_at_ms` | N | last change |
//! | `version` | N | incremented by every write; every write is conditional on it |

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::{Clock, SystemClock};
use crate::error::render_chain;

/// Width sequence numbers are padded to.
pub const SEQUENCE_DIGITS: usize = 40;

const A_PK: &str = "pk";
const A_SK: &str = "sk";
const A_HWM: &str = "hwm_seq";
const A_P_FIRST: &str = "pending_first_seq";
const A_P_LAST: &str = "pending_last_seq";
const A_P_OUTPUTS: &str = "pending_outputs";
const A_P_OPENED: &str = "pending_opened_at_ms";
const A_UPDATED: &str = "updated_at_ms";
const A_VERSION: &str = "version";

/// Why a checkpoint operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A sequence number is not 1–40 decimal digits.
    #[error("invalid sequence number {0:?}: expected 1 to 40 decimal digits")]
    InvalidSequence(String),
    /// The batch's sequence numbers are not strictly increasing.
    #[error("sequence numbers out of order at index {index}: {previous} then {next}")]
    NotOrdered {
        /// Index of the offending record.
        index: usize,
        /// The sequence number before it.
        previous: String,
        /// The offending sequence number.
        next: String,
    },
    /// The checkpoint moved since this batch read it (another consumer on the same shard).
    #[error("checkpoint {scope} changed concurrently (expected version {expected_version})")]
    Conflict {
        /// `consumer/shard/sink`.
        scope: String,
        /// The version this batch read.
        expected_version: u64,
    },
    /// [`Checkpoints::commit_through`] was given an index outside the open range.
    #[error("commit index {index} is outside the open range {range:?}")]
    OutOfRange {
        /// The index given.
        index: usize,
        /// The open range's record indices.
        range: Range<usize>,
    },
    /// The stored item does not have the expected shape.
    #[error("checkpoint {scope} is corrupt: {reason}")]
    Corrupt {
        /// `consumer/shard/sink`.
        scope: String,
        /// What is wrong.
        reason: String,
    },
    /// A DynamoDB call failed (after the SDK's own retries).
    #[error("DynamoDB {operation} failed: {message}")]
    Aws {
        /// Operation name.
        operation: &'static str,
        /// The error with its source chain.
        message: String,
    },
}

impl CheckpointError {
    /// A stable name for the Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            CheckpointError::InvalidSequence(_) => "CheckpointInvalidSequence",
            CheckpointError::NotOrdered { .. } => "CheckpointNotOrdered",
            CheckpointError::Conflict { .. } => "CheckpointConflict",
            CheckpointError::OutOfRange { .. } => "CheckpointOutOfRange",
            CheckpointError::Corrupt { .. } => "CheckpointCorrupt",
            CheckpointError::Aws { .. } => "Aws",
        }
    }
}

/// Left-pads a stream sequence number to [`SEQUENCE_DIGITS`] digits, so string order is
/// numeric order.
pub fn pad_sequence(seq: &str) -> Result<String, CheckpointError> {
    if seq.is_empty() || seq.len() > SEQUENCE_DIGITS || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::InvalidSequence(seq.to_string()));
    }
    Ok(format!("{seq:0>SEQUENCE_DIGITS$}"))
}

/// Whose checkpoint: one per consumer, shard and sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The consuming function (or event source mapping) name.
    pub consumer: String,
    /// The stream shard id.
    pub shard: String,
    /// The sink, e.g. `cdc` or `events`.
    pub sink: String,
}

impl Scope {
    /// A scope.
    pub fn new(
        consumer: impl Into<String>,
        shard: impl Into<String>,
        sink: impl Into<String>,
    ) -> Self {
        Scope {
            consumer: consumer.into(),
            shard: shard.into(),
            sink: sink.into(),
        }
    }

    fn pk(&self) -> String {
        format!("ckpt#{}#{}", self.consumer, self.shard)
    }

    fn sk(&self) -> String {
        format!("sink#{}", self.sink)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.consumer, self.shard, self.sink)
    }
}

/// A pending range as stored: written by an attempt that has not committed (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRange {
    /// First sequence number, padded.
    pub first_seq: String,
    /// Last sequence number, padded.
    pub last_seq: String,
    /// Output keys the attempt may have written.
    pub outputs: Vec<String>,
    /// When it was opened, epoch ms.
    pub opened_at_ms: u64,
}

/// What the output-key function of [`Checkpoints::begin`] is told about a new range.
#[derive(Debug, Clone)]
pub struct RangeInfo<'a> {
    /// Indices (into the batch) of the records in the range.
    pub indices: Range<usize>,
    /// First sequence number, padded.
    pub first_seq: &'a str,
    /// Last sequence number, padded.
    pub last_seq: &'a str,
    /// The crashed attempt's pending range this one resumes (same first record; the same,
    /// a shorter or a longer end), if any: reuse its keys where they still apply.
    pub previous: Option<&'a PendingRange>,
}

/// The records of a batch still to make durable, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRange {
    /// Indices (into the batch) of the records to process.
    pub indices: Range<usize>,
    /// First sequence number, padded.
    pub first_seq: String,
    /// Last sequence number, padded.
    pub last_seq: String,
    /// Keys to write, each with exactly this range's records for it.
    pub outputs: Vec<String>,
    /// Keys a crashed attempt wrote that this range no longer produces: delete them before
    /// committing.
    pub obsolete_outputs: Vec<String>,
    /// Whether this range resumes a crashed attempt's pending range.
    pub resumed: bool,
}

/// The plan for one batch and sink, from [`Checkpoints::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The checkpoint.
    pub scope: Scope,
    /// Records `0..durable` are already durable in this sink: skip them.
    pub durable: usize,
    /// The records to process now; `None` when the whole batch is durable.
    pub range: Option<OpenRange>,
    /// A pending range this batch cannot rewrite (it starts elsewhere); replaced by this
    /// batch's range and left as it is in the sink.
    pub orphaned: Option<PendingRange>,
    /// The high-water mark read, padded.
    pub high_water_mark: Option<String>,
    sequences: Vec<String>,
    version: u64,
}

/// Control-table traffic of a [`Checkpoints`] instance, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// `GetItem` calls.
    pub reads: u64,
    /// Conditional `UpdateItem` calls.
    pub writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
}

/// Checkpoints in the control table. Cheap to clone (clones share counters).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
}

struct Stored {
    hwm: Option<String>,
    pending: Option<PendingRange>,
    version: u64,
}

impl Checkpoints {
    /// Checkpoints kept in `table` (the control table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Checkpoints {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
            counters: Arc::default(),
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Control-table requests made so far.
    pub fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            reads: self.counters.reads.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// Plans a batch: reads the checkpoint, skips what is durable, and opens (or resumes) the
    /// pending range for the rest.
    ///
    /// `sequence_numbers` are the batch's records in stream order. `outputs_for` names the
    /// output keys of the range; derive them deterministically from the range (e.g. from its
    /// first sequence number), or reuse [`RangeInfo::previous`]'s keys when it is given, so a
    /// replay rewrites exactly the keys the crashed attempt wrote. A replay that changes
    /// nothing in the pending range costs no write.
    pub async fn begin<S, F>(
        &self,
        scope: &Scope,
        sequence_numbers: &[S],
        outputs_for: F,
    ) -> Result<Batch, CheckpointError>
    where
        S: AsRef<str>,
        F: FnOnce(&RangeInfo<'_>) -> Vec<String>,
    {
        let sequences = padded_in_order(sequence_numbers)?;
        let stored = self.read(scope).await?;
        let durable = match &stored.hwm {
            Some(h) => sequences.partition_point(|s| s <= h),
            None => 0,
        };
        let mut batch = Batch {
            scope: scope.clone(),
            durable,
            range: None,
            orphaned: None,
            high_water_mark: stored.hwm.clone(),
            sequences,
            version: stored.version,
        };
        if durable == batch.sequences.len() {
            return Ok(batch);
        }
        let indices = durable..batch.sequences.len();
        let first_seq = batch.sequences[durable].clone();
        let last_seq = batch.sequences[batch.sequences.len() - 1].clone();

        let resumable = stored.pending.filter(|p| {
            let same_start = p.first_seq == first_seq;
            if !same_start {
                batch.orphaned = Some(p.clone());
            }
            same_start
        });
        if let Some(orphan) = &batch.orphaned {
            tracing::warn!(
                scope = %scope,
                pending_first = %orphan.first_seq,
                pending_last = %orphan.last_seq,
                batch_first = %first_seq,
                "pending range orphaned: the batch does not start where the crashed attempt started"
            );
        }

        let previous = resumable;
        let outputs = outputs_for(&RangeInfo {
            indices: indices.clone(),
            first_seq: &first_seq,
            last_seq: &last_seq,
            previous: previous.as_ref(),
        });
        let obsolete_outputs: Vec<String> = previous
            .as_ref()
            .map(|p| {
                p.outputs
                    .iter()
                    .filter(|k| !outputs.contains(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // Every key that may hold data of this range stays recorded until the commit, so a
        // crash before the obsolete keys are deleted is still cleaned up on the next resume.
        let mut stored_outputs = outputs.clone();
        stored_outputs.extend(obsolete_outputs.iter().cloned());
        let unchanged = previous.as_ref().is_some_and(|p| {
            p.last_seq == last_seq
                && p.outputs.len() == stored_outputs.len()
                && p.outputs.iter().all(|k| stored_outputs.contains(k))
        });
        if !unchanged {
            batch.version = self
                .open(scope, batch.version, &first_seq, &last_seq, &stored_outputs)
                .await?;
        }
        let range = OpenRange {
            indices,
            first_seq,
            last_seq,
            outputs,
            obsolete_outputs,
            resumed: previous.is_some(),
        };
        batch.range = Some(range);
        Ok(batch)
    }

    /// Records that the whole open range is durable: advances the high-water mark to its
    /// last sequence number and clears the pending range. A batch with nothing open commits
    /// without a request.
    pub async fn commit(&self, batch: Batch) -> Result<(), CheckpointError> {
        match &batch.range {
            Some(range) => {
                let last = range.last_seq.clone();
                self.advance(&batch, &last).await
            }
            None => Ok(()),
        }
    }

    /// Records that the open range is durable up to and including the record at `index`
    /// (an index into the batch), e.g. when a sink accepted only part of it. The pending
    /// range is cleared: the rest is retried as a new range starting after `index`.
    pub async fn commit_through(&self, batch: Batch, index: usize) -> Result<(), CheckpointError> {
        let Some(range) = &batch.range else {
            return Err(CheckpointError::OutOfRange { index, range: 0..0 });
        };
        if !range.indices.contains(&index) {
            return Err(CheckpointError::OutOfRange {
                index,
                range: range.indices.clone(),
            });
        }
        let seq = batch.sequences[index].clone();
        self.advance(&batch, &seq).await
    }

    /// The stored high-water mark and pending range (strongly consistent read).
    pub async fn get(
        &self,
        scope: &Scope,
    ) -> Result<(Option<String>, Option<PendingRange>), CheckpointError> {
        let stored = self.read(scope).await?;
        Ok((stored.hwm, stored.pending))
    }

    async fn read(&self, scope: &Scope) -> Result<Stored, CheckpointError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(A_PK, s(&scope.pk()))
            .key(A_SK, s(&scope.sk()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws("GetItem", &e))?;
        let Some(item) = out.item() else {
            return Ok(Stored {
                hwm: None,
                pending: None,
                version: 0,
            });
        };
        parse(scope, item)
    }

    async fn open(
        &self,
        scope: &Scope,
        version: u64,
        first: &str,
        last: &str,
        outputs: &[String],
    ) -> Result<u64, CheckpointError> {
        let now = self.clock.now_ms();
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(A_PK, s(&scope.pk()))
            .key(A_SK, s(&scope.sk()))
            .update_expression(
                "SET #pf = :first, #pl = :last, #po = :outputs, #popen = :now, #upd = :now, \
                 #ver = :next",
            )
            .expression_attribute_names("#pf", A_P_FIRST)
            .expression_attribute_names("#pl", A_P_LAST)
            .expression_attribute_names("#po", A_P_OUTPUTS)
            .expression_attribute_names("#popen", A_P_OPENED)
            .expression_attribute_names("#upd", A_UPDATED)
            .expression_attribute_names("#ver", A_VERSION)
            .expression_attribute_values(":first", s(first))
            .expression_attribute_values(":last", s(last))
            .expression_attribute_values(
                ":outputs",
                AttributeValue::L(outputs.iter().map(|k| s(k)).collect()),
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":next", n(version + 1));
        let req = version_condition(req, version);
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Ok(_) => Ok(version + 1),
            Err(e) => Err(update_error(scope, version, e)),
        }
    }

    async fn advance(&self, batch: &Batch, hwm: &str) -> Result<(), CheckpointError> {
        let now = self.clock.now_ms();
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(A_PK, s(&batch.scope.pk()))
            .key(A_SK, s(&batch.scope.sk()))
            .update_expression(
                "SET #hwm = :hwm, #upd = :now, #ver = :next REMOVE #pf, #pl, #po, #popen",
            )
            .expression_attribute_names("#hwm", A_HWM)
            .expression_attribute_names("#pf", A_P_FIRST)
            .expression_attribute_names("#pl", A_P_LAST)
            .expression_attribute_names("#po", A_P_OUTPUTS)
            .expression_attribute_names("#popen", A_P_OPENED)
            .expression_attribute_names("#upd", A_UPDATED)
            .expression_attribute_names("#ver", A_VERSION)
            .expression_attribute_values(":hwm", s(hwm))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":next", n(batch.version + 1));
        let req = version_condition(req, batch.version);
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(update_error(&batch.scope, batch.version, e)),
        }
    }
}

type UpdateBuilder = aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

/// Every write requires the version read: a new item must not exist yet.
fn version_condition(req: UpdateBuilder, version: u64) -> UpdateBuilder {
    if version == 0 {
        req.condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", A_PK)
    } else {
        req.condition_expression("#ver = :expected")
            .expression_attribute_values(":expected", n(version))
    }
}

fn update_error(
    scope: &Scope,
    version: u64,
    err: SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> CheckpointError {
    match &err {
        SdkError::ServiceError(e)
            if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            CheckpointError::Conflict {
                scope: scope.to_string(),
                expected_version: version,
            }
        }
        _ => aws("UpdateItem", &err),
    }
}

fn padded_in_order<S: AsRef<str>>(seqs: &[S]) -> Result<Vec<String>, CheckpointError> {
    let mut out: Vec<String> = Vec::with_capacity(seqs.len());
    for (index, seq) in seqs.iter().enumerate() {
        let padded = pad_sequence(seq.as_ref())?;
        if let Some(previous) = out.last()
            && *previous >= padded
        {
            return Err(CheckpointError::NotOrdered {
                index,
                previous: previous.clone(),
                next: padded,
            });
        }
        out.push(padded);
    }
    Ok(out)
}

fn parse(scope: &Scope, item: &HashMap<String, AttributeValue>) -> Result<Stored, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        scope: scope.to_string(),
        reason,
    };
    let opt_s = |name: &str| -> Result<Option<String>, CheckpointError> {
        match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(corrupt(format!("{name} is not a string"))),
        }
    };
    let opt_n = |name: &str| -> Result<Option<u64>, CheckpointError> {
        match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("{name} is not an integer"))),
            Some(_) => Err(corrupt(format!("{name} is not a number"))),
        }
    };
    let version = opt_n(A_VERSION)?.ok_or_else(|| corrupt(format!("{A_VERSION} missing")))?;
    let pending = match (opt_s(A_P_FIRST)?, opt_s(A_P_LAST)?) {
        (Some(first_seq), Some(last_seq)) => {
            let outputs = match item.get(A_P_OUTPUTS) {
                None => Vec::new(),
                Some(AttributeValue::L(list)) => list
                    .iter()
                    .map(|v| match v {
                        AttributeValue::S(k) => Ok(k.clone()),
                        _ => Err(corrupt(format!("{A_P_OUTPUTS} holds a non-string"))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(corrupt(format!("{A_P_OUTPUTS} is not a list"))),
            };
            Some(PendingRange {
                first_seq,
                last_seq,
                outputs,
                opened_at_ms: opt_n(A_P_OPENED)?.unwrap_or(0),
            })
        }
        (None, None) => None,
        _ => return Err(corrupt("pending range has only one end".into())),
    };
    Ok(Stored {
        hwm: opt_s(A_HWM)?,
        pending,
        version,
    })
}

fn aws(operation: &'static str, err: &dyn std::error::Error) -> CheckpointError {
    CheckpointError::Aws {
        operation,
        message: render_chain(err),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_orders_numerically() {
        let a = pad_sequence("999").unwrap();
        let b = pad_sequence("1000").unwrap();
        assert!(a < b);
        assert_eq!(a.len(), SEQUENCE_DIGITS);
        assert!(pad_sequence("").is_err());
        assert!(pad_sequence("12a").is_err());
        assert!(pad_sequence(&"1".repeat(41)).is_err());
        assert_eq!(pad_sequence(&"9".repeat(40)).unwrap(), "9".repeat(40));
    }

    #[test]
    fn batch_must_be_strictly_increasing() {
        let err = padded_in_order(&["5", "10", "10"]).unwrap_err();
        assert!(
            matches!(err, CheckpointError::NotOrdered { index: 2, .. }),
            "{err}"
        );
        let err = padded_in_order(&["100", "99"]).unwrap_err();
        assert!(
            matches!(err, CheckpointError::NotOrdered { index: 1, .. }),
            "{err}"
        );
        assert_eq!(padded_in_order(&["99", "100"]).unwrap().len(), 2);
    }
}
