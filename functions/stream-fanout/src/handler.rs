//! One DynamoDB Streams batch in, one ordered batch-item-failure response out.
//!
//! Per batch, in order:
//! 1. **Decode** the records (`shared::stream`): op (TTL deletions are EXPIRE), sequence
//!    number, event time, keys, images. Undecodable records are kept as poison.
//! 2. **CDC sink** (`cdc/`): the checkpoint (`shared::checkpoint`, sink `cdc`) says which
//!    records are already durable; the rest are validated, upcast and written as one Parquet
//!    file per entity at a deterministic key (`shared::stream::sink`); poison and
//!    schema-invalid records go to one quarantine file. Then the checkpoint commits.
//! 3. **Event sink** (EventBridge): a second checkpoint (sink `events`) skips records whose
//!    events are already published; the rest are published (≤ 10 entries / 256 KB per call,
//!    failed entries retried on their own, claim checks for big ones). If an entry keeps
//!    failing, the checkpoint commits up to the record before it.
//! 4. **Response**: the first record that could not be made durable in *both* sinks, and
//!    every record after it, are returned as batch item failures; Lambda retries from there.
//!    Records before it are skipped on the retry (checkpoints), so nothing is re-emitted
//!    and nothing after a failure is processed out of order.
//!
//! Duplicates: a crash after PutEvents accepted entries but before the `events` checkpoint
//! committed re-publishes those entries on the retry (at-least-once events; consumers dedupe
//! on `eventId`). CDC files are exactly-once: a retry rewrites the same keys.

use std::sync::Arc;
use std::time::Instant;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::checkpoint::{Checkpoints, Scope};
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::codec::Op;
use dynabridge_shared::lake::layout::{Area, LakeLayout};
use dynabridge_shared::metrics::{Metrics, Unit};
use dynabridge_shared::stream::publish::EventSink;
use dynabridge_shared::stream::sink::{RangeSink, SinkReport};
use dynabridge_shared::stream::{BatchRecord, StreamBatch, batch_response};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::Config;

/// The function name used for quarantine objects and metrics.
pub const FUNCTION: &str = "stream-fanout";

/// Counts of one batch (the summary log line and the EMF metrics).
#[derive(Debug, Default)]
struct Summary {
    records_in: usize,
    skipped_durable_cdc: usize,
    ops: [usize; 4],
    quarantined: usize,
    files_written: usize,
    events_put: usize,
    event_retries: usize,
    claim_checks: usize,
    failed_from: Option<usize>,
}

