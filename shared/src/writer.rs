//! The DynamoDB batch writer: many puts and deletes, each written exactly once or reported
//! failed.
//!
//! `BatchWriteItem` is the cheap way to write many items (25 per request) but it has sharp
//! edges: two requests for one key in a call fail the *whole* call with a
//! `ValidationException`; items DynamoDB could not write come back as `UnprocessedItems`
//! and are lost unless retried; throttling fails whole calls. [`BatchWriter`] handles all of
//! it and returns a per-item [`WriteReport`]:
//!
//! - **De-duplication**: requests for one primary key (from the caller's [`KeySchema`];
//!   numbers compared by value, so `1` and `1.0` are one key) are reduced to the *last* one
//!   in source order before chunking, so no chunk ever holds a duplicate and concurrently
//!   sent chunks cannot reorder two writes of one key. Earlier ones are reported
//!   [`ItemOutcome::Superseded`] with the index of the request that carried the key.
//! - **Chunks** of at most 25 requests and at most 16 MB (estimated item sizes); an item over
//!   the 400 KB item limit fails on its own without a request.
//! - **Retries** of `UnprocessedItems`, throttling, 5xx and transport errors with
//!   exponential backoff and *full jitter* (`sleep = random(0, min(cap, base * 2^n))`),
//!   bounded by [`WriterConfig::max_attempts`] consecutive attempts without progress. A
//!   call refused as invalid is halved until the offending item is alone, so one bad item
//!   fails itself, not its 24 neighbours.
//! - **AIMD concurrency**: requests in flight are capped by a limit that grows by one after
//!   a limit's worth of clean responses and halves on throttling (a throttling error or
//!   unprocessed items), between 1 and [`WriterConfig::max_concurrency`]. The limit lives
//!   as long as the writer, so warm invocations keep what they learned. An optional
//!   [`WriterConfig::max_items_per_second`] ceiling spaces requests on top.
//! - **Conditional single-item writes** ([`Guard`]): for callers that must never overwrite
//!   newer data, `PutItem`/`DeleteItem` with `attribute_not_exists` or "stored version older
//!   than mine"; a refused condition is [`ItemOutcome::SkippedStale`], not a failure.
//!
//! Guarantee: every request ends as exactly one of written, skipped-stale, superseded or
//! failed (with the reason); nothing is dropped silently. Puts and deletes are idempotent,
//! so a retry after an ambiguous failure (timeout, 5xx) cannot duplicate anything.
//!
//! Time, sleeping and jitter come through [`Clock`], [`Sleeper`] and [`Jitter`] so tests
//! are deterministic. The writer does its own retries; a client built for it can disable
//! the SDK's (`RetryConfig::disabled()`) so throttling reaches the AIMD limit at once,
//! while the SDK's default retries also work (they only delay the signal).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, WriteRequest as SdkWrite,
};
use tokio::sync::Notify;

use crate::clock::{Clock, Sleeper, SystemClock};
use crate::error::render_chain;
use crate::retry::RateLimiter;

/// Most requests in one `BatchWriteItem` call.
pub const MAX_BATCH_ITEMS: usize = 25;
/// Largest `BatchWriteItem` request.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Largest item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// A DynamoDB item or key.
pub type Item = HashMap<String, AttributeValue>;

/// The table's primary key attribute names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// Partition (hash) key attribute.
    pub partition_key: String,
    /// Sort (range) key attribute, if the table has one.
    pub sort_key: Option<String>,
}

impl KeySchema {
    /// A key schema.
    pub fn new(partition_key: impl Into<String>, sort_key: Option<&str>) -> Self {
        KeySchema {
            partition_key: partition_key.into(),
            sort_key: sort_key.map(str::to_string),
        }
    }

