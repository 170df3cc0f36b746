//! The control-table records of an export run: one **run** record (created once per schedule
//! tick, conditionally, so a duplicate tick never starts a second run) and one **segment**
//! record per segment (its lease, cursor, part number, files and counters).
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `aged-export#<table>` | `run#<run id>` | `plan` (JSON), `status` (`RUNNING`/`COMPLETED`), `done` (NS of finished segments), `dispatched`, `created_at_ms`, `completed_at_ms`, `manifest` |
//! | `aged-export#<table>` | `run#<run id>#seg#<nnnn>` | `status` (`RUNNING`/`DONE`), `lease_token`, `lease_expiry_ms`, `cursor`, `scan_done`, `next_part`, `files` (JSON), `stats` (JSON), `pending_actions` (S3 key), `pending_offset`, `attempts`, `updated_at_ms` |
//!
//! A segment is worked on by at most one invocation at a time: the **lease** is taken with a
//! conditional write and expires at the holder's Lambda deadline (a holder cannot outlive
//! it), and every later write of the holder is conditional on its lease token.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::idempotency::IdempotencyError;
use serde::{Deserialize, Serialize};

/// `status` of a run or segment in progress.
pub const RUNNING: &str = "RUNNING";
/// `status` of a completed run.
pub const COMPLETED: &str = "COMPLETED";
/// `status` of a finished segment.
pub const DONE: &str = "DONE";

/// Everything a run's invocations must agree on, fixed when the run is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlan {
    /// Deterministic run id (schedule time + rule).
    pub run_id: String,
    /// The schedule (rule ARN or name) that started it.
    pub schedule: String,
    /// The schedule tick, RFC 3339.
    pub schedule_time: String,
    /// Snapshot time: the tick, µs (`_event_time` and `_seq` of every row).
    pub snapshot_micros: i64,
    /// Items whose age is before this instant (µs) are exported.
    pub cutoff_micros: i64,
    /// Items older than this (µs) may be deleted (`delete`: cutoff minus the grace period).
    pub delete_before_micros: i64,
    /// `dt` partition of the run's files.
    pub day: String,
    /// Number of segments.
    pub segments: u32,
    /// `none | ttl | delete`.
    pub action: String,
    /// With `ttl`: the TTL value written (epoch seconds).
    pub ttl_epoch_seconds: i64,
}

/// One file of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Object key.
    pub key: String,
    /// Entity (`quarantine` for a quarantine file).
    pub entity: String,
    /// Segment.
    pub segment: u32,
    /// Part.
    pub part: u32,
    /// Rows (lines for quarantine files).
    pub rows: u64,
    /// Object bytes.
    pub bytes: u64,
    /// Smallest key in the file (key attributes as text).
    pub min_key: Option<serde_json::Value>,
    /// Largest key in the file.
    pub max_key: Option<serde_json::Value>,
}

/// Counters of a segment (summed into the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Items DynamoDB read.
    pub scanned: u64,
    /// Items returned by the (conservative) filter.
    pub returned: u64,
    /// Returned but not aged (by the exact per-entity rule).
    pub not_aged: u64,
    /// Rows written to `archive/`.
    pub exported: u64,
    /// Items quarantined (schema errors); never expired.
    pub quarantined: u64,
    /// TTL set.
    pub expired: u64,
    /// Deleted.
    pub deleted: u64,
    /// Kept because they changed after they were read.
    pub kept_changed: u64,
    /// Exported but kept: younger than the age threshold plus the grace period (`delete`).
    pub kept_in_grace: u64,
    /// Gone before the action (deleted meanwhile, or by an earlier attempt).
    pub absent: u64,
    /// Kept: too many attributes to guard in one condition.
    pub unguardable: u64,
    /// Kept: the guarded request failed.
    pub action_failed: u64,
    /// Pages read.
    pub pages: u64,
    /// Parts committed.
    pub parts: u64,
    /// Invocations that continued the segment near their deadline.
    pub continuations: u64,
}

