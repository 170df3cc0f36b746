//! Invariant checkers of the reliability suite: what must hold after any scenario, whatever
//! faults and crashes were injected.
//!
//! - [`cdc_exactly_once`]: every source change (key + sequence number) appears exactly once in
//!   `cdc/` — none missing, none duplicated, nothing that was not in the stream.
//! - [`events_at_least_once`]: every published change has an event; duplicates are counted
//!   (allowed only within the documented crash window, which the caller bounds).
//! - [`deleted_items_archived`]: every item that disappeared from the table is in the lake.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::LakeRow;

/// The identity of a change: `pk/sk@seq` (seq unpadded).
pub type ChangeId = String;

/// What a checker found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    /// Expected but absent.
    pub missing: Vec<ChangeId>,
    /// Present more than once (with the count).
    pub duplicated: Vec<(ChangeId, usize)>,
    /// Present but never expected.
    pub unexpected: Vec<ChangeId>,
}

impl Violations {
    /// No violation at all.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

fn key_of_json(keys: &Value) -> String {
    let s = |k: &str| keys[k]["S"].as_str().unwrap_or_default().to_string();
    format!("{}/{}", s("pk"), s("sk"))
}

fn unpadded(seq: &str) -> String {
    let t = seq.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// The change ids of Lambda stream records.
pub fn stream_changes(records: &[Value]) -> Vec<ChangeId> {
    records
        .iter()
        .map(|r| {
            format!(
                "{}@{}",
                key_of_json(&r["dynamodb"]["Keys"]),
                unpadded(r["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default())
            )
        })
        .collect()
}

/// The change ids of lake rows.
pub fn lake_changes(rows: &[LakeRow]) -> Vec<ChangeId> {
    rows.iter()
        .map(|r| {
            let s = |k: &str| match r.row.item.get(k) {
                Some(serde_dynamo::AttributeValue::S(v)) => v.clone(),
                _ => String::new(),
            };
            format!(
                "{}/{}@{}",
                s("pk"),
                s("sk"),
                unpadded(r.row.seq.as_deref().unwrap_or(""))
            )
        })
        .collect()
}

fn compare(expected: &[ChangeId], found: &[ChangeId]) -> Violations {
    let mut counts: BTreeMap<&ChangeId, usize> = BTreeMap::new();
    for f in found {
        *counts.entry(f).or_default() += 1;
    }
    let expected_set: BTreeSet<&ChangeId> = expected.iter().collect();
    Violations {
        missing: expected
            .iter()
            .filter(|e| !counts.contains_key(e))
            .cloned()
            .collect(),
        duplicated: counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| ((*k).clone(), *n))
            .collect(),
        unexpected: counts
            .keys()
            .filter(|k| !expected_set.contains(*k))
            .map(|k| (*k).clone())
            .collect(),
    }
}

/// Every stream change exactly once in the lake rows.
pub fn cdc_exactly_once(records: &[Value], rows: &[LakeRow]) -> Violations {
    compare(&stream_changes(records), &lake_changes(rows))
}

/// Every stream change has an event (by `detail.keys` + `detail.sequenceNumber`).
pub fn events_at_least_once(records: &[Value], events: &[Value]) -> Violations {
    let found: Vec<ChangeId> = events
        .iter()
        .map(|e| {
            let d = &e["detail"];
            let pk = d["keys"]["pk"].as_str().unwrap_or_default();
            let sk = d["keys"]["sk"].as_str().unwrap_or_default();
            format!(
                "{pk}/{sk}@{}",
                unpadded(d["sequenceNumber"].as_str().unwrap_or_default())
            )
        })
        .collect();
    compare(&stream_changes(records), &found)
}

/// Every key in `deleted` (items gone from the table) has a row in the lake.
pub fn deleted_items_archived(deleted: &[String], rows: &[LakeRow]) -> Vec<String> {
    let in_lake: BTreeSet<String> = lake_changes(rows)
        .into_iter()
        .map(|c| c.split('@').next().unwrap_or_default().to_string())
        .collect();
    deleted
        .iter()
        .filter(|k| !in_lake.contains(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(pk: &str, seq: &str) -> Value {
        json!({"dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "x"}}, "SequenceNumber": seq}})
    }

    #[test]
    fn each_checker_catches_a_planted_violation() {
        let records = vec![rec("A", "1"), rec("B", "2"), rec("C", "3")];
        // Planted: B duplicated (a retry that skipped the checkpoint), C lost, D invented.
        let found = vec![
            "A/x@1".to_string(),
            "B/x@2".into(),
            "B/x@2".into(),
            "D/x@9".into(),
        ];
        let v = compare(&stream_changes(&records), &found);
        assert_eq!(v.missing, ["C/x@3"]);
        assert_eq!(v.duplicated, [("B/x@2".to_string(), 2)]);
        assert_eq!(v.unexpected, ["D/x@9"]);
        assert!(!v.is_clean());
        let events =
            vec![json!({"detail": {"keys": {"pk": "A", "sk": "x"}, "sequenceNumber": "1"}})];
        let v = events_at_least_once(&records, &events);
        assert_eq!(v.missing.len(), 2);
        assert!(compare(&stream_changes(&records), &stream_changes(&records)).is_clean());
    }
}
