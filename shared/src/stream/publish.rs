//! Change records → domain events (the EventBridge contract in `design.md`), published
//! in stream order with a checkpoint so a retry never re-emits what already went out.
//!
//! `DetailType` is `"<Entity> Inserted|Modified|Removed|Expired"`. The detail carries the
//! stream event id (consumers dedupe on it), the sequence number, table, entity, schema
//! version, op, keys and the images as plain JSON, upcast to the entity's latest version
//! (numbers stay exact: see `dynabridge_shared::codec::ItemRef::write_plain_json`). When the entry would
//! exceed 256 KB the event carries a claim check instead of the images: the CDC object key
//! when this invocation wrote it, and always the entity and padded `_seq` that identify the
//! row in `cdc/`.

use std::collections::{BTreeSet, HashSet};

use serde_json::json;

use crate::checkpoint::{Checkpoints, Scope};
use crate::codec::{ItemRef, write_json_str};
use crate::codec::{Op, stream_seq};
use crate::config::CommonConfig;
use crate::error::DynabridgeError;
use crate::events::{DomainEvent, EventPublisher, PublishReport};
use crate::schema::Registry;
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

/// Claim checks are only built for details that could come near EventBridge's limit: the
/// entry also counts the source (≤ 256 characters) and detail type (≤ 128), at most
/// 1,536 bytes of UTF-8 together.
const CLAIM_CHECK_FROM: usize = crate::events::MAX_CALL_BYTES - 2048;

fn push_field(out: &mut Vec<u8>, name: &str) {
    if out.len() > 1 {
        out.push(b',');
    }
    write_json_str(out, name);
    out.push(b':');
}

fn push_image(out: &mut Vec<u8>, name: &str, image: Option<&ItemRef<'_>>) {
    push_field(out, name);
    match image {
        Some(img) => img.write_plain_json(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// The domain event of one change of `entity`. Images are written as they are in the record:
/// [`crate::stream::StreamBatch::resolve`] upcast them to the entity's latest version.
pub fn domain_event(
    registry: &Registry,
    table: &str,
    entity: &str,
    change: &ChangeRecord<'_>,
    cdc: CdcLocation<'_>,
) -> DomainEvent {
    let schema_version = registry.entity(entity).map(|e| e.latest().version()).ok();
    let mut head = Vec::with_capacity(256 + change.keys.len() * 32);
    head.push(b'{');
    push_field(&mut head, "eventId");
    write_json_str(&mut head, &change.event_id);
    push_field(&mut head, "sequenceNumber");
    write_json_str(&mut head, &change.sequence_number);
    push_field(&mut head, "table");
    write_json_str(&mut head, table);
    push_field(&mut head, "entity");
    write_json_str(&mut head, entity);
    push_field(&mut head, "schemaVersion");
    match schema_version {
        Some(v) => head.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        None => head.extend_from_slice(b"null"),
    }
    push_field(&mut head, "op");
    write_json_str(&mut head, change.op.as_str());
    push_field(&mut head, "eventTime");
    write_event_time(&mut head, change.event_time_micros);
    push_field(&mut head, "keys");
    change.keys.write_plain_json(&mut head);
    let mut detail = head.clone();
    detail.reserve(
        change.new_image.as_ref().map_or(0, |i| i.size() * 2)
            + change.old_image.as_ref().map_or(0, |i| i.size() * 2),
    );
    push_image(&mut detail, "newImage", change.new_image.as_ref());
    push_image(&mut detail, "oldImage", change.old_image.as_ref());
    detail.push(b'}');
    let claim_check = (detail.len() > CLAIM_CHECK_FROM).then(|| {
        let mut claim = head;
        push_field(&mut claim, "claimCheck");
        let check = json!({
            "bucket": cdc.bucket,
            "key": cdc.key,
            "entity": entity,
            "seq": stream_seq(&change.sequence_number),
        });
        claim.extend_from_slice(check.to_string().as_bytes());
        claim.push(b'}');
        into_string(claim)
    });
    DomainEvent {
        detail_type: format!("{entity} {}", verb(change.op)),
        detail: into_string(detail),
        claim_check,
        resources: Vec::new(),
    }
}

/// Writes `micros` as a JSON string `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` (RFC 3339, µs, UTC, as
/// chrono's `to_rfc3339_opts(Micros, true)` writes it), or `null` when out of range.
fn write_event_time(out: &mut Vec<u8>, micros: i64) {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        out.extend_from_slice(b"null");
        return;
    };
    let (date, time) = (t.date_naive(), t.time());
    let year = match u32::try_from(date.year()) {
        Ok(y) if y <= 9999 => y,
        // Outside 4-digit years chrono writes a sign or more digits: let it.
        _ => {
            write_json_str(out, &t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            return;
        }
    };
    out.push(b'"');
    for (v, width, sep) in [
        (year, 4, b'-'),
        (date.month(), 2, b'-'),
        (date.day(), 2, b'T'),
        (time.hour(), 2, b':'),
        (time.minute(), 2, b':'),
        (time.second(), 2, b'.'),
        ((time.nanosecond() / 1_000).min(999_999), 6, b'Z'),
    ] {
        push_padded(out, v, width);
        out.push(sep);
    }
    out.push(b'"');
}

fn push_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

/// The JSON text written above (always UTF-8: it is built from `&str`s).
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
        batch: &StreamBatch<'_>,
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
            if already.contains(change.sequence_number.as_ref()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_match_chrono() {
        for micros in [
            0,
            1_795_316_400_500_000,
            -1,
            253_402_300_799_999_999,
            -62_135_596_800_000_000,
        ] {
            let mut out = Vec::new();
            write_event_time(&mut out, micros);
            let want = chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            assert_eq!(
                serde_json::from_slice::<Option<String>>(&out).unwrap(),
                want,
                "{micros}"
            );
        }
    }
}