    /// The identity of `item`'s primary key (numbers by value), or why it has none.
    fn key_id(&self, item: &Item) -> Result<KeyId, String> {
        let mut id = Vec::new();
        for name in std::iter::once(&self.partition_key).chain(self.sort_key.as_ref()) {
            let part = match item.get(name) {
                Some(AttributeValue::S(v)) => format!("S{}:{v}", v.len()),
                Some(AttributeValue::N(v)) => {
                    let norm = normalize_number(v);
                    format!("N{}:{norm}", norm.len())
                }
                Some(AttributeValue::B(v)) => {
                    let bytes = v.as_ref();
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    format!("B{}:{hex}", hex.len())
                }
                Some(_) => return Err(format!("key attribute {name} is not S, N or B")),
                None => return Err(format!("key attribute {name} is missing")),
            };
            id.push(part);
        }
        Ok(KeyId(id.join("|")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyId(String);

/// A put or a delete.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Write the whole item.
    Put(Item),
    /// Delete the item with this key.
    Delete(Item),
}

/// The condition under which a write may apply.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Guard {
    /// Always (batched with `BatchWriteItem`).
    #[default]
    None,
    /// Only if no item with the key exists (`attribute_not_exists`). Puts only.
    IfAbsent,
    /// Only if the stored item is absent, lacks `attribute`, or holds a value lower than
    /// `value` (N compares numerically, S lexicographically — ISO-8601 timestamps work).
    IfNewer {
        /// The version or timestamp attribute.
        attribute: String,
        /// The incoming value.
        value: AttributeValue,
    },
}

/// One write for [`BatchWriter::write`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    /// What to write.
    pub op: WriteOp,
    /// When it may apply.
    pub guard: Guard,
}

impl WriteRequest {
    /// An unconditional put.
    pub fn put(item: Item) -> Self {
        WriteRequest {
            op: WriteOp::Put(item),
            guard: Guard::None,
        }
    }

    /// An unconditional delete.
    pub fn delete(key: Item) -> Self {
        WriteRequest {
            op: WriteOp::Delete(key),
            guard: Guard::None,
        }
    }

    /// A put only if the key does not exist yet.
    pub fn put_if_absent(item: Item) -> Self {
        WriteRequest {
            op: WriteOp::Put(item),
            guard: Guard::IfAbsent,
        }
    }

    /// A put only if the stored item's `attribute` is older than this item's. A put whose
    /// item lacks the attribute fails (it could never be compared).
    pub fn put_if_newer(item: Item, attribute: impl Into<String>) -> Self {
        let attribute = attribute.into();
        let value = item
            .get(&attribute)
            .cloned()
            .unwrap_or(AttributeValue::Null(true));
        WriteRequest {
            op: WriteOp::Put(item),
            guard: Guard::IfNewer { attribute, value },
        }
    }

    /// A delete only if the stored item's `attribute` is older than `value` (e.g. the
    /// delete's event time).
    pub fn delete_if_newer(key: Item, attribute: impl Into<String>, value: AttributeValue) -> Self {
        WriteRequest {
            op: WriteOp::Delete(key),
            guard: Guard::IfNewer {
                attribute: attribute.into(),
                value,
            },
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Applied.
    Written,
    /// Not applied because its guard refused it: the stored item is as new or newer
    /// ([`Guard::IfNewer`]) or exists ([`Guard::IfAbsent`]).
    SkippedStale,
    /// Not sent: a later request in the input (at index `by`) has the same key and wins.
    Superseded {
        /// Index of the winning request.
        by: usize,
    },
    /// Not applied.
    Failed {
        /// DynamoDB's error code, when there was one.
        code: Option<String>,
        /// Why.
        reason: String,
    },
}

/// Counters of one [`BatchWriter::write`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// DynamoDB requests sent (batch + single).
    pub requests: u64,
    /// `BatchWriteItem` requests.
    pub batch_requests: u64,
    /// Conditional `PutItem`/`DeleteItem` requests.
    pub single_requests: u64,
    /// Requests refused with a throttling error.
    pub throttled: u64,
    /// Requests failed with a 5xx or transport error.
    pub server_errors: u64,
    /// Items returned as `UnprocessedItems` (each return counted).
    pub unprocessed: u64,
    /// Items written.
    pub written: u64,
    /// Items skipped by their guard.
    pub skipped_stale: u64,
    /// Requests superseded by a later one for the same key.
    pub superseded: u64,
    /// Items failed.
    pub failed: u64,
    /// The AIMD concurrency limit when the call ended.
    pub concurrency_limit: u64,
}

/// The outcome of every request of a [`BatchWriter::write`] call, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// One outcome per request, same order as the input.
    pub outcomes: Vec<ItemOutcome>,
    /// Counters.
    pub stats: WriteStats,
}

impl WriteReport {
    /// Indices and reasons of the failed requests.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &ItemOutcome)> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, ItemOutcome::Failed { .. }))
    }

