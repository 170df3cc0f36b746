//! Invariant checkers of the reliability suite: what must hold after any scenario, whatever
//! faults and crashes were injected.
//!
//! - [`cdc_exactly_once`]: every source change (key + sequence number) appears exactly once in
//!   `cdc/` — none missing, none duplicated, nothing that was not in the stream.
//! - [`events_at_least_once`]: every published change has an event; duplicates are counted
//!   (allowed only within the documented crash window, which the caller bounds).
//! - [`deleted_items_archived`]: every item that disappeared from the table is in the lake.
//! - [`sync_applied`]: after `incremental-sync`, every inbound row is in the table exactly as
//!   in the file (or the newer item it must not overwrite is untouched), deleted, or in the
//!   rejects exactly once.
//! - [`archived_exactly_once`]: every item a cleanup deleted is archived exactly once, nothing
//!   is deleted without its archive, and nothing that changed after it was read is deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use dynabridge_shared::schema::Attributes;

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
    /// Present, but not with the expected content (a stale overwrite, a changed item deleted
    /// or a wrong value).
    pub changed: Vec<ChangeId>,
}

impl Violations {
    /// No violation at all.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.changed.is_empty()
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
        changed: Vec::new(),
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

/// What one key of an inbound file must look like after the sync.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncExpect {
    /// The item, exactly (the file's row, or the newer stored item guarded mode must keep).
    Item(Attributes),
    /// No item (a `DELETE` row).
    Absent,
    /// Not applied; in the rejects exactly once.
    Rejected,
}

/// Checks a sync against what every key must be: `table` holds the items now (by key id),
/// `rejected` the key ids of the rows in the rejects files (one entry per rejected row).
/// Missing: an expected item absent or a rejected row in no rejects file. Duplicated: a row
/// rejected more than once. Unexpected: an item where none should be (a delete not applied, a
/// rejected row written), or any key the file does not have. Changed: an item that differs
/// (a stale overwrite in guarded mode, a value not as in the file).
pub fn sync_applied(
    expected: &BTreeMap<String, SyncExpect>,
    table: &BTreeMap<String, Attributes>,
    rejected: &[String],
) -> Violations {
    let mut v = Violations::default();
    let mut reject_counts: BTreeMap<&String, usize> = BTreeMap::new();
    for r in rejected {
        *reject_counts.entry(r).or_default() += 1;
    }
    for (key, want) in expected {
        let have = table.get(key);
        match want {
            SyncExpect::Item(item) => match have {
                None => v.missing.push(key.clone()),
                Some(got) if got != item => v.changed.push(key.clone()),
                Some(_) => {}
            },
            SyncExpect::Absent => {
                if have.is_some() {
                    v.unexpected.push(key.clone());
                }
            }
            SyncExpect::Rejected => {
                if have.is_some() {
                    v.unexpected.push(key.clone());
                }
                match reject_counts.get(key) {
                    None => v.missing.push(key.clone()),
                    Some(n) if *n > 1 => v.duplicated.push((key.clone(), *n)),
                    Some(_) => {}
                }
            }
        }
    }
    for key in table.keys().chain(reject_counts.keys().copied()) {
        if !expected.contains_key(key) && !v.unexpected.contains(key) {
            v.unexpected.push(key.clone());
        }
    }
    v
}

/// Checks a cleanup: `before` is the table before it ran, `after` the table afterwards,
/// `archived` the key ids of the archive rows (one entry per row) and `changed` the keys the
/// application changed while the cleanup ran. Missing: an item gone from the table without an archive row. Duplicated: an
/// item archived more than once. Changed: a changed item that was deleted anyway.
/// Unexpected: an archive row for an item that was never in the table.
pub fn archived_exactly_once(
    before: &BTreeMap<String, Attributes>,
    after: &BTreeMap<String, Attributes>,
    archived: &[String],
    changed: &BTreeSet<String>,
) -> Violations {
    let mut v = Violations::default();
    let mut rows: BTreeMap<&String, usize> = BTreeMap::new();
    for k in archived {
        *rows.entry(k).or_default() += 1;
    }
    for key in before.keys() {
        let images = rows.get(key).copied().unwrap_or_default();
        if !after.contains_key(key) {
            if images == 0 {
                v.missing.push(key.clone());
            }
            if changed.contains(key) {
                v.changed.push(key.clone());
            }
        }
        if images > 1 {
            v.duplicated.push((key.clone(), images));
        }
    }
    for key in rows.keys() {
        if !before.contains_key(*key) {
            v.unexpected.push((*key).clone());
        }
    }
    v
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

    fn attrs(v: &str) -> Attributes {
        Attributes::from([(
            "v".to_string(),
            serde_dynamo::AttributeValue::S(v.to_string()),
        )])
    }

    #[test]
    fn the_sync_and_cleanup_checkers_catch_planted_violations() {
        let expected = BTreeMap::from([
            ("A".to_string(), SyncExpect::Item(attrs("file"))),
            ("B".to_string(), SyncExpect::Item(attrs("newer"))),
            ("C".to_string(), SyncExpect::Absent),
            ("D".to_string(), SyncExpect::Rejected),
            ("E".to_string(), SyncExpect::Item(attrs("file"))),
        ]);
        // Planted: B overwritten by a stale row, C not deleted, D rejected twice, E lost.
        let table = BTreeMap::from([
            ("A".to_string(), attrs("file")),
            ("B".to_string(), attrs("stale")),
            ("C".to_string(), attrs("x")),
        ]);
        let v = sync_applied(&expected, &table, &["D".into(), "D".into()]);
        assert_eq!(v.changed, ["B"]);
        assert_eq!(v.unexpected, ["C"]);
        assert_eq!(v.duplicated, [("D".to_string(), 2)]);
        assert_eq!(v.missing, ["E"]);
        let good = BTreeMap::from([
            ("A".to_string(), attrs("file")),
            ("B".to_string(), attrs("newer")),
            ("E".to_string(), attrs("file")),
        ]);
        assert!(sync_applied(&expected, &good, &["D".into()]).is_clean());

        let before = BTreeMap::from([
            ("P".to_string(), attrs("1")),
            ("Q".to_string(), attrs("1")),
            ("R".to_string(), attrs("1")),
            ("S".to_string(), attrs("1")),
        ]);
        let after = BTreeMap::from([("S".to_string(), attrs("2"))]);
        // Planted: P archived twice, Q deleted unarchived, R deleted although it changed.
        let changed = BTreeSet::from(["R".to_string(), "S".to_string()]);
        let v = archived_exactly_once(
            &before,
            &after,
            &["P".into(), "P".into(), "R".into(), "Z".into()],
            &changed,
        );
        assert_eq!(v.duplicated, [("P".to_string(), 2)]);
        assert_eq!(v.missing, ["Q"]);
        assert_eq!(v.changed, ["R"]);
        assert_eq!(v.unexpected, ["Z"]);
    }
}
