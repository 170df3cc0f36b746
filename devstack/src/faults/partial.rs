//! Partial results: rewrite a batch request so only some entries reach the upstream, then
//! splice the held-back entries into the upstream's answer as the service reports entries it
//! did not process. The SDK sees a successful call; only the caller's per-entry handling can
//! notice.
//!
//! Rewriting the body after the client signed it works because neither dynoxide nor
//! moto_server verifies SigV4 signatures (checked by the over-the-wire tests).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::plan::HoldBack;
#[cfg(test)]
use super::plan::SplitMix64;

/// A `BatchWriteItem` request split in two.
#[derive(Debug)]
pub(crate) struct SplitWrite {
    /// The request to forward, or `None` when every item is held back.
    pub forward: Option<Bytes>,
    /// Held-back write requests per table, in `UnprocessedItems` shape.
    pub held: Map<String, Value>,
    /// How many write requests were held back.
    pub held_count: usize,
}

/// Splits a `BatchWriteItem` body; `None` when it is not a non-empty, well-formed batch (the
/// request is then forwarded unchanged and the upstream's validation answers).
pub(crate) fn split_batch_write(body: &[u8], hold: &mut HoldBack<'_>) -> Option<SplitWrite> {
    let mut req: Value = serde_json::from_slice(body).ok()?;
    let items = req.get_mut("RequestItems")?.as_object_mut()?;
    let total: usize = items
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    if total == 0 || items.values().any(|v| !v.is_array()) {
        return None;
    }
    let all: Vec<&Value> = items
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .collect();
    let mut hold = hold.choose(&all)?.into_iter();
    let mut held = Map::new();
    let mut held_count = 0;
    for (table, writes) in items.iter_mut() {
        let Value::Array(writes) = writes else {
            continue;
        };
        let (keep, back): (Vec<Value>, Vec<Value>) = std::mem::take(writes)
            .into_iter()
            .partition(|_| !hold.next().unwrap_or(false));
        *writes = keep;
        if !back.is_empty() {
            held_count += back.len();
            held.insert(table.clone(), Value::Array(back));
        }
    }
    items.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
    let forward = if items.is_empty() {
        None
    } else {
        Some(Bytes::from(serde_json::to_vec(&req).ok()?))
    };
    Some(SplitWrite {
        forward,
        held,
        held_count,
    })
}

/// Adds the held-back writes to the upstream's `UnprocessedItems` (`None` upstream body: the
/// whole batch was held back and nothing was forwarded).
pub(crate) fn merge_batch_write(
    upstream: Option<&[u8]>,
    held: Map<String, Value>,
) -> Option<Bytes> {
    let mut resp: Value = match upstream {
        Some(b) => serde_json::from_slice(b).ok()?,
        None => json!({}),
    };
    let obj = resp.as_object_mut()?;
    let unprocessed = obj
        .entry("UnprocessedItems")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()?;
    for (table, writes) in held {
        let Value::Array(writes) = writes else {
            continue;
        };
        match unprocessed.get_mut(&table) {
            Some(Value::Array(existing)) => existing.extend(writes),
            _ => {
                unprocessed.insert(table, Value::Array(writes));
            }
        }
    }
    serde_json::to_vec(&resp).ok().map(Bytes::from)
}

/// A `PutEvents` request split in two.
#[derive(Debug)]
pub(crate) struct SplitEvents {
    /// The request to forward, or `None` when every entry is held back.
    pub forward: Option<Bytes>,
    /// Per original position: held back.
    pub held: Vec<bool>,
}

/// Splits a `PutEvents` body; `None` when it has no entries or is malformed.
pub(crate) fn split_put_events(body: &[u8], hold: &mut HoldBack<'_>) -> Option<SplitEvents> {
    let mut req: Value = serde_json::from_slice(body).ok()?;
    let entries = req.get_mut("Entries")?.as_array_mut()?;
    if entries.is_empty() {
        return None;
    }
    let held = hold.choose(&entries.iter().collect::<Vec<_>>())?;
    let mut flags = held.iter();
    entries.retain(|_| !flags.next().copied().unwrap_or(false));
    let forward = if entries.is_empty() {
        None
    } else {
        Some(Bytes::from(serde_json::to_vec(&req).ok()?))
    };
    Some(SplitEvents { forward, held })
}

