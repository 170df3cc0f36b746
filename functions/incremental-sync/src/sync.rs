//! Syncing one inbound Parquet file into the table: claim → read row group by row group →
//! decode → write → checkpoint → (hand off | finish).
//!
//! ## Guarantees
//! - **Once per object version**: the file's idempotency key is bucket + key + ETag. A
//!   completed key is never applied again (duplicate events, catch-up runs); a key held by a
//!   live claim is skipped (the holder finishes it, or the catch-up schedule takes it over
//!   once the claim expires). All reads use `If-Match: <etag>`, so the rows applied are
//!   exactly that version's.
//! - **Exact resumption**: the position (row group, row, rows done, counts so far) is saved
//!   forward-only in the control table every `checkpoint_rows` rows and before every
//!   hand-off. A continuation (or a takeover after a crash) resumes at the saved row. Rows
//!   after the last save of a crashed invocation are applied again by the takeover —
//!   harmless for idempotent upserts and for guarded writes (an equal version is skipped) —
//!   and never lost.
//! - **Nothing silently dropped**: every row ends as written, deleted, skipped-stale
//!   (guarded), superseded (a later row of the same batch has its key), rejected (with its
//!   reason, in a rejects file) or failed (write retries exhausted; also in the rejects file
//!   with the reason). The counts add up to the rows read.
//! - **Bounded memory**: one row group's column chunks, one batch of `batch_rows` items, and
//!   at most `rejects_flush_rows` buffered rejected rows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::codec::{BatchDecoder, COL_ENTITY, COL_OP, COL_SCHEMA_VERSION, to_sdk_item};
use dynabridge_shared::continuation::Dispatcher;
use dynabridge_shared::events::{DomainEvent, EventPublisher};
use dynabridge_shared::idempotency::{Claim, Idempotency, IdempotencyError, Lease};
use dynabridge_shared::lake::{
    FileMeta, LakeLayout, ObjectFailure, ParquetOptions, S3ParquetObject, open_row_group,
    put_object, write_parquet, writer_properties,
};
use dynabridge_shared::metrics::{self, Unit};
use dynabridge_shared::progress::{ProgressError, ProgressStore};
use dynabridge_shared::schema::{Attributes, Entity};
use dynabridge_shared::writer::{
    BatchWriter, ItemOutcome, WriteRequest, item_size, normalize_number,
};

use crate::config::{Config, WriteMode};
use crate::trigger::{FileInProgress, ObjectRef, entity_for};

/// The function's name in metrics, logs and lake paths.
pub const FUNCTION: &str = "incremental-sync";
/// `DetailType` of the completion event.
pub const SYNC_COMPLETED: &str = "Sync Completed";

/// Everything built once per cold start.
#[derive(Debug, Clone)]
pub struct App {
    /// Settings.
    pub config: Config,
    /// AWS clients.
    pub clients: AwsClients,
    /// The table writer (its AIMD limit lives as long as the execution environment).
    pub writer: BatchWriter,
    /// File claims.
    pub idempotency: Idempotency,
    /// File positions.
    pub progress: ProgressStore,
    /// "Sync Completed" events.
    pub publisher: EventPublisher,
    /// Continuations.
    pub dispatcher: Arc<dyn Dispatcher>,
    /// Lake keys (rejects, quarantine).
    pub layout: LakeLayout,
}

/// The invocation's clock: when it must be done.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The Lambda deadline, epoch ms.
    pub deadline_ms: u64,
    /// The ARN this invocation was called with (continuations invoke the same).
    pub invoked_arn: String,
    /// The hop of this invocation in its continuation chain (0 for the first).
    pub hop: u32,
}

impl Invocation {
    /// Whether the reserve before the deadline has been reached.
    pub fn near_deadline(&self, margin: Duration) -> bool {
        now_ms().saturating_add(margin.as_millis() as u64) >= self.deadline_ms
    }
}

/// Epoch ms now.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Row counts of one file (cumulative across its invocations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows read from the file.
    pub rows_read: u64,
    /// Items put.
    pub written: u64,
    /// Rows not applied because the stored item is as new or newer (guarded mode).
    pub skipped_stale: u64,
    /// Items deleted (`_op = DELETE`).
    pub deleted: u64,
    /// Rows refused (decode, schema, `_op`), in the rejects file with the reason.
    pub rejected: u64,
    /// Rows whose write failed after retries, in the rejects file with the reason.
    pub failed: u64,
    /// Rows replaced by a later row of the same key in the same batch (upsert mode).
    pub superseded: u64,
    /// DynamoDB requests made for the table.
    pub dynamodb_requests: u64,
    /// Rejects files written.
    pub rejects_files: u64,
}

impl Counts {
    fn accounted(&self) -> u64 {
        self.written
            + self.skipped_stale
            + self.deleted
            + self.rejected
            + self.failed
            + self.superseded
    }
}

