//! Change records → domain events (the EventBridge contract in `design.md`).
//!
//! `DetailType` is `"<Entity> Inserted|Modified|Removed|Expired"`. The detail carries the
//! stream event id (consumers dedupe on it), the sequence number, table, entity, schema
//! version, op, keys and the images as plain JSON, upcast to the entity's latest version
//! (numbers stay exact: see `dynabridge_shared::events::number_to_json`). When the entry would
//! exceed 256 KB the event carries a claim check instead of the images: the CDC object key
//! when this invocation wrote it, and always the entity and padded `_seq` that identify the
//! row in `cdc/`.

use dynabridge_shared::codec::{Op, stream_seq};
use dynabridge_shared::events::{DomainEvent, item_to_json};
use dynabridge_shared::schema::{Attributes, Registry};
use dynabridge_shared::stream::ChangeRecord;
use serde_json::{Value, json};

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