    /// Whether nothing failed.
    pub fn all_succeeded(&self) -> bool {
        self.stats.failed == 0
    }
}

pub use crate::retry::{FixedJitter, Jitter, RandomJitter};

/// Settings of a [`BatchWriter`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// The table written.
    pub table: String,
    /// Its primary key.
    pub key_schema: KeySchema,
    /// Consecutive attempts without progress before the remaining items of a request fail.
    pub max_attempts: u32,
    /// Backoff base.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
    /// Starting AIMD concurrency limit.
    pub initial_concurrency: usize,
    /// Highest AIMD concurrency limit.
    pub max_concurrency: usize,
    /// Optional ceiling on items sent per second.
    pub max_items_per_second: Option<f64>,
}

impl WriterConfig {
    /// Defaults: 8 attempts, backoff 50 ms .. 5 s, concurrency 4 growing to 16, no ceiling.
    pub fn new(table: impl Into<String>, key_schema: KeySchema) -> Self {
        WriterConfig {
            table: table.into(),
            key_schema,
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            initial_concurrency: 4,
            max_concurrency: 16,
            max_items_per_second: None,
        }
    }
}

/// Writes items to one table. Cheap to clone (clones share the AIMD limit).
#[derive(Debug, Clone)]
pub struct BatchWriter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: WriterConfig,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    jitter: Arc<dyn Jitter>,
    gate: Gate,
    rate: Option<RateLimiter>,
}

impl BatchWriter {
    /// A writer using the system clock and random jitter.
    pub fn new(client: Client, config: WriterConfig) -> Self {
        Self::build(
            client,
            config,
            Arc::new(SystemClock),
            Arc::new(SystemClock),
            Arc::new(RandomJitter::default()),
        )
    }

    /// A writer with injected time and jitter (tests).
    pub fn with_parts(
        client: Client,
        config: WriterConfig,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        jitter: Arc<dyn Jitter>,
    ) -> Self {
        Self::build(client, config, clock, sleeper, jitter)
    }

    fn build(
        client: Client,
        config: WriterConfig,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        jitter: Arc<dyn Jitter>,
    ) -> Self {
        let max = config.max_concurrency.max(1);
        let gate = Gate::new(config.initial_concurrency.clamp(1, max), max);
        let rate = config
            .max_items_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(RateLimiter::new);
        BatchWriter {
            inner: Arc::new(Inner {
                client,
                config,
                clock,
                sleeper,
                jitter,
                gate,
                rate,
            }),
        }
    }