/// A file's saved position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Next row group to read.
    pub row_group: usize,
    /// Rows of that row group already done.
    pub row: usize,
    /// Rows of the file done (the progress ordinal).
    pub rows_done: u64,
    /// Counts so far.
    pub counts: Counts,
    /// When the first invocation claimed the file.
    pub started_at_ms: u64,
    /// Invocations that worked on the file before this one.
    pub invocations: u32,
    /// `dt` of this file's rejects files (fixed at the first claim, so retries rewrite the
    /// same keys).
    pub rejects_day: Option<NaiveDate>,
}

/// How a file ended in this invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// ETag.
    pub etag: String,
    /// `completed`, `continued`, `duplicate`, `in_progress`, `lease_lost`, `refused`,
    /// `rejected` (the whole file), `changed` or `gone`.
    pub status: &'static str,
    /// Why, for refused / rejected files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The entity the rows were mapped to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Counts (cumulative for the file).
    pub counts: Counts,
}

impl FileReport {
    fn new(object: &ObjectRef, status: &'static str) -> Self {
        FileReport {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: object.etag.clone(),
            status,
            reason: None,
            entity: None,
            counts: Counts::default(),
        }
    }

    fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// What [`sync_file`] did.
#[derive(Debug)]
pub enum FileResult {
    /// Nothing more to do for this file in this chain.
    Done(FileReport),
    /// The rest must go to a continuation.
    Continue(FileReport, FileInProgress),
}

fn metric(name: &str, value: f64, reason: Option<&str>) {
    let mut dims = vec![("function", FUNCTION)];
    if let Some(r) = reason {
        dims.push(("Reason", r));
    }
    metrics::emit(metrics::NAMESPACE, &dims, &[(name, value, Unit::Count)]);
}

/// Claims `object` (or extends the claim a continuation carries) and syncs it.
pub async fn sync_file(
    app: &App,
    inv: &Invocation,
    object: &ObjectRef,
    lease: Option<Lease>,
) -> Result<FileResult, DynabridgeError> {
    let key = object.idempotency_key();
    let floor = now_ms() + 30_000;
    let lease = match lease {
        Some(lease) => match app
            .idempotency
            .extend(&lease, inv.deadline_ms.max(floor))
            .await
        {
            Ok(l) => l,
            Err(IdempotencyError::LeaseLost { .. }) => {
                tracing::warn!(key = %object.key, "claim lost before the continuation ran; another invocation owns the file");
                return Ok(FileResult::Done(FileReport::new(object, "lease_lost")));
            }
            Err(e) => return Err(e.into()),
        },
        None => match app
            .idempotency
            .claim(&key, &object.payload(), Some(inv.deadline_ms))
            .await
        {
            Ok(Claim::Acquired(l)) => l,
            Ok(Claim::Completed(_)) => {
                tracing::info!(key = %object.key, etag = %object.etag, "file already synced; duplicate ignored");
                metric("DuplicateObjects", 1.0, None);
                return Ok(FileResult::Done(FileReport::new(object, "duplicate")));
            }
            Err(IdempotencyError::AlreadyInProgress { .. }) => {
                tracing::info!(key = %object.key, etag = %object.etag, "file is being synced by another invocation; skipped");
                return Ok(FileResult::Done(FileReport::new(object, "in_progress")));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut run = FileRun::new(app, inv, object, lease);
    match run.run().await {
        Ok(r) => Ok(r),
        Err(e) => {
            // Keep what was done, then free the claim so a retry resumes at once.
            if let Err(save) = run.checkpoint().await {
                tracing::warn!(error = %save, "could not save the position after a failure");
            }
            if let Err(rel) = app.idempotency.release(&run.lease).await {
                tracing::warn!(error = %rel, "could not release the claim after a failure");
            }
            tracing::error!(key = %object.key, error = %e, "file sync failed; it will be resumed");
            Err(e)
        }
    }
}

/// One rejected row waiting for the rejects file.
struct Reject {
    batch: RecordBatch,
    row: usize,
    row_group: usize,
    row_in_group: usize,
    reason: String,
}

struct FileRun<'a> {
    app: &'a App,
    inv: &'a Invocation,
    object: &'a ObjectRef,
    lease: Lease,
    key: String,
    pos: Position,
    entity: Option<Entity>,
    rejects: Vec<Reject>,
    segment_start: u64,
    loaded: bool,
}

impl<'a> FileRun<'a> {
    fn new(app: &'a App, inv: &'a Invocation, object: &'a ObjectRef, lease: Lease) -> Self {
        FileRun {
            app,
            inv,
            object,
            key: object.idempotency_key(),
            lease,
            pos: Position::default(),
            entity: None,
            rejects: Vec::new(),
            segment_start: 0,
            loaded: false,
        }
    }

    fn report(&self, status: &'static str) -> FileReport {
        let mut r = FileReport::new(self.object, status);
        r.counts = self.pos.counts;
        r.entity = self.entity.as_ref().map(|e| e.name().to_string());
        r
    }

    async fn run(&mut self) -> Result<FileResult, DynabridgeError> {
        let app = self.app;
        let config = &app.config;
        self.pos = match app
            .progress
            .load::<Position>(&self.key)
            .await
            .map_err(progress_error)?
        {
            Some(saved) => saved.position,
            None => Position {
                started_at_ms: now_ms(),
                rejects_day: Some(chrono::Utc::now().date_naive()),
                ..Position::default()
            },
        };
        self.pos.invocations += 1;
        self.segment_start = self.pos.rows_done;
        self.loaded = true;

        let mut reader = S3ParquetObject::new(
            app.clients.s3.clone(),
            &self.object.bucket,
            &self.object.key,
            &self.object.etag,
            self.object.size,
        );
        let meta = match reader.metadata().await {
            Ok(m) => m,
            Err(e) => {
                return match reader.last_failure() {
                    Some(ObjectFailure::Changed) => self.finish_unreadable("changed", None).await,
                    Some(ObjectFailure::Gone) => self.finish_unreadable("gone", None).await,
                    Some(ObjectFailure::S3(message)) => Err(DynabridgeError::Aws {
                        service: "S3",
                        operation: "GetObject",
                        message,
                    }),
                    None => {
                        self.reject_file(
                            "CorruptParquet",
                            format!("not a readable Parquet file: {e}"),
                        )
                        .await
                    }
                };
            }
        };

        let Some(entity_name) = entity_for(config, &self.object.key) else {
            return self
                .reject_file(
                    "UnknownEntity",
                    format!(
                        "the path names no entity of the registry (inbound/<Entity>/...) and {} is not set",
                        crate::config::vars::ENTITY
                    ),
                )
                .await;
        };
        let entity = config.registry.entity(entity_name)?.clone();
        if let Err(reason) = check_schema(&entity, meta.schema()) {
            self.entity = Some(entity);
            return self.reject_file("WrongSchema", reason).await;
        }
        self.entity = Some(entity.clone());
        let decoder = BatchDecoder::new(&entity);
        let row_groups = meta.metadata().num_row_groups();
        let mut since_save = 0u64;
        // At least one batch per invocation, so a chain of continuations always progresses.
        let mut did_work = false;
        tracing::info!(
            key = %self.object.key, etag = %self.object.etag, entity = %entity.name(),
            row_groups, row_group = self.pos.row_group, row = self.pos.row,
            rows_done = self.pos.rows_done, invocation = self.pos.invocations,
            "syncing file"
        );

        while self.pos.row_group < row_groups {
            let rg = self.pos.row_group;
            let rg_rows = meta.metadata().row_group(rg).num_rows().max(0) as usize;
            if self.pos.row >= rg_rows {
                self.pos.row_group += 1;
                self.pos.row = 0;
                continue;
            }
            if did_work && self.inv.near_deadline(config.deadline_margin) {
                return self.hand_off().await;
            }
            let batches =
                match open_row_group(&reader, &meta, rg, self.pos.row, config.batch_rows).await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        self.pos.row_group += 1;
                        self.pos.row = 0;
                        continue;
                    }
                    Err(e) => return self.read_failed(&reader, e).await,
                };
            for batch in batches {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        return self
                            .read_failed(
                                &reader,
                                parquet::errors::ParquetError::ArrowError(e.to_string()),
                            )
                            .await;
                    }
                };
                let n = batch.num_rows();
                self.write_batch(&decoder, &entity, &batch, rg).await;
                // Test hook: rows written, position not saved yet (a takeover replays them).
                dynabridge_shared::crashpoint::hit("sync-after-write");
                self.pos.row += n;
                self.pos.rows_done += n as u64;
                self.pos.counts.rows_read += n as u64;
                since_save += n as u64;
                did_work = true;
                if since_save >= config.checkpoint_rows
                    || self.rejects.len() >= config.rejects_flush_rows
                {
                    self.checkpoint().await?;
                    since_save = 0;
                }
                if self.inv.near_deadline(config.deadline_margin) && self.pos.row < rg_rows {
                    return self.hand_off().await;
                }
            }
            self.pos.row_group += 1;
            self.pos.row = 0;
        }
        self.finish().await
    }

    async fn read_failed(
        &mut self,
        reader: &S3ParquetObject,
        err: parquet::errors::ParquetError,
    ) -> Result<FileResult, DynabridgeError> {
        match reader.last_failure() {
            Some(ObjectFailure::Changed) => self.finish_unreadable("changed", None).await,
            Some(ObjectFailure::Gone) => self.finish_unreadable("gone", None).await,
            Some(ObjectFailure::S3(message)) => Err(DynabridgeError::Aws {
                service: "S3",
                operation: "GetObject",
                message,
            }),
            None => {
                // Rows before the damage are applied; the file is recorded as rejected from
                // here on so it is not retried forever.
                self.checkpoint().await?;
                self.reject_file(
                    "CorruptParquet",
                    format!(
                        "row group {} is not readable (rows before it were applied): {err}",
                        self.pos.row_group
                    ),
                )
                .await
            }
        }
    }

    /// Decodes and writes one batch; every row ends in the counts or the rejects buffer.
    async fn write_batch(
        &mut self,
        decoder: &BatchDecoder,
        entity: &Entity,
        batch: &RecordBatch,
        row_group: usize,
    ) {
        let config = &self.app.config;
        let guard = match &config.mode {
            WriteMode::Guarded { attribute } => Some(attribute.as_str()),
            WriteMode::Upsert => None,
        };
        let op_col = batch.column_by_name(COL_OP).cloned();
        let entity_col = batch.column_by_name(COL_ENTITY).cloned();
        // `_op` carries sync verbs (UPSERT/DELETE) the lake codec does not know: read it
        // here and decode the rest without it.
        let stripped = match batch.schema().index_of(COL_OP) {
            Ok(i) => {
                let keep: Vec<usize> = (0..batch.num_columns()).filter(|c| *c != i).collect();
                match batch.project(&keep) {
                    Ok(b) => b,
                    Err(e) => {
                        for row in 0..batch.num_rows() {
                            self.reject(batch, row, row_group, format!("cannot read row: {e}"));
                        }
                        return;
                    }
                }
            }
            Err(_) => batch.clone(),
        };

        // (row, is_delete, guard value) per request.
        let mut planned: Vec<(usize, bool, Option<serde_dynamo::AttributeValue>)> = Vec::new();
        let mut items: Vec<Attributes> = Vec::new();
        for row in 0..batch.num_rows() {
            if let Some(col) = &entity_col
                && !col.is_null(row)
            {
                match string_at(col.as_ref(), row) {
                    Some(name) if name == entity.name() => {}
                    other => {
                        let reason = format!(
                            "_entity is {other:?}, but this file is synced as {}",
                            entity.name()
                        );
                        self.reject(batch, row, row_group, reason);
                        continue;
                    }
                }
            }
            let is_delete = match op_col.as_ref().filter(|c| !c.is_null(row)) {
                None => false,
                Some(c) => {
                    match string_at(c.as_ref(), row).map(|s| s.trim().to_ascii_uppercase()) {
                        Some(op) if matches!(op.as_str(), "DELETE" | "REMOVE") => true,
                        Some(op)
                            if matches!(
                                op.as_str(),
                                "UPSERT" | "PUT" | "INSERT" | "MODIFY" | "SNAPSHOT" | ""
                            ) =>
                        {
                            false
                        }
                        other => {
                            let reason = format!(
                                "_op {other:?} is not UPSERT|INSERT|MODIFY|SNAPSHOT|DELETE|REMOVE"
                            );
                            self.reject(batch, row, row_group, reason);
                            continue;
                        }
                    }
                }
            };
            let decoded = if is_delete {
                decoder.decode_columns(&stripped, row, &guard.into_iter().collect::<Vec<_>>())
            } else {
                decoder.decode_one(&stripped, row).map(|d| d.item)
            };
            let item = match decoded {
                Ok(item) => item,
                Err(e) => {
                    self.reject(batch, row, row_group, e.to_string());
                    continue;
                }
            };
            let guard_value = match guard {
                Some(attr) => match item.get(attr) {
                    Some(
                        v @ (serde_dynamo::AttributeValue::N(_)
                        | serde_dynamo::AttributeValue::S(_)),
                    ) => Some(v.clone()),
                    _ => {
                        let reason = format!("guarded mode needs {attr} on every row");
                        self.reject(batch, row, row_group, reason);
                        continue;
                    }
                },
                None => None,
            };
            planned.push((row, is_delete, guard_value));
            items.push(item);
        }

        // Guarded: within one batch, only the newest row per key is sent; the others are
        // stale by definition (the writer would otherwise keep the *last* one).
        let mut stale_rows: Vec<usize> = Vec::new();
        if guard.is_some() {
            let key_names: Vec<String> = entity
                .latest()
                .keys()
                .iter()
                .map(|k| k.name.clone())
                .collect();
            let mut best: HashMap<String, usize> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let id = key_id(item, &key_names);
                match best.get(&id) {
                    Some(&j) => {
                        let newer = compare_values(planned[i].2.as_ref(), planned[j].2.as_ref())
                            != Some(Ordering::Less);
                        if newer {
                            stale_rows.push(j);
                            best.insert(id, i);
                        } else {
                            stale_rows.push(i);
                        }
                    }
                    None => {
                        best.insert(id, i);
                    }
                }
            }
        }
        let stale: std::collections::HashSet<usize> = stale_rows.into_iter().collect();
        self.pos.counts.skipped_stale += stale.len() as u64;

        let key_names: Vec<String> = entity
            .latest()
            .keys()
            .iter()
            .map(|k| k.name.clone())
            .collect();
        let mut requests = Vec::with_capacity(items.len());
        let mut rows = Vec::with_capacity(items.len());
        let mut units = 0u64;
        for (i, item) in items.into_iter().enumerate() {
            if stale.contains(&i) {
                continue;
            }
            let (row, is_delete, guard_value) = planned[i].clone();
            let sdk = to_sdk_item(item);
            units += (item_size(&sdk) as u64).div_ceil(1024).max(1);
            let request = match (is_delete, guard, guard_value) {
                (false, None, _) => WriteRequest::put(sdk),
                (false, Some(attr), _) => WriteRequest::put_if_newer(sdk, attr),
                (true, g, v) => {
                    let key: HashMap<_, _> = sdk
                        .into_iter()
                        .filter(|(k, _)| key_names.contains(k))
                        .collect();
                    match (g, v) {
                        (Some(attr), Some(v)) => {
                            WriteRequest::delete_if_newer(key, attr, sdk_value(v))
                        }
                        _ => WriteRequest::delete(key),
                    }
                }
            };
            requests.push(request);
            rows.push((row, is_delete));
        }
        if requests.is_empty() {
            return;
        }
        let sent = requests.len() as u64;

        // Retry what failed without a DynamoDB error code (throttling / 5xx retries
        // exhausted) a few more rounds while time allows; then report it.
        let mut pending: Vec<(WriteRequest, (usize, bool))> =
            requests.into_iter().zip(rows).collect();
        let mut round = 0;
        loop {
            let (reqs, meta): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
            let report = self.app.writer.write(reqs.clone()).await;
            self.pos.counts.dynamodb_requests += report.stats.requests;
            let mut retry = Vec::new();
            for ((outcome, (row, is_delete)), req) in
                report.outcomes.into_iter().zip(meta).zip(reqs)
            {
                match outcome {
                    ItemOutcome::Written if is_delete => self.pos.counts.deleted += 1,
                    ItemOutcome::Written => self.pos.counts.written += 1,
                    ItemOutcome::SkippedStale => self.pos.counts.skipped_stale += 1,
                    ItemOutcome::Superseded { .. } => self.pos.counts.superseded += 1,
                    ItemOutcome::Failed { code, reason } => {
                        let retryable = code.is_none()
                            && !reason.contains("limit")
                            && !reason.contains("key attribute");
                        if retryable
                            && round < 3
                            && !self.inv.near_deadline(self.app.config.deadline_margin)
                        {
                            retry.push((req, (row, is_delete)));
                        } else {
                            self.pos.counts.failed += 1;
                            let why = match code {
                                Some(c) => format!("write failed: {c}: {reason}"),
                                None => format!("write failed: {reason}"),
                            };
                            self.push_reject(batch, row, row_group, why);
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            tracing::warn!(items = retry.len(), round, "retrying failed writes");
            round += 1;
            pending = retry;
        }

        // Write-unit ceiling: the writer paces items at the ceiling; an item over 1 KB costs
        // more than one unit, so the difference is waited out here.
        if let Some(ceiling) = self.app.config.max_write_units_per_second {
            let extra = units.saturating_sub(sent);
            if extra > 0 {
                tokio::time::sleep(Duration::from_secs_f64(extra as f64 / ceiling)).await;
            }
        }
    }

    fn reject(&mut self, batch: &RecordBatch, row: usize, row_group: usize, reason: String) {
        self.pos.counts.rejected += 1;
        self.push_reject(batch, row, row_group, reason);
    }

    fn push_reject(&mut self, batch: &RecordBatch, row: usize, row_group: usize, reason: String) {
        tracing::debug!(row_group, row = self.pos.row + row, %reason, "row rejected");
        self.rejects.push(Reject {
            batch: batch.clone(),
            row,
            row_group,
            row_in_group: self.pos.row + row,
            reason,
        });
    }

    /// Writes buffered rejects (deterministic key: file + first row of the segment), then
    /// saves the position. A new segment starts.
    async fn checkpoint(&mut self) -> Result<(), DynabridgeError> {
        if !self.loaded {
            return Ok(());
        }
        self.flush_rejects().await?;
        match self
            .app
            .progress
            .save(&self.key, self.pos.rows_done, &self.pos)
            .await
        {
            Ok(()) | Err(ProgressError::Regressed { .. }) => {}
            Err(e) => return Err(progress_error(e)),
        }
        // Test hook: position saved, before the hand-off / completion that follows it.
        dynabridge_shared::crashpoint::hit("sync-after-checkpoint");
        self.segment_start = self.pos.rows_done;
        Ok(())
    }

    async fn flush_rejects(&mut self) -> Result<(), DynabridgeError> {
        if self.rejects.is_empty() {
            return Ok(());
        }
        let Some(entity) = &self.entity else {
            self.rejects.clear();
            return Ok(());
        };
        let rejects = std::mem::take(&mut self.rejects);
        let source = format!("s3://{}/{}", self.object.bucket, self.object.key);
        let (schema, batch) = rejects_batch(&rejects, &source, &self.object.etag)?;
        let meta = FileMeta::for_entity(&self.app.config.registry, entity);
        let props = writer_properties(&ParquetOptions::default(), &meta)?;
        let body = write_parquet(&schema, &[batch], props)?;
        let day = self
            .pos
            .rejects_day
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let key = self.app.layout.quarantine_key(
            FUNCTION,
            day,
            &format!(
                "{}-{}-rows-{:012}.parquet",
                name_stem(&self.object.key),
                short_etag(&self.object.etag),
                self.segment_start
            ),
        );
        put_object(
            &self.app.clients.s3,
            &self.app.config.common.lake_bucket,
            &key,
            body,
        )
        .await?;
        self.pos.counts.rejects_files += 1;
        tracing::warn!(rows = rejects.len(), rejects_key = %key, "rejected rows written to the lake");
        Ok(())
    }

    async fn hand_off(&mut self) -> Result<FileResult, DynabridgeError> {
        self.checkpoint().await?;
        let until = now_ms() + self.app.config.handoff_lease.as_millis() as u64;
        let lease = self.app.idempotency.extend(&self.lease, until).await?;
        tracing::info!(
            key = %self.object.key, row_group = self.pos.row_group, row = self.pos.row,
            rows_done = self.pos.rows_done, "deadline near: handing the rest to a continuation"
        );
        Ok(FileResult::Continue(
            self.report("continued"),
            FileInProgress {
                object: self.object.clone(),
                lease,
            },
        ))
    }

    async fn finish(&mut self) -> Result<FileResult, DynabridgeError> {
        self.checkpoint().await?;
        let c = self.pos.counts;
        let duration_ms = now_ms().saturating_sub(self.pos.started_at_ms);
        if c.accounted() != c.rows_read {
            tracing::error!(
                rows_read = c.rows_read,
                accounted = c.accounted(),
                "row accounting mismatch"
            );
        }
        let entity = self.entity.as_ref();
        let detail = json!({
            "bucket": self.object.bucket,
            "key": self.object.key,
            "etag": self.object.etag,
            "table": self.app.config.common.table_name,
            "entity": entity.map(|e| e.name()),
            "schema_version": entity.map(|e| e.latest().version()),
            "mode": self.app.config.mode.name(),
            "rows_read": c.rows_read,
            "written": c.written,
            "skipped_stale": c.skipped_stale,
            "deleted": c.deleted,
            "rejected": c.rejected,
            "failed": c.failed,
            "superseded": c.superseded,
            "rejects_files": c.rejects_files,
            "dynamodb_requests": c.dynamodb_requests,
            "duration_ms": duration_ms,
            "invocations": self.pos.invocations,
        });
        let report = self
            .app
            .publisher
            .publish(&[DomainEvent::new(SYNC_COMPLETED, &detail)])
            .await;
        if let Some(f) = report.failed.first() {
            // Not completed: a retry finds the position at the end and publishes again.
            return Err(DynabridgeError::Other(format!(
                "Sync Completed event not published: {}: {}",
                f.code, f.message
            )));
        }
        // Test hook: the event is out, the file not marked synced (the documented window in
        // which a retry publishes the event a second time).
        dynabridge_shared::crashpoint::hit("sync-after-publish");
        let result = self.report("completed");
        self.app.idempotency.complete(&self.lease, &result).await?;
        metrics::emit(
            metrics::NAMESPACE,
            &[("function", FUNCTION)],
            &[
                ("FilesSynced", 1.0, Unit::Count),
                ("RowsWritten", c.written as f64, Unit::Count),
                ("RowsSkippedStale", c.skipped_stale as f64, Unit::Count),
                ("RowsDeleted", c.deleted as f64, Unit::Count),
                ("RowsRejected", c.rejected as f64, Unit::Count),
                ("RowsFailed", c.failed as f64, Unit::Count),
                ("SyncDuration", duration_ms as f64, Unit::Milliseconds),
            ],
        );
        tracing::info!(
            key = %self.object.key, etag = %self.object.etag, rows_read = c.rows_read,
            written = c.written, skipped_stale = c.skipped_stale, deleted = c.deleted,
            rejected = c.rejected, failed = c.failed, superseded = c.superseded,
            dynamodb_requests = c.dynamodb_requests, duration_ms, invocations = self.pos.invocations,
            "file synced"
        );
        Ok(FileResult::Done(result))
    }

    /// The object changed or vanished after the event: that version can never be read, so
    /// it is recorded done (the new version has its own event and key).
    async fn finish_unreadable(
        &mut self,
        status: &'static str,
        reason: Option<String>,
    ) -> Result<FileResult, DynabridgeError> {
        let mut result = self.report(status);
        result.reason = reason.or_else(|| {
            Some(match status {
                "changed" => "the object was overwritten after the event (ETag changed)".into(),
                _ => "the object no longer exists".into(),
            })
        });
        tracing::warn!(key = %self.object.key, etag = %self.object.etag, status, "object version no longer readable; skipped");
        metric("ObjectsVanished", 1.0, Some(status));
        self.app.idempotency.complete(&self.lease, &result).await?;
        Ok(FileResult::Done(result))
    }

    /// The whole file cannot be synced (corrupt, wrong schema, no entity): a quarantine
    /// record with the reason goes to the lake and the file is recorded done.
    async fn reject_file(
        &mut self,
        kind: &'static str,
        reason: String,
    ) -> Result<FileResult, DynabridgeError> {
        let record = json!({
            "function": FUNCTION,
            "kind": kind,
            "reason": reason,
            "bucket": self.object.bucket,
            "key": self.object.key,
            "etag": self.object.etag,
            "size": self.object.size,
            "rows_done_before": self.pos.rows_done,
            "at": chrono::Utc::now().to_rfc3339(),
        });
        let day = self
            .pos
            .rejects_day
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let qkey = self.app.layout.quarantine_key(
            FUNCTION,
            day,
            &format!(
                "{}-{}-file.json",
                name_stem(&self.object.key),
                short_etag(&self.object.etag)
            ),
        );
        self.app
            .clients
            .s3
            .put_object()
            .bucket(&self.app.config.common.lake_bucket)
            .key(&qkey)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(
                serde_json::to_vec_pretty(&record)?,
            ))
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("S3", "PutObject", e))?;
        tracing::error!(key = %self.object.key, etag = %self.object.etag, kind, %reason, quarantine_key = %qkey, "file rejected");
        metric("FilesRejected", 1.0, Some(kind));
        let result = self
            .report("rejected")
            .with_reason(format!("{kind}: {reason}"));
        self.app.idempotency.complete(&self.lease, &result).await?;
        Ok(FileResult::Done(result))
    }
}