impl Stats {
    /// Adds `other`.
    pub fn add(&mut self, o: &Stats) {
        self.scanned += o.scanned;
        self.returned += o.returned;
        self.not_aged += o.not_aged;
        self.exported += o.exported;
        self.quarantined += o.quarantined;
        self.expired += o.expired;
        self.deleted += o.deleted;
        self.kept_changed += o.kept_changed;
        self.kept_in_grace += o.kept_in_grace;
        self.absent += o.absent;
        self.unguardable += o.unguardable;
        self.action_failed += o.action_failed;
        self.pages += o.pages;
        self.parts += o.parts;
        self.continuations += o.continuations;
    }
}

/// A run record.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its plan.
    pub plan: RunPlan,
    /// `RUNNING` or `COMPLETED`.
    pub status: String,
    /// Finished segments.
    pub done: BTreeSet<u32>,
    /// Creation time, epoch ms.
    pub created_at_ms: u64,
    /// Whether the first dispatch of every segment succeeded.
    pub dispatched: bool,
}

/// A segment record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    /// `RUNNING` or `DONE`.
    pub status: String,
    /// The lease holder's token.
    pub lease_token: String,
    /// When the lease ends, epoch ms (0: free).
    pub lease_expiry_ms: u64,
    /// Where the read stands (`None`: at the start, or finished when `scan_done`).
    pub cursor: Option<String>,
    /// The read reached the end of the segment.
    pub scan_done: bool,
    /// The next part number.
    pub next_part: u32,
    /// Files committed.
    pub files: Vec<FileEntry>,
    /// Counters.
    pub stats: Stats,
    /// S3 key of the pending post-export actions of the last committed part.
    pub pending_actions: Option<String>,
    /// Actions of `pending_actions` already applied.
    pub pending_offset: u64,
    /// Invocations that took the lease.
    pub attempts: u64,
    /// Last change, epoch ms.
    pub updated_at_ms: u64,
}

/// Why a segment could not be leased.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseRefused {
    /// The segment is finished.
    Done,
    /// Another invocation holds it until this time (epoch ms).
    Held(u64),
}

