//! Change records → domain events (the EventBridge contract in `design.md`), published
//! in stream order with a checkpoint so a retry never re-emits what already went out.
//!
//! `DetailType` is `"<Entity> Inserted|Modified|Removed|Expired"`. The detail carries the
//! stream event id (consumers dedupe on it), the sequence number, table, entity, schema
//! version, op, keys and the images as plain JSON, upcast to the entity's latest version
//! (numbers stay exact: see `dynabridge_shared::events::number_to_json`). When the entry would
//! exceed 256 KB the event carries a claim check instead of the images: the CDC object key
//! when this invocation wrote it, and always the entity and padded `_seq` that identify the
//! row in `cdc/`.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::checkpoint::{Checkpoints, Scope};
use crate::codec::{Op, stream_seq};
use crate::config::CommonConfig;
use crate::error::DynabridgeError;
use crate::events::{DomainEvent, EventPublisher, PublishReport, item_to_json};
use crate::schema::{Attributes, Registry};
use crate::stream::{ChangeRecord, StreamBatch};

/// Where the record's CDC row lives (for claim checks).
#[derive(Debug, Clone)]
pub struct CdcLocation<'a> {
    /// The lake bucket.
    pub bucket: &'a str,
    /// The CDC object key, when known.
    pub key: Option<&'a str>,
}

fn verb(op: Op) -> &'static str {
    match op {
        Op::Insert => "Inserted",
        Op::Modify => "Modified",
        Op::Remove => "Removed",
        Op::Expire => "Expired",
        Op::Snapshot => "Exported",
    }
}

/// An image as plain JSON, upcast to the latest version when it resolves.
fn image_json(registry: &Registry, image: Option<&Attributes>) -> Value {
    match image {
        None => Value::Null,
        Some(img) => match registry.resolve(img) {
            Ok(resolved) => item_to_json(resolved.item.iter()),
            Err(_) => item_to_json(img.iter()),
        },
    }
}

/// The domain event of one change of `entity`.
pub fn domain_event(
    registry: &Registry,
    table: &str,
    entity: &str,
    change: &ChangeRecord,
    cdc: CdcLocation<'_>,
) -> DomainEvent {
    let schema_version = registry.entity(entity).map(|e| e.latest().version()).ok();
    let event_time = chrono::DateTime::from_timestamp_micros(change.event_time_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let head = json!({
        "eventId": change.event_id,
        "sequenceNumber": change.sequence_number,
        "table": table,
        "entity": entity,
        "schemaVersion": schema_version,
        "op": change.op.as_str(),
        "eventTime": event_time,
        "keys": item_to_json(change.keys.iter()),
    });
    let mut detail = head.clone();
    detail["newImage"] = image_json(registry, change.new_image.as_ref());
    detail["oldImage"] = image_json(registry, change.old_image.as_ref());
    let mut claim = head;
    claim["claimCheck"] = json!({
        "bucket": cdc.bucket,
        "key": cdc.key,
        "entity": entity,
        "seq": stream_seq(&change.sequence_number),
    });
    DomainEvent {
        detail_type: format!("{entity} {}", verb(change.op)),
        detail,
        claim_check: Some(claim),
        resources: Vec::new(),
    }
}

/// Which changes become domain events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFilter {
    /// `None` = every entity.
    pub entities: Option<BTreeSet<String>>,
    /// Published operations (`INSERT`, ...; empty = publishing off).
    pub ops: BTreeSet<&'static str>,
}

impl PublishFilter {
    /// Publishes nothing.
    pub fn off() -> Self {
        PublishFilter {
            entities: Some(BTreeSet::new()),
            ops: BTreeSet::new(),
        }
    }

    /// Whether a change of `entity` with `op` is published.
    pub fn allows(&self, entity: &str, op: Op) -> bool {
        self.ops.contains(op.as_str()) && self.entities.as_ref().is_none_or(|e| e.contains(entity))
    }

    /// Whether anything at all is published.
    pub fn is_enabled(&self) -> bool {
        !self.ops.is_empty() && self.entities.as_ref().is_none_or(|e| !e.is_empty())
    }
}

/// Marker prefix, in the events checkpoint's pending outputs, of an entry already published
/// after a failed one.
const PUBLISHED: &str = "published:";