fn progress_error(e: ProgressError) -> DynabridgeError {
    DynabridgeError::Other(e.to_string())
}

/// File-level schema check: every key column and (for files without `_schema_version` or
/// `_op`) every required field of the latest version is present, and no column is foreign to
/// every version of the entity. Row-level problems are left to the decoder.
pub fn check_schema(entity: &Entity, schema: &SchemaRef) -> Result<(), String> {
    let latest = entity.latest();
    let has = |name: &str| schema.index_of(name).is_ok();
    let mut missing: Vec<&str> = latest
        .keys()
        .iter()
        .filter(|k| !has(&k.name))
        .map(|k| k.name.as_str())
        .collect();
    // With `_schema_version` the required fields depend on each row's version, and with
    // `_op` a delete row needs only the key: the decoder checks those rows one by one.
    if !has(COL_SCHEMA_VERSION) && !has(COL_OP) {
        missing.extend(
            latest
                .fields()
                .iter()
                .filter(|f| f.required && !has(&f.name))
                .map(|f| f.name.as_str()),
        );
    }
    if !missing.is_empty() {
        return Err(format!(
            "columns {missing:?} required by {} version {} are missing",
            entity.name(),
            latest.version()
        ));
    }
    let known: std::collections::HashSet<&str> = entity
        .versions()
        .iter()
        .flat_map(|v| v.columns().map(|c| c.name.as_str()))
        .collect();
    let foreign: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !n.starts_with('_') && !known.contains(n))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "columns {foreign:?} are not fields of any version of {}",
            entity.name()
        ));
    }
    Ok(())
}