    /// The current AIMD concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.gate.limit()
    }

    /// Writes `requests`; every one ends in the report.
    pub async fn write(&self, requests: Vec<WriteRequest>) -> WriteReport {
        let stats = Arc::new(Counters::default());
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; requests.len()];
        let schema = &self.inner.config.key_schema;

        // Validate and find the last request per key.
        let mut keys: Vec<Option<KeyId>> = Vec::with_capacity(requests.len());
        let mut last_for_key: HashMap<KeyId, usize> = HashMap::new();
        for (i, req) in requests.iter().enumerate() {
            match validate(schema, req) {
                Ok(key) => {
                    last_for_key.insert(key.clone(), i);
                    keys.push(Some(key));
                }
                Err(reason) => {
                    outcomes[i] = Some(ItemOutcome::Failed { code: None, reason });
                    keys.push(None);
                }
            }
        }

        let mut batched: Vec<Entry> = Vec::new();
        let mut single: Vec<(usize, WriteRequest)> = Vec::new();
        for (i, (req, key)) in requests.into_iter().zip(keys).enumerate() {
            let Some(key) = key else { continue };
            match last_for_key.get(&key) {
                Some(&last) if last != i => {
                    outcomes[i] = Some(ItemOutcome::Superseded { by: last });
                }
                _ => match req.guard {
                    Guard::None => {
                        let size = match &req.op {
                            WriteOp::Put(item) | WriteOp::Delete(item) => item_size(item),
                        };
                        batched.push(Entry {
                            index: i,
                            key,
                            size,
                            op: req.op,
                        });
                    }
                    _ => single.push((i, req)),
                },
            }
        }

        let mut tasks = tokio::task::JoinSet::new();
        for chunk in chunk_entries(batched) {
            let inner = Arc::clone(&self.inner);
            let stats = Arc::clone(&stats);
            tasks.spawn(async move { inner.run_batch(chunk, &stats).await });
        }
        for (index, req) in single {
            let inner = Arc::clone(&self.inner);
            let stats = Arc::clone(&stats);
            tasks.spawn(async move { vec![(index, inner.run_single(req, &stats).await)] });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(results) => {
                    for (index, outcome) in results {
                        if let Some(slot) = outcomes.get_mut(index) {
                            *slot = Some(outcome);
                        }
                    }
                }
                // A panicked task leaves its items without an outcome; they are reported
                // failed below rather than dropped.
                Err(e) => tracing::error!(error = %e, "batch writer task failed"),
            }
        }

        let outcomes: Vec<ItemOutcome> = outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(ItemOutcome::Failed {
                    code: None,
                    reason: "internal: write task ended without an outcome".into(),
                })
            })
            .collect();
        let mut stats = stats.snapshot();
        for o in &outcomes {
            match o {
                ItemOutcome::Written => stats.written += 1,
                ItemOutcome::SkippedStale => stats.skipped_stale += 1,
                ItemOutcome::Superseded { .. } => stats.superseded += 1,
                ItemOutcome::Failed { .. } => stats.failed += 1,
            }
        }
        stats.concurrency_limit = self.inner.gate.limit() as u64;
        WriteReport { outcomes, stats }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    key: KeyId,
    size: usize,
    op: WriteOp,
}

impl Entry {
    fn to_sdk(&self) -> Result<SdkWrite, String> {
        Ok(match &self.op {
            WriteOp::Put(item) => SdkWrite::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
            WriteOp::Delete(key) => SdkWrite::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        })
    }
}

fn validate(schema: &KeySchema, req: &WriteRequest) -> Result<KeyId, String> {
    let (item, is_put) = match &req.op {
        WriteOp::Put(item) => (item, true),
        WriteOp::Delete(key) => (key, false),
    };
    let key = schema.key_id(item)?;
    if is_put {
        let size = item_size(item);
        if size > MAX_ITEM_BYTES {
            return Err(format!(
                "item is about {size} bytes, above the {MAX_ITEM_BYTES}-byte item limit"
            ));
        }
    } else {
        let extra = item
            .keys()
            .find(|k| **k != schema.partition_key && Some(*k) != schema.sort_key.as_ref());
        if let Some(extra) = extra {
            return Err(format!("delete key has non-key attribute {extra}"));
        }
    }
    match &req.guard {
        Guard::IfAbsent if !is_put => Err("IfAbsent guard on a delete".into()),
        Guard::IfNewer { attribute, value } => match value {
            AttributeValue::N(_) | AttributeValue::S(_) | AttributeValue::B(_) => Ok(key),
            _ => Err(format!(
                "IfNewer guard value of {attribute} is not N, S or B"
            )),
        },
        _ => Ok(key),
    }
}