/// The event sink of a stream consumer.
#[derive(Debug)]
pub struct EventSink<'a> {
    checkpoints: &'a Checkpoints,
    publisher: EventPublisher,
    registry: &'a Registry,
    table: &'a str,
    bucket: &'a str,
    scope: Scope,
}

/// What [`EventSink::publish`] did.
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    /// The first record whose event could not be published (retry from it).
    pub failed_from: Option<usize>,
    /// The publisher's report.
    pub report: PublishReport,
}

impl<'a> EventSink<'a> {
    /// The sink of `consumer` on `shard`: events go to the common config's bus and source,
    /// progress is checkpointed under sink `events`.
    pub fn new(
        common: &'a CommonConfig,
        eventbridge: aws_sdk_eventbridge::Client,
        checkpoints: &'a Checkpoints,
        registry: &'a Registry,
        consumer: &str,
        shard: &str,
    ) -> Self {
        EventSink {
            checkpoints,
            publisher: EventPublisher::new(eventbridge, &common.event_bus, &common.event_source),
            registry,
            table: &common.table_name,
            bucket: &common.lake_bucket,
            scope: Scope::new(consumer, shard, "events"),
        }
    }

    /// Publishes the events of `batch.records[..durable_end]` that the checkpoint has not
    /// seen yet, in order. `located(index)` gives a record's entity and, when known, the lake
    /// object holding it (`None` entity: the record was quarantined; no event).
    ///
    /// When an entry keeps failing, the checkpoint commits up to the record before it, and
    /// remembers which later entries of the same call were accepted so the retry (which
    /// starts at the failed record) does not publish them twice.
    pub async fn publish(
        &self,
        batch: &StreamBatch,
        durable_end: usize,
        filter: &PublishFilter,
        located: impl Fn(usize) -> Option<(String, Option<String>)>,
    ) -> Result<PublishOutcome, DynabridgeError> {
        let seqs = batch.sequence_numbers();
        let ev = self
            .checkpoints
            .begin(&self.scope, &seqs[..durable_end], |info| {
                info.previous.map(|p| p.outputs.clone()).unwrap_or_default()
            })
            .await?;
        let Some(range) = ev.range.clone() else {
            return Ok(PublishOutcome::default());
        };
        let already: HashSet<&str> = range
            .outputs
            .iter()
            .filter_map(|o| o.strip_prefix(PUBLISHED))
            .collect();
        let mut events = Vec::new();
        let mut record_of_event = Vec::new();
        for index in range.indices.clone() {
            let Ok(change) = &batch.records[index].change else {
                continue;
            };
            if already.contains(change.sequence_number.as_str()) {
                continue;
            }
            let Some((entity, key)) = located(index) else {
                continue;
            };
            if !filter.allows(&entity, change.op) {
                continue;
            }
            events.push(domain_event(
                self.registry,
                self.table,
                &entity,
                change,
                CdcLocation {
                    bucket: self.bucket,
                    key: key.as_deref(),
                },
            ));
            record_of_event.push(index);
        }
        let report = self.publisher.publish(&events).await;
        crate::crashpoint::hit("events-after-put");
        let Some(failed) = report
            .first_failed()
            .and_then(|i| record_of_event.get(i).copied())
        else {
            self.checkpoints.commit(ev).await?;
            return Ok(PublishOutcome {
                failed_from: None,
                report,
            });
        };
        for f in &report.failed {
            tracing::error!(code = %f.code, message = %f.message, "event not published");
        }
        let failed_events: HashSet<usize> = report.failed.iter().map(|f| f.index).collect();
        let mut published_after: Vec<String> = record_of_event
            .iter()
            .enumerate()
            .filter(|(ei, ri)| **ri > failed && !failed_events.contains(ei))
            .map(|(_, ri)| format!("{PUBLISHED}{}", seqs[*ri]))
            .collect();
        published_after.extend(
            already
                .iter()
                .filter(|s| seqs[failed..].contains(s))
                .map(|s| format!("{PUBLISHED}{s}")),
        );
        if failed > range.indices.start {
            self.checkpoints.commit_through(ev, failed - 1).await?;
        }
        if !published_after.is_empty() {
            self.checkpoints
                .begin(&self.scope, &seqs[failed..durable_end], |_| {
                    published_after.clone()
                })
                .await?;
        }
        Ok(PublishOutcome {
            failed_from: Some(failed),
            report,
        })
    }
}
