//! Archive mode: TTL deletions from the stream → `expired/` Parquet, exactly once.
//!
//! The event source mapping's filter delivers only REMOVE records made by the DynamoDB
//! service (TTL). Defensively, any other record that still arrives (a user delete, an
//! insert) is ignored and counted — archive mode never archives or acts on it. Poison
//! records are quarantined. The range of TTL deletions not yet durable (checkpoint sink
//! `expired`) is written with the full old image and `_op = EXPIRE`; optional
//! "<Entity> Expired" events follow with their own checkpoint, like stream-fanout.

use std::sync::Arc;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::checkpoint::{Checkpoints, Scope};
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::codec::Op;
use dynabridge_shared::lake::layout::{Area, LakeLayout};
use dynabridge_shared::metrics::Metrics;
use dynabridge_shared::stream::publish::EventSink;
use dynabridge_shared::stream::sink::{RangeSink, SinkReport};
use dynabridge_shared::stream::{BatchRecord, StreamBatch, batch_response};
use serde_json::Value;

use crate::config::Config;
use crate::handler::FUNCTION;

/// Whether archive mode writes this record (TTL deletions and undecodable records).
fn archived(record: &BatchRecord<'_>) -> bool {
    match &record.change {
        Ok(c) => c.op == Op::Expire,
        Err(_) => true,
    }
}

/// Handles one stream batch.
pub async fn archive(
    config: &Config,
    clients: &AwsClients,
    payload: &str,
) -> Result<Value, DynabridgeError> {
    let mut batch = StreamBatch::parse(payload)?;
    batch.resolve(&config.registry);
    let shard = batch.checkpoint_shard();
    let seqs = batch.sequence_numbers();
    let checkpoints = Checkpoints::new(clients.control.clone(), &config.common.control_table);
    let sink = RangeSink::new(
        clients.s3.clone(),
        &config.common.lake_bucket,
        LakeLayout::new(&config.common.lake_prefix),
        Area::Expired,
        FUNCTION,
        Arc::clone(&config.registry),
    );
    let ignored = batch.records.iter().filter(|r| !archived(r)).count();
    let scope = Scope::new(&config.consumer, &shard, "expired");
    let cp = checkpoints
        .begin(&scope, &seqs, |info| {
            let records: Vec<&BatchRecord<'_>> = batch.records[info.indices.clone()]
                .iter()
                .filter(|r| archived(r))
                .collect();
            match info.previous {
                Some(p) if p.last_seq == info.last_seq => p.outputs.clone(),
                _ => sink.output_keys(&records, &shard, info.first_seq, info.last_seq),
            }
        })
        .await?;
    let mut failed_from = None;
    let mut report = SinkReport::default();
    let mut offset = cp.durable;
    let mut written_indices = Vec::new();
    let mut cascaded = crate::cascade::CascadeReport::default();
    if let Some(range) = cp.range.clone() {
        offset = range.indices.start;
        written_indices = range
            .indices
            .clone()
            .filter(|i| archived(&batch.records[*i]))
            .collect();
        let records: Vec<&BatchRecord<'_>> =
            written_indices.iter().map(|i| &batch.records[*i]).collect();
        let result = async {
            let r = sink
                .write(&records, &shard, &range.first_seq, &range.last_seq)
                .await?;
            sink.delete(&range.obsolete_outputs).await?;
            dynabridge_shared::crashpoint::hit("archive-after-write");
            // Cascades run before the commit, so a crash during one is retried.
            let mut cascaded = crate::cascade::CascadeReport::default();
            if let Some(cascade) = &config.cascade {
                for (pos, record) in records.iter().enumerate() {
                    let (Ok(change), Some(entity)) =
                        (&record.change, r.entity_of.get(pos).cloned().flatten())
                    else {
                        continue;
                    };
                    if cascade.parents.contains(&entity) {
                        let c = crate::cascade::cascade(config, cascade, clients, &shard, change)
                            .await?;
                        cascaded.archived += c.archived;
                        cascaded.deleted += c.deleted;
                        cascaded.kept_changed += c.kept_changed;
                    }
                }
            }
            Ok::<_, DynabridgeError>((r, cascaded))
        }
        .await;
        match result {
            Ok((r, c)) => {
                checkpoints.commit(cp).await?;
                report = r;
                cascaded = c;
            }
            Err(err) => {
                tracing::error!(error = %err, "expired sink failed; the range will be retried");
                failed_from = Some(range.indices.start);
            }
        }
    }

    let mut events_put = 0;
    let durable_end = failed_from.unwrap_or(batch.records.len());
    if config.publish.is_enabled() && durable_end > 0 {
        let events = EventSink::new(
            &config.common,
            clients.eventbridge.clone(),
            &checkpoints,
            &config.registry,
            &config.consumer,
            &shard,
        );
        let located = |index: usize| {
            if !archived(&batch.records[index]) {
                return None;
            }
            let entity = if index >= offset {
                let pos = written_indices.iter().position(|i| *i == index)?;
                report.entity_of.get(pos).cloned().flatten()
            } else {
                sink.classify(&batch.records[index]).ok()
            }?;
            let key = report.file_of(&entity).map(str::to_string);
            Some((entity, key))
        };
        let outcome = events
            .publish(&batch, durable_end, &config.publish, located)
            .await?;
        events_put = outcome.report.published;
        if let Some(f) = outcome.failed_from {
            failed_from = Some(failed_from.map_or(f, |c: usize| c.min(f)));
        }
    }

    let archived_rows: usize = report.files.iter().map(|f| f.rows).sum();
    tracing::info!(
        shard,
        records_in = batch.records.len(),
        ignored_not_ttl = ignored,
        already_durable = offset,
        archived = archived_rows,
        quarantined = report.quarantined.len(),
        files_written = report.files.len(),
        events_put,
        cascade_archived = cascaded.archived,
        cascade_deleted = cascaded.deleted,
        cascade_kept_changed = cascaded.kept_changed,
        failed_records = failed_from.map_or(0, |i| batch.records.len() - i),
        "TTL archive batch done"
    );
    let mut m = Metrics::new(FUNCTION);
    m.count("RecordsIn", batch.records.len());
    m.count("IgnoredNotTtl", ignored);
    m.count("Archived", archived_rows);
    m.count("Quarantined", report.quarantined.len());
    m.count("EventsPut", events_put);
    m.count("CascadeDeleted", cascaded.deleted);
    m.flush();
    Ok(batch_response(&batch, failed_from))
}