/// Access to a table's run and segment records.
#[derive(Debug, Clone)]
pub struct Control {
    client: Client,
    table: String,
    pk: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> u64 {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

fn ddb_err(op: &'static str, e: impl std::error::Error) -> DynabridgeError {
    DynabridgeError::aws("DynamoDB", op, e)
}

/// The segment's sort key.
pub fn segment_sk(run_id: &str, segment: u32) -> String {
    format!("run#{run_id}#seg#{segment:04}")
}

impl Control {
    /// Records of `app_table` in the control table `control_table`.
    pub fn new(client: Client, control_table: &str, app_table: &str) -> Self {
        Control {
            client,
            table: control_table.to_string(),
            pk: format!("aged-export#{app_table}"),
        }
    }

    fn key(&self, sk: String) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(&self.pk)), ("sk".to_string(), s(sk))])
    }

    /// Creates the run; `Err(existing)` when the run already exists (a duplicate tick).
    pub async fn create_run(
        &self,
        plan: &RunPlan,
        now_ms: u64,
    ) -> Result<Result<Run, Run>, DynabridgeError> {
        let mut item = self.key(format!("run#{}", plan.run_id));
        item.insert("plan".into(), s(serde_json::to_string(plan)?));
        item.insert("status".into(), s(RUNNING));
        item.insert("created_at_ms".into(), n(now_ms));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Ok(parse_run(&item)?)),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(ccf) => match ccf.item() {
                    Some(old) => Ok(Err(parse_run(old)?)),
                    None => Err(DynabridgeError::Other(
                        "run exists but DynamoDB returned no record".into(),
                    )),
                },
                other => Err(ddb_err("PutItem", other)),
            },
            Err(e) => Err(ddb_err("PutItem", e)),
        }
    }

    /// Reads a run (strongly consistent).
    pub async fn run(&self, run_id: &str) -> Result<Option<Run>, DynabridgeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(format!("run#{run_id}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_err("GetItem", e))?;
        out.item().map(parse_run).transpose()
    }

    /// Records that every segment of the run was dispatched once.
    pub async fn mark_dispatched(&self, run_id: &str) -> Result<(), DynabridgeError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(format!("run#{run_id}"))))
            .update_expression("SET #d = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#d", "dispatched")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| ddb_err("UpdateItem", e))?;
        Ok(())
    }

    /// Records segment `segment` finished; returns the run as updated.
    pub async fn mark_done(&self, run_id: &str, segment: u32) -> Result<Run, DynabridgeError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(format!("run#{run_id}"))))
            .update_expression("ADD #done :seg")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":seg", AttributeValue::Ns(vec![segment.to_string()]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| ddb_err("UpdateItem", e))?;
        let item = out
            .attributes()
            .ok_or_else(|| DynabridgeError::Other("UpdateItem returned no run record".into()))?;
        parse_run(item)
    }

    /// Marks the run completed (idempotent).
    pub async fn complete_run(
        &self,
        run_id: &str,
        manifest_key: &str,
        now_ms: u64,
    ) -> Result<(), DynabridgeError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(format!("run#{run_id}"))))
            .update_expression("SET #st = :completed, #at = :now, #m = :manifest")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#at", "completed_at_ms")
            .expression_attribute_names("#m", "manifest")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":manifest", s(manifest_key))
            .send()
            .await
            .map_err(|e| ddb_err("UpdateItem", e))?;
        Ok(())
    }

    /// Every segment record of a run, by segment number.
    pub async fn segments(&self, run_id: &str) -> Result<Vec<(u32, Segment)>, DynabridgeError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(&self.pk))
                .expression_attribute_values(":prefix", s(format!("run#{run_id}#seg#")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| ddb_err("Query", e))?;
            for item in page.items() {
                let seg = get_s(item, "sk")
                    .and_then(|sk| sk.rsplit('#').next().and_then(|n| n.parse().ok()))
                    .ok_or_else(|| {
                        DynabridgeError::Other("segment record without number".into())
                    })?;
                out.push((seg, parse_segment(item)?));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out)
    }

    /// Takes the lease of a segment until `lease_expiry_ms` (creating the record on first use).
    pub async fn lease(
        &self,
        run_id: &str,
        segment: u32,
        token: &str,
        now_ms: u64,
        lease_expiry_ms: u64,
    ) -> Result<Result<Segment, LeaseRefused>, DynabridgeError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(segment_sk(run_id, segment))))
            .update_expression(
                "SET #st = if_not_exists(#st, :running), #tok = :tok, #exp = :exp, \
                 #att = if_not_exists(#att, :zero) + :one, #upd = :now, \
                 #np = if_not_exists(#np, :zero)",
            )
            .condition_expression("attribute_not_exists(pk) OR (#st = :running AND #exp < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "lease_token")
            .expression_attribute_names("#exp", "lease_expiry_ms")
            .expression_attribute_names("#att", "attempts")
            .expression_attribute_names("#upd", "updated_at_ms")
            .expression_attribute_names("#np", "next_part")
            .expression_attribute_values(":running", s(RUNNING))
            .expression_attribute_values(":tok", s(token))
            .expression_attribute_values(":exp", n(lease_expiry_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().ok_or_else(|| {
                    DynabridgeError::Other("UpdateItem returned no segment record".into())
                })?;
                Ok(Ok(parse_segment(item)?))
            }
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => {
                    let old = ccf
                        .item()
                        .map(parse_segment)
                        .transpose()?
                        .unwrap_or_default();
                    if old.status == DONE {
                        Ok(Err(LeaseRefused::Done))
                    } else {
                        Ok(Err(LeaseRefused::Held(old.lease_expiry_ms)))
                    }
                }
                other => Err(ddb_err("UpdateItem", other)),
            },
            Err(e) => Err(ddb_err("UpdateItem", e)),
        }
    }

    /// Writes the segment's progress, only while `state.lease_token` still holds the lease.
    pub async fn save(
        &self,
        run_id: &str,
        segment: u32,
        state: &Segment,
        now_ms: u64,
    ) -> Result<(), DynabridgeError> {
        let mut set = vec![
            "#st = :st",
            "#exp = :exp",
            "#sd = :sd",
            "#np = :np",
            "#files = :files",
            "#stats = :stats",
            "#po = :po",
            "#upd = :now",
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (":st".to_string(), s(&state.status)),
            (":exp".to_string(), n(state.lease_expiry_ms)),
            (":sd".to_string(), AttributeValue::Bool(state.scan_done)),
            (":np".to_string(), n(state.next_part)),
            (
                ":files".to_string(),
                s(serde_json::to_string(&state.files)?),
            ),
            (
                ":stats".to_string(),
                s(serde_json::to_string(&state.stats)?),
            ),
            (":po".to_string(), n(state.pending_offset)),
            (":now".to_string(), n(now_ms)),
            (":tok".to_string(), s(&state.lease_token)),
        ]);
        match &state.cursor {
            Some(c) => {
                set.push("#cur = :cur");
                values.insert(":cur".into(), s(c));
            }
            None => remove.push("#cur"),
        }
        match &state.pending_actions {
            Some(p) => {
                set.push("#pa = :pa");
                values.insert(":pa".into(), s(p));
            }
            None => remove.push("#pa"),
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let names = HashMap::from(
            [
                ("#st", "status"),
                ("#exp", "lease_expiry_ms"),
                ("#sd", "scan_done"),
                ("#np", "next_part"),
                ("#files", "files"),
                ("#stats", "stats"),
                ("#po", "pending_offset"),
                ("#upd", "updated_at_ms"),
                ("#cur", "cursor"),
                ("#pa", "pending_actions"),
                ("#tok", "lease_token"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        );
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(segment_sk(run_id, segment))))
            .update_expression(expr)
            .condition_expression("#tok = :tok")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(IdempotencyError::LeaseLost {
                    key: segment_sk(run_id, segment),
                }
                .into())
            }
            Err(e) => Err(ddb_err("UpdateItem", e)),
        }
    }
}