/// Splits entries into chunks of at most 25 and at most 16 MB (estimated), in order.
fn chunk_entries(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut bytes = 0usize;
    // Leave room for the request envelope and the estimate's error.
    let budget = MAX_BATCH_BYTES - 512 * 1024;
    for e in entries {
        if !current.is_empty() && (current.len() == MAX_BATCH_ITEMS || bytes + e.size > budget) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += e.size;
        current.push(e);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

enum Failure {
    Throttled(String),
    Transient(String),
    Fatal {
        code: Option<String>,
        reason: String,
    },
}

fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_string);
            let status = se.raw().status().as_u16();
            let reason = render_chain(err);
            match code.as_deref() {
                Some(
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException",
                ) => Failure::Throttled(reason),
                Some("InternalServerError" | "ServiceUnavailable" | "InternalFailure") => {
                    Failure::Transient(reason)
                }
                _ if status == 429 => Failure::Throttled(reason),
                _ if status >= 500 => Failure::Transient(reason),
                _ => Failure::Fatal { code, reason },
            }
        }
        SdkError::ConstructionFailure(_) => Failure::Fatal {
            code: None,
            reason: render_chain(err),
        },
        _ => Failure::Transient(render_chain(err)),
    }
}

impl Inner {
    fn backoff(&self, attempt: u32) -> Duration {
        crate::retry::full_jitter(
            attempt,
            self.config.base_delay,
            self.config.max_delay,
            self.jitter.as_ref(),
        )
    }

    async fn throttle_rate(&self, items: usize) {
        if let Some(rate) = &self.rate {
            let wait = rate.reserve(items, self.clock.now_ms());
            if !wait.is_zero() {
                self.sleeper.sleep(wait).await;
            }
        }
    }