/// Handles one stream batch.
pub async fn handle(
    config: &Config,
    clients: &AwsClients,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Value, DynabridgeError> {
    let started = Instant::now();
    // The payload stays raw JSON: the batch is parsed once, borrowing from it, and every
    // record's entity and upcast images are resolved once for both sinks.
    let mut batch = StreamBatch::parse(event.payload.get())?;
    batch.resolve(&config.registry);
    let shard = batch.checkpoint_shard();
    let seqs = batch.sequence_numbers();
    let checkpoints = Checkpoints::new(clients.control.clone(), &config.common.control_table);
    let sink = RangeSink::new(
        clients.s3.clone(),
        &config.common.lake_bucket,
        LakeLayout::new(&config.common.lake_prefix),
        Area::Cdc,
        FUNCTION,
        Arc::clone(&config.registry),
    );
    let mut summary = Summary {
        records_in: batch.records.len(),
        ..Default::default()
    };
    for r in &batch.records {
        if let Ok(c) = &r.change {
            let i = match c.op {
                Op::Insert => 0,
                Op::Modify => 1,
                Op::Remove => 2,
                _ => 3,
            };
            summary.ops[i] += 1;
        }
    }

    // 2. CDC sink.
    let scope = Scope::new(&config.consumer, &shard, "cdc");
    let cdc = checkpoints
        .begin(&scope, &seqs, |info| {
            let records: Vec<&BatchRecord<'_>> =
                batch.records[info.indices.clone()].iter().collect();
            match info.previous {
                // Resuming a crashed attempt: rewrite exactly its keys.
                Some(p) if p.last_seq == info.last_seq => p.outputs.clone(),
                _ => sink.output_keys(&records, &shard, info.first_seq, info.last_seq),
            }
        })
        .await?;
    summary.skipped_durable_cdc = cdc.durable;
    let mut cdc_failed_from = None;
    let mut cdc_report = SinkReport::default();
    let mut cdc_offset = cdc.durable;
    if let Some(range) = cdc.range.clone() {
        cdc_offset = range.indices.start;
        let records: Vec<&BatchRecord<'_>> = batch.records[range.indices.clone()].iter().collect();
        let written = async {
            let report = sink
                .write(&records, &shard, &range.first_seq, &range.last_seq)
                .await?;
            sink.delete(&range.obsolete_outputs).await?;
            dynabridge_shared::crashpoint::hit("cdc-after-write");
            Ok::<_, DynabridgeError>(report)
        }
        .await;
        match written {
            Ok(report) => {
                checkpoints.commit(cdc).await?;
                cdc_report = report;
            }
            Err(err) => {
                tracing::error!(error = %err, first = %range.first_seq, "CDC sink failed; the range will be retried");
                cdc_failed_from = Some(range.indices.start);
            }
        }
    }
    summary.quarantined = cdc_report.quarantined.len();
    summary.files_written = cdc_report.files.len();
    for q in &cdc_report.quarantined {
        tracing::warn!(sequence_number = %q.sequence_number, kind = %q.kind, "record quarantined");
    }

    // 3. Event sink, only for records the CDC sink made durable.
    let mut events_failed_from = None;
    let durable_end = cdc_failed_from.unwrap_or(batch.records.len());
    if config.publish.is_enabled() && durable_end > 0 {
        let events = EventSink::new(
            &config.common,
            clients.eventbridge.clone(),
            &checkpoints,
            &config.registry,
            &config.consumer,
            &shard,
        );
        // A record's entity comes from this invocation's CDC write, or (records an earlier
        // attempt made durable) from the same validation; quarantined records have none.
        let located = |index: usize| {
            let entity = match index.checked_sub(cdc_offset) {
                Some(i) => cdc_report.entity_of.get(i).cloned().flatten(),
                None => sink.classify(&batch.records[index]).ok(),
            }?;
            let key = cdc_report.file_of(&entity).map(str::to_string);
            Some((entity, key))
        };
        let outcome = events
            .publish(&batch, durable_end, &config.publish, located)
            .await?;
        summary.events_put = outcome.report.published;
        summary.event_retries = outcome.report.retries;
        summary.claim_checks = outcome.report.claim_checks;
        events_failed_from = outcome.failed_from;
    }

    summary.failed_from = match (cdc_failed_from, events_failed_from) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let response = batch_response(&batch, summary.failed_from);
    report(&summary, started, &shard);
    Ok(response)
}

fn report(s: &Summary, started: Instant, shard: &str) {
    let failed = s.failed_from.map_or(0, |i| s.records_in - i);
    tracing::info!(
        shard,
        records_in = s.records_in,
        inserts = s.ops[0],
        modifies = s.ops[1],
        removes = s.ops[2],
        expires = s.ops[3],
        already_durable = s.skipped_durable_cdc,
        quarantined = s.quarantined,
        files_written = s.files_written,
        events_put = s.events_put,
        event_retries = s.event_retries,
        claim_checks = s.claim_checks,
        failed_records = failed,
        "stream batch done"
    );
    let mut m = Metrics::new(FUNCTION);
    m.count("RecordsIn", s.records_in);
    m.count("Inserts", s.ops[0]);
    m.count("Modifies", s.ops[1]);
    m.count("Removes", s.ops[2]);
    m.count("Expires", s.ops[3]);
    m.count("Quarantined", s.quarantined);
    m.count("FilesWritten", s.files_written);
    m.count("EventsPut", s.events_put);
    m.count("EventRetries", s.event_retries);
    m.count("FailedRecords", failed);
    m.add(
        "BatchDurationMs",
        started.elapsed().as_secs_f64() * 1e3,
        Unit::Milliseconds,
    );
    m.flush();
}