fn parse_run(item: &HashMap<String, AttributeValue>) -> Result<Run, DynabridgeError> {
    let plan = get_s(item, "plan")
        .ok_or_else(|| DynabridgeError::Other("run record without plan".into()))?;
    let done = match item.get("done") {
        Some(AttributeValue::Ns(v)) => v.iter().filter_map(|n| n.parse().ok()).collect(),
        _ => BTreeSet::new(),
    };
    Ok(Run {
        plan: serde_json::from_str(&plan)?,
        status: get_s(item, "status").unwrap_or_default(),
        done,
        created_at_ms: get_n(item, "created_at_ms"),
        dispatched: matches!(item.get("dispatched"), Some(AttributeValue::Bool(true))),
    })
}

fn parse_segment(item: &HashMap<String, AttributeValue>) -> Result<Segment, DynabridgeError> {
    let files = match get_s(item, "files") {
        Some(f) => serde_json::from_str(&f)?,
        None => Vec::new(),
    };
    let stats = match get_s(item, "stats") {
        Some(f) => serde_json::from_str(&f)?,
        None => Stats::default(),
    };
    Ok(Segment {
        status: get_s(item, "status").unwrap_or_default(),
        lease_token: get_s(item, "lease_token").unwrap_or_default(),
        lease_expiry_ms: get_n(item, "lease_expiry_ms"),
        cursor: get_s(item, "cursor"),
        scan_done: matches!(item.get("scan_done"), Some(AttributeValue::Bool(true))),
        next_part: u32::try_from(get_n(item, "next_part")).unwrap_or(u32::MAX),
        files,
        stats,
        pending_actions: get_s(item, "pending_actions"),
        pending_offset: get_n(item, "pending_offset"),
        attempts: get_n(item, "attempts"),
        updated_at_ms: get_n(item, "updated_at_ms"),
    })
}