    async fn run_batch(&self, chunk: Vec<Entry>, stats: &Counters) -> Vec<(usize, ItemOutcome)> {
        let mut results = Vec::with_capacity(chunk.len());
        let mut ready = Vec::with_capacity(chunk.len());
        for e in chunk {
            match e.to_sdk() {
                Ok(w) => ready.push((e, w)),
                Err(reason) => results.push((e.index, ItemOutcome::Failed { code: None, reason })),
            }
        }
        let mut queue: VecDeque<Vec<(Entry, SdkWrite)>> = VecDeque::from([ready]);
        while let Some(mut pending) = queue.pop_front() {
            let mut attempt: u32 = 0;
            let mut without_progress: u32 = 0;
            while !pending.is_empty() {
                let writes: Vec<SdkWrite> = pending.iter().map(|(_, w)| w.clone()).collect();
                self.throttle_rate(pending.len()).await;
                let permit = self.gate.acquire().await;
                stats.add(&stats.requests, 1);
                stats.add(&stats.batch_requests, 1);
                let res = self
                    .client
                    .batch_write_item()
                    .request_items(&self.config.table, writes)
                    .send()
                    .await;
                drop(permit);
                match res {
                    Ok(out) => {
                        let unprocessed: Vec<KeyId> = out
                            .unprocessed_items()
                            .and_then(|m| m.get(&self.config.table))
                            .map(|ws| {
                                ws.iter()
                                    .filter_map(|w| {
                                        let item = w
                                            .put_request()
                                            .map(|p| p.item())
                                            .or_else(|| w.delete_request().map(|d| d.key()))?;
                                        self.config.key_schema.key_id(item).ok()
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let before = pending.len();
                        let (retry, done): (Vec<_>, Vec<_>) = pending
                            .into_iter()
                            .partition(|(e, _)| unprocessed.contains(&e.key));
                        results.extend(done.iter().map(|(e, _)| (e.index, ItemOutcome::Written)));
                        pending = retry;
                        if pending.is_empty() {
                            self.gate.on_success();
                            break;
                        }
                        // Unprocessed items are DynamoDB's way of throttling part of a call.
                        stats.add(&stats.unprocessed, pending.len() as u64);
                        self.gate.on_throttle();
                        if pending.len() < before {
                            without_progress = 0;
                        } else {
                            without_progress += 1;
                        }
                    }
                    Err(err) => match classify(&err) {
                        Failure::Throttled(reason) => {
                            stats.add(&stats.throttled, 1);
                            self.gate.on_throttle();
                            without_progress += 1;
                            tracing::debug!(%reason, "BatchWriteItem throttled");
                        }
                        Failure::Transient(reason) => {
                            stats.add(&stats.server_errors, 1);
                            without_progress += 1;
                            tracing::debug!(%reason, "BatchWriteItem transient failure");
                        }
                        Failure::Fatal { code, reason } => {
                            if pending.len() > 1 {
                                // Isolate the item DynamoDB refused.
                                let tail = pending.split_off(pending.len() / 2);
                                queue.push_front(tail);
                                queue.push_front(pending);
                            } else {
                                results.extend(pending.iter().map(|(e, _)| {
                                    (
                                        e.index,
                                        ItemOutcome::Failed {
                                            code: code.clone(),
                                            reason: reason.clone(),
                                        },
                                    )
                                }));
                            }
                            break;
                        }
                    },
                }
                if without_progress >= self.config.max_attempts {
                    tracing::warn!(
                        items = pending.len(),
                        attempts = without_progress,
                        "BatchWriteItem retries exhausted"
                    );
                    results.extend(pending.iter().map(|(e, _)| {
                        (
                            e.index,
                            ItemOutcome::Failed {
                                code: None,
                                reason: format!(
                                    "not written after {without_progress} attempts without \
                                     progress (throttling, unprocessed items or server errors)"
                                ),
                            },
                        )
                    }));
                    break;
                }
                self.sleeper.sleep(self.backoff(attempt)).await;
                attempt += 1;
            }
        }
        results
    }

    async fn run_single(&self, req: WriteRequest, stats: &Counters) -> ItemOutcome {
        let schema = &self.config.key_schema;
        let mut names = HashMap::from([("#pk".to_string(), schema.partition_key.clone())]);
        let mut values = HashMap::new();
        let condition = match &req.guard {
            Guard::None => None,
            Guard::IfAbsent => Some("attribute_not_exists(#pk)".to_string()),
            Guard::IfNewer { attribute, value } => {
                names.insert("#ver".to_string(), attribute.clone());
                values.insert(":ver".to_string(), value.clone());
                Some(
                    "attribute_not_exists(#pk) OR attribute_not_exists(#ver) OR #ver < :ver".into(),
                )
            }
        };
        let values = (!values.is_empty()).then_some(values);
        let mut attempt: u32 = 0;
        loop {
            self.throttle_rate(1).await;
            let permit = self.gate.acquire().await;
            stats.add(&stats.requests, 1);
            stats.add(&stats.single_requests, 1);
            let failure = match &req.op {
                WriteOp::Put(item) => {
                    let res = self
                        .client
                        .put_item()
                        .table_name(&self.config.table)
                        .set_item(Some(item.clone()))
                        .set_condition_expression(condition.clone())
                        .set_expression_attribute_names(Some(names.clone()))
                        .set_expression_attribute_values(values.clone())
                        .send()
                        .await;
                    match res {
                        Ok(_) => None,
                        Err(SdkError::ServiceError(e))
                            if e.err().is_conditional_check_failed_exception() =>
                        {
                            drop(permit);
                            self.gate.on_success();
                            return ItemOutcome::SkippedStale;
                        }
                        Err(e) => Some(classify(&e)),
                    }
                }
                WriteOp::Delete(key) => {
                    let res = self
                        .client
                        .delete_item()
                        .table_name(&self.config.table)
                        .set_key(Some(key.clone()))
                        .set_condition_expression(condition.clone())
                        .set_expression_attribute_names(Some(names.clone()))
                        .set_expression_attribute_values(values.clone())
                        .send()
                        .await;
                    match res {
                        Ok(_) => None,
                        Err(SdkError::ServiceError(e))
                            if e.err().is_conditional_check_failed_exception() =>
                        {
                            drop(permit);
                            self.gate.on_success();
                            return ItemOutcome::SkippedStale;
                        }
                        Err(e) => Some(classify(&e)),
                    }
                }
            };
            drop(permit);
            match failure {
                None => {
                    self.gate.on_success();
                    return ItemOutcome::Written;
                }
                Some(Failure::Fatal { code, reason }) => {
                    return ItemOutcome::Failed { code, reason };
                }
                Some(Failure::Throttled(reason)) => {
                    stats.add(&stats.throttled, 1);
                    self.gate.on_throttle();
                    tracing::debug!(%reason, "conditional write throttled");
                }
                Some(Failure::Transient(reason)) => {
                    stats.add(&stats.server_errors, 1);
                    tracing::debug!(%reason, "conditional write transient failure");
                }
            }
            attempt += 1;
            if attempt >= self.config.max_attempts {
                return ItemOutcome::Failed {
                    code: None,
                    reason: format!("not written after {attempt} attempts"),
                };
            }
            self.sleeper.sleep(self.backoff(attempt - 1)).await;
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    batch_requests: AtomicU64,
    single_requests: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    unprocessed: AtomicU64,
}

impl Counters {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WriteStats {
        WriteStats {
            requests: self.requests.load(Ordering::Relaxed),
            batch_requests: self.batch_requests.load(Ordering::Relaxed),
            single_requests: self.single_requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            unprocessed: self.unprocessed.load(Ordering::Relaxed),
            ..WriteStats::default()
        }
    }
}

/// The AIMD concurrency gate.
#[derive(Debug)]
struct Gate {
    state: Mutex<GateState>,
    notify: Notify,
    max: usize,
}

#[derive(Debug)]
struct GateState {
    limit: usize,
    in_flight: usize,
    clean: usize,
}

struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_flight -= 1;
        self.0.notify.notify_waiters();
    }
}

impl Gate {
    fn new(limit: usize, max: usize) -> Self {
        Gate {
            state: Mutex::new(GateState {
                limit,
                in_flight: 0,
                clean: 0,
            }),
            notify: Notify::new(),
            max,
        }
    }

    fn limit(&self) -> usize {
        lock(&self.state).limit
    }

    async fn acquire(&self) -> Permit<'_> {
        loop {
            // Register before checking, so a release between the check and the await is
            // not missed.
            let notified = self.notify.notified();
            {
                let mut s = lock(&self.state);
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit(self);
                }
            }
            notified.await;
        }
    }

    /// Additive increase: one more after a limit's worth of clean responses.
    fn on_success(&self) {
        let mut s = lock(&self.state);
        s.clean += 1;
        if s.clean >= s.limit && s.limit < self.max {
            s.limit += 1;
            s.clean = 0;
            drop(s);
            self.notify.notify_waiters();
        }
    }

    /// Multiplicative decrease.
    fn on_throttle(&self) {
        let mut s = lock(&self.state);
        s.limit = (s.limit / 2).max(1);
        s.clean = 0;
    }
}

/// Locks a mutex, recovering from poisoning: the guarded values are plain counters that a
/// panicking holder cannot leave inconsistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use crate::codec::sdk_item_size as item_size;

/// The canonical text of a DynamoDB number, so numerically equal keys compare equal
/// (`1`, `1.0`, `01`, `1e0` → `1e0`). Unparseable text is returned as is (DynamoDB will
/// reject it for that item).
pub fn normalize_number(raw: &str) -> String {
    let t = raw.trim();
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(p) => match rest[p + 1..].parse::<i64>() {
            Ok(e) => (&rest[..p], e),
            Err(_) => return raw.to_string(),
        },
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return raw.to_string();
    }
    let digits: String = format!("{int}{frac}");
    let lead = digits.bytes().take_while(|b| *b == b'0').count();
    let significant = digits[lead..].trim_end_matches('0');
    if significant.is_empty() {
        return "0".into();
    }
    // Value = 0.d1d2... × 10^(point position), where the point sits after `int`.
    let point = int.len() as i64 - lead as i64 + exp;
    format!("{}0.{significant}e{point}", if negative { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str, v: &str) -> WriteRequest {
        WriteRequest::put(HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.into())),
            ("v".to_string(), AttributeValue::S(v.into())),
        ]))
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(normalize_number("1"), normalize_number("1.0"));
        assert_eq!(normalize_number("1"), normalize_number("01"));
        assert_eq!(normalize_number("100"), normalize_number("1e2"));
        assert_eq!(normalize_number("0.5"), normalize_number("5E-1"));
        assert_eq!(normalize_number("-0"), normalize_number("0.000"));
        assert_ne!(normalize_number("1"), normalize_number("-1"));
        assert_ne!(normalize_number("10"), normalize_number("1"));
        assert_eq!(normalize_number("abc"), "abc");
    }

    #[test]
    fn chunks_hold_at_most_25() {
        let schema = KeySchema::new("pk", None);
        let entries: Vec<Entry> = (0..60)
            .map(|i| {
                let r = put(&format!("k{i}"), "x");
                let key = validate(&schema, &r).unwrap();
                Entry {
                    index: i,
                    key,
                    size: 10,
                    op: r.op,
                }
            })
            .collect();
        let sizes: Vec<usize> = chunk_entries(entries).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![25, 25, 10]);
    }

    #[test]
    fn chunks_respect_the_byte_budget() {
        let schema = KeySchema::new("pk", None);
        let entries: Vec<Entry> = (0..25)
            .map(|i| {
                let r = put(&format!("k{i}"), "x");
                Entry {
                    index: i,
                    key: validate(&schema, &r).unwrap(),
                    size: 1024 * 1024,
                    op: r.op,
                }
            })
            .collect();
        let chunks = chunk_entries(entries);
        assert!(chunks.len() >= 2);
        assert!(
            chunks
                .iter()
                .all(|c| c.iter().map(|e| e.size).sum::<usize>() <= MAX_BATCH_BYTES)
        );
    }

    #[test]
    fn validation_rejects_missing_keys_and_huge_items() {
        let schema = KeySchema::new("pk", Some("sk"));
        assert!(
            validate(&schema, &put("a", "x"))
                .unwrap_err()
                .contains("sk")
        );
        let schema = KeySchema::new("pk", None);
        let big = put("a", &"x".repeat(MAX_ITEM_BYTES + 1));
        assert!(validate(&schema, &big).unwrap_err().contains("item limit"));
        let bad_delete = WriteRequest::delete(HashMap::from([
            ("pk".to_string(), AttributeValue::S("a".into())),
            ("v".to_string(), AttributeValue::S("b".into())),
        ]));
        assert!(validate(&schema, &bad_delete).is_err());
    }

    #[test]
    fn full_jitter_stays_under_the_cap() {
        let j = RandomJitter::default();
        for _ in 0..1000 {
            let f = j.fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn aimd_halves_and_grows() {
        let g = Gate::new(8, 16);
        g.on_throttle();
        assert_eq!(g.limit(), 4);
        g.on_throttle();
        g.on_throttle();
        g.on_throttle();
        assert_eq!(g.limit(), 1);
        g.on_success();
        assert_eq!(g.limit(), 2);
        g.on_success();
        g.on_success();
        assert_eq!(g.limit(), 3);
    }

    #[test]
    fn rate_limiter_spaces_requests() {
        let r = RateLimiter::new(100.0); // 10 ms per item
        assert_eq!(r.reserve(25, 1_000), Duration::ZERO);
        assert_eq!(r.reserve(25, 1_000), Duration::from_millis(250));
        assert_eq!(r.reserve(1, 2_000), Duration::ZERO);
    }
}