fn string_at(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

fn sdk_value(v: serde_dynamo::AttributeValue) -> aws_sdk_dynamodb::types::AttributeValue {
    to_sdk_item(HashMap::from([("v".to_string(), v)]))
        .remove("v")
        .unwrap_or(aws_sdk_dynamodb::types::AttributeValue::Null(true))
}

fn key_id(item: &Attributes, keys: &[String]) -> String {
    keys.iter()
        .map(|k| {
            item.get(k)
                .map(|v| dynabridge_shared::codec::dynamodb_json(v).to_string())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Orders two guard values the way DynamoDB's `<` does: numbers by value (exactly),
/// strings by bytes. `None` when they cannot be compared.
pub fn compare_values(
    a: Option<&serde_dynamo::AttributeValue>,
    b: Option<&serde_dynamo::AttributeValue>,
) -> Option<Ordering> {
    use serde_dynamo::AttributeValue as V;
    match (a?, b?) {
        (V::S(x), V::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::N(x), V::N(y)) => compare_numbers(x, y),
        _ => None,
    }
}

/// Exact comparison of two DynamoDB numbers.
pub fn compare_numbers(a: &str, b: &str) -> Option<Ordering> {
    // normalize_number gives `[-]0.<digits>e<point>` (or `0`).
    fn parts(n: &str) -> Option<(i8, i64, String)> {
        let norm = normalize_number(n);
        if norm == "0" {
            return Some((0, 0, String::new()));
        }
        let (neg, rest) = match norm.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, norm.as_str()),
        };
        let rest = rest.strip_prefix("0.")?;
        let (digits, exp) = rest.split_once('e')?;
        Some((
            if neg { -1 } else { 1 },
            exp.parse().ok()?,
            digits.to_string(),
        ))
    }
    let (sa, ea, da) = parts(a)?;
    let (sb, eb, db) = parts(b)?;
    if sa != sb {
        return Some(sa.cmp(&sb));
    }
    if sa == 0 {
        return Some(Ordering::Equal);
    }
    let magnitude = ea.cmp(&eb).then_with(|| da.cmp(&db));
    Some(if sa > 0 {
        magnitude
    } else {
        magnitude.reverse()
    })
}

fn name_stem(key: &str) -> String {
    let flat = key.replace('/', "_");
    let stem = flat.strip_suffix(".parquet").unwrap_or(&flat);
    // Keep the tail: it holds the distinguishing part of Spark's file names.
    let start = stem.len().saturating_sub(160);
    let start = (start..stem.len())
        .find(|i| stem.is_char_boundary(*i))
        .unwrap_or(stem.len());
    stem[start..].to_string()
}

fn short_etag(etag: &str) -> String {
    etag.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect()
}

/// The rejects file's one batch: the rejected rows as they were in the source (all source
/// columns), plus `_reject_reason`, `_reject_source`, `_reject_row_group`, `_reject_row`.
fn rejects_batch(
    rejects: &[Reject],
    source: &str,
    etag: &str,
) -> Result<(SchemaRef, RecordBatch), DynabridgeError> {
    let arrow_err = |e: arrow::error::ArrowError| DynabridgeError::Lake(e.into());
    let source_schema = rejects[0].batch.schema();
    let mut parts = Vec::with_capacity(rejects.len());
    for r in rejects {
        let idx = UInt32Array::from(vec![r.row as u32]);
        parts.push(arrow::compute::take_record_batch(&r.batch, &idx).map_err(arrow_err)?);
    }
    let rows = arrow::compute::concat_batches(&source_schema, &parts).map_err(arrow_err)?;
    let mut fields: Vec<Field> = source_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    let extra: [(&str, ArrayRef); 4] = [
        (
            "_reject_reason",
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.reason.as_str()),
            )),
        ),
        (
            "_reject_source",
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|_| format!("{source}#{etag}")),
            )),
        ),
        (
            "_reject_row_group",
            Arc::new(Int64Array::from_iter_values(
                rejects.iter().map(|r| r.row_group as i64),
            )),
        ),
        (
            "_reject_row",
            Arc::new(Int64Array::from_iter_values(
                rejects.iter().map(|r| r.row_in_group as i64),
            )),
        ),
    ];
    for (name, array) in extra {
        if source_schema.index_of(name).is_ok() {
            continue;
        }
        fields.push(Field::new(name, array.data_type().clone(), false));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err)?;
    Ok((schema, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_exactly() {
        assert_eq!(compare_numbers("10", "9"), Some(Ordering::Greater));
        assert_eq!(compare_numbers("1.0", "1"), Some(Ordering::Equal));
        assert_eq!(compare_numbers("-2", "-10"), Some(Ordering::Greater));
        assert_eq!(compare_numbers("0", "-0.001"), Some(Ordering::Greater));
        assert_eq!(
            compare_numbers(
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345677"
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_numbers("1795256100123.456", "1795256100123.4561"),
            Some(Ordering::Less)
        );
        assert_eq!(compare_numbers("x", "1"), None);
    }

    #[test]
    fn rejects_file_names_are_bounded() {
        let long = format!("inbound/{}/part.parquet", "d".repeat(500));
        assert!(name_stem(&long).len() <= 160);
        assert_eq!(
            name_stem("inbound/Customer/p.parquet"),
            "inbound_Customer_p"
        );
        assert_eq!(short_etag("\"abc-12\""), "abc12");
    }
}