/// The response for all original positions: upstream results where entries were forwarded
/// (in order), an `InternalFailure` entry where they were held back, and `FailedEntryCount`
/// covering both.
pub(crate) fn merge_put_events(upstream: Option<&[u8]>, held: &[bool]) -> Option<Bytes> {
    let mut resp: Value = match upstream {
        Some(b) => serde_json::from_slice(b).ok()?,
        None => json!({ "Entries": [], "FailedEntryCount": 0 }),
    };
    let obj = resp.as_object_mut()?;
    let upstream_entries = match obj.remove("Entries") {
        Some(Value::Array(e)) => e,
        _ => Vec::new(),
    };
    let forwarded = held.iter().filter(|h| !**h).count();
    if upstream_entries.len() != forwarded {
        return None;
    }
    let mut upstream_entries = upstream_entries.into_iter();
    let mut failed = 0u64;
    let mut entries = Vec::with_capacity(held.len());
    for &h in held {
        let entry = if h {
            json!({ "ErrorCode": "InternalFailure", "ErrorMessage": "injected" })
        } else {
            upstream_entries.next()?
        };
        if entry.get("ErrorCode").is_some_and(|c| !c.is_null()) {
            failed += 1;
        }
        entries.push(entry);
    }
    obj.insert("Entries".into(), Value::Array(entries));
    obj.insert("FailedEntryCount".into(), json!(failed));
    serde_json::to_vec(&resp).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_write_split_and_merge_keep_every_item_once() {
        let body = json!({
            "RequestItems": {
                "a": (0..7).map(|i| json!({"PutRequest": {"Item": {"pk": {"S": format!("a{i}")}}}})).collect::<Vec<_>>(),
                "b": (0..5).map(|i| json!({"DeleteRequest": {"Key": {"pk": {"S": format!("b{i}")}}}})).collect::<Vec<_>>(),
            },
            "ReturnConsumedCapacity": "TOTAL"
        });
        let mut rng = SplitMix64::new(11);
        let split = split_batch_write(
            &serde_json::to_vec(&body).unwrap(),
            &mut HoldBack::Random(&mut rng),
        )
        .unwrap();
        let fwd: Value = serde_json::from_slice(split.forward.as_ref().unwrap()).unwrap();
        assert_eq!(fwd["ReturnConsumedCapacity"], "TOTAL");
        let fwd_count: usize = fwd["RequestItems"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum();
        assert_eq!(fwd_count + split.held_count, 12);
        assert!(split.held_count >= 1);
        let merged = merge_batch_write(Some(br#"{"UnprocessedItems":{}}"#), split.held).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        let back: usize = merged["UnprocessedItems"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum();
        assert_eq!(back, split.held_count);
    }

    #[test]
    fn put_events_merge_places_failures_at_held_positions() {
        let held = [false, true, false, true];
        let upstream = br#"{"FailedEntryCount":0,"Entries":[{"EventId":"e0"},{"EventId":"e2"}]}"#;
        let merged: Value =
            serde_json::from_slice(&merge_put_events(Some(upstream), &held).unwrap()).unwrap();
        assert_eq!(merged["FailedEntryCount"], 2);
        assert_eq!(merged["Entries"][0]["EventId"], "e0");
        assert_eq!(merged["Entries"][1]["ErrorCode"], "InternalFailure");
        assert_eq!(merged["Entries"][2]["EventId"], "e2");
        assert_eq!(merged["Entries"][3]["ErrorMessage"], "injected");
    }

    #[test]
    fn everything_held_back_needs_no_upstream() {
        let mut rng = SplitMix64::new(0);
        let body = br#"{"Entries":[{"Source":"s","DetailType":"d","Detail":"{}"}]}"#;
        let split = split_put_events(body, &mut HoldBack::Random(&mut rng)).unwrap();
        assert!(split.forward.is_none());
        let merged: Value =
            serde_json::from_slice(&merge_put_events(None, &split.held).unwrap()).unwrap();
        assert_eq!(merged["FailedEntryCount"], 1);
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    #[test]
    fn entries_containing_the_marker_are_held_back_and_only_them() {
        let body = serde_json::to_vec(&json!({"Entries": [
            {"Detail": "{\"seq\":\"1\"}"}, {"Detail": "{\"seq\":\"2\",\"x\":\"poison\"}"}, {"Detail": "{\"seq\":\"3\"}"}
        ]}))
        .unwrap();
        let split = split_put_events(&body, &mut HoldBack::Containing("poison")).unwrap();
        assert_eq!(split.held, [false, true, false]);
        assert!(split_put_events(&body, &mut HoldBack::Containing("absent")).is_none());
    }
}
